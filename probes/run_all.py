"""Every probe on a pair (or set) of checkpoints, in one command, with one report.

    python -m probes.run_all bpe=out/124m-bpe_tied-s1337/ckpt.pt kron=out/124m-kron-s1337/ckpt.pt --out report/
    python -m probes.run_all ... --hf smollm=/models/SmolLM2-135M      # add local HF models to clustering
    python -m probes.run_all ... --skip generation                     # leave slow probes out

Writes each probe's JSON / markdown / PNG into --out and report.md, which strings the summaries
together (norm drift reads the metrics.jsonl next to each checkpoint).
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("probes.run_all", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os
import time

from probes import clustering, generation, layered, norm_drift, robustness, tradeoff
from probes.common import cli, load_all, parse_checkpoints
from runtime import device_arg

PROBES = ("robustness", "generation", "clustering", "layered", "norm_drift", "tradeoff")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", help="ckpt.pt files, optionally labelled: kron=out/run/ckpt.pt")
    p.add_argument("--out", required=True)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--hf", nargs="*", default=[], help="local Hugging Face model dirs for the clustering probe")
    p.add_argument("--pairs", default=robustness.DEFAULT_PAIRS, help="robustness pairs (JSONL)")
    p.add_argument("--skip", nargs="*", default=[], choices=PROBES)
    args = p.parse_args(argv)
    specs = parse_checkpoints(args.checkpoints)
    models = load_all(args.checkpoints, args.device)
    os.makedirs(args.out, exist_ok=True)
    timings = {}
    todo = [name for name in PROBES if name not in args.skip]
    for name in todo:
        t = time.time()
        print(f"\n=== probe {name}", flush=True)
        if name == "robustness":
            robustness.run(models, robustness.load_pairs(args.pairs), args.out)
        elif name == "generation":
            generation.run(models, args.out)
        elif name == "clustering":
            clustering.run(models, clustering.parse_hf_dirs(args.hf), args.out)
        elif name == "layered":
            layered.run(models, args.out)
        elif name == "norm_drift":
            runs = [(m.label, os.path.dirname(os.path.abspath(path))) for m, (_, path) in zip(models, specs)]
            norm_drift.run(runs, args.out)
        elif name == "tradeoff":
            tradeoff.run(models, args.out)
        timings[name] = time.time() - t
    lines = ["# Probe report\n", "Checkpoints:\n"]
    for m in models:
        cfg = m.model.config
        lines.append(
            f"- **{m.label}**: {m.path} — arm `{m.arm}`, step {m.ckpt.get('iter_num')}, "
            f"{cfg.n_layer} layers, d={cfg.n_embd}, best val loss {m.ckpt.get('best_val_loss', float('nan')):.4f}"
        )
    for name in todo:
        with open(os.path.join(args.out, f"{name}.md")) as f:
            body = f.read().replace("\n# ", "\n### ").replace("\n## ", "\n#### ")
        body = body[2:] if body.startswith("# ") else body
        lines.append(f"\n## {body.strip()}\n")
        if os.path.exists(os.path.join(args.out, f"{name}.png")):
            lines.append(f"![{name}]({name}.png)\n")
        lines.append(f"_{name}: {timings[name]:.0f} s_\n")
    path = os.path.join(args.out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    cli(main)
