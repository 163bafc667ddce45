"""The quickstart: both arms on the embedded corpus, a few minutes on CPU, compared side by side.

    python -m scripts.quickstart              # bpe_tied and kron, config/quickstart.py
    python -m scripts.quickstart --arms bpe_tied kron bpe_untied --max-iters 60 --fresh

Prepares data/python_help if needed, trains each arm with train.py (a finished run is reused unless
--fresh), prints the validation losses per evaluation step side by side, and writes
out/quickstart/loss_curves.png and out/quickstart/summary.json (with the machine facts the runs
logged), then says in one line how the table compares with the README's kept one
(results/quickstart_cpu/summary.json): an exact match, within the kernel-path tolerance measured by
scripts/isa_check.py, or outside it (and how this machine differs from the kept table's); it only
reports, it never fails the run. The model is tiny (2 layers, d=128) and the corpus small: this
checks the pipeline, it says nothing about the method.
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
KEPT = os.path.join(ROOT, "results", "quickstart_cpu", "summary.json")
ISA_CHECK = os.path.join(ROOT, "results", "isa_check", "isa_check.json")
FACTS = ("cpu", "cpu_capability", "threads", "torch", "numpy")  # what the comparison names when it differs


def compare_with_kept(curves, kept, tolerance=None, machine=None):
    """One line: how this run's validation losses compare with the kept table's.
    curves: {arm: {step: loss}} of this run; kept: the kept summary.json ("curves", "machine");
    tolerance: the kernel-path tolerance in nats (None: only exact or not); machine: this run's facts."""
    diffs = []  # (|difference|, arm, step) over the arms and steps both tables have
    for arm, curve in curves.items():
        kept_curve = kept.get("curves", {}).get(arm, {})
        diffs += [(abs(loss - kept_curve[str(step)]), arm, int(step)) for step, loss in curve.items() if str(step) in kept_curve]
    if not diffs:
        return "kept table: nothing to compare (no arm and step in common)"
    worst, arm, step = max(diffs, key=lambda d: (d[0], -d[2]))
    if worst == 0:
        return f"kept table: exact match ({len(diffs)} losses, every digit)"
    where = f"largest difference {worst:.2g} ({arm}, step {step})"
    if tolerance is not None and worst <= tolerance:
        return f"kept table: within the kernel-path tolerance {tolerance:g} nats: {where}"
    bound = f"outside the kernel-path tolerance {tolerance:g} nats" if tolerance is not None else "not an exact match"
    theirs = kept.get("machine") or {}
    if "cpu_capability" not in theirs:  # written before summary.json kept runtime.machine_facts()
        return f"kept table: {bound}: {where}; the kept table records no machine facts to compare"
    made_on = ", ".join(f"{k} {theirs[k]}" for k in FACTS if k in theirs)
    differ = [f"{k} {machine[k]} here" for k in FACTS if machine and k in theirs and k in machine and machine[k] != theirs[k]]
    here = "; this machine differs in " + ", ".join(differ) if differ else "; this machine records the same facts"
    return f"kept table: {bound}: {where}; the kept table came from {made_on}{here}"


def kernel_path_tolerance(path=ISA_CHECK):
    """The tolerance scripts/isa_check.py measured, or None where it has not been kept."""
    try:
        with open(path) as f:
            return json.load(f).get("tolerance")
    except FileNotFoundError:
        return None


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
    runs, seconds, facts = {}, {}, {}
    machine = {
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
        facts = next((r["machine"] for r in read_metrics(out_dir, "config") if "machine" in r), facts)

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
    machine = {**facts, **machine}  # what the training runs logged (runtime.machine_facts), then the rest
    with open(os.path.join(out, "summary.json"), "w") as f:
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
    defaults = args.config == p.get_default("config") and args.max_iters is None and args.seed == p.get_default("seed")
    if not defaults:
        print("kept table: not compared (it is for the default config, seed and steps)")
    elif os.path.isfile(KEPT):
        with open(KEPT) as f:
            kept = json.load(f)
        print(compare_with_kept({a: by_step[a] for a in args.arms}, kept, kernel_path_tolerance(), machine))


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
