"""Norm drift during training, per arm, from the runs' metric logs (train.py logs it at every eval).

    python -m probes.norm_drift bpe=out/124m-bpe_tied-s1337 kron=out/124m-kron-s1337 --out report/

The paper's claim: the BPE table's norm drifts while the Kron projection's stays near 1. Plotted
against steps: the input layer's weight scale relative to its init (BPE: std of the table / its
step-0 value; Kron: std(W)*sqrt(D), which is 1 at init), the RMS of the embeddings each arm feeds
the transformer, and the output head's std. Writes norm_drift.json, norm_drift.md, norm_drift.png.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.norm_drift", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os

from plotting import pyplot, save_figure
from probes.common import cli, md_table, parse_labelled, write_outputs
from runlog import read_metrics, series_from_evals


def series(run_dir):
    evals = read_metrics(run_dir, "eval")
    if not evals:
        raise ValueError(f"{run_dir}: the metrics log has no evaluation records yet")
    config = next((r for r in read_metrics(run_dir, "config")), {}).get("config", {})
    arm = config.get("embedding", "kron" if "proj_std_sqrtD" in evals[0] else "bpe")
    return {"arm": arm, **series_from_evals(evals)}


def run(runs, out_dir):
    data = {label: series(d) for label, d in runs}
    rows = [
        [
            lab,
            s["arm"],
            s["input_scale_key"],
            s["input_scale"][0],
            s["input_scale"][-1],
            s["input_scale_rel"][-1],
            s["emb_rms"][0],
            s["emb_rms"][-1],
            s["head_std"][-1],
        ]
        for lab, s in data.items()
    ]
    md = [
        "# Norm drift\n",
        md_table(
            [
                "run",
                "arm",
                "input-scale metric",
                "at step 0",
                "final",
                "final / initial",
                "emb RMS step 0",
                "emb RMS final",
                "head std final",
            ],
            rows,
        ),
    ]
    write_outputs(out_dir, "norm_drift", data, "\n".join(md))
    plot(data, os.path.join(out_dir, "norm_drift.png"))
    return data


def plot(data, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for lab, s in data.items():
        axes[0].plot(s["steps"], s["input_scale_rel"], label=f"{lab} ({s['input_scale_key']})")
        axes[1].plot(s["steps"], s["emb_rms"], label=lab)
        axes[2].plot(s["steps"], s["head_std"], label=lab)
    for ax, t in zip(axes, ["input weight scale / initial", "RMS of input embeddings", "output head std"]):
        ax.set_title(t)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[1].set_yscale("log")
    save_figure(fig, path, dpi=110)


def parse_runs(specs):
    return [
        (label or os.path.basename(os.path.normpath(path)), path)
        for label, path in parse_labelled(specs, "run folder", "a train.py out_dir", is_dir=True)
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="train.py out_dirs, optionally labelled: kron=out/run")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    return run(parse_runs(args.runs), args.out)


if __name__ == "__main__":
    cli(main)
