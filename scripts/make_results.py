"""Regenerate RESULTS.md: the CPU-scale study, its comparison, probes and the parameter table.

    python scripts/run_study.py --base config/study_cpu.py --out-root runs/study_cpu   # train (~45 min, 2 cores)
    python scripts/make_results.py                                                     # tables, plots, RESULTS.md

The runs' metric logs are copied into results/study_cpu/runs/ (small, kept in git), so this script
rebuilds every table and plot without retraining. Probes need checkpoints: when
runs/study_cpu/<arm>-s<seed>/ckpt.pt exist they are re-run on the chosen seed's final checkpoints
(--probe-seed); otherwise the probe outputs already in results/study_cpu/probes/ are used.
"""
import argparse
import glob
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import subprocess  # noqa: E402

PAPER = {"gap_pct": "2.5 ± 0.2 %", "gap_nats": "0.083 ± 0.007", "step_ratio": "≈1.43×", "top1": "55.5 % vs 47.3 %",
         "kl": "−7.6 %", "wins": "10 of 11"}


def copy_logs(runs_dir, dest):
    n = 0
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "metrics.jsonl"))):
        run = os.path.basename(os.path.dirname(path))
        os.makedirs(os.path.join(dest, run), exist_ok=True)
        shutil.copy(path, os.path.join(dest, run, "metrics.jsonl"))
        n += 1
    return n


def run_probes(runs_dir, seed, out):
    ckpts = {arm: os.path.join(runs_dir, f"{arm}-s{seed}", "ckpt.pt") for arm in ("bpe_tied", "kron", "bpe_untied")}
    ckpts = {a: p for a, p in ckpts.items() if os.path.exists(p)}
    if len(ckpts) < 2:
        return False
    run_tool("probes/run_all.py", *[f"{a}={os.path.relpath(p, ROOT)}" for a, p in ckpts.items()], "--out", out)
    return True


def run_tool(script, *args):
    """Another entry script of the repo, as its own command (scripts never import each other)."""
    subprocess.run([sys.executable, os.path.join(ROOT, script), *args], check=True, cwd=ROOT)


def bench_sentence():
    path = os.path.join(ROOT, "results", "bench_train_cpu.json")
    if not os.path.exists(path):
        return "not recorded (run `python scripts/bench_train.py`)."
    b = load(path)
    a = b["meta"]["args"]
    parts = [f"{name} {r['median_ms']:.0f} ms/step ({r['tokens_per_s']:,.0f} tokens/s, {r['ratio_to_first']:.3f}× bpe_tied)"
             for name, r in b["results"].items()]
    return (f"`python scripts/bench_train.py --steps {a['steps']}` at d={a['n_embd']}, {a['n_layer']} layers, block "
            f"{a['block_size']}, batch {a['batch_size']} (medians of {a['steps']} interleaved steps): " + "; ".join(parts) + ".")


def load(path):
    with open(path) as f:
        return json.load(f)


def results_md(cmp, cmp_md, probes_dir, params_md, config_text, n_train_tokens):
    g = cmp["groups"]
    base = cmp["baseline"]
    seeds = len(g[base]["seeds"])
    lines = ["# Results: a CPU-scale replication",
             "",
             "Regenerate everything below with `python scripts/make_results.py` (from the logs kept in "
             "`results/study_cpu/runs/`); retrain with `python scripts/run_study.py --base config/study_cpu.py "
             "--out-root runs/study_cpu` first to rebuild the probe results too.",
             "",
             "**Scale, stated plainly.** These are small-scale CPU runs: a 4-layer, d=128 GPT "
             f"(block 256) trained for {g[base]['final_step']} steps of 4,096 tokens (~{g[base]['final_step'] * 4096 / 1e6:.2f}M tokens) "
             f"on the Python 3.11 documentation ({f'{n_train_tokens / 1e6:.1f}M' if n_train_tokens else 'about 3.3M'} training tokens, `data/pydocs`), "
             f"{seeds} seeds per arm (1337/1338/1339, identical batches per seed across arms), on a 2-core x86-64 CPU in fp32. "
             "The paper trains GPT-2 124M on 2.5B FineWeb-Edu tokens. Agreement or disagreement here says little about that scale; "
             "it shows what the method does when models are tiny and training is short.",
             "",
             "## Training comparison",
             "",
             cmp_md,
             "",
             "The step-time and tokens/s columns come from the training logs; on this shared 2-core machine those runs "
             "overlapped other work, so they are not a speed comparison. The interleaved step benchmark is: "
             + bench_sentence(),
             "",
             "![validation loss](results/study_cpu/compare/val_curves.png)",
             "![gap](results/study_cpu/compare/gap.png)",
             "",
             "| | paper (124M, 2.5B tokens) | here (CPU scale) |",
             "|---|---|---|"]
    k = g.get("kron", {})
    if "gap_nats_mean" in k:
        lines.append(f"| kron vs bpe_tied, val-loss gap | {PAPER['gap_nats']} nats ({PAPER['gap_pct']}) | "
                     f"{k['gap_nats_mean']:+.3f} ± {k['gap_nats_std']:.3f} nats ({k['gap_pct_mean']:+.2f} ± {k['gap_pct_std']:.2f} %) |")
        ratio = f"{k['step_ratio']:.2f}×" if k.get("step_ratio") else "not reached"
        lines.append(f"| steps to bpe_tied's final loss | {PAPER['step_ratio']} fewer | {ratio} |")
    u = g.get("bpe_untied", {})
    if "gap_nats_mean" in u and "gap_nats_mean" in k:
        lines.append(f"| bpe_untied vs bpe_tied (control; not in the paper's abstract) | — | {u['gap_nats_mean']:+.3f} ± {u['gap_nats_std']:.3f} nats |")
        lines.append("")
        lines.append(f"Reading: of kron's {k['gap_nats_mean']:+.3f}-nat gap to bpe_tied, untying the head alone (bpe_untied) "
                     f"accounts for {u['gap_nats_mean']:+.3f} nats; kron vs bpe_untied is "
                     f"{k['gap_nats_mean'] - u['gap_nats_mean']:+.3f} nats (positive: the codec itself helps beyond untying).")
    lines += ["", "Norm drift over training (`proj_std_sqrtD` is the Kron projection's std·√D, 1 at init; `wte_std` the BPE table's std):",
              "", "![norm drift](results/study_cpu/compare/norm_drift.png)", ""]
    if os.path.exists(os.path.join(probes_dir, "report.md")):
        with open(os.path.join(probes_dir, "report.md")) as f:
            report = f.read()
        report = report.replace("](", "](results/study_cpu/probes/").replace("# Probe report", "## Probes on the seed-1337 final checkpoints", 1)
        report = report.replace("\n## ", "\n### ").replace("### Probes on", "## Probes on")
        rob = os.path.join(probes_dir, "robustness.json")
        if os.path.exists(rob):
            r = load(rob)["models"]
            rows = [f"| {lab} | {m['overall']['top1_match_rate']:.3f} | {m['overall']['mean_kl']:.3f} |" for lab, m in r.items()]
            lines += ["## Spelling robustness next to the paper", "",
                      f"Paper (124M): top-1 kept {PAPER['top1']} (kron vs bpe), KL {PAPER['kl']}, kron wins or ties {PAPER['wins']} categories.",
                      "", "| model | top-1 match | mean KL |", "|---|---|---|"] + rows + [""]
        lines += [report, ""]
    lines += ["## Parameter savings", "", params_md, "", "## The study's configuration (`config/study_cpu.py`)", "", "```python",
              config_text.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "study_cpu"))
    p.add_argument("--results-dir", default=os.path.join(ROOT, "results", "study_cpu"))
    p.add_argument("--probe-seed", type=int, default=1337)
    p.add_argument("--skip-probes", action="store_true")
    p.add_argument("--params-dir", default=os.path.join(ROOT, "results", "param_table"))
    p.add_argument("--out", default=os.path.join(ROOT, "RESULTS.md"))
    args = p.parse_args(argv)
    logs = os.path.join(args.results_dir, "runs")
    if os.path.isdir(args.runs_dir):
        print(f"copied {copy_logs(args.runs_dir, logs)} metric logs into {logs}")
    cmp_dir = os.path.join(args.results_dir, "compare")
    run_tool("scripts/compare.py", logs, "--out", cmp_dir)
    cmp = load(os.path.join(cmp_dir, "compare.json"))
    with open(os.path.join(cmp_dir, "compare.md")) as f:
        cmp_md = f.read().removesuffix("\n")
    probes_dir = os.path.join(args.results_dir, "probes")
    if not args.skip_probes and os.path.isdir(args.runs_dir):
        if not run_probes(args.runs_dir, args.probe_seed, probes_dir):
            print("no checkpoints to probe; keeping the probe results already in", probes_dir)
    params_dir = args.params_dir
    run_tool("scripts/param_table.py", "--out", params_dir)
    with open(os.path.join(params_dir, "param_table.md")) as f:
        params_md = f.read()
    with open(os.path.join(ROOT, "config", "study_cpu.py")) as f:
        config_text = f.read()
    from runlog import read_metrics
    n_train = max((r.get("n_train_tokens", 0) for run in os.listdir(logs)
                   for r in read_metrics(os.path.join(logs, run), "config")), default=0)
    with open(args.out, "w") as f:
        f.write(results_md(cmp, cmp_md, probes_dir, params_md, config_text, n_train))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # a bad folder or log: its message, not a traceback
        sys.exit(f"error: {e}")
