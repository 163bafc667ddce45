"""Tables and figures of a comparison and of the parameter counts, written from analysis.py's numbers.

scripts/compare.py and scripts/param_table.py are these functions behind a command line;
scripts/make_results.py calls them directly to build RESULTS.md.
"""

import json
import math
import os
import re

import numpy as np

import analysis
from plotting import ARM_COLOURS, plot_forest, plot_val_curves, pyplot, save_figure
from runlog import series_from_evals


def write_comparison(folders, out, baseline="bpe_tied", contrasts=()):
    """compare.json, compare.md and the figures (val_curves, gap, norm_drift) of the runs under folders
    into out; contrasts: (label, ref, other) paired gaps added to both. Returns (result, markdown)."""
    res, data = analysis.compare(analysis.find_runs(folders), baseline)
    md = comparison_markdown(res)
    if contrasts:
        analysis.add_contrasts(res, data, contrasts)
        md += "\n\nPaired contrasts (gap = L_reference − L_other; positive: the other group reaches lower loss):\n\n"
        md += contrasts_markdown(res["contrasts"])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(md + "\n")
    res["figures"] = comparison_plots(res, data, out)
    return res, md


def comparison_markdown(res):
    b = res["baseline"]
    lines = [
        f"Baseline: `{b}` (final mean val loss {res['baseline_final_mean']:.4f}). Gap = baseline − arm, paired by seed "
        f"(positive: the arm reaches lower loss).\n",
        "| arm | seeds | final val loss (mean ± std) | perplexity | gap (nats) | gap 95 % CI (paired t) | gap (%) "
        "| steps to baseline's final loss (mean curves) | step ratio | step ratio per seed, mean [95 % CI] "
        "| median step ms | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if any("final_bpb_mean" in r for r in res["groups"].values()):  # bits per byte: comparable across tokenizers
        lines[1] = lines[1].replace("| perplexity |", "| perplexity | bits per byte |")
        lines[2] += "---|"
    for g, r in res["groups"].items():
        one = len(r["seeds"]) == 1  # a spread over one seed is not zero but unknown: no "± 0.0000"
        gap = f"{r['gap_nats_mean']:+.4f}" + ("" if one else f" ± {r['gap_nats_std']:.4f}") if "gap_nats_mean" in r else "—"
        pct = f"{r['gap_pct_mean']:+.2f}" + ("" if one else f" ± {r['gap_pct_std']:.2f}") if "gap_pct_mean" in r else "—"
        final = f"{r['final_val_mean']:.4f}" + ("" if one else f" ± {r['final_val_std']:.4f}")
        cross = f"{r['steps_to_baseline_final']:.1f}" if r["steps_to_baseline_final"] is not None else "not reached"
        ratio = f"{r['step_ratio']:.2f}×" if r["step_ratio"] else "—"
        per_seed = seed_ratios(r)
        ms = f"{r['median_step_ms']:.0f}" if r["median_step_ms"] else "—"
        tps = f"{r['median_tokens_per_s']:,.0f}" if r["median_tokens_per_s"] else "—"
        ci = f"[{r['gap_nats_ci95'][0]:+.4f}, {r['gap_nats_ci95'][1]:+.4f}]" if r.get("gap_nats_ci95") else "—"
        bpb = "" if "bits per byte" not in lines[1] else f" {r['final_bpb_mean']:.4f} |" if "final_bpb_mean" in r else " — |"
        lines.append(
            f"| {g} | {len(r['seeds'])} | {final} | {r['ppl_mean']:.2f} |{bpb} "
            f"{gap} | {ci} | {pct} | {cross} | {ratio} | {per_seed} | {ms} | {tps} |"
        )
    sources = next((sorted(r["final_val_by_source"]) for r in res["groups"].values() if "final_val_by_source" in r), None)
    if sources:
        lines += [
            "",
            "Final validation loss per source (mean over seeds), and the paired gap to the baseline:",
            "",
            "| arm | " + " | ".join(sources) + " |",
            "|---|" + "---|" * len(sources),
        ]
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


def seed_ratios(r):
    """'1.45× [1.21, 1.69]' over seeds, the seeds' ratios when there is no interval, or a dash."""
    ratios = r.get("step_ratio_per_seed")
    if not ratios:
        return "—"
    if r.get("step_ratio_ci95"):
        lo, hi = r["step_ratio_ci95"]
        return f"{r['step_ratio_seed_mean']:.2f}× [{lo:.2f}, {hi:.2f}]"
    if not any(ratios.values()):
        return "not reached"
    return ", ".join(f"{v:.2f}×" if v else "not reached" for v in ratios.values())


def contrasts_markdown(contrasts):
    lines = [
        "| contrast | reference → other | seeds | gap (nats), mean ± std | 95 % CI (paired t) | gap along training (step: gap) |",
        "|---|---|---|---|---|---|",
    ]
    for label, c in contrasts.items():
        if c is None:  # named below the table, not as a row of dashes
            continue
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "— (1 seed)"
        t = c["trajectory"]
        last = t[-1]["step"]
        at = list({r["step"]: r for r in (min(t, key=lambda r: abs(r["step"] - q * last)) for q in (0.25, 0.5, 0.75, 1.0))}.values())
        spread = "" if len(c["seeds"]) == 1 else f" ± {c['gap_std']:.3f}"  # one seed: no spread, not a spread of 0
        lines.append(
            f"| {label} | `{c['ref']}` → `{c['other']}` | {len(c['seeds'])} | {c['gap_mean']:+.3f}{spread} | "
            f"{ci} | " + ", ".join(f"{r['step']}: {r['gap_mean']:+.3f}" for r in at) + " |"
        )
    missing = [label for label, c in contrasts.items() if c is None]
    if missing:
        lines += ["", "No paired runs here (a group not run, or no seed in common): " + "; ".join(missing) + "."]
    return "\n".join(lines)


def comparison_plots(res, data, out):
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
    if ax.get_legend_handles_labels()[0]:  # only the baseline so far: nothing to label
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


def param_table_markdown(g, v):
    md = [
        "GPT-2 124M (V 50,304, d 768, 12 layers, bias on), counted on model.py:\n",
        "| arm | input side | output head | body | total |",
        "|---|---|---|---|---|",
    ]
    for r in g:
        head = "tied" if r["output_head"] == 0 else f"{r['output_head']:,}"
        md.append(f"| {r['arm']} | {r['input']:,} | {head} | {r['body']:,} | {r['total']:,} |")
    md += [
        "\nInput side at pos_dim 32 (D 8,192) for larger vocabularies (body not counted):\n",
        "| V | tokenizer | d | dense table | Kron projection | ratio | input saving | Kron byte buffer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in v:
        md.append(
            f"| {r['vocab']:,} | {r['tokenizer']} | {r['d_model']:,} | {r['dense_table']:,} | {r['kron_projection']:,} | "
            f"{r['input_ratio']:.2f}× | {r['input_saving_pct']:.2f} % | {r['kron_non_trainable_bytes'] / 1e6:.2f} MB |"
        )
    return "\n".join(md) + "\n"


def write_param_table(out):
    """param_table.json and param_table.md into out; returns (GPT-2 rows, vocabulary rows, markdown)."""
    g, v = analysis.gpt2_rows(), analysis.vocab_rows()
    md = param_table_markdown(g, v)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "param_table.json"), "w") as f:
        json.dump({"gpt2_124m": g, "vocab_scaling": v}, f, indent=1)
    with open(os.path.join(out, "param_table.md"), "w") as f:
        f.write(md)
    return g, v, md


def evidence_figure(rows, columns, path, conclude_at):
    """The opening's table as a picture: each question's paired gap with its 95 % interval, one marker per
    study (filled: >= conclude_at seeds), so scales and horizons compare at a glance. rows: [(label,
    contrast label)]; columns: [(study name, its comparison with contrasts)]."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    series = [
        (
            name,
            [
                (c["gap_mean"], c["ci95"], len(c["seeds"]) >= conclude_at) if c else None
                for c in (cmp.get("contrasts", {}).get(contrast) for _, contrast in rows)
            ],
        )
        for name, cmp in columns
    ]
    return plot_forest([label for label, _ in rows], series, path, xlabel="gap (nats) with its 95 % CI; > 0: the second group is better")


# ---- filling a hand-written document: words by a person, numbers from the data ----

PLACEHOLDER = re.compile(r"\{\{\s*([^{}|]+?)\s*(?:\|\s*([^{}]+?)\s*)?\}\}")


class Value:
    """A number as a document quotes it: its text, and what a placeholder may check against it: `value`
    (a plain number, for `>x` / `<x`) or `verdict` ('+', '-' or '?', a gap's sign once resolved)."""

    def __init__(self, text, value=None, verdict=None):
        self.text, self.value, self.verdict = text, value, verdict


def check(key, v, claim):
    """None when the data still says what the sentence claims, else why not. Claims: '+' / '-' (the
    gap is resolved in that direction), '?' (it is not resolved), '>x' / '<x' (the number's side of x)."""
    if claim in ("+", "-", "?"):
        ok = v.verdict == claim
        said = {"+": "a resolved positive gap", "-": "a resolved negative gap", "?": "no resolved gap"}[claim]
        return None if ok else f"{{{{{key}|{claim}}}}} claims {said}, the data says {v.text} ({v.verdict})"
    if claim[:1] in "<>" and v.value is not None:
        bound = float(claim[1:])
        ok = v.value > bound if claim[0] == ">" else v.value < bound
        return None if ok else f"{{{{{key}|{claim}}}}}: the data says {v.value:.4g}"
    return f"{{{{{key}|{claim}}}}}: unknown claim (expected +, -, ?, >x or <x)"


def fill(template, values, where="template"):
    """The template with every {{key}} or {{key|claim}} replaced by values[key].text; refused, naming
    each, when a key is unknown or a claim no longer holds (so a finding cannot outlive its data)."""
    problems = []

    def one(m):
        key, claim = m.group(1), m.group(2)
        if key not in values:
            problems.append(f"{{{{{key}}}}}: no such value")
            return m.group(0)
        v = values[key]
        v = v if isinstance(v, Value) else Value(str(v))
        if claim and (why := check(key, v, claim)):
            problems.append(why)
        return v.text

    out = PLACEHOLDER.sub(one, template)
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return out


def step_values(study, cmp):
    """{{study.steps.group}}: how many times fewer steps the group needs to reach bpe_tied's final loss,
    mean over seeds [95 % CI] (the paper's "≈1.43× fewer steps"); 'not reached' when a seed never does."""
    out = {}
    for g, r in cmp["groups"].items():
        m, ci = r.get("step_ratio_seed_mean"), r.get("step_ratio_ci95")
        if g != cmp["baseline"]:
            text = f"{m:.2f}× [{ci[0]:.2f}, {ci[1]:.2f}]" if m and ci else "not reached by every seed"
            out[f"{study}.steps.{g}"] = Value(text, m)
    return out


def typo_values(study, r):
    """{{study.typo.q.kl}} / {{study.typo.q.top1}}: the typo probe's per-prompt sign tests (prompts where
    the other group's KL is lower / where it keeps the top-1 more often), claims '-' / '+' meaning the
    other group moves less / keeps more, resolved after Holm; {{study.typo.q.kl_mean}}: the mean KL
    difference over seeds with its 95 % CI and as a % of the reference's mean KL."""
    out = {}
    for q, c in (r or {}).get("contrasts", {}).items():
        k, t = c["kl_prompts"], c["survival_prompts"]

        def verdict(test, up, down):
            return "?" if test["p_holm"] is None or test["p_holm"] >= 0.05 else "+" if up > down else "-"

        out[f"{study}.typo.{q}.kl"] = Value(
            f"lower on {k['lower']} and higher on {k['higher']} of {k['prompts']} prompts, Holm p {fmt_p(k['p_holm'])}",
            verdict=verdict(k, k["higher"], k["lower"]),
        )
        out[f"{study}.typo.{q}.top1"] = Value(
            f"kept more often on {t['higher']} prompts and less often on {t['lower']}, Holm p {fmt_p(t['p_holm'])}",
            verdict=verdict(t, t["higher"], t["lower"]),
        )
        (m, ci), ref = c["kl"], c["kl_ref"]
        out[f"{study}.typo.{q}.kl_mean"] = Value(
            f"{m:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}] ({100 * m / ref:+.0f} %)",
            verdict="?" if ci[0] <= 0 <= ci[1] else "+" if m > 0 else "-",
        )
    return out


def replace_marked(text, start, end, body, where):
    """text with what lies between its one `start` marker and the `end` after it replaced by body (the
    README blocks that scripts render: results, speed, GPU); the rest, written by hand, is kept. Refused,
    naming `where`, unless the text holds exactly one such pair, in order."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{where}: expected one '{start}' ... '{end}' block")
    head, rest = text.split(start)
    return head + start + "\n" + body.strip() + "\n" + end + rest.split(end, 1)[1]


def hand_typed_numbers(template):
    """Decimal numbers written into the template's prose outside placeholders (e.g. '0.083'), which no
    test would ever check against data; the paper's own figures are quoted from a {{paper.*}} value."""
    prose = PLACEHOLDER.sub("", re.sub(r"`[^`]*`", "", template))
    return re.findall(r"(?<![\w.])[+\-−]?\d+\.\d+", prose)


# ---- per-study detail tables (each study's README) ----


def drift_markdown(drift):
    """analysis.input_drift as a table: each group's own scale metric and the produced embeddings' RMS
    and row norm, final / initial, mean over seeds."""
    lines = [
        "| group | seeds | its layer's metric | metric final / initial | embeddings' RMS final / initial "
        "| embeddings' mean row norm final / initial |",
        "|---|---|---|---|---|---|",
    ]
    for g, (k, r, e, n, seeds) in drift.items():
        lines.append(f"| {g} | {seeds} | {k} | {r:.3f} | {e:.3f} | {'—' if math.isnan(n) else f'{n:.3f}'} |")
    return "\n".join(lines)


def fmt_p(p):
    """Two significant digits below 0.01, three above (so 0.0502 never reads as 0.05), and as many more
    as it takes for the printed value to fall on p's side of 0.05 (0.04996 reads 0.04996, not 0.05)."""
    if p is None:
        return "—"
    digits = 2 if p < 0.01 else 3
    while (float(f"{p:.{digits}g}") < 0.05) != (p < 0.05):
        digits += 1
    return f"{p:.{digits}g}"


def robustness_markdown(r):
    """analysis.robustness_over_seeds as two tables: per group, top-1 survival and mean KL with 95 %
    t-intervals over seeds beside the unrelated-prompt baseline; per contrast, the per-seed difference
    and the per-prompt sign tests (Holm over the table's tests)."""
    from stats import mean_std, t_interval95

    def ci(iv):
        return f"[{iv[0]:+.3f}, {iv[1]:+.3f}]" if iv else "—"

    lines = [
        f"`probes/robustness.py` on each seed's final checkpoints ({' or '.join(map(str, r['pairs']))} typo pairs; "
        f"seeds {', '.join(map(str, r['seeds']))}). Survival: the clean prompt's top-1 token is also the typo "
        "prompt's; baseline: how often two unrelated prompts share their top-1.",
        "",
        "| group | seeds | top-1 survival [95 % CI] | baseline | mean KL [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for label, g in r["groups"].items():
        surv, kl, base = g["top1_match_rate"], g["mean_kl"], g["unrelated_top1_agreement"]
        lines.append(
            f"| {label} | {len(g['seeds'])} | {mean_std(surv)[0]:.3f} {ci(t_interval95(surv))} | "
            f"{mean_std(base)[0]:.3f} | {mean_std(kl)[0]:.4f} {ci(t_interval95(kl))} |"
        )
    lines += [
        "",
        "| contrast (other − reference) | seeds | survival per seed [95 % CI] | prompts kept more by other / by "
        "reference, sign p (Holm) | mean KL per seed [95 % CI] | KL per prompt: median, lower / higher, sign p (Holm) |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in r["contrasts"].items():
        sv, k = c["survival_prompts"], c["kl_prompts"]
        lines.append(
            f"| {name} (`{c['other']}` − `{c['ref']}`) | {len(c['seeds'])} | {c['survival'][0]:+.3f} {ci(c['survival'][1])} | "
            f"{sv['higher']} / {sv['lower']}, p = {fmt_p(sv['p_sign'])} ({fmt_p(sv['p_holm'])}) | "
            f"{c['kl'][0]:+.4f} {ci(c['kl'][1])} | {k['median']:+.4f}, {k['lower']} / {k['higher']} of {k['prompts']}, "
            f"p = {fmt_p(k['p_sign'])} ({fmt_p(k['p_holm'])}) |"
        )
    return "\n".join(lines)
