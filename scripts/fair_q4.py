"""The fair study's Q4 (results/study_fair/PLAN.md, amendment 2): typo robustness at matched validation loss.

    python -m scripts.fair_q4                 # after phase 3 at S: match, probe, test; resumable
    python -m scripts.fair_q4 --dry-run       # the matching only: which checkpoint pairs count

For each phase-3 seed (2001-2005), every checkpoint of kron (steps 100-400 kept, and the final one) is
paired with the best table's checkpoint whose logged validation loss is closest; a pair counts within
0.02 nats (analysis.q4_matches). The same for kron_shuffled, the control. probes/robustness.py runs
on each counted pair, its robustness.json kept in results/study_fair/q4/<arm>/s<seed>-a<step>-t<step>/
(a pair already kept is not probed again); then analysis.q4_test: per prompt A - table, sign tests,
Holm over survival and KL, the plan's verdict. Writes results/study_fair/q4/q4.json.

A pair whose probe is kept needs no checkpoint: pairs are matched on the kept logs' losses. A run
whose checkpoints a pair still needs and whose folder is gone (a new clone, a lost workspace) is
trained again for them into its folder by the runner's own command, after checking that it plans the
run the kept log records; its kept log stays. Pairs probed after that see the retrained weights:
q4/redone.json, q4.json and RESULTS.md name those runs with how far their evaluations differ from the
kept logs. An interrupted redo resumes on the next call.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.fair_q4", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import contextlib
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
from errors import UserError, run_cli
from runlog import read_json, read_metrics
from scripts import run_study
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


def eval_losses(log):
    """{step: val_loss} of a run's evaluations (its folder or its metrics.jsonl)."""
    return {e["step"]: e["val_loss"] for e in read_metrics(log, "eval")}


def checkpoints(logs, runs_root, run):
    """{step: (checkpoint path or None when it is not on disk, that step's val_loss as the kept log has
    it)} of a phase-3 run: each step it kept a checkpoint at (keep_ckpt_steps, at an evaluation) and its
    final step, whose ckpt.pt counts only once the run in the folder finished there (an interrupted redo's
    ckpt.pt holds earlier weights). The steps come from the kept log, so a pair whose probe is kept needs
    no checkpoint."""
    log = os.path.join(logs, run["name"])
    losses = eval_losses(log)
    kept_steps = {s for c in read_metrics(log, "config") for s in c["config"].get("keep_ckpt_steps") or ()}
    if not kept_steps:
        raise ValueError(f"{log}: kept no checkpoints; Q4 needs phase-3 runs made with {KEEP_CKPTS} (amendment 2)")
    folder = os.path.join(runs_root, run["name"])
    out = {s: checkpoint.paths(folder, kept_step=s)[0] for s in sorted(losses) if s in kept_steps}
    final, meta = max(losses), checkpoint.read_meta(folder) if os.path.isdir(folder) else None
    out[final] = checkpoint.paths(folder)[0] if meta and meta.get("finished") and meta.get("step") == final else None
    return {s: (path if path and os.path.isfile(path) else None, losses[s]) for s, path in out.items()}


def lost(run, ckpts, runs_root):
    """Whether a run must be trained (again) for the checkpoints a probe needs: its folder is gone (a new
    clone, a lost workspace) or holds a redo that was interrupted (the runner resumes it). A finished
    run's folder without them is refused, named: something removed them, and training over it would hide that."""
    missing = [s for s, (path, _) in ckpts.items() if path is None]
    if not missing:
        return False
    folder = os.path.join(runs_root, run["name"])
    meta = checkpoint.read_meta(folder) if os.path.isdir(folder) else None
    if meta is not None and meta.get("finished"):
        raise FileNotFoundError(
            f"{folder}: the checkpoints of steps {missing} that Q4 needs are missing from this finished run; "
            "restore them or move the folder away"
        )
    return True


class RedoError(UserError):
    """A run trained again for its checkpoints could not be, or would not be the run its kept log records."""


def planned(cmd, run, logs):
    """Check, before hours of training, that the runner's command plans the run the kept log records: the
    same folder, and the kept log's config and data are what it would train (run_study.kept_state)."""
    args, extra, grid = run_study.parse_args(shlex.split(cmd)[3:])
    (plan,) = run_study.plan(args.arms, args.seeds, grid, args.out_root)
    with contextlib.chdir(ROOT):  # the command's paths (config, data) are the repository's
        same = (
            os.path.basename(plan["out_dir"]) == run["name"]
            and run_study.kept_state(plan, logs, run_study.planned_want(plan, args.base, extra)) == "finished"
        )
    if not same:
        raise RedoError(f"{run['name']}: the runner would not train the run its kept log records (its config or data changed): {cmd}")


def retrain(commands, lanes):
    """Run the runner commands, `lanes` at a time; a failure is raised once every command has ended."""
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for cmd, code in zip(commands, pool.map(lambda c: subprocess.run(shlex.split(c), cwd=ROOT).returncode, commands)):
            if code != 0:
                raise RedoError(f"training again for Q4's checkpoints failed (exit {code}): {cmd}")


def redone_record(args):
    """(q4/redone.json's path, its {run name: largest evaluation difference or None}), empty when absent."""
    path = os.path.join(args.out, "redone.json")
    return path, (read_json(path) if os.path.isfile(path) else {})


def write_json(path, obj):
    """q4.json and redone.json: indented JSON, its folder made."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def redo(runs, choice, args):
    """Train again each phase-3 run whose checkpoints were lost, into its own folder, as phase 3 made it
    (the runner's command without --keep-logs: its kept log stays). Each is recorded in q4/redone.json
    before it starts, so a run redone by an interrupted call is still named."""
    names = ", ".join(r["name"] for r in runs)
    if os.path.realpath(args.runs) != os.path.realpath(REDO_ROOT):
        raise RedoError(f"--runs {args.runs}: {names} lost their checkpoints; a redo trains into {REDO_ROOT}: give that --runs")
    commands = [command(r["arm"], choice[r["arm"]]["chosen"], r["seed"], [KEEP_CKPTS], python=sys.executable, keep=False) for r in runs]
    for cmd, r in zip(commands, runs):
        planned(cmd, r, args.logs)
    path, redone = redone_record(args)
    redone.update({r["name"]: None for r in runs if r["name"] not in redone})
    write_json(path, redone)
    print(f"{len(runs)} phase-3 runs lost their checkpoints ({names}): trained again for them; their kept logs stay")
    retrain(commands, args.lanes)


def eval_difference(args, name):
    """The largest |val_loss| difference between a redone run's evaluations and its kept log's, or None
    when its folder is gone again (the value recorded before stands)."""
    log = os.path.join(args.runs, name, "metrics.jsonl")
    if not os.path.isfile(log):
        return None
    kept, again = eval_losses(os.path.join(args.logs, name)), eval_losses(log)
    return max((abs(kept[s] - again[s]) for s in kept if s in again), default=None)


def redone_runs(args):
    """{run name: largest evaluation difference} of every run Q4 trained again, kept up to date in q4/redone.json."""
    path, redone = redone_record(args)
    for name, before in redone.items():
        now = eval_difference(args, name)
        redone[name] = before if now is None else now
        if now is not None:
            print(f"redone {name}: its evaluations differ from its kept log by at most {now:.2e} nats")
    if redone:
        write_json(path, redone)
    return redone


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
    """Where a counted pair's robustness.json is kept: one folder per (arm, seed, step, table step)."""
    return os.path.join(args.out, arm, f"s{m['seed']}-a{m['step']}-t{m['table_step']}")


def all_matches(best, args, found, say=print):
    """{(arm, seed): matched(...)} of every seed with both runs finished; a seed without one is left out, said."""
    out = {}
    for arm in ARMS:
        for seed in PHASE3_SEEDS:
            absent = [x for x in (arm, best) if (x, seed) not in found]
            if absent:
                say(f"{arm} s{seed}: no finished phase-3 run of {absent[0]} at its chosen setting; left out")
                continue
            out[arm, seed] = matched(arm, best, seed, args, found)
    return out


def lost_runs(best, args, found, seeds):
    """The runs whose checkpoints a counted pair not probed yet needs, gone with their folders (or in an
    interrupted redo's)."""
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
    if args.lanes < 1:
        p.error(f"--lanes {args.lanes}: expected 1 or more")
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
        seeds = all_matches(best, args, found, say=lambda line: None)  # the same matches (the kept logs'), now with checkpoints
        still = lost_runs(best, args, found, seeds)  # a redo that diverged, or stopped: no checkpoints to probe
        if still:
            raise RedoError(f"trained again, still without the checkpoints a probe needs: {', '.join(r['name'] for r in still)}")
    for arm in ARMS:
        matches, pairs = probed(arm, best, seeds, args)
        result["arms"][arm] = {"matches": matches, **({} if args.dry_run else analysis.q4_test(pairs, arm))}
        if not args.dry_run:
            print(f"{arm} against {best}: {result['arms'][arm]['verdict']} ({len(pairs)} counted pairs)")
    if not args.dry_run:
        result["redone"] = redone_runs(args)  # runs whose checkpoints were trained again: the probe saw those weights
        write_json(os.path.join(args.out, "q4.json"), result)
    return result


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
