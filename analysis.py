"""The numbers every report quotes, computed from what runs and probes wrote (no prose, no files written).

Runs are folders <group>-s<seed>/ holding metrics.jsonl (train.py's log); a group is an arm, or an arm
with a control (kron-kron_shuffle_seed0). Definitions, used by scripts/compare.py, scripts/make_results.py
and the README:
  * final loss: a run's last evaluation; runs short of the comparison's last step are left out;
  * gap(ref, other) = L_ref − L_other, paired by seed (positive: `other` reaches lower loss), with a
    95 % t-interval over the shared seeds (stats.t_interval95);
  * steps to target: the first step the mean curve reaches the baseline's final mean loss, linearly
    interpolated between the two evaluations that straddle it; step ratio = baseline's last step / it;
    per seed, the same with the same seed's baseline run, and a t-interval over seeds;
  * scale: what a run was (layers, width, steps, tokens per step, training tokens), read from its log's
    config record, never typed;
  * robustness over seeds: top-1 survival and mean KL per seed from probes/robustness.py's JSON, paired
    per seed; per prompt, each prompt's difference averaged over the seeds, then an exact sign test over
    the prompts; Holm's correction over each study's family of those tests (survival and KL of every
    contrast); McNemar on pooled (seed, pair) outcomes for reference only.
"""

import collections
import functools
import glob
import math
import os
import re
import statistics

import numpy as np

from runlog import read_json, read_metrics, series_from_evals
from stats import holm, mcnemar, mean_std, sign_test, t_interval95, t_test_p
from tokenizer import bits_per_byte as tokenizer_bpb

SEED_SUFFIX = re.compile(r"^(.*)-s(\d+)$")


def find_runs(folders):
    """{group: {seed: run folder}} for every folder below `folders` holding a metrics.jsonl."""
    groups = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder!r} is not a folder of runs")
        for dirpath, dirnames, files in os.walk(folder):
            dirnames.sort()  # the listing order is the filesystem's: sort, so tables read the same everywhere
            if "metrics.jsonl" not in files:
                continue
            m = SEED_SUFFIX.match(os.path.basename(os.path.normpath(dirpath)))
            if not m:
                raise ValueError(f"run folder {dirpath!r} does not end in -s<seed>")
            groups.setdefault(m.group(1), {})[int(m.group(2))] = dirpath
    if not groups:
        raise FileNotFoundError(f"no runs (folders with metrics.jsonl) under {folders}")
    return {g: dict(sorted(seeds.items())) for g, seeds in sorted(groups.items())}


def load_run(path):
    evals = read_metrics(path, "eval")
    train = read_metrics(path, "train")
    if not evals:
        raise ValueError(f"{path}: no evaluation records")
    configs = read_metrics(path, "config")
    return {
        "steps": [r["step"] for r in evals],
        "val": [r["val_loss"] for r in evals],
        "evals": evals,
        "train": train,
        "data": data_identity(configs),
        "path": path,
        "max_iters": (configs[-1].get("config") or {}).get("max_iters") if configs else None,
        "bpb": final_bpb(path, evals[-1]),
    }


def bits_per_byte(loss_by_source, counts):
    """bpb = sum_s loss_s * tokens_s / (ln 2 * sum_s bytes_s): nats per token summed over the windows'
    tokens, over the UTF-8 bytes those tokens stand for; comparable across tokenizers."""
    if set(loss_by_source) != set(counts):
        raise ValueError(f"sources differ: losses for {sorted(loss_by_source)}, byte counts for {sorted(counts)}")
    nats = sum(loss_by_source[s] * c["tokens"] for s, c in counts.items())
    return tokenizer_bpb(nats, sum(c["bytes"] for c in counts.values()))


def final_bpb(path, last_eval):
    """A run's bits per byte at its last evaluation: as logged (val_bpb), or for logs older than that,
    from its per-source losses and its study's val_bytes.json (scripts/val_bytes.py, beside runs/);
    None when neither is there."""
    if last_eval.get("val_bpb") is not None:
        return last_eval["val_bpb"]
    counts = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "val_bytes.json")
    if not last_eval.get("val_loss_by_source") or not os.path.isfile(counts):
        return None
    return bits_per_byte(last_eval["val_loss_by_source"], study_byte_counts(counts))


@functools.lru_cache(maxsize=16)
def study_byte_counts(path):
    """A study's val_bytes.json sources, read once per process (every run of the study asks for it)."""
    return read_json(path)["sources"]


def data_identity(configs):
    """What a run was trained and validated on, as its log recorded it: {"tokens": (train, val), "sha256":
    the data fingerprint or None (logs from before fingerprints), "val_sample": which validation windows
    ('first' for logs from before the setting)}; None when nothing was recorded."""
    if not configs:
        return None
    last = configs[-1]
    fp = last.get("data") or {}
    tokens = (fp.get("train_tokens", last.get("n_train_tokens")), fp.get("val_tokens", last.get("n_val_tokens")))
    return {
        "tokens": tokens if None not in tokens else None,
        "sha256": fp.get("sha256"),
        "val_sample": (last.get("config") or {}).get("val_sample", "first"),
    }


def same_data(data):
    """Refuse a comparison of runs trained on different data (another corpus version, say), naming two:
    their token counts differ, or both have fingerprints and these differ."""
    runs = [r for group in data.values() for r in group.values() if r["data"]]
    for field in ("tokens", "sha256", "val_sample"):
        seen = {}
        for r in runs:
            if r["data"][field] is not None:
                seen.setdefault(r["data"][field], r["path"])
        if len(seen) > 1:
            (a, pa), (b, pb) = list(seen.items())[:2]
            raise ValueError(
                f"these runs were trained on different data ({field}): {pa} on {a}, {pb} on {b}; "
                f"compare runs of one data version (README: 'Data provenance')"
            )


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
        rec = {
            "seeds": sorted(runs),
            "final_step": steps[-1],
            "final_val_loss": finals,
            "final_val_mean": m,
            "final_val_std": s,
            "ppl_mean": math.exp(m),
            "ppl_per_seed": {k: math.exp(v) for k, v in finals.items()},
        }
        bpb = [r["bpb"] for r in runs.values()]
        if all(b is not None for b in bpb):
            rec["final_bpb_mean"], rec["final_bpb_std"] = mean_std(bpb)
        c = contrast(data, baseline, g) if g != baseline else None
        if c:
            shared = c["seeds"]
            pct = [100 * c["per_seed"][k] / data[baseline][k]["val"][-1] for k in shared]
            rec["paired_seeds"] = shared
            rec["gap_nats_mean"], rec["gap_nats_std"], rec["gap_nats_ci95"] = c["gap_mean"], c["gap_std"], c["ci95"]
            rec["gap_pct_mean"], rec["gap_pct_std"] = mean_std(pct)
            rec["ppl_reduction_pct"] = 100 * (1 - math.exp(-rec["gap_nats_mean"]))
            rec["gap_trajectory"] = c["trajectory"]
            by_source = [
                (data[baseline][k]["evals"][-1].get("val_loss_by_source"), runs[k]["evals"][-1].get("val_loss_by_source")) for k in shared
            ]
            if all(a and b for a, b in by_source):  # per-source validation sets: the paired gap on each
                rec["gap_by_source"] = {
                    src: {
                        "gap_mean": statistics.mean(a[src] - b[src] for a, b in by_source),
                        "ci95": t_interval95([a[src] - b[src] for a, b in by_source]),
                    }
                    for src in sorted(by_source[0][0])
                }
        finals_by_source = [r["evals"][-1].get("val_loss_by_source") for r in runs.values()]
        if all(finals_by_source):
            rec["final_val_by_source"] = {src: statistics.mean(f[src] for f in finals_by_source) for src in sorted(finals_by_source[0])}
        cross = first_crossing(steps, list(mat.mean(0)), b_final)
        rec["steps_to_baseline_final"] = cross
        rec["step_ratio"] = (b_steps[-1] / cross) if cross else None  # at step 0: no ratio (the baseline's own start)
        if g != baseline:
            rec.update(step_ratios(data[baseline], runs))
        tps = [r["tokens_per_s"] for run in runs.values() for r in run["train"] if r["step"] >= 3]
        dts = [r["dt_ms"] for run in runs.values() for r in run["train"] if r["step"] >= 3]
        rec["median_tokens_per_s"] = statistics.median(tps) if tps else None
        rec["median_step_ms"] = statistics.median(dts) if dts else None
        out["groups"][g] = rec
    out["baseline_final_mean"] = float(b_final)
    return out, data


def step_ratios(base_runs, runs):
    """Per seed both groups have: the baseline run's last step over the first step the arm's run reaches
    that baseline run's final loss (first_crossing; None when it never does), and, when every seed
    reaches it, the mean ratio with its 95 % t-interval over seeds."""
    ratios = {}
    for seed in sorted(set(base_runs) & set(runs)):
        b, r = base_runs[seed], runs[seed]
        cross = first_crossing(r["steps"], r["val"], b["val"][-1])
        ratios[seed] = b["steps"][-1] / cross if cross else None
    reached = [v for v in ratios.values() if v is not None]
    every = bool(ratios) and len(reached) == len(ratios)
    return {
        "step_ratio_per_seed": ratios,
        "step_ratio_seed_mean": statistics.mean(reached) if every else None,
        "step_ratio_ci95": t_interval95(reached) if every else None,
    }


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
    return {
        "ref": ref,
        "other": other,
        "seeds": shared,
        "per_seed": dict(zip(shared, gaps)),
        "gap_mean": m,
        "gap_std": sd,
        "ci95": t_interval95(gaps),
        "trajectory": traj,
    }


def input_drift(logs):
    """{group: (metric, then the mean over seeds of final / initial of: that metric, the produced input
    embeddings' RMS, their mean row norm (NaN in a log without it), then the number of seeds)}: the
    layer's own scale metric (proj_std_sqrtD for Kron, wte_std for tables, as the paper reports) beside
    the same two quantities for every arm."""
    out = {}
    for run in sorted(os.listdir(logs)):
        s = series_from_evals(read_metrics(os.path.join(logs, run), "eval"))
        norms = s["emb_row_norm"]
        out.setdefault(run.rsplit("-s", 1)[0], []).append(
            (
                s["input_scale_key"],
                s["input_scale_rel"][-1],
                s["emb_rms"][-1] / s["emb_rms"][0],
                norms[-1] / norms[0] if norms[0] and norms[-1] else math.nan,
            )
        )
    return {g: (v[0][0],) + tuple(statistics.mean(r[i] for r in v) for i in (1, 2, 3)) + (len(v),) for g, v in out.items()}


def load_gpu_study(gpu_dir):
    """{run name: {"evals", "config", "robustness", "finished"}} of the kept 124M GPU runs
    (results/gpu_124m), or {}. A run is finished when its ckpt.json says so and its last evaluation is
    at max_iters: a run the device call cut short keeps its partial log but is never compared."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(gpu_dir, "runs", "*", "metrics.jsonl"))):
        folder = os.path.dirname(path)
        name = os.path.basename(folder)
        config = read_metrics(path, "config")
        evals = read_metrics(path, "eval")
        meta_path = os.path.join(folder, "ckpt.json")
        meta = read_json(meta_path) if os.path.isfile(meta_path) else {}
        max_iters = config[0]["config"]["max_iters"] if config else None
        probe = os.path.join(gpu_dir, "probes", name, "robustness.json")
        arm = name.rsplit("-s", 1)[0]
        runs[name] = {
            "evals": evals,
            "config": config[0] if config else {},
            "finished": bool(meta.get("finished")) and bool(evals) and evals[-1]["step"] == max_iters,
            "robustness": read_json(probe)["models"][arm]["overall"] if os.path.isfile(probe) else None,
        }
    return runs


VOCABS = [(50304, "GPT-2 (padded)"), (128256, "Llama-3"), (131072, "131K (paper's production)"), (151936, "Qwen")]


WIDTHS = [768, 2048, 4096]


def gpt2_rows(pos_dims=(16, 32)):
    """Parameter counts per arm at GPT-2 124M (V 50,304, d 768, 12 layers), on the model itself."""
    import torch

    from model import GPT, GPTConfig

    rows = []
    for arm in ("bpe_tied", "bpe_untied", "kron", "kron_tied", "bpe_lowrank", "hybrid"):
        for pd in pos_dims if arm == "kron" else (16,) if arm == "kron_tied" else (None,):
            cfg = GPTConfig(embedding=arm, kron_pos_dim=pd or 16)
            with torch.device("meta"):  # counts need shapes only: no memory, no init
                with_meta = GPT(cfg).param_groups_by_role()
            rows.append({"arm": arm if pd is None else f"{arm} (pos_dim {pd}, D {256 * pd})", **with_meta})
    return rows


def vocab_rows(pos_dim=32):
    """Input side only for larger vocabularies: dense table V*d vs Kron projection D*d (ratio V/D, whatever d)."""
    D = 256 * pos_dim
    rows = []
    for V, name in VOCABS:
        for d in WIDTHS:
            table, proj = V * d, D * d
            rows.append(
                {
                    "vocab": V,
                    "tokenizer": name,
                    "d_model": d,
                    "dense_table": table,
                    "kron_projection": proj,
                    "input_ratio": table / proj,
                    "input_saving_pct": 100 * (1 - proj / table),
                    "untied_head": V * d,
                    "kron_non_trainable_bytes": V * (pos_dim + 2),
                }
            )
    return rows


def add_contrasts(res, data, specs):
    """res["contrasts"][label] = contrast(data, ref, other) for each (label, ref, other)."""
    res["contrasts"] = {label: contrast(data, ref, other) for label, ref, other in specs}
    return res["contrasts"]


def run_scale(run_dir):
    """What a run was, from its log's last config record: layers, width, block, steps, tokens per
    step and in all, the corpus's training tokens and the seed; None when no config was logged."""
    configs = read_metrics(run_dir, "config")
    if not configs:
        return None
    last = configs[-1]
    c = last.get("config") or {}
    per_step = c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"]
    return {
        "n_layer": c["n_layer"],
        "n_embd": c["n_embd"],
        "block_size": c["block_size"],
        "max_iters": c["max_iters"],
        "tokens_per_step": per_step,
        "tokens": per_step * c["max_iters"],
        "train_tokens": last.get("n_train_tokens"),
        "seed": c["seed"],
        "embedding": c["embedding"],
        "data_dir": c.get("data_dir"),
        "dtype": last.get("dtype"),
        "vocab_size": c.get("vocab_size"),
        "params": last.get("params"),
        "device": last.get("device"),
        "threads": c.get("num_threads"),
        "cpu": cpu_models(configs),
    }


def cpu_models(configs):
    """The CPU model(s) a run's config records name, one per start: 'A + B' for a run resumed on another,
    'not recorded' in logs older than the record."""
    return " + ".join(sorted({(r.get("machine") or {}).get("cpu") or "not recorded" for r in configs}))


def machine_summary(scales):
    """How a study's runs ran ({run: run_scale}): device, precision and threads (each value seen), and
    runs per CPU model ('A + B' for a run resumed on another; 'not recorded' in logs older than the record)."""

    def seen(key):
        return sorted({str(s[key]) for s in scales.values() if s})

    models = collections.Counter(s["cpu"] for s in scales.values() if s)
    return {"device": seen("device"), "dtype": seen("dtype"), "threads": seen("threads"), "cpu": dict(sorted(models.items()))}


def study_scale(groups):
    """The scale shared by a study's runs ({group: {seed: run folder}}), plus its seeds; a study whose
    runs differ in shape or horizon is refused (its numbers would mix scales)."""
    scales = {path: run_scale(path) for runs in groups.values() for path in runs.values()}
    keys = ("n_layer", "n_embd", "block_size", "max_iters", "tokens_per_step")
    seen = {tuple(s[k] for k in keys): p for p, s in scales.items() if s}
    if len(seen) > 1:
        (a, pa), (b, pb) = list(seen.items())[:2]
        raise ValueError(f"runs of different scales in one study: {pa} has {dict(zip(keys, a))}, {pb} has {dict(zip(keys, b))}")
    if not seen:
        return None
    first = scales[next(iter(seen.values()))]
    tied = next((s for s in scales.values() if s and s["embedding"] == "bpe_tied"), None)  # whose table is all of the input
    return {
        **{k: first[k] for k in keys + ("tokens", "train_tokens", "data_dir", "vocab_size")},
        "params": (tied or first)["params"],
        "seeds": sorted({seed for runs in groups.values() for seed in runs}),
        "machine": machine_summary(scales),
    }


def robustness_over_seeds(probes_root, contrasts):
    """probes/robustness.py's output on every seed (<probes_root>/s<seed>/robustness.json): per group,
    top-1 survival, the unrelated-prompt baseline and mean KL per seed; per contrast (label, ref, other),
    other − ref paired per seed (95 % t-intervals) and per prompt (per_prompt: each prompt's difference
    averaged over the seeds, a sign test over prompts), with Holm's adjustment over the family of
    per-prompt tests (survival and KL of every contrast). The McNemar test on pooled (seed, pair) outcomes
    is kept for reference only: the same prompts recur in every seed, so it overstates the sample.
    None when no probe output is kept."""
    runs, pairs = {}, set()
    for path in sorted(glob.glob(os.path.join(probes_root, "s*", "robustness.json"))):
        seed = int(os.path.basename(os.path.dirname(path))[1:])
        d = read_json(path)
        records = {rec["model"]: rec["records"] for rec in d["per_pair"]}
        pairs.update(len(v) for v in records.values())
        for label, m in d["models"].items():
            runs.setdefault(label, {})[seed] = (m["overall"], [r["top1_match"] for r in records[label]], records[label])
    if not runs:
        return None
    groups = {
        label: {
            "seeds": sorted(by_seed),
            **{k: [v[0][k] for v in by_seed.values()] for k in ("top1_match_rate", "mean_kl", "unrelated_top1_agreement")},
        }
        for label, by_seed in runs.items()
    }
    found = {}
    for name, ref, other in contrasts:
        seeds = sorted(set(runs.get(ref, {})) & set(runs.get(other, {})))
        if not seeds:
            continue
        dsurv = [runs[other][k][0]["top1_match_rate"] - runs[ref][k][0]["top1_match_rate"] for k in seeds]
        dkl = [runs[other][k][0]["mean_kl"] - runs[ref][k][0]["mean_kl"] for k in seeds]
        found[name] = {
            "ref": ref,
            "other": other,
            "seeds": seeds,
            "survival": (mean_std(dsurv)[0], t_interval95(dsurv)),
            "kl": (mean_std(dkl)[0], t_interval95(dkl)),
            "kl_ref": mean_std(runs[ref][k][0]["mean_kl"] for k in seeds)[0],
            "mcnemar": mcnemar([x for k in seeds for x in runs[other][k][1]], [x for k in seeds for x in runs[ref][k][1]]),
            "survival_prompts": per_prompt(runs[ref], runs[other], seeds, lambda r: float(r["top1_match"])),
            "kl_prompts": per_prompt(runs[ref], runs[other], seeds, lambda r: r["kl"]),
        }
    adjusted = holm([c[k]["p_sign"] for c in found.values() for k in ("survival_prompts", "kl_prompts")])
    for i, c in enumerate(found.values()):
        c["survival_prompts"]["p_holm"], c["kl_prompts"]["p_holm"] = adjusted[2 * i], adjusted[2 * i + 1]
    return {"groups": groups, "contrasts": found, "pairs": sorted(pairs), "seeds": sorted({s for r in runs.values() for s in r})}


def per_prompt(ref, other, seeds, value):
    """Per prompt (matched by its clean and typo text), value(other) − value(ref) averaged over the seeds,
    then over the prompts: mean and 95 % t-interval, median, how many prompts are higher and lower, an
    exact two-sided sign test of higher vs lower (the typical prompt: KL is skewed, and a few prompts can
    carry the mean one way while most move the other), and in each seed how many prompts are lower (is
    the direction the same in every seed?). The prompts are the units: they recur in every seed."""

    def by_prompt(run, seed):
        return {(r["clean"], r["typo"]): value(r) for r in run[seed][2]}

    per_seed = [(by_prompt(ref, k), by_prompt(other, k)) for k in seeds]
    prompts = sorted(set.intersection(*(set(a) & set(b) for a, b in per_seed)))
    diffs = [statistics.mean(b[p] - a[p] for a, b in per_seed) for p in prompts]
    higher, lower = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {
        "prompts": len(prompts),
        "mean": statistics.mean(diffs) if diffs else None,
        "ci95": t_interval95(diffs),
        "median": statistics.median(diffs) if diffs else None,
        "higher": higher,
        "lower": lower,
        "p_sign": sign_test(higher, lower),
        "lower_per_seed": [sum(b[p] < a[p] for p in prompts) for a, b in per_seed],
        "higher_per_seed": [sum(b[p] > a[p] for p in prompts) for a, b in per_seed],
    }


def table_verdicts(cells, conclude_at):
    """The question × study table as one family: each cell (a contrast dict, or None) gets the paired
    t-test's p over its seeds' gaps, Holm's p over every cell with conclude_at seeds or more, and a
    verdict: '+' (the gap is positive after Holm: the second group better), '-', '?' (not resolved
    after Holm), or 'open' (fewer seeds: never a finding). Returns {key: cell with p, p_holm, verdict}."""
    out = {k: dict(c, p=t_test_p(c["per_seed"].values())) for k, c in cells.items() if c}
    family = [k for k, c in out.items() if len(c["seeds"]) >= conclude_at]
    for k, p in zip(family, holm([out[k]["p"] for k in family])):
        out[k]["p_holm"] = p
    for c in out.values():
        p = c.get("p_holm")
        c["verdict"] = "open" if p is None else "?" if p >= 0.05 else "+" if c["gap_mean"] > 0 else "-"
    return out


# ---- the fair-comparison study (results/study_fair/PLAN.md): choosing each arm's setting ----


def fair_own_rms(arm):
    """The initial RMS that the plan's multiplier scales (arms.register's init_rms; kron_shuffled is kron)."""
    from arms import ARMS

    own = ARMS["kron" if arm == "kron_shuffled" else arm].init_rms
    if own is None:
        raise ValueError(f"arm {arm!r} declares no init_rms (arms.register(..., init_rms=...)): R = input_scale x init_rms needs it")
    return own


def fair_runs(logs):
    """[{arm, norm, R, lr, seed, dev}] for every kept run under logs: the arm as the plan names it
    (kron with kron_shuffle_seed set is kron_shuffled), R = input_scale x the arm's own initial RMS
    (1 with the norm on), dev = the final record's dev-half loss, infinite for a run that diverged
    (no final record: amendment 1)."""
    out = []
    for name in sorted(os.listdir(logs)):
        path = os.path.join(logs, name)
        configs = read_metrics(path, "config")
        if not configs:
            continue
        c, final = configs[-1]["config"], read_metrics(path, "final")
        arm = "kron_shuffled" if c["embedding"] == "kron" and c.get("kron_shuffle_seed") is not None else c["embedding"]
        own = 1.0 if c.get("input_norm") else fair_own_rms(arm)
        if c.get("min_lr") is None or not math.isclose(c["min_lr"], c["learning_rate"] / 10, rel_tol=1e-6):
            raise ValueError(f"{path}: min_lr {c.get('min_lr')} is not learning_rate / 10 = {c['learning_rate'] / 10:g} (amendment 1)")
        dev = final[-1]["dev_loss"] if final else math.inf
        dev = dev if math.isfinite(dev) else math.inf  # a NaN would make the choosing min arbitrary
        out.append(
            {
                "arm": arm,
                "norm": bool(c.get("input_norm")),
                "R": round(c["input_scale"] * own, 6),  # 6 places: a multiplier re-derived from R is the one run
                "lr": c["learning_rate"],
                "seed": c["seed"],
                "dev": dev,
                "name": name,
            }
        )
    return out


FAIR_SQRT_D = {"S": 0.02 * 192**0.5, "L": 0.02 * 128**0.5}  # R = 0.02 sqrt(d): 0.2771 at S, 0.2263 at L
FAIR_R_GRID = {False: (0.02, FAIR_SQRT_D["S"], 1.0), True: (FAIR_SQRT_D["S"], 1.0)}  # phase 1's R, by input norm
FAIR_PHASE1 = tuple((norm, R) for norm, grid in FAIR_R_GRID.items() for R in grid)  # its 5 (norm, R) points, at lr 2e-3
FAIR_LRS = (1e-3, 2e-3, 4e-3)  # phase 2's grid at each arm's chosen (norm, R); 2e-3 is phase 1's
FAIR_CHOOSING_SEEDS = (1337, 1338)  # phases 1 and 2 and their edge runs: the seeds the choosing step averages


def fair_is_sqrt_d(R):
    """Whether R is the plan's sqrt(d) point at S (0.02 sqrt(192) = 0.2771; a table's 13.86 x 0.02 logs as 0.2772)."""
    return abs(R - FAIR_SQRT_D["S"]) < 1e-3


def fair_setting_at(setting, scale):
    """A chosen S setting (norm, R, lr) as the plan runs it at `scale`: the sqrt(d) point becomes that
    scale's (a table's 13.86 x 0.02 logs as R 0.2772, the hybrid's 0.196 x sqrt 2 as 0.277186), the rest
    carried over as they are."""
    norm, R, lr = setting
    return (norm, FAIR_SQRT_D[scale] if scale != "S" and fair_is_sqrt_d(R) else R, lr)


def fair_same_setting(a, b):
    """Two (norm, R, lr) settings are one: R within 1e-3 relative (its multiplier is printed to 4 digits)."""
    return a[0] == b[0] and a[2] == b[2] and abs(a[1] - b[1]) <= 1e-3 * max(abs(a[1]), abs(b[1]))


def fair_choice(runs, seeds=FAIR_CHOOSING_SEEDS, planned=None):
    """Per arm, each setting (norm, R, lr) with its dev loss averaged over `seeds`, and the chosen one
    (the lowest mean; the plan has no tie rule). An arm with a setting that lacks a seed is not chosen
    yet ('incomplete'; `missing` names the seeds): choosing on part of the seeds would be a look, not
    the plan's rule. planned ({arm: [settings]}): what the plan runs, so a setting (or an arm) with no
    log at all is missing too, not invisible. An arm whose every setting diverged (all infinite) has
    nothing to choose: not chosen, `diverged` true."""
    table = {}
    for r in runs:
        table.setdefault(r["arm"], {}).setdefault((r["norm"], r["R"], r["lr"]), {})[r["seed"]] = r["dev"]
    for arm, settings in (planned or {}).items():
        for s in settings:
            if not any(fair_same_setting(s, logged) for logged in table.get(arm, {})):
                table.setdefault(arm, {})[s] = {}
    out = {}
    for arm, settings in sorted(table.items()):
        means = {s: statistics.mean(d[k] for k in seeds) if all(k in d for k in seeds) else None for s, d in settings.items()}
        complete = all(m is not None for m in means.values())
        missing = {s: [k for k in seeds if k not in d] for s, d in settings.items() if means[s] is None}
        best = min(means, key=means.get) if complete else None
        diverged = best is not None and math.isinf(means[best])
        out[arm] = {"settings": means, "chosen": None if diverged else best, "missing": missing, "diverged": diverged}
    return out


FAIR_TABLES = ("bpe_tied", "bpe_untied", "bpe_lowrank")
FAIR_ARMS = FAIR_TABLES + ("kron", "kron_shuffled", "hybrid", "kron_tied")  # the plan's six, then amendment 3's kron_tied


def fair_best_table(choice):
    """Amendment 1: the learned table (of FAIR_TABLES) whose chosen setting has the lowest dev mean over
    seeds 1337 and 1338; None while one of them is not chosen."""
    if any(choice.get(t, {}).get("chosen") is None for t in FAIR_TABLES):
        return None
    return min(FAIR_TABLES, key=lambda t: choice[t]["settings"][choice[t]["chosen"]])


def fair_extension(chosen, tried, axis):
    """The plan's edge rule: the next setting to run when the chosen one sits at the edge of what was
    tried along `axis` ('R' within its norm setting: x or / 3.6; 'lr': x or / 2), else None. At most two
    extensions beyond the plan's grid in either direction (R grid: {0.02, 0.2771, 1} off, {0.2771, 1} on;
    lr grid: {1e-3, 2e-3, 4e-3})."""
    norm, R, lr = chosen
    if axis == "R":
        values, grid, step, at = sorted({s[1] for s in tried if s[0] == norm}), FAIR_R_GRID[norm], 3.6, R
    else:
        values, grid, step, at = sorted({s[2] for s in tried if s[:2] == (norm, R)}), FAIR_LRS, 2.0, lr
    # beyond the grid by more than the 4-digit multiplier's rounding (the hybrid's R 0.02 reads back as 0.019997)
    beyond_low = sum(v < min(grid) * (1 - 1e-3) for v in values)
    beyond_high = sum(v > max(grid) * (1 + 1e-3) for v in values)
    if at == values[-1] and beyond_high < 2:
        nxt = round(at * step, 6)
    elif at == values[0] and beyond_low < 2:
        nxt = round(at / step, 6)
    else:
        return None
    return (norm, nxt, lr) if axis == "R" else (norm, R, nxt)


def fair_test(a, b):
    """One phase-3 test (PLAN.md, "Testing"): a and b map seed -> the run's final record. Per seed
    d_s = test loss(B) - test loss(A) (positive: A better) over the seeds both finished: its mean, 95 %
    t-interval and two-sided p; per source, the mean over those seeds of B - A, then their mean with a
    95 % t-interval over sources (sources as a random factor)."""
    seeds = sorted(set(a) & set(b))
    d = [b[s]["test_loss"] - a[s]["test_loss"] for s in seeds]
    sources = sorted(a[seeds[0]]["by_source"]["test"]) if seeds else []
    per_source = [statistics.mean(b[s]["by_source"]["test"][src] - a[s]["by_source"]["test"][src] for s in seeds) for src in sources]
    return {
        "seeds": seeds,
        "mean": statistics.mean(d) if d else None,
        "ci95": t_interval95(d),
        "p": t_test_p(d),
        "sources": dict(zip(sources, per_source)),
        "source_ci95": t_interval95(per_source),
    }


def fair_verdicts(tests, margin=0.01):
    """Holm over the tests' per-seed p-values (one family: PLAN.md's six), then each verdict in the
    order amendment 1 fixes: 'A better' (Holm p < 0.05 and both intervals above 0), 'B better' (both
    below), 'equivalent' (neither, and the per-seed interval within [-margin, +margin]), else
    'unresolved'. tests: {name: fair_test(...)}; returns the same dicts with p_holm and verdict."""
    names = list(tests)
    adjusted = holm([1.0 if tests[n]["p"] is None else tests[n]["p"] for n in names])  # untestable (< 2 seeds): p 1, the family stays whole
    out = {}
    for n, p in zip(names, adjusted):
        t = dict(tests[n], p_holm=p)
        ci, sci = t["ci95"], t["source_ci95"]
        significant = p is not None and p < 0.05 and ci and sci
        if significant and ci[0] > 0 and sci[0] > 0:
            t["verdict"] = "A better"
        elif significant and ci[1] < 0 and sci[1] < 0:
            t["verdict"] = "B better"
        elif ci and -margin <= ci[0] and ci[1] <= margin:
            t["verdict"] = "equivalent"
        else:
            t["verdict"] = "unresolved"
        out[n] = t
    return out


# ---- the fair study's Q4 (amendment 2): typo robustness at matched validation loss ----

Q4_TOLERANCE = 0.02  # nats: a pair counts when its two logged validation losses differ by at most this
Q4_MIN_PAIRS = 5  # fewer counted pairs in all: the question is not asked


def q4_matches(a_losses, table_losses, tolerance=None):
    """For one seed, each checkpoint of arm A ({step: its evaluation's val_loss}) with the table's
    checkpoint whose loss is closest (the earlier step on a tie): [(step_a, step_table, |difference|,
    counted)], counted when the difference is at most `tolerance` (Q4_TOLERANCE by default)."""
    tolerance = Q4_TOLERANCE if tolerance is None else tolerance
    out = []
    for step_a, loss_a in sorted(a_losses.items()):
        step_t = min(sorted(table_losses), key=lambda s: abs(table_losses[s] - loss_a))
        diff = abs(table_losses[step_t] - loss_a)
        out.append((step_a, step_t, diff, diff <= tolerance))
    return out


def q4_test(pairs, label):
    """pairs: [(A's probe records, the table's probe records)] of every counted checkpoint pair (all
    seeds). Per prompt, A - table in top-1 survival and in KL(clean || typo), averaged over the pairs
    (per_prompt with the pairs as its units); an exact sign test for each, Holm over the two; the verdict
    as amendment 2 fixes it for `label` (kron or kron_shuffled)."""
    if len(pairs) < Q4_MIN_PAIRS:  # read at call time: a test may lower it
        return {"pairs": len(pairs), "verdict": f"not asked (fewer than {Q4_MIN_PAIRS} counted pairs)"}
    table = {i: (None, None, t) for i, (_, t) in enumerate(pairs)}
    arm = {i: (None, None, a) for i, (a, _) in enumerate(pairs)}
    survival = per_prompt(table, arm, list(table), lambda r: float(r["top1_match"]))
    kl = per_prompt(table, arm, list(table), lambda r: r["kl"])
    survival["p_holm"], kl["p_holm"] = holm([survival["p_sign"], kl["p_sign"]])
    significant = all(p is not None and p < 0.05 for p in (survival["p_holm"], kl["p_holm"]))  # None: every prompt tied
    if significant and survival["higher"] > survival["lower"] and kl["lower"] > kl["higher"]:
        verdict = f"{label} more robust at matched loss"
    elif significant and survival["lower"] > survival["higher"] and kl["higher"] > kl["lower"]:
        verdict = "table more robust at matched loss"
    else:
        verdict = "not resolved"
    return {"pairs": len(pairs), "survival": survival, "kl": kl, "verdict": verdict}
