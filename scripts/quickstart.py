"""The quickstart: both arms on the embedded corpus, a few minutes on CPU, compared side by side.

    python -m scripts.quickstart              # bpe_tied and kron, config/quickstart.py
    python -m scripts.quickstart --arms bpe_tied kron bpe_untied --max-iters 60 --fresh

Prepares data/python_help if needed, trains each arm with train.py (a finished run is reused unless
--fresh), prints the validation losses per evaluation step side by side, and writes
out/quickstart/loss_curves.png and out/quickstart/summary.json. The model is tiny (2 layers,
d=128) and the corpus small: this checks the pipeline, it says nothing about the method.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.quickstart", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from arms import ARMS
from errors import run_cli
from plotting import plot_val_curves
from runlog import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arms", nargs="+", default=["bpe_tied", "kron"], choices=list(ARMS))
    p.add_argument("--config", default=os.path.join(ROOT, "config", "quickstart.py"))
    p.add_argument("--max-iters", type=int, default=None)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out-root", default=os.path.join(ROOT, "out"))
    p.add_argument("--fresh", action="store_true", help="retrain even if a finished run exists")
    args = p.parse_args(argv)

    if not any(f.endswith(".bin") for f in os.listdir(os.path.join(ROOT, "data", "python_help"))):
        subprocess.run([sys.executable, "-m", "data.python_help.prepare"], cwd=ROOT, check=True)
    runs, seconds = {}, {}
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    for arm in args.arms:
        out_dir = os.path.join(args.out_root, f"quickstart-{arm}-s{args.seed}")
        if args.fresh and os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        cmd = [
            sys.executable,
            os.path.join(ROOT, "train.py"),
            args.config,
            f"--embedding={arm}",
            f"--seed={args.seed}",
            f"--out_dir={out_dir}",
            "--init_from=auto",
        ]
        if args.max_iters:
            cmd += [f"--max_iters={args.max_iters}", f"--lr_decay_iters={args.max_iters}"]
        print(f"\n=== training {arm}: {' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])}", flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds[arm] = round(time.time() - t0, 1)
        runs[arm] = read_metrics(out_dir, "eval")

    steps = sorted(set.intersection(*(set(r["step"] for r in recs) for recs in runs.values())))
    by_step = {arm: {r["step"]: r["val_loss"] for r in recs} for arm, recs in runs.items()}
    print("\nvalidation loss (nats/token), embedded pydoc corpus, CPU quickstart scale")
    print(f"{'step':>6} " + " ".join(f"{arm:>12}" for arm in args.arms))
    for s in steps:
        print(f"{s:>6} " + " ".join(f"{by_step[arm][s]:>12.4f}" for arm in args.arms))
    final = {arm: by_step[arm][steps[-1]] for arm in args.arms}
    if "bpe_tied" in final and "kron" in final:
        gap = final["bpe_tied"] - final["kron"]
        print(f"final gap bpe_tied - kron: {gap:+.4f} nats ({100 * gap / final['bpe_tied']:+.2f}%); one seed, tiny model")
    out = os.path.join(args.out_root, "quickstart")
    os.makedirs(out, exist_ok=True)
    curves = {arm: [([r["step"] for r in recs], [r["val_loss"] for r in recs])] for arm, recs in runs.items()}
    png = plot_val_curves(curves, os.path.join(out, "loss_curves.png"), title="quickstart: validation loss (CPU, pydoc corpus)")
    with open(os.path.join(out, "summary.json"), "w") as f:
        import torch

        machine["torch"] = torch.__version__
        json.dump(
            {
                "final_step": steps[-1],
                "final_val_loss": final,
                "curves": {a: by_step[a] for a in args.arms},
                "wall_seconds_per_arm": seconds,
                "machine": machine,
            },
            f,
            indent=1,
        )
    print(
        "wall time per arm (training subprocess, includes start-up): "
        + ", ".join(f"{a} {s:.0f} s" for a, s in seconds.items())
        + " (a reused finished run takes seconds)"
    )
    print(f"wrote {os.path.relpath(png, ROOT)} and {os.path.relpath(os.path.join(out, 'summary.json'), ROOT)}")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
