"""Before/after table of scripts/bench_train.py runs: median step time per arm, and the ratio.

    python -m scripts.compare_bench --before b1.json b2.json --after a1.json a2.json

Several files per side are rounds run alternately (before, after, before, after) on the same machine;
each arm's figure is the mean of the rounds' medians, so slow drift of the machine hits both sides.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.compare_bench", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import statistics

from checks import is_number
from errors import run_cli
from runlog import read_json


def is_bench(d):
    """Whether a JSON value has the shape of a benchmark file: {"meta": {"args": {...}}, "results": {arm: {"median_ms": n}}}."""
    meta, results = (d.get("meta"), d.get("results")) if isinstance(d, dict) else (None, None)
    return (
        isinstance(meta, dict)
        and isinstance(meta.get("args"), dict)
        and isinstance(results, dict)
        and all(isinstance(r, dict) and is_number(r.get("median_ms")) for r in results.values())
    )


def arm_medians(paths, vary=()):
    """{arm: [median ms of each file]}, refusing files that timed different shapes (but for `vary`)."""
    out, shape = {}, None
    for path in paths:
        d = read_json(path)
        if not is_bench(d):
            raise ValueError(
                f"{path} is not a benchmark JSON of scripts.bench_train (expected an object with "
                f"meta.args and results: {{arm: {{median_ms: ...}}}})"
            )
        args = {k: v for k, v in d["meta"]["args"].items() if k not in ("out", "cpu_peak_rss", *vary)}
        if shape is not None and args != shape:
            raise SystemExit(f"error: {path} timed another shape than the first file: {args} vs {shape}")
        shape = args
        for arm, r in d["results"].items():
            out.setdefault(arm, []).append(r["median_ms"])
    return out, shape


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", nargs="+", required=True)
    p.add_argument("--after", nargs="+", required=True)
    p.add_argument("--vary", nargs="*", default=[], help="settings allowed to differ between before and after (e.g. dtype)")
    args = p.parse_args(argv)
    before, shape_b = arm_medians(args.before, args.vary)
    after, shape_a = arm_medians(args.after, args.vary)
    if shape_a != shape_b:
        raise SystemExit(f"error: before and after timed different shapes: {shape_b} vs {shape_a}")
    print("| arm | before ms | after ms | after / before |\n|---|---|---|---|")
    for arm in before:
        if arm in after:
            b, a = statistics.mean(before[arm]), statistics.mean(after[arm])
            print(f"| {arm} | {b:.0f} | {a:.0f} | {a / b:.3f}x |")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
