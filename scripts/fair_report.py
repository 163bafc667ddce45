"""The fair study's answers (results/study_fair/PLAN.md) for scripts/make_results.py.

Until phase 3 is complete (every arm at its chosen setting on seeds 2001-2005, at S in
results/study_fair/runs and at L in results/study_fair/runs_v50k), RESULTS.md says the study is in
progress and nothing else. Then: Q1-Q3 at both scales (the plan's six tests, one Holm family), Q5
(amendment 3, its own family of two), each arm's setting and loss, and Q4 when q4.json is kept.
"""

import collections
import os

import analysis
from report import fmt_p
from runlog import read_json, read_metrics
from scripts.fair_choose import PHASE3_SEEDS, NotSettled, at_chosen, settled_choice
from scripts.fair_choose import SCALES as RUNS

BEST = "the best table"
PRIMARY = {  # question: (A, B, in words); positive differences: A better
    "Q1": ("kron", BEST, "does kron beat the best learned table?"),
    "Q2": ("kron", "kron_shuffled", "is there a byte effect beyond scale and step size?"),
    "Q3": ("hybrid", BEST, "does the byte code add to a learned table?"),
}
SECONDARY = {"Q5": ("kron_tied", "kron", "does tying kron's head to its codec help, each at its best?")}
SCALES = {scale: os.path.basename(logs) for scale, (_, _, logs) in RUNS.items()}  # kept logs, in results/study_fair


def chosen_settings(logs):
    """The choosing step's learning-rate choice (phases 1 and 2, seeds 1337-1338, edges included); None
    until it is settled for every arm (phase-3 runs at a choice an edge run could still move are not read)."""
    try:
        return settled_choice(logs)
    except NotSettled:
        return None


def phase3(logs, chosen, scale):
    """{arm: {seed: (run name, final record or None when the run diverged)}} of the phase-3 runs at each
    arm's chosen setting; None while a seed of an arm has no kept run."""
    out = {a: {} for a in analysis.FAIR_ARMS}
    for r in at_chosen(analysis.fair_runs(logs), chosen, scale):
        final = read_metrics(os.path.join(logs, r["name"]), "final")
        out[r["arm"]][r["seed"]] = (r["name"], final[-1] if final else None)
    return out if all(len(by_seed) == len(PHASE3_SEEDS) for by_seed in out.values()) else None


def answers(results):
    """The tests, verdicts and settings once phase 3 is complete at both scales, else None."""
    here = os.path.join(results, "study_fair")
    if not os.path.isdir(os.path.join(here, "runs")):
        return None
    choice = chosen_settings(os.path.join(here, "runs"))
    if choice is None:
        return None
    chosen, best = {a: choice[a]["chosen"] for a in analysis.FAIR_ARMS}, analysis.fair_best_table(choice)
    runs = {}
    for scale, folder in SCALES.items():
        logs = os.path.join(here, folder)
        runs[scale] = phase3(logs, chosen, scale) if os.path.isdir(logs) else None
        if runs[scale] is None:
            return None
    finished = {s: {a: {k: f for k, (_, f) in by.items() if f} for a, by in r.items()} for s, r in runs.items()}

    def family(questions):
        tests = {}
        for q, (a, b, _) in questions.items():
            for scale in SCALES:
                b_arm = best if b == BEST else b
                tests[f"{q} {scale}"] = analysis.fair_test(finished[scale][a], finished[scale][b_arm])
        return analysis.fair_verdicts(tests)

    q4 = os.path.join(here, "q4", "q4.json")
    return {
        "chosen": chosen,
        "best": best,
        "primary": family(PRIMARY),
        "secondary": family(SECONDARY),
        "diverged": sorted(f"{name} at {s}" for s, r in runs.items() for by in r.values() for name, f in by.values() if f is None),
        "loss": {s: {a: sum(f["test_loss"] for f in by.values()) / len(by) for a, by in r.items() if by} for s, r in finished.items()},
        "q4": read_json(q4) if os.path.isfile(q4) else None,
        "default": {a: default_dev(a, choice[a]["settings"]) for a in analysis.FAIR_ARMS},
        "dev": {a: choice[a]["settings"][chosen[a]] for a in analysis.FAIR_ARMS},
        "settings": {a: choice[a]["settings"] for a in analysis.FAIR_ARMS},
        "runs_s": {a: [os.path.join(here, "runs", name) for name, f in by.values() if f] for a, by in runs["S"].items()},
        "machines": machines(here),
    }


def machines(here):
    """{CPU model: kept runs of the study made on it}, every phase at both scales; a run resumed on
    another model counts under both names joined by ' + ' (each log records its machine per start)."""
    runs = [os.path.join(here, folder, name) for folder in SCALES.values() for name in sorted_dir(os.path.join(here, folder))]
    counts = collections.Counter(
        analysis.cpu_models(read_metrics(r, "config")) for r in runs if os.path.isfile(os.path.join(r, "metrics.jsonl"))
    )
    return dict(sorted(counts.items()))


def sorted_dir(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def default_dev(arm, settings):
    """The dev mean at the kept studies' setting (R = the arm's own initial RMS, norm off, lr 2e-3), from
    phase 1; None for an arm that had no such point in the grid (the hybrid, new here)."""
    own = round(analysis.fair_own_rms(arm), 4)
    return next((m for (norm, R, lr), m in settings.items() if not norm and abs(R - own) < 1e-3 and lr == 2e-3), None)


def clipped_share(run_dir):
    """The share of a run's steps whose logged gradient norm (before clipping) exceeds its grad_clip."""
    records = read_metrics(run_dir)
    clip = [r for r in records if r["kind"] == "config"][-1]["config"]["grad_clip"]
    norms = [r["grad_norm"] for r in records if r["kind"] == "train"]
    return sum(n > clip for n in norms) / len(norms) if clip else 0.0


def input_drift(run_dir):
    """emb_rms (what enters the first block) at the last evaluation over the first."""
    evals = [e["emb_rms"] for e in read_metrics(run_dir, "eval") if "emb_rms" in e]
    return evals[-1] / evals[0]


def interval(ci):
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "—"


def number(x, fmt=".3f"):
    return "—" if x is None else format(x, fmt)


def mean_of(values):
    return sum(values) / len(values) if values else None


def test_rows(questions, tests, best):
    rows = []
    for key, t in tests.items():
        q, scale = key.split()
        a, b, words = questions[q]
        b = f"{best} ({BEST})" if b == BEST else b
        rows.append(
            f"| {q}: {words} | {scale} | {a} vs {b} | {len(t['seeds'])} | {number(t['mean'], '+.3f')} {interval(t['ci95'])} | "
            f"{interval(t['source_ci95'])} | {fmt_p(t['p'])} | {fmt_p(t['p_holm'])} | {t['verdict']} |"
        )
    return rows


def section_markdown(ans):
    """RESULTS.md's opening for the fair study: the answers table, or one line while it runs."""
    if ans is None:
        return "In progress: no answer is given until phase 3 is complete at both scales."
    head = [
        "| question | scale | A vs B | seeds | mean B − A [95 % CI over seeds] | [95 % CI over sources] | p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines = ["Positive: A reaches the lower test loss. Holm over the six primary tests; Q5 is its own family of two.", ""]
    lines += head + test_rows(PRIMARY, ans["primary"], ans["best"]) + test_rows(SECONDARY, ans["secondary"], ans["best"])
    lines += [
        "",
        "| arm | chosen: input norm, R, lr | test loss S | test loss L | dev at the kept studies' setting → chosen (S, phases 1-2) "
        "| steps clipped (S) | emb_rms final / initial (S) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, (norm, R, lr) in ans["chosen"].items():
        runs = ans["runs_s"][arm]  # finished phase-3 runs at S (an arm whose every run diverged has none)
        clipped = mean_of([100 * clipped_share(r) for r in runs])
        drift = mean_of([input_drift(r) for r in runs])
        loss_s, loss_l = number(ans["loss"]["S"].get(arm)), number(ans["loss"]["L"].get(arm))
        lines.append(
            f"| {arm} | {'on' if norm else 'off'}, {R:g}, {lr:g} | {loss_s} | {loss_l} | {number(ans['default'][arm])} → "
            f"{number(ans['dev'][arm])} | {number(clipped, '.0f')} % | {number(drift, '.2f')}× |"
        )
    lines += ["", "<details><summary>Every setting tried in phases 1 and 2 (dev loss, mean of seeds 1337 and 1338)</summary>", ""]
    lines += ["| arm | input norm, R, lr | dev |", "|---|---|---|"]
    for arm, settings in ans["settings"].items():
        for (norm, R, lr), dev in sorted(settings.items()):
            mark = " (chosen)" if (norm, R, lr) == ans["chosen"][arm] else ""
            lines.append(f"| {arm} | {'on' if norm else 'off'}, {R:g}, {lr:g} | {number(dev, '.4f')}{mark} |")
    lines += ["", "</details>"]
    lines += [
        "",
        "Runs by CPU model (fp32, 1 thread; another model's kernels move losses slightly: "
        "`scripts/isa_check.py` measures how much): " + ", ".join(f"{cpu} {n}" for cpu, n in ans["machines"].items()) + ".",
    ]
    if ans["diverged"]:
        lines += ["", f"Diverged (left out of their questions, n stated per row): {', '.join(ans['diverged'])}."]
    if ans["q4"]:
        lines += ["", q4_text(ans["q4"])]
    return "\n".join(lines)


def q4_text(q4):
    """Q4's verdicts with their counts: per prompt, the arm's top-1 survival and KL against the table's,
    each averaged over every counted checkpoint pair of every seed, then the sign test's counts."""
    parts = []
    for arm, r in q4["arms"].items():
        words = f"{arm}: {r['verdict']} ({r['pairs']} counted pairs"
        if "survival" in r:
            sv, kl = r["survival"], r["kl"]
            words += (
                f"; its top-1 survival higher than the table's on {sv['higher']} prompts, lower on {sv['lower']}, Holm p "
                f"{fmt_p(sv['p_holm'])}; its KL lower on {kl['lower']}, higher on {kl['higher']}, Holm p {fmt_p(kl['p_holm'])}"
            )
        parts.append(words + ")")
    skipped = f" Left out (diverged): {', '.join(q4['diverged'])}." if q4.get("diverged") else ""
    redone = q4.get("redone") or {}  # {run: largest evaluation difference, or None if not measured}
    if redone:  # checkpoints lost with a workspace and trained again: the pairs probed after saw those weights
        known = [v for v in redone.values() if v is not None]
        moved = f"by at most {max(known):.2e} nats" if known else "by an amount not measured (their folders are gone)"
        skipped += (
            f" Pairs are matched on the kept logs' losses; {', '.join(sorted(redone))} lost their checkpoints with a workspace "
            f"and were trained again, so pairs probed after that saw the retrained weights, whose evaluations differ from "
            f"the kept logs {moved}."
        )
    return (
        f"Q4, typo robustness at matched loss (against {q4['table']}; per prompt, averaged over every counted pair of "
        f"every seed): {'; '.join(parts)}.{skipped}"
    )
