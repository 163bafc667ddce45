"""Where the fair study stands: its kept runs counted by phase and what the choosing step asks for now,
with no loss in the output, so a long study can be followed without looking at its results.

    python -m scripts.fair_progress            # results/study_fair/runs (S) and runs_v50k (L)

Phase 1, phase 2 and phase 3 have a fixed size (PLAN.md); edge runs are asked for by the choosing
rule as the results come in, so only those kept and those asked for now are known.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.fair_progress", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os

import analysis
from errors import run_cli
from scripts import fair_choose

SEEDS = (1337, 1338)  # phases 1-2 and their edge runs
PLANNED = {  # runs in each phase of fixed size
    "phase 1": len(analysis.FAIR_ARMS) * len(analysis.FAIR_PHASE1) * len(SEEDS),
    "phase 2": len(analysis.FAIR_ARMS) * (len(analysis.FAIR_LRS) - 1) * len(SEEDS),
    "phase 3 at S": len(analysis.FAIR_ARMS) * len(fair_choose.PHASE3_SEEDS),
    "phase 3 at L": len(analysis.FAIR_ARMS) * len(fair_choose.PHASE3_SEEDS),
}


def stage(run):
    """The stage of the plan a kept run (analysis.fair_runs' record) belongs to."""
    if run["seed"] in fair_choose.PHASE3_SEEDS:
        return "phase 3 at S"
    if run["lr"] == 2e-3:
        in_grid = any(analysis.fair_same_setting((run["norm"], run["R"], 2e-3), (n, R, 2e-3)) for n, R in analysis.FAIR_PHASE1)
        return "phase 1" if in_grid else "R edge runs"
    return "phase 2" if any(abs(run["lr"] - lr) <= 1e-9 for lr in analysis.FAIR_LRS) else "lr edge runs"


def counts(logs_s, logs_l):
    """{stage: kept runs}, every stage present; a folder of kept logs that does not exist yet counts none."""
    out = dict.fromkeys(["phase 1", "R edge runs", "phase 2", "lr edge runs", "phase 3 at S", "phase 3 at L"], 0)
    for r in analysis.fair_runs(logs_s) if os.path.isdir(logs_s) else []:
        out[stage(r)] += 1
    out["phase 3 at L"] = len(analysis.fair_runs(logs_l)) if os.path.isdir(logs_l) else 0
    return out


def asked_now(logs_s):
    """What the choosing step is doing and what it asks for now, as continue.sh asks it: the R axis until
    it is settled, then the learning-rate axis (whose last answer is phase 3)."""
    for axis, name in (("R", "the input axis (R)"), ("lr", "the learning rate")):
        choice = fair_choose.choice_from(logs_s, axis)
        why = fair_choose.unsettled(choice, axis)
        if why:
            runs = fair_choose.to_run(choice, axis)
            return f"{name} is open ({fair_choose.describe(why)}): the choosing step asks for {len(runs)} runs"
    return "both axes are settled: phase 3, then Q4 (python -m scripts.fair_q4)"


def report(logs_s, logs_l):
    kept = counts(logs_s, logs_l)
    lines = ["the fair study's kept runs (PLAN.md; no loss is shown here):"]
    for name, n in kept.items():
        lines.append(f"  {name:<13} {n:>3}" + (f" of {PLANNED[name]}" if name in PLANNED else " (as the edge rule asks)"))
    left = sum(max(PLANNED[name] - kept[name], 0) for name in PLANNED)
    lines.append(f"now: {asked_now(logs_s)}")
    lines.append(f"left: {left} runs in the fixed phases, and any edge run the rule asks for (2 seeds each)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--logs", default=os.path.join(fair_choose.ROOT, fair_choose.SCALES["S"][2]), help="kept logs at S")
    p.add_argument("--logs-l", default=os.path.join(fair_choose.ROOT, fair_choose.SCALES["L"][2]), help="kept logs at L")
    args = p.parse_args(argv)
    text = report(args.logs, args.logs_l)
    print(text)
    return text


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
