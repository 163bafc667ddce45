"""Compare a study's arms across seeds from the runs' metric logs.

    python -m scripts.compare runs/study_cpu --baseline bpe_tied --out results/study_cpu

Reads every <run>/metrics.jsonl below the given folders (a run's group is its folder name without
the trailing -s<seed>, e.g. kron or kron-kron_pos_dim32). Reports per group, over seeds:
  * final validation loss and perplexity, mean ± sample std (ddof 1);
  * the gap to the baseline, paired by seed: gap = L_baseline − L_arm (positive: the arm is better),
    in nats and in percent of the baseline's loss, mean ± std over the seeds both have;
  * steps-to-target: target = the baseline's final mean val loss; the first step at which the arm's
    mean curve (mean over seeds at each evaluation) reaches it, linearly interpolated between the
    two evaluations that straddle it; ratio = the baseline's final step / that step (the paper's
    "1.43x fewer steps"); None when the arm never reaches the target;
  * the gap's trajectory: mean and std of the paired gap at every evaluation step;
  * median training throughput (tokens/s) and step time, first 3 steps skipped.
Writes compare.json, compare.md, val_curves.png, gap.png and norm_drift.png into --out. The same
runs can be compared in wandb when trained with wandb_log=True (runs grouped by arm).
"""
import argparse
import math
import os
import re
import statistics
import sys

import numpy as np

from plotting import ARM_COLOURS, plot_val_curves, pyplot, save_figure
from runlog import read_metrics, series_from_evals
from stats import mean_std, t_interval95

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEED_SUFFIX = re.compile(r"^(.*)-s(\d+)$")


def find_runs(folders):
    """{group: {seed: run folder}} for every folder below `folders` holding a metrics.jsonl."""
    groups = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder!r} is not a folder of runs")
        for dirpath, _, files in os.walk(folder):
            if "metrics.jsonl" not in files:
                continue
            m = SEED_SUFFIX.match(os.path.basename(os.path.normpath(dirpath)))
            if not m:
                raise ValueError(f"run folder {dirpath!r} does not end in -s<seed>")
            groups.setdefault(m.group(1), {})[int(m.group(2))] = dirpath
    if not groups:
        raise FileNotFoundError(f"no runs (folders with metrics.jsonl) under {folders}")
    return groups


def load_run(path):
    evals = read_metrics(path, "eval")
    train = read_metrics(path, "train")
    if not evals:
        raise ValueError(f"{path}: no evaluation records")
    configs = read_metrics(path, "config")
    return {"steps": [r["step"] for r in evals], "val": [r["val_loss"] for r in evals], "evals": evals, "train": train,
            "data": data_identity(configs), "path": path,
            "max_iters": (configs[-1].get("config") or {}).get("max_iters") if configs else None}


def data_identity(configs):
    """What a run was trained on, as its log recorded it: {"tokens": (train, val), "sha256": the data
    fingerprint or None (logs from before fingerprints)}; None when nothing was recorded."""
    if not configs:
        return None
    last = configs[-1]
    fp = last.get("data") or {}
    tokens = (fp.get("train_tokens", last.get("n_train_tokens")), fp.get("val_tokens", last.get("n_val_tokens")))
    return {"tokens": tokens if None not in tokens else None, "sha256": fp.get("sha256")}


def same_data(data):
    """Refuse a comparison of runs trained on different data (another corpus version, say), naming two:
    their token counts differ, or both have fingerprints and these differ."""
    runs = [r for group in data.values() for r in group.values() if r["data"]]
    for field in ("tokens", "sha256"):
        seen = {}
        for r in runs:
            if r["data"][field] is not None:
                seen.setdefault(r["data"][field], r["path"])
        if len(seen) > 1:
            (a, pa), (b, pb) = list(seen.items())[:2]
            raise ValueError(f"these runs were trained on different data ({field}): {pa} on {a}, {pb} on {b}; "
                             f"compare runs of one data version (README: 'Data provenance')")


def first_crossing(steps, values, target):
    """First step where the curve reaches `target` (values <= target), linearly interpolated between
    the evaluations before and at the crossing; None if it never does."""
    for i, (s, v) in enumerate(zip(steps, values)):
        if v <= target:
            if i == 0:
                return float(s)
            s0, v0 = steps[i - 1], values[i - 1]
            return s0 + (v0 - target) / (v0 - v) * (s - s0)
    return None


def common_curve(runs):
    """Evaluation steps shared by all runs of a group, and the (seeds x steps) matrix of val losses."""
    steps = sorted(set.intersection(*(set(r["steps"]) for r in runs.values())))
    mat = np.array([[dict(zip(r["steps"], r["val"]))[s] for s in steps] for r in runs.values()])
    return steps, mat


def finished_only(data):
    """Leave out runs that stopped short of the comparison's horizon (the last step any run reached):
    a partial run's last loss is not a final loss. Returns (data, {run: last step} left out)."""
    horizon = max(r["steps"][-1] for runs in data.values() for r in runs.values())

    def done(r):  # at the comparison's last step, and at its own max_iters when the log records it
        return r["steps"][-1] == horizon and (r["max_iters"] is None or r["steps"][-1] >= r["max_iters"])
    short = {f"{g}-s{seed}": r["steps"][-1] for g, runs in data.items() for seed, r in runs.items() if not done(r)}
    kept = {g: {seed: r for seed, r in runs.items() if done(r)} for g, runs in data.items()}
    for run, step in short.items():
        print(f"left out {run}: its last evaluation is at step {step}, short of the comparison's {horizon} or of its max_iters")
    return {g: runs for g, runs in kept.items() if runs}, short


def compare(groups, baseline):
    if baseline not in groups:
        raise ValueError(f"baseline group {baseline!r} not found; groups are {sorted(groups)}")
    data = {g: {seed: load_run(p) for seed, p in seeds.items()} for g, seeds in groups.items()}
    same_data(data)
    data, short = finished_only(data)
    if baseline not in data:
        raise ValueError(f"no run of the baseline group {baseline!r} reached the comparison's last step; left out: {short}")
    out = {"baseline": baseline, "groups": {}}
    if short:
        out["left_out_unfinished"] = short
    b_steps, b_mat = common_curve(data[baseline])
    b_final = b_mat[:, -1].mean()
    for g, runs in data.items():
        steps, mat = common_curve(runs)
        finals = {seed: r["val"][-1] for seed, r in runs.items()}
        m, s = mean_std(finals.values())
        rec = {"seeds": sorted(runs), "final_step": steps[-1], "final_val_loss": finals,
               "final_val_mean": m, "final_val_std": s, "ppl_mean": math.exp(m),
               "ppl_per_seed": {k: math.exp(v) for k, v in finals.items()}}
        c = contrast(data, baseline, g) if g != baseline else None
        if c:
            shared = c["seeds"]
            pct = [100 * c["per_seed"][k] / data[baseline][k]["val"][-1] for k in shared]
            rec["paired_seeds"] = shared
            rec["gap_nats_mean"], rec["gap_nats_std"], rec["gap_nats_ci95"] = c["gap_mean"], c["gap_std"], c["ci95"]
            rec["gap_pct_mean"], rec["gap_pct_std"] = mean_std(pct)
            rec["ppl_reduction_pct"] = 100 * (1 - math.exp(-rec["gap_nats_mean"]))
            rec["gap_trajectory"] = c["trajectory"]
            by_source = [(data[baseline][k]["evals"][-1].get("val_loss_by_source"), runs[k]["evals"][-1].get("val_loss_by_source"))
                         for k in shared]
            if all(a and b for a, b in by_source):  # per-source validation sets: the paired gap on each
                rec["gap_by_source"] = {src: {"gap_mean": statistics.mean(a[src] - b[src] for a, b in by_source),
                                              "ci95": t_interval95([a[src] - b[src] for a, b in by_source])}
                                        for src in sorted(by_source[0][0])}
        finals_by_source = [r["evals"][-1].get("val_loss_by_source") for r in runs.values()]
        if all(finals_by_source):
            rec["final_val_by_source"] = {src: statistics.mean(f[src] for f in finals_by_source) for src in sorted(finals_by_source[0])}
        cross = first_crossing(steps, list(mat.mean(0)), b_final)
        rec["steps_to_baseline_final"] = cross
        rec["step_ratio"] = (b_steps[-1] / cross) if cross else None
        tps = [r["tokens_per_s"] for run in runs.values() for r in run["train"] if r["step"] >= 3]
        dts = [r["dt_ms"] for run in runs.values() for r in run["train"] if r["step"] >= 3]
        rec["median_tokens_per_s"] = statistics.median(tps) if tps else None
        rec["median_step_ms"] = statistics.median(dts) if dts else None
        out["groups"][g] = rec
    out["baseline_final_mean"] = float(b_final)
    return out, data


def contrast(data, ref, other):
    """Paired gap L_ref - L_other (positive: `other` reaches lower loss) over the seeds both groups
    have: at the final evaluation with its 95 % t-interval, and at every evaluation step all those
    runs share (the trajectory: mean and std over seeds). None when no seed is shared."""
    if ref not in data or other not in data:
        return None
    shared = sorted(set(data[ref]) & set(data[other]))
    if not shared:
        return None
    gaps = [data[ref][k]["val"][-1] - data[other][k]["val"][-1] for k in shared]
    m, sd = mean_std(gaps)
    curves = {(g, k): dict(zip(data[g][k]["steps"], data[g][k]["val"])) for g in (ref, other) for k in shared}
    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    traj = []
    for st in steps:
        gs = [curves[ref, k][st] - curves[other, k][st] for k in shared]
        traj.append({"step": st, "gap_mean": statistics.mean(gs), "gap_std": statistics.stdev(gs) if len(gs) > 1 else 0.0})
    return {"ref": ref, "other": other, "seeds": shared, "per_seed": dict(zip(shared, gaps)), "gap_mean": m, "gap_std": sd,
            "ci95": t_interval95(gaps), "trajectory": traj}


def contrasts_markdown(contrasts):
    lines = ["| contrast | reference → other | seeds | gap (nats), mean ± std | 95 % CI (paired t) "
             "| gap at 25 / 50 / 75 / 100 % of training |",
             "|---|---|---|---|---|---|"]
    for label, c in contrasts.items():
        if c is None:
            lines.append(f"| {label} | — | 0 | — | — | — |")
            continue
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "— (1 seed)"
        t = c["trajectory"]
        last = t[-1]["step"]
        at = [min(t, key=lambda r: abs(r["step"] - q * last)) for q in (0.25, 0.5, 0.75, 1.0)]
        lines.append(f"| {label} | `{c['ref']}` → `{c['other']}` | {len(c['seeds'])} | {c['gap_mean']:+.3f} ± {c['gap_std']:.3f} | "
                     f"{ci} | " + " / ".join(f"{r['gap_mean']:+.3f}" for r in at) + " |")
    return "\n".join(lines)


def markdown(res):
    b = res["baseline"]
    lines = [f"Baseline: `{b}` (final mean val loss {res['baseline_final_mean']:.4f}). Gap = baseline − arm, paired by seed "
             f"(positive: the arm reaches lower loss).\n",
             "| arm | seeds | final val loss (mean ± std) | perplexity | gap (nats) | gap 95 % CI (paired t) | gap (%) "
             "| steps to baseline's final loss | step ratio | median step ms | tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, r in res["groups"].items():
        gap = f"{r['gap_nats_mean']:+.4f} ± {r['gap_nats_std']:.4f}" if "gap_nats_mean" in r else "—"
        pct = f"{r['gap_pct_mean']:+.2f} ± {r['gap_pct_std']:.2f}" if "gap_pct_mean" in r else "—"
        cross = f"{r['steps_to_baseline_final']:.1f}" if r["steps_to_baseline_final"] is not None else "not reached"
        ratio = f"{r['step_ratio']:.2f}×" if r["step_ratio"] else "—"
        ms = f"{r['median_step_ms']:.0f}" if r["median_step_ms"] else "—"
        tps = f"{r['median_tokens_per_s']:,.0f}" if r["median_tokens_per_s"] else "—"
        ci = f"[{r['gap_nats_ci95'][0]:+.4f}, {r['gap_nats_ci95'][1]:+.4f}]" if r.get("gap_nats_ci95") else "—"
        lines.append(f"| {g} | {len(r['seeds'])} | {r['final_val_mean']:.4f} ± {r['final_val_std']:.4f} | {r['ppl_mean']:.2f} | "
                     f"{gap} | {ci} | {pct} | {cross} | {ratio} | {ms} | {tps} |")
    sources = next((sorted(r["final_val_by_source"]) for r in res["groups"].values() if "final_val_by_source" in r), None)
    if sources:
        lines += ["", "Final validation loss per source (mean over seeds), and the paired gap to the baseline:", "",
                  "| arm | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        for g, r in res["groups"].items():
            cells = []
            for src in sources:
                v = r.get("final_val_by_source", {}).get(src)
                gap = r.get("gap_by_source", {}).get(src)
                cells.append("—" if v is None else f"{v:.3f}" + (f" ({gap['gap_mean']:+.3f})" if gap else ""))
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
    for g, r in res["groups"].items():
        if "gap_trajectory" in r:
            traj = ", ".join(f"{t['step']}: {t['gap_mean']:+.3f}" for t in r["gap_trajectory"])
            lines.append(f"\nGap trajectory `{b}` − `{g}` (nats, mean over seeds): {traj}")
    return "\n".join(lines)


def plots(res, data, out):
    curves = {g: [(r["steps"], r["val"]) for r in runs.values()] for g, runs in data.items()}
    paths = [plot_val_curves(curves, os.path.join(out, "val_curves.png"), title="validation loss (mean, min-max band over seeds)")]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for g, r in res["groups"].items():
        if "gap_trajectory" in r:
            st = [t["step"] for t in r["gap_trajectory"]]
            m = np.array([t["gap_mean"] for t in r["gap_trajectory"]])
            s = np.array([t["gap_std"] for t in r["gap_trajectory"]])
            c = ARM_COLOURS.get(g)
            ax.plot(st, m, label=f"{res['baseline']} − {g}", color=c)
            ax.fill_between(st, m - s, m + s, alpha=0.2, color=c, lw=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("val-loss gap (nats), ± std over seeds")
    ax.set_title("gap to the baseline over training (positive: arm is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(save_figure(fig, os.path.join(out, "gap.png")))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for g, runs in data.items():
        for i, r in enumerate(runs.values()):
            s = series_from_evals(r["evals"])
            kw = dict(color=ARM_COLOURS.get(g), alpha=0.8, label=f"{g} ({s['input_scale_key']} / initial)" if i == 0 else None)
            axes[0].plot(s["steps"], s["input_scale_rel"], **kw)
            axes[1].plot(s["steps"], s["emb_rms"], **dict(kw, label=g if i == 0 else None))
    axes[0].set_title("input-layer weight scale relative to init")
    axes[1].set_title("RMS of the input embeddings")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    paths.append(save_figure(fig, os.path.join(out, "norm_drift.png")))
    return paths


def main(argv=None):
    import json
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="folders holding run folders (<group>-s<seed>/metrics.jsonl)")
    p.add_argument("--baseline", default="bpe_tied")
    p.add_argument("--contrast", action="append", default=[], metavar="LABEL=REF:OTHER",
                   help="a paired gap between two groups, L_REF - L_OTHER (repeatable), e.g. 'untying=bpe_tied:bpe_untied'")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    res, data = compare(find_runs(args.folders), args.baseline)
    os.makedirs(args.out, exist_ok=True)
    md = markdown(res)
    if args.contrast:
        res["contrasts"] = {}
        for spec in args.contrast:
            label, sep, pair = spec.partition("=")
            ref, sep2, other = pair.partition(":")
            if not (sep and sep2 and label and ref and other):
                raise ValueError(f"--contrast {spec!r}: expected LABEL=REF:OTHER")
            res["contrasts"][label] = contrast(data, ref, other)
        md += "\n\nPaired contrasts (gap = L_reference − L_other; positive: the other group reaches lower loss):\n\n"
        md += contrasts_markdown(res["contrasts"])
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(md + "\n")
    paths = plots(res, data, args.out)
    print(md)
    print(f"\nwrote {args.out}/compare.json, compare.md, " + ", ".join(os.path.basename(p) for p in paths))
    return res


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # a bad folder or log: its message, not a traceback
        sys.exit(f"error: {e}")
