"""Training-step benchmark per arm: tokens/s and step time of the same GPT with each input layer.

    python scripts/bench_train.py                       # the CPU config's shape: d 256, 4 layers, block 256, batch 16
    python scripts/bench_train.py --n-layer 12 --n-embd 768 --block-size 1024 --batch-size 16 --device cuda --compile

One step is what train.py does: forward with loss, backward, gradient clipping at 1.0, AdamW step
(fused on CUDA; bf16 autocast on CUDA). Arms are interleaved step by step so machine noise hits all
of them alike; reported are the median and interquartile range after warm-up, tokens/s from the
median, the ratio to bpe_tied, and on CUDA the peak memory and MFU. Kron is timed in each --kron-modes
mode. Prints a table and writes JSON (default bench/train.json).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from kron_embed import keep_freed_memory  # noqa: E402
from model import GPT, GPTConfig, peak_flops_of  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--arms", nargs="+", default=["bpe_tied", "kron", "bpe_untied"])
    p.add_argument("--kron-modes", nargs="+", default=["fused"], choices=["fused", "cached", "dynamic"])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "train.json"))
    args = p.parse_args(argv)
    dev = args.device
    if dev == "cpu":
        keep_freed_memory()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev == "cuda" else nullcontext()
    variants = []
    for arm in args.arms:
        for mode in (args.kron_modes if arm == "kron" else [None]):
            variants.append((arm if mode is None else f"kron[{mode}]", arm, mode or "fused"))
    setups = {}
    for name, arm, mode in variants:
        torch.manual_seed(0)
        cfg = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
                        embedding=arm, kron_mode=mode)
        model = GPT(cfg).to(dev)
        opt = torch.optim.AdamW([{"params": [q for q in model.parameters() if q.dim() >= 2], "weight_decay": 0.1},
                                 {"params": [q for q in model.parameters() if q.dim() < 2], "weight_decay": 0.0}],
                                lr=1e-4, betas=(0.9, 0.95), fused=dev == "cuda")
        run = torch.compile(model) if args.compile else model
        setups[name] = (model, run, opt)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50257, (args.batch_size, args.block_size), generator=g).to(dev)
    y = torch.randint(0, 50257, (args.batch_size, args.block_size), generator=g).to(dev)
    times = {n: [] for n in setups}
    peak = {}
    for i in range(args.warmup + args.steps):
        for name, (model, run, opt) in setups.items():
            if dev == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            with autocast:
                _, loss = run(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if dev == "cuda":
                torch.cuda.synchronize()
                peak[name] = torch.cuda.max_memory_allocated()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    tokens = args.batch_size * args.block_size
    peak_flops = None
    if dev == "cuda":
        peak_flops = peak_flops_of(torch.cuda.get_device_name())
    base = statistics.median(times[variants[0][0]])
    res = {}
    print(f"\n{dev} | d={args.n_embd}, {args.n_layer} layers, block {args.block_size}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, torch {torch.__version__}")
    print(f"| arm | step ms (median [IQR]) | tokens/s | vs {variants[0][0]} | peak GPU mem GB | MFU |")
    print("|---|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4)
        model = setups[name][0]
        mfu = model.flops_per_token() * tokens / med / peak_flops if peak_flops else None
        res[name] = {"median_ms": 1000 * med, "q1_ms": 1000 * q[0], "q3_ms": 1000 * q[2], "tokens_per_s": tokens / med,
                     "ratio_to_first": med / base, "peak_mem_bytes": peak.get(name), "mfu": mfu}
        print(f"| {name} | {1000 * med:.0f} [{1000 * q[0]:.0f}, {1000 * q[2]:.0f}] | {tokens / med:,.0f} | {med / base:.3f}x | "
              f"{peak[name] / 2 ** 30:.2f} | {100 * mfu:.1f}% |" if dev == "cuda" and mfu else
              f"| {name} | {1000 * med:.0f} [{1000 * q[0]:.0f}, {1000 * q[2]:.0f}] | {tokens / med:,.0f} | {med / base:.3f}x | - | - |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = {"device": torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "args": vars(args)}
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": res}, f, indent=1)
    print(f"wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
