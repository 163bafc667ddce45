"""How much do the quickstart's losses depend on the CPU's kernel path, and which op makes them?

    python -m scripts.isa_check              # ops, then training under TRAINED paths (~40 min at 1 thread), then --render
    python -m scripts.isa_check --ops        # only the per-op comparison (a minute)
    python -m scripts.isa_check --render     # only rebuild results/isa_check/isa_check.md from the kept JSON

One machine can run several of the kernel paths another CPU would take: ATen's vectorised kernels
(ATEN_CPU_CAPABILITY), MKL's BLAS (MKL_ENABLE_INSTRUCTIONS, MKL_CBWR: torch's fp32 matmuls are MKL
sgemm calls) and oneDNN (ONEDNN_MAX_CPU_ISA). Each PATHS entry is such a setting, run in a
subprocess at 1 thread:

  --train  trains both quickstart arms (config/quickstart.py, --num_threads=1) under each path and
           keeps every evaluation's validation loss, and its largest |difference| from the default path;
  --ops    localises the difference: one batch of each arm, its weights and the inputs of every op
           made once on the default path, then each op (init, embedding forward/backward, layernorm,
           linear, attention, GELU, the head's matmul forward/backward, cross-entropy, the whole
           forward/backward, gradient clipping, AdamW) run under each path on those same inputs;
           outputs are compared bitwise with the default path's (elements differing, max ulp).

The tolerance for "the same within kernel-path noise" is the largest cross-path difference of any
evaluation's loss, either arm, times SAFETY, rounded up to one significant digit. Writes
results/isa_check/isa_check.json (with runtime.machine_facts()) and isa_check.md.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.isa_check", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

from errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "results", "isa_check")
CONFIG = os.path.join(ROOT, "config", "quickstart.py")
KEPT = os.path.join(ROOT, "results", "quickstart_cpu", "summary.json")  # the README's quickstart table
ARMS_CHECKED = ("bpe_tied", "kron")
SAFETY = 2.0  # the tolerance: the largest difference measured, times this, rounded up
PATHS = {  # name -> environment; "default" is what this machine picks by itself
    "default": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten_scalar": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl_avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl_avx": {"MKL_ENABLE_INSTRUCTIONS": "AVX"},
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
}
HEAD_ROWS = 2  # sequences of the batch the isolated head and loss ops see
NOT_TRAINED = {  # paths the training leaves out by default, and why
    "aten_scalar": "its init draws (normal_) differ: another initialisation, not kernel noise",
    "mkl_avx2": "every op bitwise equal to the default path's here (on this AMD CPU MKL takes the same sgemm path whatever it is told)",
    "mkl_avx": "every op bitwise equal to the default path's here (on this AMD CPU MKL takes the same sgemm path whatever it is told)",
}
TRAINED = [q for q in PATHS if q not in NOT_TRAINED]
ENV_KEYS = sorted({k for env in PATHS.values() for k in env})


def path_env(name):
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(PATHS[name], OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


# ----------------------------------------------------------------------------- training under each path


def train_arm(path, arm, max_iters, work, reuse=False):
    """The quickstart's config for one arm at 1 thread under one kernel path: {step: val_loss}.
    reuse: a finished run already in the folder is read, not trained again."""
    from runlog import read_metrics

    out_dir = os.path.join(work, f"{path}-{arm}")
    if reuse and os.path.isfile(os.path.join(out_dir, "metrics.jsonl")):
        curve = {str(r["step"]): r["val_loss"] for r in read_metrics(out_dir, "eval")}
        if str(max_iters) in curve:
            return curve
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), CONFIG, f"--embedding={arm}", "--seed=1337", f"--out_dir={out_dir}"]
    cmd += ["--init_from=scratch", "--num_threads=1", f"--max_iters={max_iters}", f"--lr_decay_iters={max_iters}"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=path_env(path), stdout=subprocess.DEVNULL)
    return {str(r["step"]): r["val_loss"] for r in read_metrics(out_dir, "eval")}


def loss_differences(curves):
    """curves: {path: {arm: {step: loss}}} -> {path: {arm: {"max_abs": d, "step": s, "steps_differing": n}}}
    against the default path, over the steps both have."""
    ref = curves["default"]
    out = {}
    for path, arms in curves.items():
        if path == "default":
            continue
        out[path] = {}
        for arm, curve in arms.items():
            diffs = {s: abs(curve[s] - ref[arm][s]) for s in curve if s in ref[arm]}
            worst = max(diffs, key=lambda s: (diffs[s], -int(s)))
            out[path][arm] = {"max_abs": diffs[worst], "step": int(worst), "steps_differing": sum(d > 0 for d in diffs.values())}
    return out


def tolerance_from(differences, safety=SAFETY):
    """The largest measured difference times safety, rounded up to one significant digit (a floor of 1e-6
    where every path agreed exactly)."""
    worst = max((d["max_abs"] for arms in differences.values() for d in arms.values()), default=0.0)
    x = max(worst * safety, 1e-6)
    e = math.floor(math.log10(x))
    return round(math.ceil(x / 10**e - 1e-9) * 10**e, -e + 1 if e < 0 else 0)


def summarise(curves, kept_path=KEPT):
    """The differences from the default path, the tolerance, and (not part of it) the default path at 1
    thread against the kept quickstart table (results/quickstart_cpu, made at the machine's default
    thread count): what a thread count alone changes."""
    diffs = loss_differences(curves)
    out = {
        "loss_differences": diffs,
        "max_difference": max((d["max_abs"] for arms in diffs.values() for d in arms.values()), default=0.0),
        "safety": SAFETY,
        "tolerance": tolerance_from(diffs),
    }
    if os.path.isfile(kept_path):
        with open(kept_path) as f:
            kept = json.load(f)
        threads = (kept.get("machine") or {}).get("threads", kept.get("machine", {}).get("cores"))
        both = {"default": curves["default"], f"kept table ({threads} threads)": {a: kept["curves"][a] for a in ARMS_CHECKED}}
        out["threads_vs_kept"] = loss_differences(both)
    return out


# ----------------------------------------------------------------------------- per-op comparison


def quickstart_model(arm):
    import torch

    from configurator import load_config
    from model import GPT, GPTConfig

    c = load_config([CONFIG, f"--embedding={arm}", "--seed=1337"])
    torch.manual_seed(c["seed"])
    return GPT(GPTConfig.from_dict(c)), c


def make_inputs(path_out):
    """On the default path: each arm's initial weights, one training batch, every op's input (captured
    from a real forward) and upstream gradient, and the reference gradients the optimizer ops take."""
    import torch

    from shards import TokenData

    torch.set_num_threads(1)
    out = {}
    for arm in ARMS_CHECKED:
        model, c = quickstart_model(arm)
        data = TokenData(os.path.join(ROOT, c["data_dir"]), c["block_size"], c["vocab_size"], c["tokenizer"])
        x, y = (torch.from_numpy(a) for a in data.train_batch(c["batch_size"], c["seed"], 0, 0))
        acts = {}

        def keep(name):
            def hook(mod, inp, outp):
                acts[name] = (inp[0].detach().clone() if inp else None, outp.detach().clone())

            return hook

        blk = model.transformer.h[0]
        mods = {"ln_1": blk.ln_1, "c_attn": blk.attn.c_attn, "c_fc": blk.mlp.c_fc, "ln_f": model.transformer.ln_f, "head": model.lm_head}
        handles = [m.register_forward_hook(keep(n)) for n, m in mods.items()]
        _, loss = model(x, y)
        for h in handles:
            h.remove()
        loss.backward()
        gen = torch.Generator().manual_seed(0)
        B, T, C = acts["ln_1"][0].shape
        q, k, v = (t.view(B, T, c["n_head"], C // c["n_head"]).transpose(1, 2).contiguous() for t in acts["c_attn"][1].split(C, dim=2))
        logits = acts["head"][1]
        lg = logits.clone().requires_grad_()
        torch.nn.functional.cross_entropy(lg.view(-1, lg.size(-1)), y.view(-1)).backward()
        out[arm] = {
            "state": {k: v.clone() for k, v in model.state_dict().items()},
            "x": x,
            "y": y,
            "ln_in": acts["ln_1"][0],
            "c_attn_in": acts["c_attn"][0],
            "qkv": (q, k, v),
            "gelu_in": acts["c_fc"][1],
            "h": acts["ln_f"][1][:HEAD_ROWS],  # the head and the loss on the first sequences only: (N, V) is large
            "logits": logits[:HEAD_ROWS],
            "dlogits": lg.grad.view_as(logits)[:HEAD_ROWS],
            "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
            "up": {  # upstream gradients for the isolated ops, drawn once
                "emb": torch.randn(B, T, C, generator=gen),
                "ln": torch.randn(B, T, C, generator=gen),
                "c_attn": torch.randn(B, T, 3 * C, generator=gen),
                "sdpa": torch.randn(q.shape, generator=gen),
                "gelu": torch.randn(acts["c_fc"][1].shape, generator=gen),
            },
        }
    torch.save(out, path_out)


def run_ops(inputs_path, path_out):
    """Every op on the default path's inputs, under this process's kernel path: {arm: {op: {name: tensor}}}."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    inputs = torch.load(inputs_path, weights_only=False)
    res = {}
    for arm, d in inputs.items():
        r = res[arm] = {}
        model, c = quickstart_model(arm)
        r["init (normal_ draws)"] = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(d["state"])
        wte, up = model.transformer.wte, d["up"]

        e = wte(d["x"])
        r["embedding forward"] = {"out": e.detach()}
        (g,) = torch.autograd.grad(e, wte.weight, up["emb"])
        r["embedding backward"] = {"weight_grad": g}

        def fwd_bwd(op, fn, inps, grad_out):
            inps = [t.detach().clone().requires_grad_() for t in inps]
            o = fn(*inps)
            grads = torch.autograd.grad(o, inps, grad_out)
            r[op] = {"out": o.detach(), **{f"grad{i}": gi for i, gi in enumerate(grads)}}

        ln = model.transformer.h[0].ln_1
        fwd_bwd("layernorm fwd/bwd", lambda x, w, b: F.layer_norm(x, (x.size(-1),), w, b, 1e-5), [d["ln_in"], ln.weight, ln.bias], up["ln"])
        lin = model.transformer.h[0].attn.c_attn
        fwd_bwd("linear c_attn fwd/bwd (matmul)", F.linear, [d["c_attn_in"], lin.weight, lin.bias], up["c_attn"])
        fwd_bwd(
            "attention (sdpa) fwd/bwd", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), list(d["qkv"]), up["sdpa"]
        )
        fwd_bwd("gelu fwd/bwd", F.gelu, [d["gelu_in"]], up["gelu"])
        head_w = model.lm_head.weight
        fwd_bwd("head matmul fwd/bwd (logits = h W^T)", lambda h, w: F.linear(h, w), [d["h"], head_w], d["dlogits"])
        fwd_bwd(
            "cross-entropy fwd/bwd (log_softmax)",
            lambda z: F.cross_entropy(z.view(-1, z.size(-1)), d["y"][:HEAD_ROWS].reshape(-1)),
            [d["logits"]],
            torch.ones(()),
        )
        if arm == "bpe_tied":
            # the tied table's gradient is the index-add's plus the head's, accumulated by autograd
            (emb_g,) = torch.autograd.grad(wte(d["x"]), wte.weight, up["emb"])
            r["tied gradient sum (emb + head)"] = {"sum": emb_g + r["head matmul fwd/bwd (logits = h W^T)"]["grad1"]}

        model.zero_grad(set_to_none=True)
        _, loss = model(d["x"], d["y"])
        loss.backward()
        r["whole forward (loss)"] = {"loss": loss.detach()}
        r["whole backward (every grad)"] = {n: p.grad.clone() for n, p in model.named_parameters()}

        for n, p in model.named_parameters():  # the optimizer ops start from the default path's gradients
            p.grad = d["grads"][n].clone()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        r["grad clip (norm, scale)"] = {"norm": norm.detach(), **{n: p.grad.clone() for n, p in model.named_parameters()}}
        for n, p in model.named_parameters():
            p.grad = d["grads"][n].clone()
        opt = model.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]), "cpu")
        opt.step()
        opt.step()
        r["AdamW step (x2)"] = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.save(res, path_out)


def ulps(a, b):
    """Largest distance in units in the last place between two float32 tensors, element by element (0
    when bitwise equal; large where a value near 0 came out of cancellation)."""
    import torch

    def ordered(t):
        i = t.contiguous().view(torch.int32).to(torch.int64)
        return torch.where(i < 0, -(2**31) - i, i)  # monotonic in the float's value

    return int((ordered(a.float()) - ordered(b.float())).abs().max()) if a.numel() else 0


def ulps_of_largest(a, b):
    """Largest |a - b| in units of the last place of a's largest |element|: the difference on the
    tensor's own scale (a sum's rounding is relative to the sum, not to a small term's)."""
    big = a.float().abs().max().item()
    if big == 0 or not math.isfinite(big):
        return 0.0
    ulp = 2.0 ** (math.frexp(big)[1] - 24)  # float32: 24 significant bits
    return (a.double() - b.double()).abs().max().item() / ulp if a.numel() else 0.0


def compare_ops(ref, other):
    """{arm: {op: {"tensors_differing", "elements_differing", "max_abs", "max_ulp", "max_ulp_of_largest"}}}
    of other against ref."""
    out = {}
    for arm, ops in ref.items():
        out[arm] = {}
        for op, tensors in ops.items():
            s = {"tensors_differing": 0, "elements_differing": 0, "max_abs": 0.0, "max_ulp": 0, "max_ulp_of_largest": 0.0}
            for name, t in tensors.items():
                u = other[arm][op][name]
                diff = (t != u).sum().item()
                if diff:
                    s["tensors_differing"] += 1
                    s["elements_differing"] += diff
                    s["max_abs"] = max(s["max_abs"], (t.double() - u.double()).abs().max().item())
                    s["max_ulp"] = max(s["max_ulp"], ulps(t, u))
                    s["max_ulp_of_largest"] = max(s["max_ulp_of_largest"], ulps_of_largest(t, u))
            out[arm][op] = s
    return out


def measure_ops():
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.pt")
        child = [sys.executable, "-m", "scripts.isa_check"]
        subprocess.run(child + ["--make-inputs", inputs], check=True, cwd=ROOT, env=path_env("default"))
        outs = {}
        for path in PATHS:
            outs[path] = os.path.join(tmp, f"ops-{path}.pt")
            subprocess.run(child + ["--run-ops", inputs, outs[path]], check=True, cwd=ROOT, env=path_env(path))
            print(f"ops: {path} done", flush=True)
        ref = torch.load(outs["default"], weights_only=False)
        return {path: compare_ops(ref, torch.load(outs[path], weights_only=False)) for path in PATHS if path != "default"}


# ----------------------------------------------------------------------------- the kept JSON and its table


def load(path=None):
    with open(path or os.path.join(OUT, "isa_check.json")) as f:
        return json.load(f)


def save(result):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "isa_check.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def render(result):
    lines = ["# Kernel-path check (scripts/isa_check.py)", ""]
    m = result.get("machine", {})
    lines.append(f"Machine: {m.get('cpu')}, torch {m.get('torch')} (CPU capability {m.get('cpu_capability')}), 1 thread.")
    lines.append("")
    if "ops" in result:
        lines += ["## Ops that differ bitwise from the default path (same inputs)", ""]
        lines += [
            "Max ulp: the largest difference in units of the last place of the tensor's largest element.",
            "",
            "| path | arm | op | elements differing | max ulp | max abs |",
            "|---|---|---|---:|---:|---:|",
        ]
        for path, arms in result["ops"].items():
            rows = [(arm, op, s) for arm, ops in arms.items() for op, s in ops.items() if s["elements_differing"]]
            if not rows:
                lines.append(f"| {path} | both | (none: every op bitwise equal) | 0 | 0 | 0 |")
            for arm, op, s in rows:
                lines.append(
                    f"| {path} | {arm} | {op} | {s['elements_differing']:,} | {s['max_ulp_of_largest']:.3g} | {s['max_abs']:.3g} |"
                )
        lines.append("")
    if "loss_differences" in result:

        def cell(d):
            return f"{d['max_abs']:.2g} (step {d['step']})" if d["max_abs"] else "0 (identical)"

        lines += [
            f"## Validation loss: largest |difference| from the default path ({result['max_iters']} steps, every evaluation)",
            "",
            "| path | environment | " + " | ".join(ARMS_CHECKED) + " |",
            "|---|---|" + "---:|" * len(ARMS_CHECKED),
        ]
        for path, arms in result["loss_differences"].items():
            env = " ".join(f"{k}={v}" for k, v in result["paths"][path].items())
            lines.append(f"| {path} | {env} | " + " | ".join(cell(arms[a]) for a in ARMS_CHECKED) + " |")
        untrained = [q for q in result["paths"] if q not in result["curves"]]
        lines += [
            "",
            f"Tolerance for 'the same within kernel-path noise': {result['tolerance']:g} nats "
            f"(largest difference {result['max_difference']:.2g} x {result['safety']:g}, rounded up to one digit).",
        ]
        if untrained:
            why = "; ".join(f"{q}: {NOT_TRAINED.get(q, 'see its ops above')}" for q in untrained)
            lines += ["", f"Not trained: {why}."]
        for other, arms in result.get("threads_vs_kept", {}).items():
            lines += [
                "",
                f"Not part of the tolerance: the default path at 1 thread against the README's {other}: "
                + ", ".join(f"{a} {cell(arms[a])}" for a in ARMS_CHECKED)
                + ".",
            ]
    return "\n".join(lines) + "\n"


def write_rendered(result):
    path = os.path.join(OUT, "isa_check.md")
    with open(path, "w") as f:
        f.write(render(result))
    print(f"wrote {os.path.relpath(path, ROOT)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ops", action="store_true", help="only the per-op comparison")
    p.add_argument("--train", action="store_true", help="only the training runs")
    p.add_argument("--render", action="store_true", help="only rebuild isa_check.md from the kept JSON")
    p.add_argument("--max-iters", type=int, default=120, help="training steps (the quickstart's 120: all 7 evaluations)")
    p.add_argument("--paths", nargs="+", default=TRAINED, choices=list(PATHS), help="kernel paths to train under")
    p.add_argument("--reuse", action="store_true", help="read finished training runs in --work instead of training again")
    p.add_argument("--work", default=os.path.join(ROOT, "out", "isa_check"), help="where the training runs go")
    p.add_argument("--make-inputs", metavar="OUT", help=argparse.SUPPRESS)
    p.add_argument("--run-ops", nargs=2, metavar=("INPUTS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.make_inputs:
        return make_inputs(args.make_inputs)
    if args.run_ops:
        return run_ops(*args.run_ops)
    if args.render:
        return write_rendered(load())
    import torch

    from runtime import machine_facts

    torch.set_num_threads(1)
    result = load() if os.path.isfile(os.path.join(OUT, "isa_check.json")) else {}
    result.update(machine=machine_facts(), paths=PATHS)
    if args.ops or not args.train:
        result["ops"] = measure_ops()
        save(result)
    if args.train or not args.ops:
        paths = ["default"] + [q for q in args.paths if q != "default"]
        curves = {}
        for path in paths:
            curves[path] = {arm: train_arm(path, arm, args.max_iters, args.work, args.reuse) for arm in ARMS_CHECKED}
            print(f"train: {path}: " + ", ".join(f"{a} {c[max(c, key=int)]:.6f}" for a, c in curves[path].items()), flush=True)
        result.update(max_iters=args.max_iters, curves=curves)
    if "curves" in result:
        result.update(summarise(result["curves"]))
    save(result)
    write_rendered(result)


if __name__ == "__main__":
    run_cli(main)
