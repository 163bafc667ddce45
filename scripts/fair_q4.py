"""The fair study's Q4 (results/study_fair/PLAN.md, amendment 2): typo robustness at matched validation loss.

    python -m scripts.fair_q4                 # after phase 3 at S: match, probe, test; resumable
    python -m scripts.fair_q4 --dry-run       # the matching only: which checkpoint pairs count

For each phase-3 seed (2001-2005), every checkpoint of kron (steps 100-400 kept, and the final one) is
paired with the best table's checkpoint whose logged validation loss is closest; a pair counts within
0.02 nats (analysis.q4_matches). The same for kron_shuffled, the control. probes/robustness.py runs
on each counted pair, its robustness.json kept in results/study_fair/q4/<arm>/s<seed>-a<step>-t<step>/
(a pair already kept is not probed again); then analysis.q4_test: per prompt A - table, sign tests,
Holm over survival and KL, the plan's verdict. Writes results/study_fair/q4/q4.json.

A pair whose probe is kept needs no checkpoint (the matching reads the kept logs). A run whose
checkpoints a pair still needs and whose folder is gone (a new clone, a lost workspace) is trained
again for them into its folder, as phase 3 made it; its kept log stays, and the console says how far
the new evaluations differ from it.
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
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import analysis
import checkpoint
from errors import run_cli
from runlog import read_json, read_metrics
from scripts.fair_choose import KEEP_CKPTS, PHASE3_SEEDS, SCALES, at_chosen, command, settled_choice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARMS = ("kron", "kron_shuffled")  # each against the best table
REDO_ROOT = os.path.join(ROOT, SCALES["S"][1])  # where the runner's commands train phase 3 at S


def phase3_runs(logs):
    """{(arm, seed): run} of the finished phase-3 runs (seeds 2001-2005) at each arm's chosen setting,
    the choice (fair_choose.settled_choice), and the names of those that diverged (left out, as
    amendment 1 says)."""
    choice = settled_choice(logs)  # NotSettled (a ValueError) until phases 1 and 2 are done
    best = analysis.fair_best_table(choice)
    found = at_chosen(analysis.fair_runs(logs), {arm: c["chosen"] for arm, c in choice.items()})
    diverged = sorted(r["name"] for r in found if r["dev"] == float("inf") and r["arm"] in ARMS + (best,))  # Q4's arms only
    return {(r["arm"], r["seed"]): r for r in found if r["name"] not in diverged}, choice, diverged


def checkpoints(logs, runs_root, run):
    """{step: (checkpoint path or None when it is not on disk, that step's val_loss as the kept log has
    it)} of a phase-3 run: each step it kept a checkpoint at (keep_ckpt_steps, at an evaluation) and its
    final step. The steps come from the kept log, so a pair whose probe is kept needs no checkpoint."""
    log = os.path.join(logs, run["name"])
    losses = {e["step"]: e["val_loss"] for e in read_metrics(log, "eval")}
    kept_steps = read_metrics(log, "config")[-1]["config"].get("keep_ckpt_steps") or []
    if not kept_steps:
        raise ValueError(f"{log}: kept no checkpoints; Q4 needs phase-3 runs made with {KEEP_CKPTS} (amendment 2)")
    folder = os.path.join(runs_root, run["name"])
    out = {s: checkpoint.paths(folder, kept_step=s)[0] for s in sorted(losses) if s in kept_steps}
    out[max(losses)] = checkpoint.paths(folder)[0]
    return {s: (path if os.path.isfile(path) else None, losses[s]) for s, path in out.items()}


def lost(run, ckpts, runs_root):
    """Whether a run's checkpoints that a probe needs are gone with its folder (a new clone, a lost
    workspace): it can be trained again for them. A folder that is there without them is refused, named."""
    if all(path for path, _ in ckpts.values()):
        return False
    folder = os.path.join(runs_root, run["name"])
    if os.path.exists(folder):
        raise FileNotFoundError(f"{folder}: a checkpoint Q4 needs is missing but the folder is there; restore it or move the folder away")
    return True


def retrain(commands, lanes):
    """Run the runner commands (fair_choose.command, no --keep-logs: each kept log stays as it is), `lanes` at a time."""
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for cmd, done in zip(commands, pool.map(lambda c: subprocess.run(shlex.split(c), cwd=ROOT).returncode, commands)):
            if done != 0:
                raise RuntimeError(f"retraining for Q4's checkpoints failed (exit {done}): {cmd}")


def redo(lost_runs, choice, args):
    """Train again each phase-3 run whose checkpoints were lost, into its own folder, as phase 3 made it;
    then say how far its evaluations repeat its kept log's (0 on the same machine; a machine with other
    kernels moves them in the 4th decimal). The matching keeps using the kept log's losses."""
    if os.path.realpath(args.runs) != os.path.realpath(REDO_ROOT):
        raise FileNotFoundError(f"--runs {args.runs}: {len(lost_runs)} runs lack their checkpoints; a redo trains into {SCALES['S'][1]}")
    names = ", ".join(r["name"] for r in lost_runs)
    print(f"{len(lost_runs)} phase-3 runs lost their checkpoints ({names}): trained again for them; their kept logs stay")
    retrain(
        [command(r["arm"], choice[r["arm"]]["chosen"], r["seed"], [KEEP_CKPTS], python=sys.executable, keep=False) for r in lost_runs],
        args.lanes,
    )
    record = os.path.join(args.out, "redone.json")  # kept beside the probes, and reported in q4.json
    redone = read_json(record) if os.path.isfile(record) else {}
    for r in lost_runs:
        kept = {e["step"]: e["val_loss"] for e in read_metrics(os.path.join(args.logs, r["name"]), "eval")}
        again = {e["step"]: e["val_loss"] for e in read_metrics(os.path.join(args.runs, r["name"]), "eval")}
        worst = max(abs(kept[s] - again[s]) for s in kept if s in again)
        print(f"redone {r['name']}: its evaluations differ from its kept log by at most {worst:.2e} nats")
        redone[r["name"]] = {"max_eval_difference": worst}
    os.makedirs(args.out, exist_ok=True)
    with open(record, "w") as f:
        json.dump(redone, f, indent=1)


def probe(a_label, a_path, t_path, out_dir):
    """probes/robustness.py on one pair, its robustness.json kept in out_dir (the figure and table are not)."""
    from probes.common import load_all
    from probes.robustness import DEFAULT_PAIRS, load_pairs, run

    with tempfile.TemporaryDirectory() as tmp:
        run(load_all([f"{a_label}={a_path}", f"table={t_path}"]), load_pairs(DEFAULT_PAIRS), tmp)
        os.makedirs(out_dir, exist_ok=True)
        shutil.copy(os.path.join(tmp, "robustness.json"), os.path.join(out_dir, "robustness.json"))


def matched(arm, best, seed, args, found):
    """One seed's matches ({seed, step, table_step, loss_difference, counted}) and the two runs' checkpoints."""
    a, t = (checkpoints(args.logs, args.runs, found[x, seed]) for x in (arm, best))
    rows = analysis.q4_matches({s: v[1] for s, v in a.items()}, {s: v[1] for s, v in t.items()})
    return [{"seed": seed, "step": sa, "table_step": st, "loss_difference": d, "counted": c} for sa, st, d, c in rows], a, t


def pair_dir(args, arm, m):
    return os.path.join(args.out, arm, f"s{m['seed']}-a{m['step']}-t{m['table_step']}")


def all_matches(best, args, found):
    """{(arm, seed): matched(...)} of every seed with both runs finished; a seed without one is left out, said."""
    out = {}
    for arm in ARMS:
        for seed in PHASE3_SEEDS:
            absent = [x for x in (arm, best) if (x, seed) not in found]
            if absent:
                print(f"{arm} s{seed}: no finished phase-3 run of {absent[0]} at its chosen setting; left out")
                continue
            out[arm, seed] = matched(arm, best, seed, args, found)
    return out


def lost_runs(best, args, found, seeds):
    """The runs whose checkpoints a counted pair not probed yet needs, gone with their folders."""
    need = {}
    for (arm, seed), (matches, a, t) in seeds.items():
        if any(m["counted"] and not os.path.isfile(os.path.join(pair_dir(args, arm, m), "robustness.json")) for m in matches):
            for who, ckpts in ((arm, a), (best, t)):
                if lost(found[who, seed], ckpts, args.runs):
                    need[found[who, seed]["name"]] = found[who, seed]
    return list(need.values())


def probed(arm, best, seeds, args):
    """All of an arm's matches, and the probe records (A's, the table's) of each counted pair, probing
    any pair not kept yet (with --dry-run: the matches only)."""
    matches, pairs = [], []
    for (of, seed), (rows, a, t) in seeds.items():
        if of != arm:
            continue
        matches += rows
        for m in rows:
            diff = f"|val loss difference| {m['loss_difference']:.4f}{'' if m['counted'] else ' (not counted)'}"
            print(f"{arm} s{seed}: step {m['step']} with {best} step {m['table_step']}, {diff}")
            if not m["counted"] or args.dry_run:
                continue
            out_dir = pair_dir(args, arm, m)
            if not os.path.isfile(os.path.join(out_dir, "robustness.json")):
                probe(arm, a[m["step"]][0], t[m["table_step"]][0], out_dir)
            records = {rec["model"]: rec["records"] for rec in read_json(os.path.join(out_dir, "robustness.json"))["per_pair"]}
            pairs.append((records[arm], records["table"]))
    return matches, pairs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--logs", default=os.path.join(ROOT, "results", "study_fair", "runs"), help="the study's kept logs")
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "study_fair"), help="the run folders holding the checkpoints")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "study_fair", "q4"))
    p.add_argument("--dry-run", action="store_true", help="print the matching; probe nothing, train nothing")
    p.add_argument("--lanes", type=int, default=2, help="runs trained at a time when checkpoints were lost")
    args = p.parse_args(argv)
    found, choice, diverged = phase3_runs(args.logs)
    best = analysis.fair_best_table(choice)
    result = {"table": best, "tolerance": analysis.Q4_TOLERANCE, "diverged": diverged, "arms": {}}
    for name in diverged:
        print(f"{name} diverged: left out")
    seeds = all_matches(best, args, found)
    gone = lost_runs(best, args, found, seeds)
    if gone and args.dry_run:
        print(f"{len(gone)} runs lost the checkpoints a probe needs and would be trained again: {', '.join(r['name'] for r in gone)}")
    elif gone:
        redo(gone, choice, args)
        seeds = all_matches(best, args, found)  # the same matches (the kept logs'), now with their checkpoints
    for arm in ARMS:
        matches, pairs = probed(arm, best, seeds, args)
        result["arms"][arm] = {"matches": matches, **({} if args.dry_run else analysis.q4_test(pairs, arm))}
        if not args.dry_run:
            print(f"{arm} against {best}: {result['arms'][arm]['verdict']} ({len(pairs)} counted pairs)")
    if not args.dry_run:
        record = os.path.join(args.out, "redone.json")
        result["redone"] = read_json(record) if os.path.isfile(record) else {}  # runs whose checkpoints were trained again
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "q4.json"), "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
