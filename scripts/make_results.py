"""Regenerate RESULTS.md: the CPU-scale study, its comparison, probes and the parameter table.

    python -m scripts.run_study --base config/study_cpu.py --out-root runs/study_cpu   # train (~45 min, 2 cores)
    python -m scripts.make_results                                                     # tables, plots, RESULTS.md

The runs' metric logs are copied into results/study_cpu/runs/ (small, kept in git), so this script
rebuilds every table and plot without retraining. Every number comes from analysis.py (tables and
figures: report.py); this file is the prose around them. Probe outputs are read as kept: probes need
checkpoints, so refresh them with the probes themselves, e.g.
    python -m probes.run_all bpe_tied=runs/study_cpu/bpe_tied-s1337/ckpt.pt kron=runs/study_cpu/kron-s1337/ckpt.pt \
        bpe_untied=runs/study_cpu/bpe_untied-s1337/ckpt.pt --out results/study_cpu/probes
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.make_results", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import glob
import math
import os
import shutil
import sys
import time

import analysis
import report
from analysis import excludes_zero, input_drift, load_gpu_study, seed_status, untying_share
from errors import run_cli
from runlog import read_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAPER = {
    "gap_pct": "2.5 ± 0.2 %",
    "gap_nats": "0.083 ± 0.007",
    "step_ratio": "≈1.43×",
    "top1": "55.5 % vs 47.3 %",
    "kl": "−7.6 %",
    "wins": "10 of 11",
}


def copy_logs(runs_dir, dest):
    """Copy the metric logs of finished runs (their ckpt.json says so) into dest, the kept logs; an
    unfinished run's log never replaces a kept one."""
    n = 0
    for path in sorted(glob.glob(os.path.join(runs_dir, "*", "metrics.jsonl"))):
        run = os.path.basename(os.path.dirname(path))
        meta_path = os.path.join(os.path.dirname(path), "ckpt.json")
        meta = read_json(meta_path) if os.path.isfile(meta_path) else {}
        if not meta.get("finished"):
            print(f"not copying {path}: the run has not finished (its ckpt.json says {meta.get('step', 'nothing')})")
            continue
        os.makedirs(os.path.join(dest, run), exist_ok=True)
        shutil.copy(path, os.path.join(dest, run, "metrics.jsonl"))
        n += 1
    return n


def bench_sentence():
    path = os.path.join(ROOT, "results", "bench_train_cpu.json")
    if not os.path.exists(path):
        return "not recorded (run `python -m scripts.bench_train`)."
    b = read_json(path)
    a = b["meta"]["args"]
    parts = [
        f"{name} {r['median_ms']:.0f} ms/step ({r['tokens_per_s']:,.0f} tokens/s, {r['ratio_to_first']:.3f}× bpe_tied)"
        for name, r in b["results"].items()
    ]
    return (
        f"`python -m scripts.bench_train --steps {a['steps']}` at d={a['n_embd']}, {a['n_layer']} layers, block "
        f"{a['block_size']}, batch {a['batch_size']} (medians of {a['steps']} interleaved steps): " + "; ".join(parts) + "."
    )


# Paired contrasts: (label, reference group, other group); gap = L_ref - L_other. Each is named once and
# the studies' lists and the prose pick them by name.
TOTAL = ("total: kron vs bpe_tied", "bpe_tied", "kron")
UNTYING = ("untying the BPE head", "bpe_tied", "bpe_untied")
FROZEN_TABLE = ("untied BPE table initialised at unit RMS (a frozen random code)", "bpe_untied", "bpe_untied-input_init_std1.0")
BYTES_VS_FROZEN = ("bytes vs the frozen unit-RMS table", "bpe_untied-input_init_std1.0", "kron")
BEYOND_UNTYING = ("kron beyond untying (vs bpe_untied)", "bpe_untied", "kron")
OWN_BYTES = ("each token's own bytes vs shuffled bytes", "kron-kron_shuffle_seed0", "kron")
KRON_AT_BPE_SCALE = ("Kron input at unit vs at BPE scale (0.02)", "kron-kron_scale0.02", "kron")
KRON_TIED = ("untying the Kron head (vs kron_tied)", "kron_tied", "kron")
KRON_TIED_START = ("kron_tied started at logit 0 (vs its 0.02 start)", "kron_tied", "kron_tied-tied_logit_scale0")
SCALE_X50 = ("untied table output x50 (scale control, dynamics kept)", "bpe_untied", "bpe_untied-input_scale50")
BYTES_VS_X50 = ("bytes vs the scaled table", "bpe_untied-input_scale50", "kron")
LOW_RANK = ("low-rank table vs full table (both untied)", "bpe_untied", "bpe_lowrank")
BYTES_VS_LOWRANK = ("bytes vs the parameter-matched low-rank table", "bpe_lowrank", "kron")

# The English study (config/study_english.py and its long runs).
CONTRASTS = [
    TOTAL,
    UNTYING,
    FROZEN_TABLE,
    BYTES_VS_FROZEN,
    BEYOND_UNTYING,
    OWN_BYTES,
    KRON_AT_BPE_SCALE,
    KRON_TIED,
    KRON_TIED_START,
    SCALE_X50,
    BYTES_VS_X50,
    LOW_RANK,
    BYTES_VS_LOWRANK,
]
STUDY_SEEDS = 5
LONG_SEEDS = 2  # the long runs: 2 seeds of 5 groups
# The paired study (config/study_english_paired.py): the same questions with paired initialisation, the
# scale control that keeps learning dynamics (input_scale=50) and a parameter-matched learned table.
PAIRED_CONTRASTS = [TOTAL, UNTYING, BEYOND_UNTYING, SCALE_X50, BYTES_VS_X50, LOW_RANK, BYTES_VS_LOWRANK, OWN_BYTES]
PAIRED_SEEDS = 5
SMALL_VOCAB_CONTRASTS = [TOTAL, UNTYING, BEYOND_UNTYING, SCALE_X50, BYTES_VS_X50, LOW_RANK, BYTES_VS_LOWRANK, OWN_BYTES]
SMALL_VOCAB_SEEDS = 5
# RESULTS.md's opening: each question is one contrast, asked at every scale. A conclusion is drawn only from
# CONCLUDE_SEEDS seeds or more (issue 27); fewer are reported as open, with their count.
QUESTIONS = [
    ("total", "does kron beat bpe_tied?", TOTAL),
    ("untying", "does an untied BPE head alone help?", UNTYING),
    ("beyond untying", "does kron beat the untied BPE table?", BEYOND_UNTYING),
    ("input scale", "does the untied table, scaled up to the Kron input's RMS (x50), beat the plain one?", SCALE_X50),
    ("bytes beyond scale", "does kron beat that scaled table?", BYTES_VS_X50),
    ("own bytes", "do a token's own bytes beat shuffled ones?", OWN_BYTES),
    ("few parameters", "does a low-rank table with the Kron projection's parameter count beat the full one?", LOW_RANK),
    ("bytes vs few parameters", "does kron beat that low-rank table?", BYTES_VS_LOWRANK),
    ("tying the Kron head", "does kron beat kron_tied (its head the codec through the projection)?", KRON_TIED),
    ("kron_tied's start", "does kron_tied started at logit 0 (step-0 loss ln V) beat its default start?", KRON_TIED_START),
    ("frozen code", "does an untied table started at unit RMS (AdamW leaves it nearly frozen) beat the 0.02 one?", FROZEN_TABLE),
]
CONCLUDE_SEEDS = 5
EVIDENCE_FIGURE = "results/evidence.png"  # beside RESULTS.md, as RESULTS.md links it
SHARED_QUESTIONS = 8  # the questions every study asks (the rest are the English study's own); drawn in the opening's figure


def millions(tokens, digits=2):
    return f"{tokens / 1e6:.{digits}f}M"


def fmt_gap(c, cell=False):
    """'+0.135 nats [95 % CI +0.036, +0.235], 3 seeds' for a contrast, or a dash; cell: the table cell's
    terser '+0.135 [+0.036, +0.235], 3 seeds'."""
    if not c:
        return "—" if cell else "— (no paired runs yet)"
    if not c["ci95"]:
        return f"{c['gap_mean']:+.3f}, 1 seed" if cell else f"{c['gap_mean']:+.3f} nats, 1 seed (no interval)"
    lo, hi = c["ci95"]
    if cell:
        return f"{c['gap_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}], {len(c['seeds'])} seeds"
    return f"{c['gap_mean']:+.3f} nats [95 % CI {lo:+.3f}, {hi:+.3f}], {len(c['seeds'])} seeds"


def trend(c):
    """How the gap moves from a quarter of the run to its end, in words, by its size and sign (the first quarter holds
    warm-up)."""
    t = c["trajectory"]
    q = min(t, key=lambda r: abs(r["step"] - 0.25 * t[-1]["step"]))
    early, late = q["gap_mean"], t[-1]["gap_mean"]
    if early * late < 0:
        how = "crosses zero"
    elif abs(late) < abs(early) / 2:
        how = "shrinks toward zero"
    elif abs(late) > abs(early):
        how = "grows"
    else:
        how = "shrinks"
    return f"the gap {how}: {early:+.3f} at step {q['step']}, {late:+.3f} at step {t[-1]['step']}"


def open_note(c):
    """' (2 of 5 seeds: open)' after a figure drawn from fewer than CONCLUDE_SEEDS seeds, else ''."""
    n = len(c["seeds"]) if c else 0
    return f" ({n} of {CONCLUDE_SEEDS} seeds: open)" if n < CONCLUDE_SEEDS else ""


NO_DIFFERENCE = "not distinguishable from zero at this many seeds"


def seeds_note(n):
    """'5 seeds', or '2 seeds: open, not a finding' below CONCLUDE_SEEDS: a figure's seed count as a bullet names it."""
    return f"{n} seeds" + ("" if n >= CONCLUDE_SEEDS else ": open, not a finding")


def said_in(c):
    """said(contrast, word): whether that contrast's verdict in c (a study's contrasts by label) is word."""
    return lambda contrast, word: verdict(c.get(contrast[0])) == word


def verdict(c):
    """Whether the interval excludes zero, in words (positive gap: the second group is better); open below
    CONCLUDE_SEEDS seeds, whatever the interval."""
    if not c or not c["ci95"]:
        return "not yet measurable"
    if len(c["seeds"]) < CONCLUDE_SEEDS:
        return f"open ({len(c['seeds'])} of {CONCLUDE_SEEDS} seeds)"
    if not excludes_zero(c["ci95"]):
        return NO_DIFFERENCE
    return "helps" if c["ci95"][0] > 0 else "hurts"


ROBUST_TOTAL, ROBUST_UNTYING = ("kron vs bpe_tied", "bpe_tied", "kron"), ("bpe_untied vs bpe_tied", "bpe_tied", "bpe_untied")
ROBUST_BEYOND, ROBUST_OWN_BYTES = ("kron vs bpe_untied", "bpe_untied", "kron"), ("own vs shuffled bytes", "kron-kron_shuffle_seed0", "kron")
ROBUSTNESS_CONTRASTS = [ROBUST_TOTAL, ROBUST_UNTYING, ROBUST_BEYOND, ROBUST_OWN_BYTES]


def robustness_across_seeds(probes_root, heading):
    """The robustness probe on every seed, as markdown: per group, top-1 survival and mean KL with 95 %
    t-intervals over seeds beside the unrelated-prompt baseline; per contrast, the paired difference and
    McNemar on the pooled (seed, pair) outcomes (analysis.robustness_over_seeds). (lines, contrasts)."""
    from stats import mean_std, t_interval95

    r = analysis.robustness_over_seeds(probes_root, ROBUSTNESS_CONTRASTS)
    if not r:
        return [], None

    def ci(xs):
        iv = t_interval95(xs)
        return f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "—"

    def ci_of(pair):
        return f"[{pair[1][0]:.3f}, {pair[1][1]:.3f}]" if pair[1] else "—"

    lines = [
        heading,
        "",
        f"`probes/robustness.py` on each seed's final checkpoints ({' or '.join(map(str, r['pairs']))} pairs; seeds "
        f"{', '.join(map(str, r['seeds']))}). "
        "Survival = the clean prompt's top-1 next token is also the typo prompt's; the baseline is how often two "
        "*unrelated* prompts share their top-1, i.e. what survival a generic predictor gets for free.",
        "",
        "| group | seeds | top-1 survival, mean [95 % CI over seeds] | baseline: unrelated prompts agree | mean KL [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for label, g in r["groups"].items():
        surv, kl, base = g["top1_match_rate"], g["mean_kl"], g["unrelated_top1_agreement"]
        lines.append(
            f"| {label} | {len(g['seeds'])} | {mean_std(surv)[0]:.3f} {ci(surv)} | {mean_std(base)[0]:.3f} | "
            f"{mean_std(kl)[0]:.4f} {ci(kl)} |"
        )
    lines += [
        "",
        "Per contrast (other − reference): the differences per seed, with 95 % t-intervals over seeds; per prompt, "
        "each prompt's difference averaged over the seeds, and an exact sign test over the prompts (how many prompts "
        "go each way: the typical prompt), Holm-adjusted over the family of those tests; the pooled McNemar test "
        "for reference only (the same prompts recur in every seed, so it overstates the sample).",
        "",
        "| contrast | seeds | survival per seed, mean [95 % CI] | survival per prompt: kept more by other / by "
        "reference, sign p (Holm) | mean KL per seed [95 % CI] | KL per prompt: mean [95 % CI], median, lower / higher "
        "(lower in each seed), sign p (Holm) | pooled McNemar (reference only) |",
        "|---|---|---|---|---|---|---|",
    ]
    separated, holm_hits = [], []
    for name, c in r["contrasts"].items():
        t, sv, k = c["mcnemar"], c["survival_prompts"], c["kl_prompts"]
        separated += [name + " (survival)"] * excludes_zero(c["survival"][1]) + [name + " (KL)"] * excludes_zero(c["kl"][1])
        holm_hits += [f"{name} (survival)"] * significant(sv) + [f"{name} (KL)"] * significant(k)
        kl_cell = (
            f"{k['mean']:+.4f} [{k['ci95'][0]:+.4f}, {k['ci95'][1]:+.4f}], median {k['median']:+.4f}, {k['lower']} / "
            f"{k['higher']} of {k['prompts']} ({span(k['lower_per_seed'])}), "
            f"p = {fmt_p(k['p_sign'])} ({fmt_p(k['p_holm'])})"
            if k["ci95"]
            else "—"
        )
        lines.append(
            f"| {name} (`{c['other']}` − `{c['ref']}`) | {len(c['seeds'])} | {c['survival'][0]:+.3f} {ci_of(c['survival'])} | "
            f"{sv['higher']} / {sv['lower']}, p = {fmt_p(sv['p_sign'])} ({fmt_p(sv['p_holm'])}) | "
            f"{c['kl'][0]:+.4f} {ci_of(c['kl'])} | {kl_cell} | {t['only_first']} vs {t['only_second']}, p = {t['p_value']:.3g} |"
        )
    base = [b for g in r["groups"].values() for b in g["unrelated_top1_agreement"]]
    lines += [
        "",
        f"Read with the baseline: unrelated prompts already agree on the top-1 token {min(base):.0%}–{max(base):.0%} "
        "of the time, so survival says partly how generic the model's predictions are. Per-seed intervals that exclude "
        "zero: " + (", ".join(separated) if separated else "none") + f" (of {2 * len(r['contrasts'])}). Per-prompt "
        "sign tests with a Holm-adjusted p below 0.05: "
        + (", ".join(holm_hits) if holm_hits else "none")
        + f" (of {2 * len(r['contrasts'])}). KL is skewed (most prompts barely move, a few move a lot): the sign test "
        "speaks for the typical prompt, the intervals for the mean; where they point different ways, a few prompts "
        "carry the mean.",
        "",
    ]
    return lines, r


def significant(test):
    return test["p_holm"] is not None and test["p_holm"] < 0.05


def span(counts):
    """'86–97' (or '68' when every seed gives the same count)."""
    return "–".join(map(str, sorted({min(counts), max(counts)})))


def fmt_p(p):
    return "—" if p is None else f"{p:.2g}"


def reading(contrast, c):
    """verdict(c) in the opening's words: which group is better, that no difference is resolved (and
    within what), open (fewer than CONCLUDE_SEEDS seeds, or no interval) or no paired runs."""
    _, ref, other = contrast
    if not c:
        return "no paired runs"
    v = verdict(c)
    if v == "helps":
        return f"{other} better than {ref}"
    if v == "hurts":
        return f"{ref} better than {other}"
    if v == NO_DIFFERENCE:
        return f"no difference resolved (95 % CI within ±{max(map(abs, c['ci95'])):.3f} nats)"
    return f"open ({len(c['seeds'])} of {CONCLUDE_SEEDS} seeds)"


def scale_label(sc):
    return f"V = {sc['vocab_size']:,}, {sc['n_layer']}L d={sc['n_embd']}, {sc['max_iters']} steps, {millions(sc['tokens'])} tokens"


def evidence_opening(studies, figure=None):
    """RESULTS.md's opening: every QUESTION at every study's scale, as a table and as one line per study
    naming what is concluded (>= CONCLUDE_SEEDS seeds), what is open and what it did not run, then the
    readings of concluded contrasts (study_reading). studies: [(name, what, load_study's dict or None)].
    Returns (lines, summary lines), the summary None without any study."""
    kept = [(name, what, study) for name, what, study in studies if study]
    columns = [(name, what, study["cmp"], study["scale"]) for name, what, study in kept]
    readings = [
        line for name, _, study in kept for line in study_reading(name, study["cmp"].get("contrasts", {}), study["logs"], study["scale"])
    ]
    lines = ["## What the evidence says", ""]
    if not columns:
        return lines + ["No study's logs are kept yet: nothing to say.", ""], None
    lines += [
        "Small-scale CPU runs, not 124M. Gaps are L_reference − L_other in nats of final validation loss, paired by "
        "seed (positive: the second named group is better), with 95 % t-intervals over seeds, each on its own (not "
        f"corrected for the {len(QUESTIONS)} questions asked at {len(columns)} scales together). A conclusion is drawn "
        f"only from {CONCLUDE_SEEDS} seeds or more; a question with fewer is open, and its figure is not a finding. "
        "A dash: the study did not run both groups (or they share no seed). The studies:",
        "",
    ]
    lines += [f"- {name} ({scale_label(sc)}): {what}." for name, what, _, sc in columns]
    lines += [
        "",
        "| question (reference − other) | " + " | ".join(f"{name}, {scale_label(sc)}" for name, _, _, sc in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for short, question, contrast in QUESTIONS:
        cells = [cmp.get("contrasts", {}).get(contrast[0]) for _, _, cmp, _ in columns]
        if any(cells):
            lines.append(
                f"| {short}: {question} ({contrast[1]} − {contrast[2]}) | "
                + " | ".join(f"{fmt_gap(c, cell=True)}: {reading(contrast, c)}" if c else "—" for c in cells)
                + " |"
            )
    if figure:
        shared = [(f"{short} ({ref} − {other})", label) for short, _, (label, ref, other) in QUESTIONS[:SHARED_QUESTIONS]]
        report.evidence_figure(
            shared,
            [(f"{name.removesuffix(' study')}, {sc['max_iters']} steps", cmp) for name, _, cmp, sc in columns],
            figure[0],
            CONCLUDE_SEEDS,
        )
        lines += [
            "",
            f"![every study's gaps]({figure[1]})",
            "",
            f"The first {SHARED_QUESTIONS} questions as a picture (filled: {CONCLUDE_SEEDS} seeds or more; hollow: open).",
        ]
    summary = [summary_line(name, cmp, sc) for name, _, cmp, sc in columns] + list(readings)
    return lines + ["", "In short (the README quotes these lines):", ""] + summary + [""], summary


def summary_line(name, cmp, sc):
    """One study's line of the opening: its conclusions with their intervals, then what is open, then what
    it did not run."""
    found, still_open, not_run = [], [], []
    for short, _, contrast in QUESTIONS:
        c = cmp.get("contrasts", {}).get(contrast[0])
        if not c:
            not_run.append(short)
        elif reading(contrast, c).startswith("open"):
            n = len(c["seeds"])
            still_open.append(f"{short} ({n} seed{'s' if n > 1 else ''})")
        else:
            found.append(f"{short} ({contrast[1]} − {contrast[2]}): {reading(contrast, c)}, {fmt_gap(c)}")
    return (
        f"- {name} ({scale_label(sc)}): "
        + ("; ".join(found) if found else "nothing concluded yet")
        + "."
        + (f" Open: {', '.join(still_open)}." if still_open else "")
        + (f" Not run in this study: {', '.join(not_run)}." if not_run else "")
    )


README_BLOCK = ("<!-- make_results: summary -->", "<!-- /make_results -->")


def readme_block(path):
    """(text before the block, text after it) of the README's summary block; refused unless the README
    holds exactly one start marker followed by one end marker."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = README_BLOCK
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path}: expected one '{start}' ... '{end}' block for the results summary")
    head, rest = text.split(start)
    return head, rest.split(end)[1]


def refresh_readme(path, summary):
    """Rewrite the README's summary block (between README_BLOCK's markers) with RESULTS.md's opening lines,
    so the README never says more, or other, than RESULTS.md."""
    head, tail = readme_block(path)
    start, end = README_BLOCK
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + start + "\n" + "\n".join(summary) + "\n" + end + tail)


def english_answer(cmp, long_cmp=None, sc=None, long_sc=None, logs=None):
    """RESULTS.md's opening: how much of kron's gain is untying, input scale and bytes, with intervals."""
    c = cmp.get("contrasts", {})
    total, untie, own, kbeyond = (c.get(k[0]) for k in (TOTAL, UNTYING, OWN_BYTES, BEYOND_UNTYING))
    status = seed_status(cmp, STUDY_SEEDS)
    done = status == "complete" and long_cmp and seed_status(long_cmp, LONG_SEEDS) == "complete"
    lines = [
        f"## The answer{'' if done else ' so far'}: why does Kronecker win at {sc['max_iters']} steps?",
        "",
        f"English-corpus study (`results/study_english/`; {status}; small-scale CPU runs: a {sc['n_layer']}-layer "
        f"d={sc['n_embd']} GPT, {sc['max_iters']} steps of {sc['tokens_per_step']:,} tokens = {millions(sc['tokens'])} tokens "
        f"per run, on {millions(sc['train_tokens'], 0)} tokens of prose-weighted English; the paper: GPT-2 124M, "
        "2.5B FineWeb-Edu tokens, 3 seeds). Gaps are paired by seed, L_reference − L_other in nats of final validation loss "
        "(positive: the second named group is better), with 95 % t-intervals over seeds.",
        "",
    ]
    lines.append(f"- **Total.** kron beats bpe_tied by {fmt_gap(total)}.")
    if total and untie:
        u = untying_share(total, untie)
        share = f" ({u[0]:.0f} % of the total on the same {u[1]} seeds)" if u and u[2] else ""
        lines.append(
            f"- **Untying.** An untied BPE head alone (bpe_untied vs bpe_tied): {fmt_gap(untie)}{share}; "
            f"kron beyond untying (kron vs bpe_untied): {fmt_gap(kbeyond)} — {verdict(kbeyond)}."
        )
    lines += input_scale_lines(c)
    lines.append(
        f"- **Bytes.** The same Kronecker arm with the token→bytes table shuffled among tokens (every token keeps a "
        f"distinct code with the same statistics, not its own bytes) is worse than kron by {fmt_gap(own)} — "
        f"own bytes: {verdict(own)}."
    )
    lowrank, bytes_vs_lowrank = c.get(LOW_RANK[0]), c.get(BYTES_VS_LOWRANK[0])
    if lowrank:
        lines.append(
            f"- **Few parameters.** An untied low-rank table (V×r then r×d, as many trainable input parameters as "
            f"the Kron projection; a learned table, not a byte code) vs the full untied table: {fmt_gap(lowrank)} — "
            f"{verdict(lowrank)}; kron vs that low-rank table: {fmt_gap(bytes_vs_lowrank)} — {verdict(bytes_vs_lowrank)}."
        )
    ktied = c.get(KRON_TIED[0])
    if ktied:
        lines.append(
            f"- **Tying the Kron head.** kron_tied (output head = the codec through the learned projection) "
            f"vs kron: {fmt_gap(ktied)} (positive: the untied kron is better) — untying the Kron head: {verdict(ktied)}."
            + kron_tied_start(c.get(KRON_TIED_START[0]), cmp["groups"], logs)
        )
    if total and total["trajectory"]:
        t = total["trajectory"]
        lines.append(
            "- **With training.** kron's gap to bpe_tied (L_bpe_tied − L_kron) at each evaluation step: "
            + ", ".join(f"{r['step']}: {r['gap_mean']:+.3f}" for r in t)
            + "."
        )
    lt = (long_cmp or {}).get("contrasts", {}).get(TOTAL[0])
    if lt:
        lines.append(
            f"- **Longer runs** ({long_sc['max_iters']} steps, {millions(long_sc['tokens'])} tokens, "
            f"`results/study_english_long/`): kron's gap to bpe_tied "
            f"{fmt_gap(lt)}; mean over seeds, {trend(lt)}{open_note(lt)}. Along the run: "
            + ", ".join(f"{r['step']}: {r['gap_mean']:+.3f}" for r in lt["trajectory"])
            + ". Other groups and seeds of the long runs: see that section below."
        )
    else:
        lines.append(
            "- **Longer runs** (≥ 4× this horizon, `config/study_english_long.py`): none finished yet, so whether "
            "the gap grows or shrinks with training is not measured."
        )
    return lines + horizon_table(cmp, long_cmp, sc, long_sc)


def untying_clause(said, c):
    """What untying explains of kron's gain, when the contrasts it rests on are concluded; else None."""
    if said(TOTAL, "helps") and said(UNTYING, "helps") and said(BEYOND_UNTYING, NO_DIFFERENCE):
        lo, hi = c[BEYOND_UNTYING[0]]["ci95"]
        return (
            f"untying the head alone beats bpe_tied as kron does, and no gain of kron beyond untying is resolved "
            f"(95 % CI {lo:+.3f} to {hi:+.3f} nats)"
        )
    if said(BEYOND_UNTYING, "helps"):
        return (
            "kron beats the untied BPE table too: untying the head does not account for all of kron's gain over bpe_tied"
            if said(TOTAL, "helps")
            else "kron beats the untied BPE table"
        )
    if said(BEYOND_UNTYING, "hurts"):
        return "the untied BPE table beats kron: with both heads untied, the codec input does worse than a learned table" + (
            " (untying alone gains more over bpe_tied than kron does)" if said(UNTYING, "helps") else ""
        )
    return None


def scale_clause(said):
    """What the input's scale explains (the x50 control beside the plain table and kron); else None."""
    x50 = "multiplying the learned table's output by 50, up to the codec's RMS,"
    if said(SCALE_X50, "hurts") and said(BYTES_VS_X50, "helps"):
        return f"{x50} hurts, and kron beats that scaled table: this scale-up does not explain kron"
    if said(SCALE_X50, "helps") and said(BYTES_VS_X50, "hurts"):
        why = (
            (
                ": scaling alone gains more over the plain table than kron does (which does not show that kron's own edge "
                "comes from its scale)"
            )
            if said(BEYOND_UNTYING, "helps")
            else ""
        )
        return f"{x50} helps, and that scaled table beats kron{why}"
    if said(SCALE_X50, "helps") and said(BYTES_VS_X50, "helps"):
        return f"{x50} helps, and kron beats that scaled table too: scale does not account for all of kron's edge"
    return None


def params_clause(said, c, logs):
    """Whether few input parameters explain kron (the parameter-matched low-rank table); else None."""
    if not (said(LOW_RANK, "hurts") and said(BYTES_VS_LOWRANK, "helps")):
        return None
    (_, table, low), kron = LOW_RANK, BYTES_VS_LOWRANK[2]
    runs = analysis.find_runs([logs])
    n = {g: analysis.run_scale(next(iter(runs[g].values())))["params"]["input"] for g in (low, kron, table)}
    full = f"the full table ({n[table]:,} input parameters, {n[table] / n[kron]:.1f}× kron's)"
    versus_full = {
        NO_DIFFERENCE: f", while kron and {full} differ by no resolved amount",
        "helps": f", and kron beats {full} too",
        "hurts": f", though {full} beats kron",
    }
    return (
        f"a learned low-rank table sized to the codec's parameter count ({n[low]:,} input parameters; kron's "
        f"{n[kron]:,}) is worse than both the full table and kron" + versus_full.get(verdict(c.get(BEYOND_UNTYING[0])), "")
    )


def study_reading(name, c, logs, sc):
    """One study's concluded contrasts read together, in words; each clause appears only when every contrast
    it rests on is concluded (>= CONCLUDE_SEEDS seeds) in the direction it states. [] when none is."""
    said = said_in(c)
    total = {"hurts": "kron ends behind bpe_tied", NO_DIFFERENCE: "kron and bpe_tied end with no resolved difference"}
    parts = [
        total.get(verdict(c.get(TOTAL[0]))),
        untying_clause(said, c),
        scale_clause(said),
        params_clause(said, c, logs),
        "a token's own bytes matter: shuffled among tokens, kron is worse" if said(OWN_BYTES, "helps") else None,
    ]
    text = "; ".join(p for p in parts if p)
    if not text:
        return []
    return [
        f"- Reading the {name} ({sc['max_iters']} steps, {millions(sc['tokens'])} tokens; this scale only, and "
        f"only contrasts concluded from {CONCLUDE_SEEDS}+ seeds): {text[0].upper()}{text[1:]}."
    ]


def input_scale_lines(c):
    """The English study's answer on input scale: the control that keeps the learning dynamics
    (input_scale=50) where it has run, beside the frozen unit-RMS table and the Kron input shrunk to 0.02."""
    frozen, x50, bytes_vs_x50, kscale = (c.get(k[0]) for k in (FROZEN_TABLE, SCALE_X50, BYTES_VS_X50, KRON_AT_BPE_SCALE))
    frozen = (
        "the `input_init_std=1.0` group starts the untied BPE table at the Kron input's unit RMS, but AdamW moves a "
        "weight by about the learning rate whatever its size, so that table stays a nearly frozen random code (README, "
        f"Controls). Against the learned 0.02 table: {fmt_gap(frozen)} (negative: worse) — {verdict(frozen)}."
    )
    other_way = (
        "The other direction: the Kron input shrunk to the BPE table's 0.02 RMS is worse than kron by "
        f"{fmt_gap(kscale)} — unit scale for the codec: {verdict(kscale)}."
    )
    if not x50:
        return [
            f"- **Input scale: not answered by this study.** Its frozen code is not a scale control: {frozen} The "
            f"control that keeps the learning dynamics (`input_scale=50`) is in the paired study below. {other_way}"
        ]
    return [
        f"- **Input scale.** The untied 0.02 table with its output multiplied by 50 up to the Kron input's RMS "
        f"(`input_scale=50`: Adam's relative steps stay the plain table's) vs the plain untied table: {fmt_gap(x50)} — "
        f"{verdict(x50)}; kron vs that scaled table: {fmt_gap(bytes_vs_x50)} — {verdict(bytes_vs_x50)}. {other_way} The "
        f"frozen code is not that control: {frozen}"
    ]


def kron_tied_start(start, groups, logs):
    """Whether kron_tied's deficit is its initialisation: the same arm started with every logit at 0
    (tied_logit_scale=0, so its step-0 loss is ln V exactly) against its default start."""
    if not start:
        return ""
    _, tied, started_at_zero = KRON_TIED_START
    default, zero = analysis.step0_losses(logs, tied), analysis.step0_losses(logs, started_at_zero)
    lead = groups["kron_tied"]["final_val_mean"] - groups["kron"]["final_val_mean"]
    n = len(start["seeds"])
    if not start["ci95"]:
        reading = "one seed so far, no interval: not yet measurable"
    elif n < CONCLUDE_SEEDS:
        reading = (
            f"open ({n} of {STUDY_SEEDS} seeds): so far its interval bounds the start's share of that lead at {start['ci95'][1]:+.3f} nats"
        )
    elif verdict(start) != "helps":
        reading = (
            f"by its interval the start accounts for at most {start['ci95'][1]:+.3f} of that lead, so the deficit is not its initialisation"
        )
    elif start["gap_mean"] >= lead / 2:
        reading = "the start explains much of the deficit"
    else:
        reading = "the start helps but explains only part of the deficit"
    return (
        f" Is that its start? At its default start (logit scale 0.02) its step-0 validation loss is "
        f"{min(default):.2f}–{max(default):.2f} over {len(default)} seeds, against {min(zero):.2f} started at logit 0 "
        f"(`tied_logit_scale=0`, ln V exactly); started at 0 it ends {fmt_gap(start)} (positive: better than its "
        f"default start; kron leads the default by {lead:.3f} nats): {reading}."
    )


def horizon_table(cmp, long_cmp, sc, long_sc):
    """Each contrast at the study's horizon beside the long runs': does it grow or shrink with training?"""
    short, long_ = cmp.get("contrasts", {}), (long_cmp or {}).get("contrasts", {})
    rows = [(label, short.get(label), long_.get(label)) for label, _, _ in CONTRASTS if long_.get(label)]
    if not rows:
        return []
    return [
        "",
        f"Every contrast the long runs have, at both horizons (a {long_sc['max_iters']}-step run is its own schedule, "
        f"not the {sc['max_iters']}-step run continued):",
        "",
        f"| contrast | {sc['max_iters']} steps ({millions(sc['tokens'])} tokens) | {long_sc['max_iters']} steps "
        f"({millions(long_sc['tokens'])} tokens) |",
        "|---|---|---|",
    ] + [f"| {label} | {fmt_gap(s)} | {fmt_gap(lg)} |" for label, s, lg in rows]


def drift_table(drift):
    return [
        "| group | seeds | its layer's metric | metric final / initial | produced embeddings: RMS final / initial "
        "| produced embeddings: mean row norm final / initial |",
        "|---|---|---|---|---|---|",
    ] + [
        f"| {g} | {seeds} | {k} | {r:.3f} | {e:.3f} | {'—' if math.isnan(n) else f'{n:.3f}'} |" for g, (k, r, e, n, seeds) in drift.items()
    ]


def english_section(cmp, cmp_md, drift, robustness=()):
    lines = [
        "## English-corpus study (controls, 8 validation sources)",
        "",
        "Regenerated by `python -m scripts.make_results` from `results/study_english/runs/` (how to continue the "
        "study: `results/study_english/README.md`). Groups: the four arms, the frozen unit-RMS table "
        "(`bpe_untied-input_init_std1.0`, not a scale control), shuffled bytes (`kron-kron_shuffle_seed0`), Kron input "
        "at BPE scale (`kron-kron_scale0.02`), kron_tied started at logit 0 (`kron_tied-tied_logit_scale0`), and the two "
        "controls added later: the scale control that keeps the learning dynamics (`bpe_untied-input_scale50`) and the "
        "low-rank table with the Kron projection's parameter count (`bpe_lowrank`).",
        "",
        cmp_md,
        "",
        "![validation loss](results/study_english/compare/val_curves.png)",
        "![gap](results/study_english/compare/gap.png)",
        "",
        "Input-scale drift over the run (final / initial, mean over seeds; `proj_std_sqrtD` for Kron arms, `wte_std` for BPE arms):",
        "",
    ] + drift_table(drift)
    return lines + [""] + list(robustness)


def typical_prompt(k):
    """What the per-prompt KL sign test says about the typical prompt, in words (kron − bpe_tied)."""
    head = (
        f"Per prompt (averaged over seeds), kron's KL is lower on {k['lower']} and higher on {k['higher']} of "
        f"{k['prompts']} prompts (median {k['median']:+.4f}; in each seed lower on {span(k['lower_per_seed'])}; "
        f"sign test p = {fmt_p(k['p_sign'])}, Holm {fmt_p(k['p_holm'])}): "
    )
    if not significant(k) or k["lower"] == k["higher"]:
        return head + "no difference for the typical prompt at this seed count."
    if k["lower"] > k["higher"]:
        return head + (
            "the typical prompt moves *less* under kron, the paper's direction; a few prompts whose "
            "distribution moves a lot carry the mean the other way."
            if k["mean"] > 0
            else "the typical prompt moves *less* under kron, the paper's direction."
        )
    return head + "the typical prompt moves *more* under kron, the opposite of the paper."


def robustness_disagreement(stats, where="English"):
    """The English robustness probe against the abstract's typo figures: survival and KL per seed and per
    prompt, and whether a KL difference goes with untying (bpe_untied vs bpe_tied) or the codec (kron vs
    bpe_untied)."""
    kb = stats.get(ROBUST_TOTAL[0])
    if not kb:
        return []
    fmt = lambda iv: f"[{iv[0]:+.3f}, {iv[1]:+.3f}]" if iv else "(no interval)"  # noqa: E731
    (dkl, kl_ci), (dsurv, s_ci), sv, kp = kb["kl"], kb["survival"], kb["survival_prompts"], kb["kl_prompts"]
    direction = (
        "more prompts keep it under kron, the paper's direction"
        if sv["higher"] > sv["lower"]
        else "more prompts keep it under bpe_tied, the opposite of the paper's direction"
        if sv["higher"] < sv["lower"]
        else "as many prompts keep it under either"
    )
    across = (
        ""
        if not kl_ci or not kp["ci95"] or excludes_zero(kp["ci95"]) == excludes_zero(kl_ci)
        else f" (seeds varied, these {kp['prompts']} prompts fixed; over the prompts, averaged per prompt, its 95 % CI "
        f"[{kp['ci95'][0]:+.4f}, {kp['ci95'][1]:+.4f}] {'includes' if excludes_zero(kl_ci) else 'excludes'} zero)"
    )
    line = (
        f"- **Typo robustness ({where}, {seeds_note(len(kb['seeds']))}).** "
        f"Paper: kron keeps the top-1 token on "
        f"{PAPER['top1']} of typo pairs and its KL is {PAPER['kl']} vs BPE. Here kron − bpe_tied: top-1 survival "
        f"{dsurv:+.3f} {fmt(s_ci)} over seeds; per prompt, kept more often under kron on {sv['higher']} and under "
        f"bpe_tied on {sv['lower']} of {sv['prompts']} (sign test p = {fmt_p(sv['p_sign'])}, Holm {fmt_p(sv['p_holm'])}: "
        f"{direction}" + ("" if significant(sv) else ", not separable at this seed count") + "). "
        f"Mean KL {dkl:+.4f} {fmt(kl_ci)} over seeds ({100 * dkl / kb['kl_ref']:+.0f} % of bpe_tied's): "
        + (
            "higher on average, the opposite of the paper's mean"
            if kl_ci and kl_ci[0] > 0
            else "no evidence of the paper's lower mean KL at this scale"
            if not (kl_ci and kl_ci[1] < 0)
            else "lower KL, as in the paper"
        )
        + across
        + ". "
        + typical_prompt(kp)
    )
    untie, beyond = stats.get(ROBUST_UNTYING[0]), stats.get(ROBUST_BEYOND[0])
    if untie and beyond:
        line += (
            f" Split: untying alone (bpe_untied − bpe_tied) {untie['kl'][0]:+.4f} {fmt(untie['kl'][1])}, the codec "
            f"beyond untying (kron − bpe_untied) {beyond['kl'][0]:+.4f} {fmt(beyond['kl'][1])}"
            + (
                ": the higher mean KL goes with the untied head (the codec's own interval includes zero)"
                if dkl > 0 and untie["kl"][0] > 0 and excludes_zero(untie["kl"][1]) and not excludes_zero(beyond["kl"][1])
                else ""
            )
            + f"; per prompt, untying {signs(untie['kl_prompts'])} and the codec beyond it {signs(beyond['kl_prompts'])}."
        )
    own = stats.get(ROBUST_OWN_BYTES[0])
    return [line + (own_bytes_robustness(own) if own else "")]


def own_bytes_robustness(own):
    """' Own vs shuffled bytes (...): ...' for the per-prompt tests (survival, KL) that Holm leaves below 0.05, or ''.
    The contrast is kron − the shuffled arm: 'higher' survival prompts favour own bytes, 'lower' KL prompts too."""
    said, favours_shuffled = [], False
    o, k = own["survival_prompts"], own["kl_prompts"]
    if significant(o):
        favours_shuffled |= o["lower"] > o["higher"]
        said.append(
            f"{'own' if o['higher'] > o['lower'] else 'shuffled'} bytes keep the clean prompt's top-1 token on more "
            f"prompts ({o['higher']} prompts kept more often with own bytes, {o['lower']} with shuffled; sign test "
            f"p = {fmt_p(o['p_sign'])}, Holm {fmt_p(o['p_holm'])})"
        )
    if significant(k):
        favours_shuffled |= k["higher"] > k["lower"]
        said.append(
            f"{'own' if k['lower'] > k['higher'] else 'shuffled'} bytes move the next-token distribution less "
            f"(KL lower on {max(k['lower'], k['higher'])} of {k['prompts']} prompts; sign test p = "
            f"{fmt_p(k['p_sign'])}, Holm {fmt_p(k['p_holm'])})"
        )
    if not said:
        return ""
    n = len(own["seeds"])
    return (
        f" Own vs shuffled bytes ({n} seeds{', not a finding' if n < CONCLUDE_SEEDS else ''}): "
        + "; ".join(said)
        + (
            "; the paper does not report this control, and it is not what a byte-level robustness story predicts (the "
            "shuffled arm is also the worse language model, and flatter predictions can move less)."
            if favours_shuffled
            else "."
        )
    )


def signs(k):
    """'lowers KL on 98 of 110 prompts (Holm p 1.6e-09)' for a per-prompt KL difference."""
    if k["higher"] == k["lower"]:
        return f"moves KL either way on as many prompts ({k['higher']} of {k['prompts']})"
    more = k["higher"] > k["lower"]
    return f"{'raises' if more else 'lowers'} KL on {max(k['higher'], k['lower'])} of {k['prompts']} prompts (Holm p {fmt_p(k['p_holm'])})"


ABSTRACT_CONTROLS = (
    "The abstract compares kron with bpe_tied only; whether the paper controls for untying or for the "
    "input's scale is not known from it (its body is not available here)."
)


def horizon_disagreements(studies):
    """Where the 500-step studies part from the abstract (kron ahead of bpe_tied at 2.5B tokens, its gap widening then
    stabilising), each bullet only from contrasts concluded at CONCLUDE_SEEDS+ seeds in the direction it states.
    studies: [(name, load_study dict or None)]. Returns (whether kron's gain lasts, where it comes from): two lists."""
    lasts, source = [], []
    for name, study in studies:
        if not study:
            continue
        c, sc = study["cmp"].get("contrasts", {}), study["scale"]
        said = said_in(c)
        where = f"{name}, {sc['max_iters']} steps, {millions(sc['tokens'])} tokens"
        if said(TOTAL, NO_DIFFERENCE) or said(TOTAL, "hurts"):
            how = "kron and bpe_tied differ by no resolved amount" if said(TOTAL, NO_DIFFERENCE) else "bpe_tied beats kron"
            lasts.append(
                f"- **Does the gain last? ({where})** The paper reports kron's gap widening during training and "
                f"then stabilising, not narrowing, at 2.5B tokens. Here {how}: "
                f"{fmt_gap(c[TOTAL[0]])} (bpe_tied − kron); {trend(c[TOTAL[0]])}. A {sc['n_layer']}-layer "
                f"d={sc['n_embd']} model at {millions(sc['tokens'])} tokens, not 124M at 2.5B."
            )
        if said(BEYOND_UNTYING, "hurts"):
            source.append(
                f"- **A learned table beats the codec ({where}).** With both heads untied, the learned BPE table "
                f"beats kron: {fmt_gap(c[BEYOND_UNTYING[0]])} (bpe_untied − kron; negative: bpe_untied better). "
                f"{ABSTRACT_CONTROLS}"
            )
        if said(SCALE_X50, "helps") and said(BYTES_VS_X50, "hurts"):
            source.append(
                f"- **The input's scale does more than the bytes ({where}).** The learned untied table with its "
                "output multiplied by 50, up to the codec's RMS, beats the plain table "
                f"({fmt_gap(c[SCALE_X50[0]])}) and beats kron ({fmt_gap(c[BYTES_VS_X50[0]])}, scaled table − kron; "
                f"negative: the scaled table better). {ABSTRACT_CONTROLS}"
            )
    return lasts, source


def disagreements(
    eng, cmp_cpu, probes_dir, robustness=None, drift=None, long_cmp=None, long_robustness=None, sc=None, long_sc=None, horizon_studies=()
):
    """Every place the repository's results disagree with the paper's abstract, from the numbers; long_robustness:
    (robustness stats, where) of the longer runs' probe; horizon_studies: the 500-step studies [(name, load_study
    dict)], read by horizon_disagreements."""
    lines = ["## Where the results here disagree with the paper", ""]
    lasts, source = horizon_disagreements(horizon_studies)
    total = eng.get("contrasts", {}).get(TOTAL[0]) if eng else None
    untie = eng.get("contrasts", {}).get(UNTYING[0]) if eng else None
    if total:
        lines.append(
            f"- **Gap size.** Paper: {PAPER['gap_nats']} nats ({PAPER['gap_pct']}) at 124M / 2.5B tokens. Here "
            f"(English, {millions(sc['tokens'])} tokens): {total['gap_mean']:+.3f} nats; on the Python docs (CPU study below): "
            f"{cmp_cpu['groups']['kron']['gap_nats_mean']:+.3f}. "
            "Different scale: neither confirms nor refutes the paper's figure."
        )
    lt = (long_cmp or {}).get("contrasts", {}).get(TOTAL[0])
    lines += lasts
    if lt and not lasts:
        lines.append(
            f"- **Does the gain last?** The paper reports kron ahead at 2.5B tokens. Here, in the "
            f"{long_sc['max_iters']}-step runs ({len(lt['seeds'])} seed{'s' if len(lt['seeds']) > 1 else ''}), "
            f"{trend(lt)} (final {fmt_gap(lt)}). Tiny models and {millions(long_sc['tokens'], 0)} tokens; more seeds "
            "of the long runs are needed before this is a finding."
        )
    u = untying_share(total, untie)
    beyond = eng.get("contrasts", {}).get(BEYOND_UNTYING[0]) if eng else None
    if u and verdict(total) == verdict(untie) == "helps" and verdict(beyond) == NO_DIFFERENCE:
        lines.append(
            f"- **Where the gain comes from (English study, {sc['max_iters']} steps).** Here untying the head "
            f"alone gives {fmt_gap(untie)}, {u[0]:.0f} % of kron's gain over bpe_tied on English (a ratio of "
            f"two noisy means), and kron beyond untying gives "
            f"{fmt_gap(beyond)}: consistent with untying explaining all of the gain at this scale. {ABSTRACT_CONTROLS}"
        )
    lines += source
    for rob, where in ((robustness, "English"), long_robustness or (None, None)):
        if rob:
            lines += robustness_disagreement(rob["contrasts"], where)
    lines += python_docs_disagreements(probes_dir)
    lines += drift_disagreement(f"English study, {sc['max_iters']} steps", drift)
    for name, study in horizon_studies:
        if study and study["scale"]["vocab_size"] == sc["vocab_size"]:  # the same model, trained longer
            lines += drift_disagreement(f"{name}, {study['scale']['max_iters']} steps", study["drift"])
    return lines + [""]


def python_docs_disagreements(probes_dir):
    """The first (Python-docs, seed 1337) study's probe outputs against the abstract: one seed each, so labelled."""
    lines = []
    rob = os.path.join(probes_dir, "robustness.json")
    if os.path.exists(rob):
        r = read_json(rob)["models"]
        if "kron" in r and "bpe_tied" in r:
            kk, kb = r["kron"]["overall"]["mean_kl"], r["bpe_tied"]["overall"]["mean_kl"]
            if kk > kb:
                lines.append(
                    f"- **Typo robustness, KL (Python docs).** Paper: kron's mean KL {PAPER['kl']} vs BPE. "
                    "Here (CPU study, seed 1337 only: one seed, not a finding): "
                    f"{kk:.3f} vs {kb:.3f}, {100 * (kk / kb - 1):+.0f} %: kron's next-token distribution moves *more* "
                    "under a typo. (Top-1 survival is higher for kron here, but at this scale most clean top-1 "
                    "predictions are a newline, '.' or ' the', so it mostly measures a generic predictor.)"
                )
    nd = os.path.join(probes_dir, "norm_drift.json")
    if os.path.exists(nd):
        d = read_json(nd)
        ratio = {lab: v["input_scale"][-1] / v["input_scale"][0] for lab, v in d.items() if "input_scale" in v}
        if {"bpe_tied", "kron", "bpe_untied"} <= set(ratio) and ratio["bpe_untied"] < ratio["bpe_tied"]:
            lines.append(
                f"- **Norm drift.** Paper: the BPE embedding norm drifts while the Kron projection stays near 1.0. Here "
                "(Python-docs CPU study, seed 1337 only: one seed, not a finding) the tied BPE table grows "
                f"{ratio['bpe_tied']:.2f}× but the *untied* one {ratio['bpe_untied']:.2f}×, "
                f"and the Kron projection {ratio['kron']:.2f}×."
            )
    return lines


def drift_disagreement(where, drift):
    """The paper's norm drift (the BPE table drifts, the Kron projection stays near 1) beside a study's input drift
    (input_drift: mean final / initial over seeds), on the paper's quantities and on one every arm shares."""
    if not drift or not {"bpe_tied", "bpe_untied", "kron"} <= set(drift):
        return []
    n = min(drift[g][4] for g in ("bpe_tied", "bpe_untied", "kron"))
    tied = f" (kron_tied's {drift['kron_tied'][1]:.2f}×)" if "kron_tied" in drift else ""
    by_tying = drift["bpe_tied"][1] > 2 * drift["bpe_untied"][1]  # the tied table drifts at least twice as much
    return [
        f"- **Norm drift ({where}, {seeds_note(n)}).** Paper: the "
        "BPE embedding norm drifts while the Kron projection stays near 1.0. Here, final / initial input scale, mean "
        f"over seeds (no interval): bpe_tied's table {drift['bpe_tied'][1]:.2f}×, bpe_untied's {drift['bpe_untied'][1]:.2f}×, "
        f"kron's projection {drift['kron'][1]:.2f}×{tied}"
        + (": the table drifts when it is also the output head" if by_tying else "")
        + ". On the same quantity for every arm, the RMS of the input embeddings the layer produces: "
        f"bpe_tied {drift['bpe_tied'][2]:.2f}×, bpe_untied {drift['bpe_untied'][2]:.2f}×, kron {drift['kron'][2]:.2f}×: the "
        "paper's quantities (a table's std, the projection's std·√D) are not the same measurement, and on the common one "
        f"kron's input grows {'more' if drift['kron'][2] > drift['bpe_tied'][2] else 'less'} than bpe_tied's."
    ]


def paired_init_section(study, rel, title, config, contrasts, planned, what):
    """RESULTS.md's section on a study with paired initialisation (load_study; kept under the repository path
    rel), complete or still gathering seeds: its comparison and contrasts as far as its kept logs go, labelled
    with its seed counts; a contrast gets a verdict only with an interval (>= 2 seeds), and the opening draws none
    below CONCLUDE_SEEDS."""
    if not study:
        return []
    cmp, md, sc, drift = study["cmp"], study["md"], study["scale"], study["drift"]
    fewest = min(len(g["seeds"]) for g in cmp["groups"].values())
    status = seed_status(cmp, planned)
    how = "rerun" if status == "complete" else "continue"
    lines = [
        f"## {title}{'' if status == 'complete' else ' (in progress)'}",
        "",
        f"`{config}`, logs in `{rel}/runs/` ({status}; how to {how} it: that folder's README). "
        f"Small-scale CPU runs in bf16 autocast: a {sc['n_layer']}-layer d={sc['n_embd']} GPT, {sc['max_iters']} steps of "
        f"{sc['tokens_per_step']:,} tokens = {millions(sc['tokens'])} tokens per run, every arm of a seed starting from the "
        f"same body weights.{' ' + what(sc) if what(sc) else ''}"
        + (
            " **Some groups have one seed: their gaps are single runs, with no interval, and no conclusion is drawn from them.**"
            if fewest < 2
            else ""
        ),
        "",
        "| contrast | gap L_reference − L_other (positive: the other group is better) | verdict of the interval |",
        "|---|---|---|",
    ]
    for label, _, _ in contrasts:
        c = cmp.get("contrasts", {}).get(label)
        lines.append(f"| {label} | {fmt_gap(c)} | {verdict(c)} |")
    return (
        lines
        + [
            "",
            md,
            "",
            f"![validation loss]({rel}/compare/val_curves.png)",
            "",
            "Input drift (final / initial, mean over seeds; the `input_scale=50` table keeps the plain table's "
            "std while the embeddings it produces start at RMS ≈ 1):",
            "",
        ]
        + drift_table(drift)
        + [""]
        + study["robustness"]
    )


def small_vocab_words(sc):
    """The small-vocabulary study's proportions beside 124M's, from its bpe_tied run's logged parameter counts."""
    p = sc.get("params") or {}
    if not p:
        return ""
    return (
        f"Vocabulary {sc['vocab_size']:,} (a BPE trained on the English corpus): bpe_tied's input table is "
        f"{100 * p['input'] / p['total']:.0f} % of its {p['total'] / 1e6:.2f}M parameters (GPT-2 124M: 31 %) and each "
        f"table row is seen {sc['tokens'] / sc['vocab_size']:.0f} times on average (124M at 2.5B tokens: ~50,000)."
    )


def paired_section(study):
    return paired_init_section(
        study,
        "results/study_english_paired",
        "The paired English study",
        "config/study_english_paired.py",
        PAIRED_CONTRASTS,
        PAIRED_SEEDS,
        lambda sc: "",
    )


def small_vocab_section(study):
    return paired_init_section(
        study,
        "results/study_small_vocab",
        "The small-vocabulary study",
        "config/study_small_vocab.py",
        SMALL_VOCAB_CONTRASTS,
        SMALL_VOCAB_SEEDS,
        small_vocab_words,
    )


def compare_with_contrasts(study_dir, contrasts=CONTRASTS):
    """report.write_comparison on <study_dir>/runs with the study's contrasts, into <study_dir>/compare:
    (the comparison, its markdown), or None when no run log is kept there."""
    logs = os.path.join(study_dir, "runs")
    if not (os.path.isdir(logs) and os.listdir(logs)):
        return None
    res, md = report.write_comparison([logs], os.path.join(study_dir, "compare"), "bpe_tied", contrasts)
    res.pop("figures")
    return res, md


def load_study(study_dir, contrasts=CONTRASTS, robustness_heading=None):
    """One kept study folder (<dir>/runs, and <dir>/probes when robustness_heading names its section) as the
    report reads it: its comparison with these contrasts, its markdown, scale and input drift, and robustness
    over seeds; None when no run log is kept there."""
    got = compare_with_contrasts(study_dir, contrasts)
    if not got:
        return None
    logs = os.path.join(study_dir, "runs")
    robustness, robustness_stats = (
        ([], None) if robustness_heading is None else robustness_across_seeds(os.path.join(study_dir, "probes"), robustness_heading)
    )
    return {
        "cmp": got[0],
        "md": got[1],
        "drift": input_drift(logs),
        "robustness": robustness,
        "robustness_stats": robustness_stats,
        "scale": analysis.study_scale(analysis.find_runs([logs])),
        "logs": logs,
    }


GPU_ARMS = ("bpe_tied", "kron", "bpe_untied")


def gpu_study_section(gpu_dir):
    """RESULTS.md's "124M on one GPU": the finished arms' final losses and gaps, the gap along the run,
    steps to bpe_tied's final loss and robustness, labelled with its one seed and its token count; an
    arm that did not finish is named, never compared."""
    runs = load_gpu_study(gpu_dir)
    lines = ["## 124M on one GPU", ""]
    main = {arm: runs.get(f"{arm}-s1337") for arm in GPU_ARMS}
    done = {arm: r for arm, r in main.items() if r and r["finished"]}
    unfinished = [
        f"{arm} (stopped at step {r['evals'][-1]['step'] if r['evals'] else 0} of {r['config'].get('config', {}).get('max_iters', '?')})"
        for arm, r in main.items()
        if r and not r["finished"]
    ]
    if "bpe_tied" not in done or len(done) < 2:
        if runs:
            lines += [
                f"Incomplete: finished {', '.join(done) or 'none'}; not finished: "
                f"{', '.join(unfinished + [a for a in GPU_ARMS if not main[a]]) or 'none'}. No comparison is drawn.",
                "",
            ]
        return lines + [
            "Not run to the end yet: no GPU has been lent to the sessions that built this repo. `bash scripts/gpu_study.sh` "
            "(one H200, about 8-9 minutes, estimated) trains bpe_tied, kron and bpe_untied at GPT-2 124M on the "
            "same batches for 30.1M tokens each (`config/gpu_study_124m.py`); `python -m scripts.gpu_report "
            "--study-archive ...` keeps its logs in `results/gpu_124m/`, and this script writes this section from them.",
            "",
        ]
    cfg = done["bpe_tied"]["config"]
    c, p = cfg["config"], cfg["params"]
    step_tokens = c["batch_size"] * c["block_size"] * c["gradient_accumulation_steps"]
    final = {arm: r["evals"][-1] for arm, r in done.items()}
    steps, tokens = c["max_iters"], c["max_iters"] * step_tokens
    device = read_json(os.path.join(gpu_dir, "device.json")) if os.path.isfile(os.path.join(gpu_dir, "device.json")) else {}
    loss = {arm: f["val_loss"] for arm, f in final.items()}
    pairs = {
        "kron − bpe_tied": ("kron", "bpe_tied"),
        "bpe_untied − bpe_tied": ("bpe_untied", "bpe_tied"),
        "kron − bpe_untied": ("kron", "bpe_untied"),
    }
    gap = {k: (loss[a] - loss[b], 100 * (loss[a] - loss[b]) / loss[b]) for k, (a, b) in pairs.items() if a in loss and b in loss}
    lines += [
        f"**Scale, stated plainly: one seed (1337), no interval.** A GPT of {p['total'] / 1e6:.1f}M parameters as bpe_tied "
        f"({c['n_layer']} layers, d {c['n_embd']}, block {c['block_size']}), {steps} steps of {step_tokens:,} tokens = "
        f"{tokens / 1e6:.1f}M tokens per arm, {tokens / cfg['n_train_tokens']:.2f} epochs of the English corpus "
        f"({cfg['n_train_tokens'] / 1e6:.2f}M training tokens), the same batches for every arm, on "
        f"{device.get('gpu') or cfg.get('device')} in {cfg.get('dtype')}. The paper: 2.5B FineWeb-Edu tokens × 3 seeds.",
        "",
    ]
    if unfinished or len(done) < len(GPU_ARMS):
        lines += [f"Not finished, so left out: {', '.join(unfinished + [a for a in GPU_ARMS if not main[a]])}.", ""]
    lines += [
        f"What it adds to the CPU answer (a model whose input table is {100 * p['input'] / p['total']:.0f} % of bpe_tied's "
        "parameters, where the CPU studies' is ~90 %): "
        + "; ".join(f"{k} {d:+.3f} nats ({pc:+.2f} %)" for k, (d, pc) in gap.items())
        + f" (the paper: kron − bpe_tied −{PAPER['gap_nats']} nats, −{PAPER['gap_pct']}).",
        "",
        "| arm | final val loss | vs bpe_tied (nats) | first eval step at or below bpe_tied's final loss | typo top-1 kept | mean KL |",
        "|---|---|---|---|---|---|",
    ]
    for arm, r in done.items():
        reach = next((e["step"] for e in r["evals"] if e["val_loss"] <= loss["bpe_tied"]), None)
        rob = r["robustness"] or {}
        lines.append(
            f"| {arm} | {loss[arm]:.4f} | {loss[arm] - loss['bpe_tied']:+.4f} | {reach if reach is not None else 'not reached'} | "
            + (f"{100 * rob['top1_match_rate']:.1f} % | {rob['mean_kl']:.3f} |" if rob else "- | - |")
        )
    arms = list(done)
    lines += [
        "",
        f"Evaluations every {c['eval_interval']} steps, so the step column has that resolution.",
        "",
        "The gap along the run (validation loss):",
        "",
        "| step | " + " | ".join(arms) + " | " + " | ".join(f"{a} − bpe_tied" for a in arms[1:]) + " |",
        "|---" * (2 * len(arms)) + "|",
    ]
    by_step = {arm: {e["step"]: e["val_loss"] for e in r["evals"]} for arm, r in done.items()}
    for step in sorted(set.intersection(*(set(v) for v in by_step.values()))):
        v = {arm: by_step[arm][step] for arm in arms}
        lines.append(
            f"| {step} | "
            + " | ".join(f"{v[a]:.4f}" for a in arms)
            + " | "
            + " | ".join(f"{v[a] - v['bpe_tied']:+.4f}" for a in arms[1:])
            + " |"
        )
    sources = sorted(final["bpe_tied"].get("val_loss_by_source") or {})
    if sources:
        lines += ["", "Final validation loss per source:", "", "| source | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        lines += [f"| {s} | " + " | ".join(f"{final[a]['val_loss_by_source'][s]:.4f}" for a in arms) + " |" for s in sources]
    extra = {n: r for n, r in runs.items() if n.endswith("-s1338") and r["finished"]}
    if extra:
        lines += [
            "",
            "Seed 1338 (ran because device time remained): "
            + "; ".join(f"{n} {r['evals'][-1]['val_loss']:.4f} at step {r['evals'][-1]['step']}" for n, r in extra.items())
            + ".",
        ]
    return lines + [""]


def python_docs_section(cmp, cmp_md, probes_dir, sc):
    """The first CPU replication (results/study_cpu): scale, comparison, paper table, norm drift, probes."""
    g = cmp["groups"]
    seeds = len(g[cmp["baseline"]]["seeds"])
    lines = [
        "# The Python-documentation study (the first CPU replication)",
        "",
        f"**Scale, stated plainly.** These are small-scale CPU runs: a {sc['n_layer']}-layer, d={sc['n_embd']} GPT "
        f"(block {sc['block_size']}) trained for {sc['max_iters']} steps of {sc['tokens_per_step']:,} tokens "
        f"(~{millions(sc['tokens'])} tokens) on the Python 3.11 documentation ({millions(sc['train_tokens'], 1)} training "
        f"tokens, `data/python_docs`), {seeds} seeds per arm ({'/'.join(map(str, sc['seeds']))}, identical batches per seed "
        "across arms), on a 2-core x86-64 CPU in fp32. "
        "The paper trains GPT-2 124M on 2.5B FineWeb-Edu tokens. Agreement or disagreement here says little about that scale; "
        "it shows what the method does when models are tiny and training is short.",
        "",
        "## Training comparison",
        "",
        cmp_md,
        "",
        "The step-time and tokens/s columns come from the training logs; on this shared 2-core machine those runs "
        "overlapped other work, so they are not a speed comparison. The interleaved step benchmark is: " + bench_sentence(),
        "",
        "![validation loss](results/study_cpu/compare/val_curves.png)",
        "![gap](results/study_cpu/compare/gap.png)",
        "",
        "| | paper (124M, 2.5B tokens) | here (CPU scale) |",
        "|---|---|---|",
    ]
    k = g.get("kron", {})
    if "gap_nats_mean" in k:
        lines.append(
            f"| kron vs bpe_tied, val-loss gap | {PAPER['gap_nats']} nats ({PAPER['gap_pct']}) | "
            f"{k['gap_nats_mean']:+.3f} ± {k['gap_nats_std']:.3f} nats ({k['gap_pct_mean']:+.2f} ± {k['gap_pct_std']:.2f} %) |"
        )
        ratio = f"{k['step_ratio']:.2f}×" if k.get("step_ratio") else "not reached"
        per_seed = (
            f"; per seed {k['step_ratio_seed_mean']:.2f}× [95 % CI {k['step_ratio_ci95'][0]:.2f}, {k['step_ratio_ci95'][1]:.2f}]"
            if k.get("step_ratio_ci95")
            else ""
        )
        lines.append(f"| steps to bpe_tied's final loss | {PAPER['step_ratio']} fewer | {ratio} (mean curves){per_seed} |")
    u = g.get("bpe_untied", {})
    if "gap_nats_mean" in u and "gap_nats_mean" in k:
        lines.append(
            "| bpe_untied vs bpe_tied (control; not in the paper's abstract) | — | "
            f"{u['gap_nats_mean']:+.3f} ± {u['gap_nats_std']:.3f} nats |"
        )
        lines.append("")
        lines.append(
            f"Reading: of kron's {k['gap_nats_mean']:+.3f}-nat gap to bpe_tied, untying the head alone (bpe_untied) "
            f"accounts for {u['gap_nats_mean']:+.3f} nats; kron vs bpe_untied is "
            f"{k['gap_nats_mean'] - u['gap_nats_mean']:+.3f} nats (positive: the codec itself helps beyond untying)."
        )
    lines += [
        "",
        "Norm drift over training (`proj_std_sqrtD` is the Kron projection's std·√D, 1 at init; `wte_std` the BPE table's std):",
        "",
        "![norm drift](results/study_cpu/compare/norm_drift.png)",
        "",
    ]
    if os.path.exists(os.path.join(probes_dir, "report.md")):
        with open(os.path.join(probes_dir, "report.md")) as f:
            report = f.read()
        report = report.replace("](", "](results/study_cpu/probes/")
        report = report.replace("# Probe report", "## Probes on the seed-1337 final checkpoints", 1)
        report = report.replace("\n## ", "\n### ").replace("### Probes on", "## Probes on")
        rob = os.path.join(probes_dir, "robustness.json")
        if os.path.exists(rob):
            r = read_json(rob)["models"]
            rows = [f"| {lab} | {m['overall']['top1_match_rate']:.3f} | {m['overall']['mean_kl']:.3f} |" for lab, m in r.items()]
            lines += (
                [
                    "## Spelling robustness next to the paper",
                    "",
                    f"Paper (124M): top-1 kept {PAPER['top1']} (kron vs bpe), KL {PAPER['kl']}, "
                    f"kron wins or ties {PAPER['wins']} categories.",
                    "",
                    "| model | top-1 match | mean KL |",
                    "|---|---|---|",
                ]
                + rows
                + [""]
            )
        lines += [report, ""]
    return lines


def results_md(
    cmp,
    cmp_md,
    probes_dir,
    params_md,
    config_text,
    sc,
    english=None,
    english_long=None,
    gpu_dir=None,
    paired=None,
    small_vocab=None,
    figure=None,
):
    lines = [
        "# Results: CPU-scale replications",
        "",
        "Regenerate everything below with `python -m scripts.make_results` (from the logs kept in "
        "`results/study_english/runs/`, `results/study_english_long/runs/`, `results/study_english_paired/runs/`, "
        "`results/study_small_vocab/runs/` and `results/study_cpu/runs/`); it reads probe outputs as kept. To rebuild the "
        "Python-docs study's probe results, retrain it (`python -m scripts.run_study --base config/study_cpu.py --out-root "
        "runs/study_cpu`) and run `python -m probes.run_all` on its seed-1337 checkpoints with `--out results/study_cpu/probes`.",
        "",
    ]
    opening, summary = evidence_opening(
        [
            (
                "English study",
                "`results/study_english/`, fp32; each arm's body initialised on its own, the data order paired by seed",
                english,
            ),
            (
                "paired English study",
                "`results/study_english_paired/`, CPU bf16 autocast; every arm of a seed starts from the same body weights",
                paired,
            ),
            (
                "small-vocabulary study",
                "`results/study_small_vocab/`, an 8,192-token BPE trained on the English corpus, paired bodies, CPU bf16 autocast",
                small_vocab,
            ),
        ],
        figure,
    )
    lines += opening
    if english:
        e, lg = english, english_long or {}
        lines += english_answer(e["cmp"], lg.get("cmp"), e["scale"], lg.get("scale"), e["logs"]) + [""]
        # the paired study redoes the long runs with 5 seeds: its probe, once kept, stands for theirs here
        long_robustness = (
            (paired["robustness_stats"], f"paired English study, {paired['scale']['max_iters']} steps")
            if paired and paired["robustness_stats"]
            else (lg.get("robustness_stats"), f"English, {lg.get('scale', {}).get('max_iters')}-step runs")
        )
        lines += disagreements(
            e["cmp"],
            cmp,
            probes_dir,
            e["robustness_stats"],
            e["drift"],
            lg.get("cmp"),
            long_robustness,
            e["scale"],
            lg.get("scale"),
            [("paired English study", paired), ("small-vocabulary study", small_vocab)],
        )
        lines += english_section(e["cmp"], e["md"], e["drift"], e["robustness"])
        if lg:
            ls = lg["scale"]
            lines += [
                f"## English study, longer runs ({ls['max_iters']} steps, {millions(ls['tokens'])} tokens per run)",
                "",
                f"`config/study_english_long.py`, logs in `results/study_english_long/runs/` ({seed_status(lg['cmp'], LONG_SEEDS)}).",
                "",
                lg["md"],
                "",
                "![validation loss](results/study_english_long/compare/val_curves.png)",
                "",
                "Input-scale drift over the long runs (final / initial, mean over seeds):",
                "",
            ]
            lines += drift_table(lg["drift"]) + [""] + lg["robustness"]
    lines += paired_section(paired) + small_vocab_section(small_vocab)
    if gpu_dir:
        lines += gpu_study_section(gpu_dir)
    lines += python_docs_section(cmp, cmp_md, probes_dir, sc)
    lines += [
        "## Parameter savings",
        "",
        params_md,
        "",
        "## The study's configuration (`config/study_cpu.py`)",
        "",
        "```python",
        config_text.strip(),
        "```",
    ]
    return "\n".join(lines) + "\n", summary


def progress_lines(total):
    """step(what): one line per stage with its number and the seconds since the start, on stderr (a
    rebuild takes a minute or more and would otherwise say nothing)."""
    start, done = time.time(), [0]

    def step(what):
        done[0] += 1
        print(f"make_results [{done[0]}/{total}, {time.time() - start:.0f} s]: {what} ...", file=sys.stderr, flush=True)

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs-dir", default=os.path.join(ROOT, "runs", "study_cpu"))
    p.add_argument("--results-dir", default=os.path.join(ROOT, "results", "study_cpu"))
    p.add_argument("--params-dir", default=os.path.join(ROOT, "results", "param_table"))
    p.add_argument(
        "--english-long-dir",
        default=os.path.join(ROOT, "results", "study_english_long"),
        help="the English study's longer runs (<dir>/runs), if any",
    )
    p.add_argument(
        "--english-dir",
        default=os.path.join(ROOT, "results", "study_english"),
        help="the English-corpus study's kept logs (<dir>/runs) and its comparison (<dir>/compare)",
    )
    p.add_argument(
        "--gpu-dir",
        default=os.path.join(ROOT, "results", "gpu_124m"),
        help="the 124M GPU study's kept logs (scripts/gpu_study.sh, kept by python -m scripts.gpu_report --study-archive)",
    )
    p.add_argument(
        "--paired-dir",
        default=os.path.join(ROOT, "results", "study_english_paired"),
        help="the paired English study's kept logs (<dir>/runs), if any",
    )
    p.add_argument(
        "--small-vocab-dir",
        default=os.path.join(ROOT, "results", "study_small_vocab"),
        help="the small-vocabulary study's kept logs (<dir>/runs), if any",
    )
    p.add_argument("--out", default=os.path.join(ROOT, "RESULTS.md"))
    p.add_argument(
        "--readme",
        default=None,
        help="whose results-summary block to refresh from RESULTS.md's opening (default: the repository's "
        "README.md when --out is its RESULTS.md, else none; '' for none)",
    )
    args = p.parse_args(argv)
    if args.readme is None:  # only the repository's own RESULTS.md speaks for its README
        same = os.path.abspath(args.out) == os.path.join(ROOT, "RESULTS.md")
        args.readme = os.path.join(ROOT, "README.md") if same else ""
    if args.readme:
        readme_block(args.readme)  # refused before anything is written
    logs = os.path.join(args.results_dir, "runs")
    if os.path.isdir(args.runs_dir):
        print(f"copied {copy_logs(args.runs_dir, logs)} metric logs into {logs}")
    step = progress_lines(5)
    step("the Python-docs study's comparison and figures")
    cmp_dir = os.path.join(args.results_dir, "compare")
    cmp, cmp_md = report.write_comparison([logs], cmp_dir)
    cmp.pop("figures")
    probes_dir = os.path.join(args.results_dir, "probes")
    params_dir = args.params_dir
    step("the parameter table")
    params_md = report.write_param_table(params_dir)[2]
    with open(os.path.join(ROOT, "config", "study_cpu.py")) as f:
        config_text = f.read()
    scale = analysis.study_scale(analysis.find_runs([logs]))
    step("the English study")
    english = load_study(args.english_dir, robustness_heading="### Spelling robustness on every seed")
    step("the English study's long runs")
    english_long = english and load_study(
        args.english_long_dir, robustness_heading="### Spelling robustness of the long runs, on every seed"
    )
    step("the paired and small-vocabulary studies, and the write-up")
    text, summary = results_md(
        cmp,
        cmp_md,
        probes_dir,
        params_md,
        config_text,
        scale,
        english,
        english_long,
        args.gpu_dir,
        load_study(args.paired_dir, PAIRED_CONTRASTS, "### Spelling robustness of the paired study, on every seed"),
        load_study(args.small_vocab_dir, SMALL_VOCAB_CONTRASTS),
        (os.path.join(os.path.dirname(os.path.abspath(args.out)), EVIDENCE_FIGURE), EVIDENCE_FIGURE),
    )
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")
    if args.readme and summary:
        refresh_readme(args.readme, summary)
        print(f"refreshed the results summary in {args.readme}")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
