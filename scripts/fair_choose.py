"""The fair study's choosing step (results/study_fair/PLAN.md, phases 1 and 2): each arm's settings with
their dev loss over seeds 1337 and 1338, the chosen one, and the edge extension the plan asks for.

    python -m scripts.fair_choose --axis R      # after phase 1: input norm x input RMS, at lr 2e-3
    python -m scripts.fair_choose --axis lr     # after phase 2: learning rate at the chosen (norm, R)
    python -m scripts.fair_choose --axis R --commands   # only the runs to make now (results/study_fair/continue.sh)
    python -m scripts.fair_choose --axis lr --forecast-arm  # the best table as the forecast grid's third arm
    python -m scripts.fair_choose --axis R --settled    # fails, saying why, while an arm is not chosen

Run it once a phase is complete: an arm with a planned setting that lacks a seed (kept log) is reported
as incomplete and is not chosen. Each extension is printed as the runner command that makes it. The test half is never
read here (analysis.fair_runs reads only the dev half).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.fair_choose", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os
import shlex

import analysis
from errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


PHASE3_SEEDS = range(2001, 2006)
KEEP_CKPTS = "--keep_ckpt_steps=[100,200,300,400]"  # amendment 2: Q4's checkpoints, in phase 3 at S


SCALES = {  # base config, runner folder, kept logs (PLAN.md, "Scales")
    "S": ("config/study_fair.py", "runs/study_fair", "results/study_fair/runs"),
    "L": ("config/study_fair_v50k.py", "runs/study_fair_v50k", "results/study_fair/runs_v50k"),
}


def input_scale(arm, setting, scale="S"):
    """The multiplier a run of this (norm, R, lr) S setting gets at `scale`: R / the arm's own initial
    RMS (1 with the norm on), to 4 significant digits as the phase scripts write them."""
    norm, R, _ = analysis.fair_setting_at(setting, scale)
    return float(f"{R / (1.0 if norm else analysis.fair_own_rms(arm)):.4g}")


def command(arm, setting, seed, extra=(), scale="S", python="python", keep=True):
    """The run_study command for one (arm, setting, seed) at a scale, as phase1.sh writes them; setting
    is the S setting (at L its sqrt(d) point becomes L's); extra: more train.py overrides for every
    run, after --num_threads=1 (not in the run's name); keep=False: no --keep-logs (a run trained again
    for its checkpoints, whose kept log stays as it is)."""
    norm, _, lr = setting
    grid = ["--grid kron_shuffle_seed=seed"] if arm == "kron_shuffled" else []
    grid += ["--grid input_norm=True"] if norm else []
    grid += [f"--grid input_scale={input_scale(arm, setting, scale):g}"]
    grid += [] if lr == 2e-3 else [f"--grid learning_rate={lr:g}", f"--grid min_lr={lr / 10:g}"]  # in the run's name
    base, out_root, logs = SCALES[scale]
    return " ".join(
        [f"{shlex.quote(python)} -m scripts.run_study --base {base} --out-root {out_root}" + (f" --keep-logs {logs}" if keep else "")]
        + [f"--arms {'kron' if arm == 'kron_shuffled' else arm} --seeds {seed}"]
        + grid
        + ["--", "--num_threads=1", *(shlex.quote(e) for e in extra)]  # [100,...] is a shell glob unquoted
    )


def unsettled(choice, axis):
    """{arm: why} for each arm not yet chosen along `axis` for good: a setting lacks a seed, every
    setting diverged, or its choice sits at an edge and asks for the next point."""
    why = {}
    for arm, c in choice.items():
        if c["chosen"] is None:
            why[arm] = "every setting diverged" if c["diverged"] else "a setting lacks a seed"
        elif analysis.fair_extension(c["chosen"], list(c["settings"]), axis):
            why[arm] = "its choice asks for an edge run"
    return why


def settled(choice, axis):
    """Every arm chosen along `axis`, and none asks for an edge run."""
    return not unsettled(choice, axis)


class NotSettled(ValueError):
    """The fair study has not chosen every arm's learning rate: no best table to name yet."""


def forecast_arm(choice):
    """The forecast study's third arm (its PLAN.md, amendment 3): the best learned table at its chosen
    setting, as a run_forecast --arms spec. R is asked for as an RMS (input_rms), so that each model size
    gets its own multiplier: the sqrt(d) point as sqrt_d, any other R as the number."""
    if not settled(choice, "lr") or analysis.fair_best_table(choice) is None:
        raise NotSettled("the fair study has not chosen every arm's learning rate yet (--axis lr): no best table to name")
    table = analysis.fair_best_table(choice)
    norm, R, lr = choice[table]["chosen"]
    rms = "sqrt_d" if analysis.fair_is_sqrt_d(R) else f"{R:g}"
    items = (["input_norm=True"] if norm else []) + [f"input_rms={rms}"]
    items += [] if lr == 2e-3 else [f"learning_rate={lr:g}", f"min_lr={lr / 10:g}"]
    return f"{table}:{','.join(items)}"


def next_phase(choice, axis, python="python"):
    """When every arm is chosen and none needs an edge run: the next phase's runs, as commands. After R
    (phase 1): lr 1e-3 and 4e-3 at each arm's (norm, R), seeds 1337-1338 (phase 2). After lr (phase 2):
    each arm's chosen setting on seeds 2001-2005, at S (kron, kron_shuffled and the best table keeping
    Q4's checkpoints: amendment 2) and at L (the sqrt(d) point rescaled, as the plan says)."""
    if not settled(choice, axis):
        return []
    if axis == "R":
        return [
            command(arm, (c["chosen"][0], c["chosen"][1], lr), seed, python=python)
            for arm, c in choice.items()
            for lr in analysis.FAIR_LRS
            if lr != 2e-3  # phase 1's
            for seed in analysis.FAIR_CHOOSING_SEEDS
        ]
    probed = ("kron", "kron_shuffled", analysis.fair_best_table(choice))
    at_s = [
        command(arm, c["chosen"], seed, [KEEP_CKPTS] if arm in probed else [], python=python)
        for arm, c in choice.items()
        for seed in PHASE3_SEEDS
    ]
    return at_s + [command(arm, c["chosen"], seed, scale="L", python=python) for arm, c in choice.items() for seed in PHASE3_SEEDS]


def to_run(choice, axis, python="python"):
    """The commands to run now: the missing seeds of any setting that lacks one (a run interrupted or
    failed: rerunning resumes it), else every edge run the choice asks for, else the next phase's runs."""
    missing = [
        command(arm, setting, seed, python=python) for arm, c in choice.items() for setting, seeds in c["missing"].items() for seed in seeds
    ]
    if missing:
        return missing
    edges = [(arm, analysis.fair_extension(c["chosen"], list(c["settings"]), axis)) for arm, c in choice.items() if c["chosen"]]
    edges = [command(arm, nxt, seed, python=python) for arm, nxt in edges if nxt for seed in analysis.FAIR_CHOOSING_SEEDS]
    return edges or next_phase(choice, axis, python)


def report(choice, axis):
    lines, why = [], unsettled(choice, axis)
    for arm, c in choice.items():
        lines.append(f"{arm}:")
        for (norm, R, lr), m in sorted(c["settings"].items()):
            mark = "  <- chosen" if (norm, R, lr) == c["chosen"] else ""
            lines.append(f"  norm {'on ' if norm else 'off'} R {R:<7g} lr {lr:<7g} dev {'incomplete' if m is None else f'{m:.4f}'}{mark}")
        if c["chosen"] is None:
            lines.append(f"  not chosen: {why[arm]}")
            continue
        nxt = analysis.fair_extension(c["chosen"], list(c["settings"]), axis)
        if nxt:
            lines += [f"  edge: run {command(arm, nxt, seed)}" for seed in analysis.FAIR_CHOOSING_SEEDS]
    runs = next_phase(choice, axis)
    if runs:
        lines += [f"next phase ({len(runs)} runs):"] + [f"  {r}" for r in runs]
    return "\n".join(lines)


def choice_from(logs, axis):
    """analysis.fair_choice along `axis` from the kept logs of phases 1-2, with every run the plan makes
    there counted as missing until it is kept (phase 1: every arm at analysis.FAIR_PHASE1; phase 2: each
    arm's chosen (norm, R) at analysis.FAIR_LRS). Phase 3's seeds never choose; the R axis reads only lr 2e-3 runs, so
    phase 2's runs cannot move R's choice; the lr axis is refused (NotSettled) until R is settled."""
    if not os.path.isdir(logs):
        raise ValueError(f"--logs {logs!r}: not a folder of kept run logs")
    runs = [r for r in analysis.fair_runs(logs) if r["seed"] not in PHASE3_SEEDS]
    phase1 = {arm: [(norm, R, 2e-3) for norm, R in analysis.FAIR_PHASE1] for arm in analysis.FAIR_ARMS}
    by_r = analysis.fair_choice([r for r in runs if r["lr"] == 2e-3], planned=phase1)
    if axis == "R":
        return by_r
    if not settled(by_r, "R"):
        raise NotSettled(f"the input axis is not settled (--axis R: {describe(unsettled(by_r, 'R'))}): no learning rate is chosen yet")
    phase2 = {arm: [(*c["chosen"][:2], lr) for lr in analysis.FAIR_LRS] for arm, c in by_r.items()}
    return analysis.fair_choice(runs, planned=phase2)


def describe(why):
    """unsettled()'s {arm: why} as one line."""
    return "; ".join(f"{arm}: {reason}" for arm, reason in why.items())


def settled_choice(logs):
    """The learning-rate choice, once every arm is settled (what phase 3, its report and Q4 read);
    NotSettled, saying why, before."""
    choice = choice_from(logs, "lr")
    why = unsettled(choice, "lr")
    if why:
        raise NotSettled(f"--axis lr is not settled: {describe(why)}")
    return choice


def at_chosen(runs, chosen, scale="S"):
    """The phase-3 runs (seeds 2001-2005) among analysis.fair_runs' `runs` that are at their arm's chosen
    S setting as `scale` runs it ({arm: (norm, R, lr)}; the sqrt(d) point moved at L)."""
    return [
        r
        for r in runs
        if r["seed"] in PHASE3_SEEDS
        and r["arm"] in chosen
        and analysis.fair_same_setting((r["norm"], r["R"], r["lr"]), analysis.fair_setting_at(chosen[r["arm"]], scale))
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--axis", choices=("R", "lr"), required=True, help="R after phase 1, lr after phase 2")
    p.add_argument("--logs", default=os.path.join(ROOT, "results", "study_fair", "runs"))
    what = p.add_mutually_exclusive_group()
    what.add_argument("--commands", action="store_true", help="print only the commands to run now, one a line (continue.sh)")
    what.add_argument("--forecast-arm", action="store_true", help="with --axis lr: print only the forecast grid's third arm")
    what.add_argument("--settled", action="store_true", help="fail, saying why, unless every arm is chosen along --axis (continue.sh)")
    p.add_argument("--python", default="python", help="the interpreter the printed commands call")
    args = p.parse_args(argv)
    if args.forecast_arm and args.axis != "lr":
        p.error("--forecast-arm reads the learning-rate choice: give --axis lr")
    choice = choice_from(args.logs, args.axis)
    if args.settled:
        why = unsettled(choice, args.axis)
        if why:
            raise NotSettled(f"--axis {args.axis} is not settled: {describe(why)}")
        text = f"--axis {args.axis} is settled"
    elif args.forecast_arm:
        text = forecast_arm(choice)
    else:
        text = "\n".join(to_run(choice, args.axis, args.python)) if args.commands else report(choice, args.axis)
    print(text)
    return text


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))
