"""Where the fair study stands, with no loss shown: its kept runs by phase, and what is asked for now.

The output has no loss in it, so a study of days can be followed without looking at its results.

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

STAGES = ("phase 1", "R edge runs", "phase 2", "lr edge runs", "phase 3 at S", "phase 3 at L")
PLANNED = {  # the stages of fixed size, in runs
    "phase 1": len(analysis.FAIR_ARMS) * len(analysis.FAIR_PHASE1) * len(analysis.FAIR_CHOOSING_SEEDS),
    "phase 2": len(analysis.FAIR_ARMS) * (len(analysis.FAIR_LRS) - 1) * len(analysis.FAIR_CHOOSING_SEEDS),
    "phase 3 at S": len(analysis.FAIR_ARMS) * len(fair_choose.PHASE3_SEEDS),
    "phase 3 at L": len(analysis.FAIR_ARMS) * len(fair_choose.PHASE3_SEEDS),
}


def stage(run):
    """The stage of the plan a kept S run (analysis.fair_runs' record) belongs to: phase 3 by its seed;
    else lr 2e-3 is phase 1 on the phase-1 grid and an R edge run off it; another lr is phase 2 on the
    plan's lr grid and an lr edge run off it."""
    if run["seed"] in fair_choose.PHASE3_SEEDS:
        return "phase 3 at S"
    if run["lr"] == 2e-3:
        on_grid = any(analysis.fair_same_setting((run["norm"], run["R"], 2e-3), (n, R, 2e-3)) for n, R in analysis.FAIR_PHASE1)
        return "phase 1" if on_grid else "R edge runs"
    return "phase 2" if run["lr"] in analysis.FAIR_LRS else "lr edge runs"


def counts(logs_s, logs_l):
    """{stage: kept runs}, every stage present; a folder of kept logs that does not exist yet counts none."""
    out = dict.fromkeys(STAGES, 0)
    for r in analysis.fair_runs(logs_s) if os.path.isdir(logs_s) else []:
        out[stage(r)] += 1
    at_l = analysis.fair_runs(logs_l) if os.path.isdir(logs_l) else []
    out["phase 3 at L"] = sum(r["seed"] in fair_choose.PHASE3_SEEDS for r in at_l)
    return out


def asked_now(logs_s):
    """What the choosing step asks for now, as continue.sh asks it (the R axis until it is settled, then
    the learning rate, whose last answer is phase 3), said as the kind of run only: which arm needs what
    shows in the commands continue.sh runs, no earlier."""
    if not os.path.isdir(logs_s):
        return "nothing is kept yet: phase 1 first (results/study_fair/phase1.sh)"
    for axis, name in (("R", "the input axis (R)"), ("lr", "the learning rate")):
        choice = fair_choose.choice_from(logs_s, axis)
        if fair_choose.settled(choice, axis):
            continue
        runs = fair_choose.to_run(choice, axis)
        if not runs:  # an arm whose every setting diverged: continue.sh stops at this axis
            return f"{name} is stuck: `python -m scripts.fair_choose --axis {axis} --settled` says why"
        kind = "planned, not kept yet" if any(c["missing"] for c in choice.values()) else "edge runs"
        return f"{name} is open: the choosing step asks for {len(runs)} run{'s' * (len(runs) != 1)} ({kind})"
    return "both axes are settled: phase 3, then Q4 (python -m scripts.fair_q4)"


def report(logs_s, logs_l):
    """The counts, what is asked for now, and what is left of the stages of fixed size."""
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
