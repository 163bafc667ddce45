"""Training-step benchmark per arm: tokens/s and step time of the same GPT with each input layer.

    python -m scripts.bench_train                       # the CPU config's shape: d 256, 4 layers, block 256, batch 16
    python -m scripts.bench_train --n-layer 12 --n-embd 768 --block-size 1024 --batch-size 16 --device cuda --compile
    python -m scripts.bench_train --arms bpe_tied kron --loss-chunks 0 1024 --nanogpt ../shared/anchors/nanoGPT

A variant is an arm at one loss_chunk (loss.py; 0 = the plain output layer): `kron@1024`. --nanogpt
adds nanoGPT's own GPT (its model.py, imported from that folder) at the same shape, stepped the same
way, as the variant `nanogpt`.

One step is train.py's own step (step.TrainStep: --accum micro-batches, clip 1.0, AdamW from
GPT.configure_optimizers, fused on CUDA, bf16 autocast on CUDA), fed from random token batches kept in
host memory (pinned on CUDA) like train.py's. Arms are interleaved step by step so machine noise hits
all of them alike; reported are the median and interquartile range after warm-up, tokens/s from the
median, the ratio to bpe_tied, on CUDA the peak memory, MFU and the host-device synchronisations
inside one step (counted with torch.cuda.set_sync_debug_mode; train.py reads the loss back only at
log steps, outside the step). Prints a table and writes
JSON (default bench/train.json).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.bench_train", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from errors import run_cli
from model import EMBEDDINGS, GPT, GPTConfig, peak_flops_of
from runtime import autocast_for, default_dtype, device_arg, keep_freed_memory, resolve_device, use_fast_matmul
from step import TrainStep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECOMPILES_PER_VARIANT = 4  # Dynamo's recompile limit is raised to this per variant (see allow_recompiles)


def split_variant(name, loss_chunks):
    """'kron@1024' -> ('kron', 1024); 'kron' -> ('kron', the one loss_chunk timed); 'nanogpt' has its own loss."""
    arm, _, chunk = name.partition("@")
    return arm, int(chunk) if chunk else loss_chunks[0]


def child_peak_rss(args, variant):
    """Peak resident memory (bytes) of a fresh process that trains this variant alone for a few steps:
    on CPU, one process per variant is the only clean peak (os.wait4 gives that child's own rusage)."""
    import subprocess
    import tempfile

    arm, chunk = split_variant(variant, args.loss_chunks)
    which = ["--nanogpt", args.nanogpt, "--arms"] if arm == "nanogpt" else ["--arms", arm]
    cmd = [
        sys.executable,
        "-m",
        "scripts.bench_train",
        *which,
        "--loss-chunks",
        str(chunk),
        "--steps",
        "2",
        "--warmup",
        "1",
        "--vocab-size",
        str(args.vocab_size),
        "--tokenizer",
        args.tokenizer,
        "--n-layer",
        str(args.n_layer),
        "--n-head",
        str(args.n_head),
        "--n-embd",
        str(args.n_embd),
        "--block-size",
        str(args.block_size),
        "--batch-size",
        str(args.batch_size),
        "--accum",
        str(args.accum),
        "--device",
        "cpu",
        "--dtype",
        args.dtype,
        "--threads",
        str(args.threads or 0),
        "--quiet",
        "--out",
        os.path.join(tempfile.mkdtemp(), "rss.json"),
    ] + ([] if args.keep_freed_memory else ["--no-keep-freed-memory"])
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(
            f"the peak-memory run of {variant} failed (exit {proc.returncode}): {' '.join(cmd)}: {err[-1] if err else 'no message'}"
        )
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def allow_recompiles(n_variants):
    """Every variant's compiled forward shares GPT.forward's Dynamo cache; past the recompile limit
    (8 by default) Dynamo would silently run the next variant eagerly. Raise the limit to cover every
    variant and make hitting it an error instead of a fallback. Returns the limit set."""
    import torch._dynamo.config as dynamo_config

    limit = max(8, RECOMPILES_PER_VARIANT * n_variants)
    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.7; either may exist
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, limit)
            break
    for name in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, True)
            break
    return limit


def persistent_bytes(model, optimizer):
    """What a variant holds between steps: parameters, buffers and optimizer state (gradients are
    set to None after each step). Its peak alone = the peak during its step minus what every other
    variant holds."""
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cuda")


def dynamo_counts():
    """(graph breaks, graphs) Dynamo has counted in this process so far."""
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values()), counters["stats"]["unique_graphs"]


def count_syncs(fn):
    """Host-device synchronisations fn() causes on CUDA (each one warns under sync debug mode)."""
    import warnings

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--arms", nargs="*", default=list(EMBEDDINGS), choices=list(EMBEDDINGS))
    p.add_argument(
        "--loss-chunks",
        nargs="+",
        type=int,
        default=[GPTConfig.loss_chunk],
        help="loss_chunk values to time each arm at (0: the plain output layer)",
    )
    p.add_argument("--nanogpt", default=None, help="a nanoGPT checkout: also time its GPT (model.py) at this shape")
    p.add_argument("--vocab-size", type=int, default=50304)
    p.add_argument("--tokenizer", default="gpt2", help="the tokenizer the Kron arms read bytes from (a tiktoken name or tokenizer.json)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per step (train.py's gradient accumulation)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="autocast dtype (auto: as train.py, bfloat16 on CUDA, float32 on CPU)",
    )
    p.add_argument("--cpu-peak-rss", action="store_true", help="on CPU, also measure each variant's peak memory in its own process")
    p.add_argument(
        "--no-keep-freed-memory",
        dest="keep_freed_memory",
        action="store_false",
        help="on CPU, leave glibc's default (big freed blocks go back to the OS): train.py's cpu_keep_freed_memory=False",
    )
    p.add_argument(
        "--ceiling-tflops",
        type=float,
        default=None,
        help="a measured matmul ceiling (scripts/gpu_facts.py) to report MFU against, beside the datasheet peak",
    )
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no per-variant progress lines")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "train.json"))
    args = p.parse_args(argv)
    resolve_device(args.device)  # a device this machine cannot honour: one line naming it
    if args.nanogpt and not os.path.isfile(os.path.join(args.nanogpt, "model.py")):
        p.error(f"--nanogpt {args.nanogpt}: no model.py there (expected a nanoGPT checkout)")
    if any(c < 0 for c in args.loss_chunks):
        p.error(f"--loss-chunks {args.loss_chunks}: expected integers >= 0")
    for flag in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "accum", "steps", "vocab_size"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected an integer >= 1")
    if args.warmup < 0:
        p.error(f"--warmup {args.warmup}: expected an integer >= 0")
    return args


def variant_names(args):
    """Each arm at each loss_chunk ('kron@1024'; the arm's name alone when one loss_chunk is timed,
    as the GPU report reads), then 'nanogpt' when asked for."""
    names = [f"{arm}@{chunk}" if len(args.loss_chunks) > 1 else arm for arm in dict.fromkeys(args.arms) for chunk in args.loss_chunks]
    return names + (["nanogpt"] if args.nanogpt else [])


def nanogpt_model(args):
    """nanoGPT's GPT from its own model.py (loaded from the folder the user named), at this shape."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("nanogpt_model", os.path.join(args.nanogpt, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.GPTConfig(
        block_size=args.block_size,
        vocab_size=args.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=0.0,
        bias=True,
    )
    return module.GPT(cfg)


def build_steps(args, variants, autocast):
    """{variant: (model, TrainStep)}: the same GPT per arm, seeded alike, stepped as train.py steps it."""
    setups = {}
    for name in variants:
        torch.manual_seed(0)
        arm, chunk = split_variant(name, args.loss_chunks)
        if arm == "nanogpt":
            model = nanogpt_model(args).to(args.device)
        else:
            model = GPT(
                GPTConfig(
                    tokenizer=args.tokenizer,
                    n_layer=args.n_layer,
                    n_head=args.n_head,
                    n_embd=args.n_embd,
                    block_size=args.block_size,
                    vocab_size=args.vocab_size,
                    embedding=arm,
                    loss_chunk=chunk,
                )
            ).to(args.device)
        opt = model.configure_optimizers(0.1, 1e-4, (0.9, 0.95), args.device)
        run = torch.compile(model) if args.compile else model
        setups[name] = (model, TrainStep(run, opt, args.accum, 1.0, autocast))
    return setups


def time_steps(args, setups, peak):
    """Step every variant in turn (interleaved); seconds per timed step, peak memory (CUDA) and the
    synchronisations counted in one warm step (CUDA)."""
    dev = args.device
    g = torch.Generator().manual_seed(0)
    high = min(args.vocab_size, 50257)
    host = [torch.randint(0, high, (2, args.batch_size, args.block_size), generator=g) for _ in range(args.accum + 1)]
    if dev == "cuda":
        host = [h.pin_memory() for h in host]

    def fetch(i):
        return host[i][0].to(dev, non_blocking=True), host[i][1].to(dev, non_blocking=True)

    times, syncs, graphs = {n: [] for n in setups}, {}, {}
    for i in range(args.warmup + args.steps):
        for name, (model, step) in setups.items():
            if i == 0:
                before = dynamo_counts()
            if dev == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                others = torch.cuda.memory_allocated() - persistent_bytes(model, step.optimizer)
            t = time.perf_counter()
            if dev == "cuda" and i == max(args.warmup - 1, 0):  # syncs in one step: the last warm-up one, untimed
                syncs[name] = count_syncs(lambda: step(fetch(0), fetch))
            else:
                step(fetch(0), fetch)
            if dev == "cuda":
                torch.cuda.synchronize()
                if i >= args.warmup:  # timed steps only: compilation's own allocations are not the step's
                    peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated() - others)  # this variant alone
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
            if i == 0:  # the first step compiles this variant: what Dynamo made of it
                after = dynamo_counts()
                graphs[name] = {"graph_breaks": after[0] - before[0], "graphs": after[1] - before[1]}
            if i == 0 and args.verbose:
                print(f"  {name}: first step {time.perf_counter() - t:.1f} s{' (compile)' if args.compile else ''}", flush=True)
    return times, syncs, graphs


def flops_per_token(model, args):
    """Our GPT's own count; nanoGPT's model has none of ours: the same formula from its shape (its
    output head is tied, so get_num_params() counts it once, as a matmul)."""
    if hasattr(model, "flops_per_token"):
        return model.flops_per_token()
    n_matmul = model.get_num_params(non_embedding=True)
    return 6 * n_matmul + 12 * args.n_layer * args.n_embd * args.block_size


def report(args, variants, setups, times, peak, syncs, graphs):
    """Print the table; {name: figures} for the JSON."""
    dev = args.device
    tokens = args.batch_size * args.block_size * args.accum
    peak_flops = peak_flops_of(torch.cuda.get_device_name()) if dev == "cuda" else None
    first = variants[0]
    base = statistics.median(times[first])
    res = {}
    print(
        f"\n{dev} | V={args.vocab_size}, d={args.n_embd}, {args.n_layer} layers, block {args.block_size}, batch {args.batch_size}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, torch {torch.__version__}"
    )
    ceiling = args.ceiling_tflops * 1e12 if args.ceiling_tflops else None
    print(
        f"| arm | step ms (median [IQR]) | tokens/s | vs {first} | peak mem GB ({'GPU' if dev == 'cuda' else 'process RSS'}) "
        f"| MFU | MFU vs measured matmul | syncs in a step | graph breaks |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [med] * 3  # --steps 1: no spread to report
        flops_per_s = flops_per_token(setups[name][0], args) * tokens / med
        mfu = flops_per_s / peak_flops if peak_flops else None
        mfu_ceiling = flops_per_s / ceiling if ceiling else None
        res[name] = {
            "median_ms": 1000 * med,
            "q1_ms": 1000 * q[0],
            "q3_ms": 1000 * q[2],
            "tokens_per_s": tokens / med,
            "ratio_to_first": med / base,
            "peak_mem_bytes": peak.get(name),
            "mfu": mfu,
            "syncs_per_step": syncs.get(name),
            "mfu_vs_measured_matmul": mfu_ceiling,
            "model_flops_per_s": flops_per_s,
            **graphs.get(name, {}),
            "peak_mem_ratio_to_first": peak[name] / peak[first] if name in peak and first in peak else None,
        }
        mem = f"{peak[name] / 2**30:.2f} ({res[name]['peak_mem_ratio_to_first']:.3f}x)" if name in peak else "-"
        print(
            f"| {name} | {1000 * med:.0f} [{1000 * q[0]:.0f}, {1000 * q[2]:.0f}] | {tokens / med:,.0f} | {med / base:.3f}x | "
            f"{mem} | {f'{100 * mfu:.1f}%' if mfu else '-'} | {f'{100 * mfu_ceiling:.1f}%' if mfu_ceiling else '-'} | "
            f"{syncs.get(name, 'n/a (CPU)')} | {graphs.get(name, {}).get('graph_breaks', '-') if args.compile else '-'} |"
        )
    return res


def main(argv=None):
    args = parse_args(argv)
    dev = args.device
    if dev == "cpu" and args.keep_freed_memory:
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    use_fast_matmul(dev)  # train.py's precision flags: the same arithmetic, and inductor's cache shared with it
    dtype = default_dtype(dev) if args.dtype == "auto" else args.dtype
    autocast = autocast_for(dev, dtype)
    variants = variant_names(args)
    if not variants:
        raise ValueError("nothing to time: give --arms, --nanogpt or both")
    peak = {}  # before any model exists here: a forked child starts with its parent's resident pages
    if dev == "cpu" and args.cpu_peak_rss:
        peak = {v: child_peak_rss(args, v) for v in variants}
    recompile_limit = allow_recompiles(len(variants)) if args.compile else None
    setups = build_steps(args, variants, autocast)
    print(f"timing {len(variants)} variants: {args.warmup} warm-up + {args.steps} timed steps each, interleaved", flush=True)
    times, syncs, graphs = time_steps(args, setups, peak)
    res = report(args, variants, setups, times, peak, syncs, graphs)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": vars(args),
        "dtype": dtype,
        "dynamo_recompile_limit": recompile_limit,
        "peak_mem": "each variant alone (others' held memory subtracted)",
    }
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": res}, f, indent=1)
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
