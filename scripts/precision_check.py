"""Does CPU bf16 autocast train like fp32? One run in each precision, same seed and config, beside the
seed-to-seed spread of fp32 runs: the validation curves, the step time, and a verdict.

    python -m scripts.precision_check \
        --fp32 results/study_english_long/runs/kron-s1337 --bf16 results/bf16_check/kron-s1337 \
        --other-seeds results/study_english_long/runs/kron-s1338 --out results/bf16_check

The bf16 run is train.py with --dtype=bfloat16 (everything else as the fp32 run's recorded config).
Verdict: bf16 "agrees" when its largest |bf16 - fp32| validation gap over the run is below a tenth
of the median seed-to-seed gap at the same steps (fp32, other seeds). (The first version of this
script compared with the smallest seed gap; two seeds' curves cross somewhere, so that yardstick
can be near 0 at one step whatever the precision: both are reported.) Writes precision.json and
precision.md.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.precision_check", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import statistics

from errors import run_cli
from runlog import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def curve(run):
    return {r["step"]: r["val_loss"] for r in read_metrics(run, "eval")}


def median_step_ms(run):
    train = read_metrics(run, "train")[1:]
    return statistics.median(r["dt_ms"] for r in train) if train else None


def check(fp32, bf16, others):
    a, b = curve(fp32), curve(bf16)
    if read_metrics(bf16, "config")[-1]["config"]["dtype"] != "bfloat16":
        raise ValueError(f"{bf16} was not trained with dtype=bfloat16")
    steps = sorted(set(a) & set(b))
    seed_gaps = [abs(curve(o)[s] - a[s]) for o in others for s in steps if s in curve(o) and s > 0]
    gaps = {s: b[s] - a[s] for s in steps}
    worst = max(abs(g) for g in gaps.values())
    noise = min(seed_gaps) if seed_gaps else None
    return {
        "steps": steps,
        "fp32": [a[s] for s in steps],
        "bf16": [b[s] for s in steps],
        "gap": [gaps[s] for s in steps],
        "max_abs_gap": worst,
        "min_seed_gap": noise,
        "median_seed_gap": statistics.median(seed_gaps) if seed_gaps else None,
        "agrees": bool(seed_gaps) and worst < statistics.median(seed_gaps) / 10,
        "step_ms": {"fp32": median_step_ms(fp32), "bf16": median_step_ms(bf16)},
        "runs": {"fp32": fp32, "bf16": bf16, "other_seeds": others},
    }


def markdown(res):
    ms = res["step_ms"]
    lines = ["| step | fp32 | bf16 | bf16 − fp32 |", "|---|---|---|---|"]
    lines += [f"| {s} | {a:.4f} | {b:.4f} | {g:+.4f} |" for s, a, b, g in zip(res["steps"], res["fp32"], res["bf16"], res["gap"])]
    lines += [
        "",
        f"Largest |bf16 − fp32| over the run: {res['max_abs_gap']:.4f} nats; fp32 seed-to-seed gaps at the same "
        f"steps: smallest {res['min_seed_gap']:.4f}, median {res['median_seed_gap']:.4f}. Median step: fp32 "
        f"{ms['fp32']:.0f} ms, bf16 {ms['bf16']:.0f} ms ({ms['fp32'] / ms['bf16']:.2f}× faster; the two runs did "
        f"not share the machine's load, so read the speed-up as approximate). Verdict: "
        + (
            "bf16 agrees with fp32: its largest gap is under a tenth of the median seed-to-seed gap."
            if res["agrees"]
            else "bf16 does NOT agree within a tenth of the median seed-to-seed gap."
        ),
    ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fp32", required=True)
    p.add_argument("--bf16", required=True)
    p.add_argument("--other-seeds", nargs="+", required=True, help="fp32 runs of other seeds (the noise yardstick)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    res = check(args.fp32, args.bf16, args.other_seeds)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "precision.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "precision.md"), "w") as f:
        f.write(markdown(res) + "\n")
    print(markdown(res))
    return res


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
