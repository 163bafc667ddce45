"""Compare a study's arms across seeds from the runs' metric logs.

    python -m scripts.compare runs/study_cpu --baseline bpe_tied --out results/study_cpu

Reads every <run>/metrics.jsonl below the given folders (a run's group is its folder name without
the trailing -s<seed>, e.g. kron or kron-kron_pos_dim32). Reports per group, over seeds:
  * final validation loss and perplexity, mean ± sample std (ddof 1);
  * the gap to the baseline, paired by seed: gap = L_baseline − L_arm (positive: the arm is better),
    in nats and in percent of the baseline's loss, mean ± std over the seeds both have;
  * steps-to-target: target = the baseline's final mean val loss; the first step at which the arm's
    mean curve (mean over seeds at each evaluation) reaches it, linearly interpolated between the
    two evaluations that straddle it; ratio = the baseline's final step / that step (the paper's
    "1.43x fewer steps"); None when the arm never reaches the target;
  * the gap's trajectory: mean and std of the paired gap at every evaluation step;
  * median training throughput (tokens/s) and step time, first 3 steps skipped.
Writes compare.json, compare.md, val_curves.png, gap.png and norm_drift.png into --out (the numbers:
analysis.py; the tables and figures: report.py). The same
runs can be compared in wandb when trained with wandb_log=True (runs grouped by arm).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.compare", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os

import report
from errors import run_cli


def parse_contrast(spec):
    """'LABEL=REF:OTHER' -> (label, ref, other)."""
    label, sep, pair = spec.partition("=")
    ref, sep2, other = pair.partition(":")
    if not (sep and sep2 and label and ref and other):
        raise ValueError(f"--contrast {spec!r}: expected LABEL=REF:OTHER")
    return label, ref, other


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="folders holding run folders (<group>-s<seed>/metrics.jsonl)")
    p.add_argument("--baseline", default="bpe_tied")
    p.add_argument(
        "--contrast",
        action="append",
        default=[],
        metavar="LABEL=REF:OTHER",
        help="a paired gap between two groups, L_REF - L_OTHER (repeatable), e.g. 'untying=bpe_tied:bpe_untied'",
    )
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    res, md = report.write_comparison(args.folders, args.out, args.baseline, [parse_contrast(s) for s in args.contrast])
    print(md)
    print(f"\nwrote {args.out}/compare.json, compare.md, " + ", ".join(os.path.basename(p) for p in res.pop("figures")))
    return res


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
