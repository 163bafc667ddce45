"""The CPU speed page: every arm at the studies' shapes, plain vs chunked loss, fp32 and bf16, the
allocator setting on and off, beside nanoGPT's GPT and a measured matmul ceiling.

    python -m scripts.bench_cpu                  # measure (about an hour on 2 cores), then render
    python -m scripts.bench_cpu --render         # only rebuild the tables from the kept JSON

Each (shape, dtype, allocator) cell is one scripts.bench_train run: its variants (each arm at
loss_chunk 0 and at the default, and nanoGPT) interleaved step by step in one process, at 1 thread
as the studies run, and each variant's peak resident memory from a process of its own. --jobs 2
measures two cells at once (one per core): their ratios are interleaved within a cell either way. Kept in
results/bench_cpu/ (one JSON per cell, ceiling.json); the tables go to that folder's README.md and to
the README's speed block.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.bench_cpu", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import subprocess
import sys
import time

import torch

import report
from errors import run_cli
from model import GPTConfig
from runlog import read_json
from runtime import machine_facts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "results", "bench_cpu")
NANOGPT = os.path.join(os.path.dirname(ROOT), "shared", "anchors", "nanoGPT")
# name: (vocab, layers, heads, width): the paired study, the small-vocabulary study, a forecast size
SHAPES = {"paired": (50304, 4, 4, 128), "small_vocab": (8192, 6, 6, 192), "v50k_d256": (50304, 4, 4, 256)}
TOKENIZERS = {"small_vocab": "data/english_bpe8k/tokenizer.json"}  # the others: GPT-2's
README_BLOCK = ("<!-- bench_cpu: speed -->", "<!-- /bench_cpu -->")


def cells(shapes):
    """(shape, dtype, keep_freed) of every measured cell: the allocator off only at the paired shape."""
    return [(s, dt, keep) for s in shapes for dt in ("float32", "bfloat16") for keep in ((True, False) if s == "paired" else (True,))]


def cell_path(shape, dtype, keep):
    return os.path.join(OUT, f"{shape}-{dtype}-{'keep' if keep else 'nokeep'}.json")


def matmul_ceiling(dtype, n=2048, repeats=5):
    """GFLOP/s of the best of `repeats` (n x n) @ (n x n) products at 1 thread: what this CPU's BLAS
    reaches on a large, square matmul, the most a training step's matmuls could reach."""
    torch.set_num_threads(1)
    a, b = (torch.randn(n, n).to(getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(args):
    os.makedirs(OUT, exist_ok=True)
    ceiling = {dt: matmul_ceiling(dt) for dt in ("float32", "bfloat16")}
    with open(os.path.join(OUT, "ceiling.json"), "w") as f:
        json.dump(
            {"gflops_1_thread": ceiling, "cpu": machine_facts()["cpu"], "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")},
            f,
            indent=1,
        )
    todo = cells(args.shapes)
    running = []
    for i, (shape, dtype, keep) in enumerate(todo, 1):
        path = cell_path(shape, dtype, keep)
        if os.path.exists(path) and not args.fresh:
            print(f"[{i}/{len(todo)}] {os.path.relpath(path, ROOT)} kept; --fresh remeasures it", flush=True)
            continue
        v, L, H, d = SHAPES[shape]
        cmd = (
            [
                sys.executable,
                "-m",
                "scripts.bench_train",
                "--vocab-size",
                str(v),
                "--tokenizer",
                TOKENIZERS.get(shape, "gpt2"),
                "--n-layer",
                str(L),
                "--n-head",
                str(H),
                "--n-embd",
                str(d),
                "--block-size",
                "256",
                "--batch-size",
                "16",
                "--threads",
                "1",
                "--dtype",
                dtype,
                "--loss-chunks",
                "0",
                str(GPTConfig.loss_chunk),
                "--steps",
                str(args.steps),
                "--warmup",
                "1",
                "--cpu-peak-rss",
                "--quiet",
                "--out",
                path,
            ]
            + (["--nanogpt", args.nanogpt] if args.nanogpt else [])
            + ([] if keep else ["--no-keep-freed-memory"])
        )
        while len(running) >= args.jobs:  # --jobs cells at a time, each at 1 thread
            running = wait_one(running)
        print(f"[{i}/{len(todo)}] {shape} {dtype} allocator {'keep' if keep else 'default'} ...", flush=True)
        running.append((subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL), path, time.time()))
    while running:
        running = wait_one(running)


def wait_one(running):
    """Wait for the first of the running cells to end; the others, still running."""
    while True:
        for item in running:
            proc, path, t = item
            if proc.poll() is not None:
                if proc.returncode:
                    raise SystemExit(f"error: the bench for {os.path.relpath(path, ROOT)} failed (exit {proc.returncode})")
                print(f"    {time.time() - t:.0f} s -> {os.path.relpath(path, ROOT)}", flush=True)
                return [r for r in running if r is not item]
        time.sleep(2)


def train_peak(steps=20):
    """Peak resident memory (VmHWM, from the child's own rusage) of train.py on the paired study's
    config for `steps` steps with evaluations, plain vs chunked loss, allocator setting on (train.py's
    default): what a study run needs, measured on the real loop rather than the benchmark's step."""
    import tempfile

    out = {}
    for chunk in (0, GPTConfig.loss_chunk):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "train.py",
                "config/study_english_paired.py",
                f"--loss_chunk={chunk}",
                f"--max_iters={steps}",
                "--eval_interval=10",
                "--num_threads=1",
                f"--out_dir={tmp}/run",
                "--embedding=bpe_tied",
            ]
            t = time.time()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            err = proc.stderr.read().decode(errors="replace")
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"error: {' '.join(cmd)} failed: {err.strip().splitlines()[-1:]}")
            out[f"bpe_tied@{chunk}"] = {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": time.time() - t}
            print(f"    train.py paired config, loss_chunk={chunk}: peak {usage.ru_maxrss / 2**20:.2f} GB", flush=True)
    with open(os.path.join(OUT, "train_peak.json"), "w") as f:
        json.dump(
            {
                "steps": steps,
                "config": "config/study_english_paired.py",
                "date": time.strftime("%Y-%m-%d"),
                "cpu": machine_facts()["cpu"],
                "results": out,
            },
            f,
            indent=1,
        )


def kept_cells():
    """(shape, dtype, results) of every cell measured with the allocator setting on and kept."""
    for shape, dtype, keep in cells(SHAPES):
        path = cell_path(shape, dtype, keep)
        if keep and os.path.exists(path):
            yield shape, dtype, read_json(path)["results"]


def render():
    """Markdown of the kept cells: per shape and dtype, each variant's step time, tokens/s, GFLOP/s
    (and % of the matmul ceiling) and peak RSS, allocator on; then the allocator's effect."""
    ceil = read_json(os.path.join(OUT, "ceiling.json"))
    g = ceil["gflops_1_thread"]
    lines = [
        f"Measured by `python -m scripts.bench_cpu` on {ceil['cpu']}, 1 thread, torch {ceil['torch']}, "
        f"{ceil['date']}; batch 16 x 256 tokens, median step of the interleaved timed steps, peak RSS of "
        f"each variant in its own process. `@0`: the plain output layer; `@{GPTConfig.loss_chunk}`: the "
        f"chunked loss; `nanogpt`: nanoGPT's own GPT (its model.py) at the same shape, compared with bpe_tied@0. "
        f"Matmul ceiling (2048^3, 1 thread): fp32 {g['float32']:.0f}, bf16 {g['bfloat16']:.0f} GFLOP/s.",
        "",
        "| shape | dtype | variant | step ms | tokens/s | GFLOP/s (% of ceiling) | peak RSS GB | vs plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape, dtype, res in kept_cells():
        v, L, _, d = SHAPES[shape]
        for name, r in res.items():
            plain = res.get("bpe_tied@0" if name == "nanogpt" else name.split("@")[0] + "@0")  # nanoGPT: the same model
            ratio = (
                f"{r['median_ms'] / plain['median_ms']:.2f}x time, {r['peak_mem_bytes'] / plain['peak_mem_bytes']:.2f}x memory"
                if plain and plain is not r
                else ""
            )
            gf = r["model_flops_per_s"] / 1e9
            lines.append(
                f"| V {v:,} {L}L d{d} | {dtype} | {name} | {r['median_ms']:.0f} | {r['tokens_per_s']:,.0f} | "
                f"{gf:.1f} ({100 * gf / g[dtype]:.0f}%) | {r['peak_mem_bytes'] / 2**30:.2f} | {ratio} |"
            )
    lines += [
        "",
        "The allocator setting (`cpu_keep_freed_memory`) at the paired shape: step ms and peak RSS GB, on / off.",
        "",
        "| dtype | variant | step ms on | step ms off | peak GB on | peak GB off |",
        "|---|---|---|---|---|---|",
    ]
    for dtype in ("float32", "bfloat16"):
        on, off = (cell_path("paired", dtype, k) for k in (True, False))
        if not (os.path.exists(on) and os.path.exists(off)):
            continue
        a, b = read_json(on)["results"], read_json(off)["results"]
        for name in a:
            lines.append(
                f"| {dtype} | {name} | {a[name]['median_ms']:.0f} | {b[name]['median_ms']:.0f} | "
                f"{a[name]['peak_mem_bytes'] / 2**30:.2f} | {b[name]['peak_mem_bytes'] / 2**30:.2f} |"
            )
    return "\n".join(lines) + "\n"


def render_summary():
    """The README's short version: per shape and dtype, over every arm, the chunked loss against the
    plain one (time and peak memory, lowest to highest), and nanoGPT's GPT against bpe_tied@0."""
    ceil = read_json(os.path.join(OUT, "ceiling.json"))
    lines = [
        f"{ceil['cpu']}, 1 thread, torch {ceil['torch']}, {ceil['date']}, two cells measured at a time (one per core); "
        f"batch 16 x 256 tokens; every arm (`results/bench_cpu/README.md` has each one, the matmul ceiling and the "
        f"allocator setting; `python -m scripts.bench_cpu` measures them again, `--render` rebuilds the tables).",
        "",
        "| shape | dtype | plain step (ms) | chunked / plain time | peak GB, plain | peak GB, chunked | nanoGPT / bpe_tied@0 time |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, dtype, res in kept_cells():
        arms = sorted({n.split("@")[0] for n in res if "@" in n})
        plain = [res[f"{a}@0"] for a in arms]
        chunked = [res[f"{a}@{GPTConfig.loss_chunk}"] for a in arms]
        ratio = sorted(c["median_ms"] / p["median_ms"] for c, p in zip(chunked, plain))
        v, L, _, d = SHAPES[shape]

        def span(values, fmt):
            return f"{fmt.format(min(values))}-{fmt.format(max(values))}"

        nano = f"{res['nanogpt']['median_ms'] / res['bpe_tied@0']['median_ms']:.2f}x" if "nanogpt" in res else "-"
        lines.append(
            f"| V {v:,} {L}L d{d} | {dtype} | {span([p['median_ms'] for p in plain], '{:.0f}')} | {span(ratio, '{:.2f}')}x | "
            f"{span([p['peak_mem_bytes'] / 2**30 for p in plain], '{:.1f}')} | "
            f"{span([c['peak_mem_bytes'] / 2**30 for c in chunked], '{:.1f}')} | {nano} |"
        )
    peak_path = os.path.join(OUT, "train_peak.json")
    if os.path.exists(peak_path):
        tp = read_json(peak_path)
        got = ", ".join(f"`loss_chunk={k.split('@')[1]}` {v['peak_rss_bytes'] / 2**30:.2f} GB" for k, v in tp["results"].items())
        lines += ["", f"train.py itself on `{tp['config']}` ({tp['steps']} steps with evaluations, bpe_tied), peak resident memory: {got}."]
    return "\n".join(lines) + "\n"


def write_rendered(text):
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# CPU speed and memory\n\n" + text)
    readme = os.path.join(ROOT, "README.md")
    text = report.replace_marked(open(readme).read(), *README_BLOCK, render_summary(), "README.md")
    with open(readme, "w") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--render", action="store_true", help="only rebuild the tables from the kept JSON")
    p.add_argument("--train-peak", action="store_true", help="only measure train.py's peak memory on the paired config")
    p.add_argument("--fresh", action="store_true", help="remeasure cells already kept")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="cells measured at a time (each at 1 thread; 2 uses both cores)")
    p.add_argument(
        "--nanogpt",
        default=NANOGPT if os.path.isdir(NANOGPT) else None,
        help="a nanoGPT checkout to time beside ours (default: ../shared/anchors/nanoGPT when present)",
    )
    args = p.parse_args(argv)
    if args.train_peak:
        os.makedirs(OUT, exist_ok=True)
        return train_peak()
    if not args.render:
        measure(args)
        train_peak()
    write_rendered(render())
    print(f"wrote {os.path.relpath(OUT, ROOT)}/README.md and the README's speed block")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a README without its speed block: one line
