"""The fair study's Q4 (results/study_fair/PLAN.md, amendment 2): typo robustness at matched validation loss.

    python -m scripts.fair_q4                 # after phase 3 at S: match, probe, test; resumable
    python -m scripts.fair_q4 --dry-run       # the matching only: which checkpoint pairs count

For each phase-3 seed (2001-2005), every checkpoint of kron (steps 100-400 kept, and the final one) is
paired with the best table's checkpoint whose logged validation loss is closest; a pair counts within
0.02 nats (analysis.q4_matches). The same for kron_shuffled, the control. probes/robustness.py runs
on each counted pair, its robustness.json kept in results/study_fair/q4/<arm>/s<seed>-a<step>-t<step>/
(a pair already kept is not probed again); then analysis.q4_test: per prompt A - table, sign tests,
Holm over survival and KL, the plan's verdict. Writes results/study_fair/q4/q4.json.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.fair_q4", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import shutil
import tempfile

import analysis
import checkpoint
from errors import run_cli
from runlog import read_json, read_metrics
from scripts.fair_choose import KEEP_CKPTS, PHASE3_SEEDS, at_chosen, settled_choice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMS = ("kron", "kron_shuffled")  # each against the best table


def phase3_runs(logs):
    """{(arm, seed): run} of the finished phase-3 runs (seeds 2001-2005) at each arm's chosen setting,
    the best table, and the names of those that diverged (left out, as amendment 1 says)."""
    choice = settled_choice(logs)  # NotSettled (a ValueError) until phases 1 and 2 are done
    best = analysis.fair_best_table(choice)
    found = at_chosen(analysis.fair_runs(logs), {arm: c["chosen"] for arm, c in choice.items()})
    diverged = sorted(r["name"] for r in found if r["dev"] == float("inf") and r["arm"] in ARMS + (best,))  # Q4's arms only
    return {(r["arm"], r["seed"]): r for r in found if r["name"] not in diverged}, best, diverged


def checkpoints(logs, runs_root, run):
    """{step: (checkpoint path, that step's logged val_loss)} of a phase-3 run: every checkpoint it kept
    at an evaluation step (keep_ckpt_steps) and its final one; refused when it kept none."""
    losses = {e["step"]: e["val_loss"] for e in read_metrics(os.path.join(logs, run["name"]), "eval")}
    folder = os.path.join(runs_root, run["name"])
    kept = {s: checkpoint.paths(folder, kept_step=s)[0] for s in losses if s}
    found = {s: path for s, path in kept.items() if os.path.isfile(path)}
    final = checkpoint.paths(folder)[0]
    if not found or not os.path.isfile(final):
        raise FileNotFoundError(f"{folder}: no kept checkpoints or no ckpt.pt; Q4 needs phase-3 runs made with {KEEP_CKPTS} (amendment 2)")
    found[max(losses)] = final
    return {s: (path, losses[s]) for s, path in sorted(found.items())}


def probe(a_label, a_path, t_path, out_dir):
    """probes/robustness.py on one pair, its robustness.json kept in out_dir (the figure and table are not)."""
    from probes.common import load_all
    from probes.robustness import DEFAULT_PAIRS, load_pairs, run

    with tempfile.TemporaryDirectory() as tmp:
        run(load_all([f"{a_label}={a_path}", f"table={t_path}"]), load_pairs(DEFAULT_PAIRS), tmp)
        os.makedirs(out_dir, exist_ok=True)
        shutil.copy(os.path.join(tmp, "robustness.json"), os.path.join(out_dir, "robustness.json"))


def one_seed(arm, best, seed, args, found):
    """The matches of one seed ({seed, step, table_step, loss_difference, counted}) and the probe
    records (A's, the table's) of each counted pair, probing any pair not kept yet."""
    a = checkpoints(args.logs, args.runs, found[arm, seed])
    t = checkpoints(args.logs, args.runs, found[best, seed])
    matches, pairs = [], []
    for sa, st, diff, counted in analysis.q4_matches({s: v[1] for s, v in a.items()}, {s: v[1] for s, v in t.items()}):
        matches.append({"seed": seed, "step": sa, "table_step": st, "loss_difference": diff, "counted": counted})
        print(f"{arm} s{seed}: step {sa} with {best} step {st}, |val loss difference| {diff:.4f}{'' if counted else ' (not counted)'}")
        if not counted or args.dry_run:
            continue
        out_dir = os.path.join(args.out, arm, f"s{seed}-a{sa}-t{st}")
        if not os.path.isfile(os.path.join(out_dir, "robustness.json")):
            probe(arm, a[sa][0], t[st][0], out_dir)
        records = {rec["model"]: rec["records"] for rec in read_json(os.path.join(out_dir, "robustness.json"))["per_pair"]}
        pairs.append((records[arm], records["table"]))
    return matches, pairs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--logs", default=os.path.join(ROOT, "results", "study_fair", "runs"), help="the study's kept logs")
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "study_fair"), help="the run folders holding the checkpoints")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "study_fair", "q4"))
    p.add_argument("--dry-run", action="store_true", help="print the matching; probe nothing")
    args = p.parse_args(argv)
    found, best, diverged = phase3_runs(args.logs)
    result = {"table": best, "tolerance": analysis.Q4_TOLERANCE, "diverged": diverged, "arms": {}}
    for name in diverged:
        print(f"{name} diverged: left out")
    for arm in ARMS:
        matches, pairs = [], []
        for seed in PHASE3_SEEDS:
            absent = [x for x in (arm, best) if (x, seed) not in found]
            if absent:
                print(f"{arm} s{seed}: no finished phase-3 run of {absent[0]} at its chosen setting; left out")
                continue
            m, pr = one_seed(arm, best, seed, args, found)
            matches, pairs = matches + m, pairs + pr
        result["arms"][arm] = {"matches": matches, **({} if args.dry_run else analysis.q4_test(pairs, arm))}
        if not args.dry_run:
            print(f"{arm} against {best}: {result['arms'][arm]['verdict']} ({len(pairs)} counted pairs)")
    if not args.dry_run:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "q4.json"), "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
