"""Benchmark of the input layer: nn.Embedding vs KroneckerEmbedding (cached / dynamic / fused).

    python -m scripts.bench_embed                    # CPU, and CUDA too when a GPU is present
    python -m scripts.bench_embed --devices cpu --shapes gpt2 --out bench/embed.json
    python -m scripts.bench_embed --table results/bench_embed_cpu_plain.json   # a kept result as the docs' tables

One timed step = forward + backward (a fixed random upstream gradient) + one AdamW step on the
layer's trainable parameters, the forward under train.py's autocast and TF32 settings (bf16 on
CUDA, fp32 on CPU; --dtype to choose). Reported: median and interquartile range over repeats after warm-up,
with the implementations interleaved repeat by repeat so that machine noise hits all of them alike;
the layer's state in memory (trainable parameters, their gradients and AdamW moments; non-trainable
buffers); on CUDA the peak allocated memory of a step; and the largest difference of each Kronecker
mode's output and gradient from `cached`.

Shapes: gpt2 = (V 50304, pos_dim 16, d 768, 8192 tokens), the paper's 124M setting;
        large = (V 131072, pos_dim 32, d 4096, 4096 tokens), the paper's 131K production vocabulary.
The large shape needs ~14 GB of host memory (nn.Embedding + AdamW, and the 4.3 GB cached table).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.bench_embed", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import gc
import json
import os
import platform
import statistics
import time

import torch

from errors import run_cli
from kron_embed import KroneckerEmbedding, codec_table, reference_forward
from runlog import read_json
from runtime import autocast_for, default_dtype, device_arg, keep_freed_memory, resolve_device, use_fast_matmul

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHAPES = {
    "gpt2": dict(V=50304, pos_dim=16, d=768, tokens=8192, repeats=15, warmup=3),
    "large": dict(V=131072, pos_dim=32, d=4096, tokens=4096, repeats=5, warmup=1),
    "tiny": dict(V=50304, pos_dim=16, d=32, tokens=256, repeats=2, warmup=1),
}  # smoke tests only
IMPLS = ("embedding", "fused", "cached", "dynamic")


class ReferenceKron(torch.nn.Module):
    """The paper's explicit constructions around a KroneckerEmbedding's projection (kron_embed's
    reference_forward): "dynamic" builds the D-wide codec per batch, "cached" keeps the (V, D) table."""

    def __init__(self, kron, how):
        super().__init__()
        self.kron, self.how = kron, how
        self.register_buffer("table", codec_table(kron) if how == "cached" else None, persistent=False)

    @property
    def weight(self):
        return self.kron.weight

    def forward(self, ids):
        return reference_forward(self.kron, ids, self.how, self.table)


def build(impl, s, device):
    """The layer on the device, built there: at the large shape the cached table is 4.3 GB, and
    building it (or a 2 GB nn.Embedding) on the host first would cost a GPU call most of a minute."""
    torch.manual_seed(0)
    if impl == "embedding":
        layer = torch.nn.Embedding(s["V"], s["d"], device=device)
        torch.nn.init.normal_(layer.weight, std=0.02)
    else:  # the byte tables are small and made on the host; the cached codec table is built on the device
        layer = KroneckerEmbedding(s["V"], s["d"], pos_dim=s["pos_dim"]).to(device)
        if impl != "fused":
            layer = ReferenceKron(layer, impl)
    return layer, torch.optim.AdamW(layer.parameters(), lr=1e-4, weight_decay=0.1)


def step(layer, opt, ids, upstream, device, autocast):
    """One training step of the layer alone, its forward under training's autocast; returns the
    seconds of forward+backward and of the whole step (with the AdamW update), timed in the same step."""
    t = time.perf_counter()
    with autocast:
        y = layer(ids)
    y.backward(upstream if y.dtype == upstream.dtype else upstream.to(y.dtype))
    sync(device)
    fwd_bwd = time.perf_counter() - t
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    return fwd_bwd, time.perf_counter() - t


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def state_bytes(layer):
    trainable = sum(p.numel() * p.element_size() for p in layer.parameters())
    buffers = sum(b.numel() * b.element_size() for b in layer.buffers())
    return {
        "trainable_params_bytes": trainable,
        "trainable_state_bytes": 4 * trainable,  # param+grad+2 moments
        "non_trainable_bytes": buffers,
    }


def agreement(layers, ids, upstream):
    """Max |output - cached| and max |grad - cached| / max |grad| for each Kron mode (same weights),
    in strict fp32: TF32 would round the cached and dynamic modes' matmuls (~1e-3), not the fused gathers."""
    ref = layers.get("cached")
    if ref is None:
        return {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _agreement(layers, ref, ids, upstream)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _agreement(layers, ref, ids, upstream):
    out = {}
    for name, (layer, _) in layers.items():
        if name == "embedding":
            continue
        layer.weight.data.copy_(ref[0].weight.data)
        layer.weight.grad = None
        y = layer(ids)
        y.backward(upstream)
        out[name] = (y.detach(), layer.weight.grad.clone())
        layer.weight.grad = None
    y0, g0 = out["cached"]
    return {
        m: {"max_abs_output_diff": (y - y0).abs().max().item(), "max_rel_grad_diff": ((g - g0).abs().max() / g0.abs().max()).item()}
        for m, (y, g) in out.items()
        if m != "cached"
    }


def bench_tied_head(name, s, device, autocast):
    """kron_tied's full-vocabulary rebuild E(W) (forward + backward) beside what it replaces on the
    output side: an nn.Linear(d, V) head's own forward + backward over the shape's tokens. Interleaved,
    median of the shape's repeats."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    head = torch.nn.Linear(s["d"], s["V"], bias=False).to(device)
    torch.nn.init.normal_(head.weight, std=0.02)
    kron = KroneckerEmbedding(s["V"], s["d"], pos_dim=s["pos_dim"]).to(device)
    h = (torch.randn(s["tokens"], s["d"], generator=g)).to(device)
    g_logits = (torch.randn(s["tokens"], s["V"], generator=g) * 1e-4).to(device)
    g_vocab = (torch.randn(s["V"], s["d"], generator=g) * 1e-4).to(device)

    def linear_head():
        with autocast:
            logits = head(h)
        logits.backward(g_logits.to(logits.dtype))
        head.weight.grad = None

    def rebuild():
        with autocast:
            E = kron.vocabulary()
        E.backward(g_vocab.to(E.dtype))
        kron.weight.grad = None

    times = {"nn.Linear head": [], "E(W) rebuild": []}
    for rep in range(s["warmup"] + s["repeats"]):
        for label, fn in (("nn.Linear head", linear_head), ("E(W) rebuild", rebuild)):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            if rep >= s["warmup"]:
                times[label].append(time.perf_counter() - t)
    res = {label: 1000 * statistics.median(ts) for label, ts in times.items()}
    res["ratio"] = res["E(W) rebuild"] / res["nn.Linear head"]
    print(
        f"  tied head: E(W) rebuild {res['E(W) rebuild']:.1f} ms vs nn.Linear head {res['nn.Linear head']:.1f} ms "
        f"(fwd+bwd, {s['tokens']:,} tokens): {res['ratio']:.2f}x",
        flush=True,
    )
    return res


def bench_shape(name, s, device, impls, autocast):
    print(
        f"\n[{device}] shape {name}: V={s['V']:,} pos_dim={s['pos_dim']} D={256 * s['pos_dim']} d={s['d']} "
        f"tokens={s['tokens']:,} ({s['warmup']} warm-up + {s['repeats']} timed repeats)",
        flush=True,
    )
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 50257, (s["tokens"],), generator=g).to(device)  # real tokenizer ids
    upstream = (torch.randn(s["tokens"], s["d"], generator=g) * 1e-3).to(device)
    layers, results = {}, {}
    # the big shape does not hold every implementation at once in host memory: time them one by one there
    groups = [list(impls)] if name == "gpt2" else [[i] for i in impls]
    for group in groups:
        for impl in group:
            t = time.time()
            layers[impl] = build(impl, s, device)
            results[impl] = {"build_s": time.time() - t, **state_bytes(layers[impl][0])}
        times = {impl: [] for impl in group}
        fwd_bwd = {impl: [] for impl in group}
        for rep in range(s["warmup"] + s["repeats"]):
            for impl in group:
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                sync(device)
                fb, total = step(*layers[impl], ids, upstream, device, autocast)
                if rep >= s["warmup"]:
                    times[impl].append(total)
                    fwd_bwd[impl].append(fb)
                if device == "cuda":
                    results[impl]["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
        for impl in group:
            q = statistics.quantiles(times[impl], n=4) if len(times[impl]) > 1 else [times[impl][0]] * 3
            results[impl].update(
                median_ms=1000 * statistics.median(times[impl]),
                q1_ms=1000 * q[0],
                q3_ms=1000 * q[2],
                fwd_bwd_median_ms=1000 * statistics.median(fwd_bwd[impl]),
                repeats=len(times[impl]),
            )
            print(
                f"  {impl:<10} {results[impl]['median_ms']:>10.2f} ms (forward+backward alone {results[impl]['fwd_bwd_median_ms']:.2f} ms)",
                flush=True,
            )
        if name != "gpt2":
            for impl in group:
                if impl != "cached":
                    del layers[impl]
            gc.collect()
    if name == "gpt2":
        agree = agreement(layers, ids[:2048], upstream[:2048])
    else:  # compare fused and dynamic against cached on a slice, one at a time to bound memory
        agree = {}
        if "cached" in layers:
            for impl in [i for i in ("fused", "dynamic") if i in impls]:
                layers[impl] = build(impl, s, device)
                agree.update(agreement({"cached": layers["cached"], impl: layers[impl]}, ids[:512], upstream[:512]))
                del layers[impl]
    for impl, a in agree.items():
        results[impl].update(a)
    layers.clear()
    gc.collect()
    return results


def print_table(device, name, res):
    emb = res.get("embedding", {}).get("median_ms")
    fused = res.get("fused", {}).get("median_ms")
    print(f"\n{device} | {name}")
    emb_fb = res.get("embedding", {}).get("fwd_bwd_median_ms")
    print(
        "| impl | fwd+bwd+AdamW ms (median [IQR]) | vs nn.Embedding | fwd+bwd ms | vs nn.Embedding | vs fused | trainable params | "
        "trainable state MB | non-trainable MB | max out diff | max rel grad diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for impl, r in res.items():
        if impl == "tied_head":
            continue
        vs_emb = f"{r['median_ms'] / emb:.2f}x" if emb else "-"
        vs_fused = f"{r['median_ms'] / fused:.2f}x" if fused else "-"
        diff = f"{r['max_abs_output_diff']:.1e}" if "max_abs_output_diff" in r else ("ref" if impl == "cached" else "-")
        gdiff = f"{r['max_rel_grad_diff']:.1e}" if "max_rel_grad_diff" in r else ("ref" if impl == "cached" else "-")
        fb = r.get("fwd_bwd_median_ms")
        fb_s = f"{fb:.1f} | {fb / emb_fb:.2f}x" if fb and emb_fb else (f"{fb:.1f} | -" if fb else "- | -")
        print(
            f"| {impl} | {r['median_ms']:.1f} [{r['q1_ms']:.1f}, {r['q3_ms']:.1f}] | {vs_emb} | {fb_s} | {vs_fused} | "
            f"{r['trainable_params_bytes'] // 4:,} | {r['trainable_state_bytes'] / 1e6:.1f} | "
            f"{r['non_trainable_bytes'] / 1e6:.3f} | {diff} | {gdiff} |"
        )
    tied = res.get("tied_head")
    if tied:
        print(
            f"\nkron_tied head, fwd+bwd: E(W) rebuild {tied['E(W) rebuild']:.1f} ms | nn.Linear(d, V) head "
            f"{tied['nn.Linear head']:.1f} ms | ratio {tied['ratio']:.2f}x"
        )


LABELS = {"embedding": "nn.Embedding", "fused": "Kron `fused`", "cached": "Kron `cached`", "dynamic": "Kron `dynamic`"}


def doc_table(res):
    """One shape's results as docs/kron_layer.md prints them (the fwd+bwd columns when measured):
    times under 100 ms to 0.1 ms, ratios of 10x or more to 0.1, state in MB (buffers to 0.001)."""

    def ms(x):
        return f"{x:.1f}" if x < 100 else f"{x:.0f}"

    def ratio(x):
        return f"{x:.1f}×" if x >= 10 else f"{x:.2f}×"

    def diff(r, impl, key):
        return f"{r[key]:.1e}" if key in r else ("ref" if impl == "cached" else "-")

    fwd_bwd = all("fwd_bwd_median_ms" in r for r in res.values())
    emb = res["embedding"]
    head = ["layer", "ms / step", "vs nn.Embedding"] + (["fwd+bwd ms", "vs nn.Embedding"] if fwd_bwd else [])
    head += [
        "trainable params",
        "trainable state (param+grad+AdamW)",
        "non-trainable buffers",
        "max out diff vs cached",
        "max rel. grad diff",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for impl, r in ((i, res[i]) for i in LABELS if i in res):
        row = [LABELS[impl], f"{ms(r['median_ms'])} [{ms(r['q1_ms'])}, {ms(r['q3_ms'])}]", ratio(r["median_ms"] / emb["median_ms"])]
        if fwd_bwd:
            row += [ms(r["fwd_bwd_median_ms"]), ratio(r["fwd_bwd_median_ms"] / emb["fwd_bwd_median_ms"])]
        row += [
            f"{r['trainable_params_bytes'] // 4:,}",
            f"{r['trainable_state_bytes'] / 1e6:,.0f} MB",
            f"{r['non_trainable_bytes'] / 1e6:,.3f} MB",
        ]
        row += [diff(r, impl, "max_abs_output_diff"), diff(r, impl, "max_rel_grad_diff")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets(all_results):
    """The issue's targets, checked on the measured numbers (printed, never asserted)."""
    lines = []
    for device, shapes in all_results.items():
        g = shapes.get("gpt2")
        if g and "fused" in g and "embedding" in g:
            r = g["fused"]["median_ms"] / g["embedding"]["median_ms"]
            lines.append((f"{device}: fused fwd+bwd+AdamW <= 1.0x nn.Embedding at GPT-2 124M shape", f"{r:.2f}x", r <= 1.0))
            r = g["fused"]["fwd_bwd_median_ms"] / g["embedding"]["fwd_bwd_median_ms"]
            lines.append((f"{device}: fused fwd+bwd alone <= 0.75x nn.Embedding's at GPT-2 124M shape", f"{r:.2f}x", r <= 0.75))
        if g and "fused" in g and "dynamic" in g:
            r = g["dynamic"]["median_ms"] / g["fused"]["median_ms"]
            lines.append((f"{device}: fused >= 10x faster than dynamic", f"{r:.1f}x", r >= 10))
        big = shapes.get("large")
        if big and "fused" in big:
            nt = big["fused"]["non_trainable_bytes"]
            lines.append((f"{device}: non-trainable state at V=131072, pos_dim=32 <= 4.5 MB", f"{nt / 1e6:.3f} MB", nt <= 4.5e6))
            table = 131072 * 4096
            ratio = table / (big["fused"]["trainable_params_bytes"] // 4)
            lines.append((f"{device}: trainable state 16x smaller than the table's", f"{ratio:.1f}x", ratio >= 16))
        for shape, res in shapes.items():
            tied = res.get("tied_head")
            if tied:
                lines.append(
                    (
                        f"{device}/{shape}: kron_tied E(W) rebuild fwd+bwd <= nn.Linear head fwd+bwd",
                        f"{tied['ratio']:.2f}x",
                        tied["ratio"] <= 1.0,
                    )
                )
            res = {k: v for k, v in res.items() if k != "tied_head"}
            if not res:  # --only-tied-head: no modes to compare
                continue
            worst = max([r.get("max_abs_output_diff", 0) for r in res.values()] + [0])
            gworst = max([r.get("max_rel_grad_diff", 0) for r in res.values()] + [0])
            lines.append(
                (
                    f"{device}/{shape}: modes agree to 1e-5 (output abs, gradient rel.)",
                    f"{worst:.1e} / {gworst:.1e}",
                    worst <= 1e-5 and gworst <= 1e-5,
                )
            )
    print("\ntargets")
    for what, value, ok in lines:
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {value}")
    return [{"target": w, "value": v, "met": ok} for w, v, ok in lines]


def main(argv=None):
    p = argparse.ArgumentParser(description="nn.Embedding vs KroneckerEmbedding: time, memory, agreement")
    p.add_argument("--devices", nargs="+", type=device_arg, default=None, help="cpu and/or cuda (default: cpu, plus cuda if present)")
    p.add_argument("--shapes", nargs="+", default=["gpt2", "large"], choices=list(SHAPES))
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    p.add_argument("--repeats", type=int, default=None, help="override the timed repeats of every shape")
    p.add_argument("--no-tied-head", action="store_true", help="skip the kron_tied head comparison")
    p.add_argument("--only-tied-head", action="store_true", help="time only the kron_tied head comparison")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="apply train.py's CPU allocator setting first (default: the allocator a plain script gets)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="autocast dtype of the timed forwards (auto: as train.py, bfloat16 on CUDA, float32 on CPU); "
        "the modes' agreement is always checked in float32",
    )
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "embed.json"))
    p.add_argument(
        "--table", metavar="JSON", default=None, help="print a kept result's tables as docs/kron_layer.md has them; measure nothing"
    )
    args = p.parse_args(argv)
    if args.table:
        for device, shapes in read_json(args.table)["results"].items():
            for name, res in shapes.items():
                print(f"{device} | {name}\n{doc_table({k: v for k, v in res.items() if k != 'tied_head'})}\n")
        return
    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            p.error(f"{flag} {value}: expected an integer >= 1")
    if args.no_tied_head and args.only_tied_head:
        p.error("--no-tied-head and --only-tied-head exclude each other: pick one")
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        resolve_device(device)  # a device this machine cannot honour: one line naming it
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "keep_freed_memory": args.keep_freed_memory,
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        meta.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    all_results = {}
    for device in devices:
        use_fast_matmul(device)  # train.py's precision flags (TF32 on CUDA)
        dtype = default_dtype(device) if args.dtype == "auto" else args.dtype
        meta.setdefault("dtype", {})[device] = dtype
        autocast = autocast_for(device, dtype)
        all_results[device] = {}
        for name in args.shapes:
            s = dict(SHAPES[name])
            if args.repeats:
                s["repeats"] = args.repeats
            all_results[device][name] = {} if args.only_tied_head else bench_shape(name, s, device, args.impls, autocast)
            if not args.no_tied_head:
                all_results[device][name]["tied_head"] = bench_tied_head(name, s, device, autocast)
    for device, shapes in all_results.items():
        for name, res in shapes.items():
            print_table(device, name, res)
    checked = targets(all_results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "shapes": {k: SHAPES[k] for k in args.shapes}, "results": all_results, "targets": checked}, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
