"""Rebuild RESULTS.md, each study's README tables and the README's summary from the kept logs.

    python -m scripts.make_results

The words are written by hand in results/RESULTS.template.md and results/summary.template.md; every
number in them is a {{placeholder}} filled here (report.fill), and a placeholder may state what its
sentence claims ({{paired.beyond_untying|-}}: a resolved negative gap), so rendering fails when the data stop
saying it. Numbers are computed in analysis.py, tables and figures drawn by report.py; this file only
says which study is where and which numbers a document may quote. Probe outputs are read as kept.
"""

if not __package__:  # run as a file: run as the module named below, its clone's root first on sys.path as with -m
    import os
    import runpy
    import sys

    sys.path[0] = os.path.realpath(__file__ + "/../..")
    runpy.run_module("scripts.make_results", run_name="__main__", alter_sys=True)
    raise SystemExit
import argparse
import os
import sys
import time
from dataclasses import dataclass

import analysis
import report
from errors import run_cli
from report import Value
from runlog import read_json
from scripts import fair_report, forecast_report
from scripts.gpu_report import study_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONCLUDE_SEEDS = 5  # a cell with fewer seeds is open, never a finding
BLOCK = ("<!-- make_results: {} -->", "<!-- /make_results -->")

# Each contrast once: name -> (the question it asks, reference group, other group); gap = L_ref − L_other,
# positive when the other group reaches the lower loss.
QUESTIONS = {
    "total": ("does kron beat bpe_tied?", "bpe_tied", "kron"),
    "untying": ("does untying the BPE head alone help?", "bpe_tied", "bpe_untied"),
    "beyond_untying": ("does kron beat the untied BPE table?", "bpe_untied", "kron"),
    "scale50": ("does the untied table with its output ×50 beat the plain one?", "bpe_untied", "bpe_untied-input_scale50"),
    "bytes_vs_scale50": ("does kron beat that ×50 table?", "bpe_untied-input_scale50", "kron"),
    "own_bytes": ("do a token's own bytes beat shuffled ones?", "kron-kron_shuffle_seed0", "kron"),
    "lowrank": ("does a low-rank table of kron's size beat the full table?", "bpe_untied", "bpe_lowrank"),
    "bytes_vs_lowrank": ("does kron beat that low-rank table?", "bpe_lowrank", "kron"),
    "kron_tied": ("does kron beat kron_tied (its head tied to the codec)?", "kron_tied", "kron"),
    "kron_tied_start": ("does kron_tied started at logit 0 beat its 0.02 start?", "kron_tied", "kron_tied-tied_logit_scale0"),
    "frozen": ("does an untied table started at unit RMS beat the 0.02 one?", "bpe_untied", "bpe_untied-input_init_std1.0"),
    "kron_scale": ("does kron at unit input RMS beat kron at 0.02?", "kron-kron_scale0.02", "kron"),
}
SHARED = ("total", "untying", "beyond_untying", "scale50", "bytes_vs_scale50", "own_bytes", "lowrank", "bytes_vs_lowrank")
# The typo probe's contrasts, under the same names where they ask the same question.
ROBUSTNESS = [(q, *QUESTIONS[q][1:]) for q in ("total", "untying", "beyond_untying", "own_bytes")]
PAPER = {"tokens": "2.5B", "gap": "0.083 ± 0.007 nats (2.5 ± 0.2 %)", "steps": "≈1.43×", "top1": "55.5 % vs 47.3 %", "kl": "−7.6 %"}


@dataclass
class Study:
    key: str  # its name in placeholders: {{paired.total}}
    folder: str  # results/<folder>: runs/ (kept logs), compare/, probes/, README.md
    title: str
    questions: tuple
    in_table: bool  # a column of RESULTS.md's question × study table


STUDIES = [
    Study("english", "study_english", "English, 120 steps", SHARED + ("kron_tied", "kron_tied_start", "frozen", "kron_scale"), True),
    Study("paired", "study_english_paired", "paired English, 500 steps", SHARED, True),
    Study("small_vocab", "study_small_vocab", "small vocabulary, 500 steps", SHARED, True),
    Study("english_long", "study_english_long", "English, 500 steps", ("total", "untying", "beyond_untying", "own_bytes", "frozen"), False),
    Study("python_docs", "study_cpu", "Python docs, 120 steps", ("total", "untying", "beyond_untying"), False),
]


def load(study, results):
    """A study's comparison (written to its compare/ folder), scale, input drift and robustness over
    seeds; None when none of its logs are kept."""
    runs = os.path.join(results, study.folder, "runs")
    if not os.path.isdir(runs) or not os.listdir(runs):
        return None
    specs = [(q, *QUESTIONS[q][1:]) for q in study.questions]
    cmp, _ = report.write_comparison([runs], os.path.join(results, study.folder, "compare"), contrasts=specs)
    return {
        "cmp": cmp,
        "md": report.comparison_markdown(cmp),  # the contrasts are the study README's own table
        "scale": analysis.study_scale(analysis.find_runs([runs])),
        "drift": analysis.input_drift(runs),
        "robustness": analysis.robustness_over_seeds(os.path.join(results, study.folder, "probes"), ROBUSTNESS),
    }


def millions(tokens):
    return f"{tokens / 1e6:.2f}M"


def scale_text(sc):
    return f"V {sc['vocab_size']:,}, {sc['n_layer']}L d{sc['n_embd']}, {sc['max_iters']} steps, {millions(sc['tokens'])} tokens"


def gap_text(c):
    ci = f" [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else ""
    return f"{c['gap_mean']:+.3f}{ci}"


def verdict_text(q, c):
    _, ref, other = QUESTIONS[q]
    if c["verdict"] == "open":
        return f"open ({len(c['seeds'])} seeds)"
    words = {"+": f"{other} better", "-": f"{ref} better", "?": "not resolved"}[c["verdict"]]
    return f"{words} (Holm p {report.fmt_p(c['p_holm'])})"


def cells_of(loaded):
    """Every (study, question) cell with its Holm verdict; the table's columns form one family."""
    cells = {}
    for s in STUDIES:
        if loaded.get(s.key):
            cells.update({(s.key, q): c for q, c in loaded[s.key]["cmp"]["contrasts"].items()})
    table = analysis.table_verdicts({k: c for k, c in cells.items() if k[0] in table_keys()}, CONCLUDE_SEEDS)
    rest = analysis.table_verdicts({k: c for k, c in cells.items() if k[0] not in table_keys()}, CONCLUDE_SEEDS)
    return {**rest, **table}


def table_keys():
    return [s.key for s in STUDIES if s.in_table]


def values_of(loaded, cells, results):
    """Every number a document may quote, by name: {{study.question}} (gap [95 % CI]), .p (Holm),
    .seeds, {{study.scale}}, {{study.drift.group}} (the produced embeddings' RMS, final / initial),
    {{study.loss.group}} and {{paper.*}}."""
    v = {f"paper.{k}": Value(t) for k, t in PAPER.items()}
    bf16 = read_json(os.path.join(results, "bf16_check", "precision.json"))  # the check behind two studies' bf16
    v.update({f"bf16.{k}": Value(f"{bf16[k]:.4f}", bf16[k]) for k in ("max_abs_gap", "min_seed_gap", "median_seed_gap")})
    ratio = bf16["max_abs_gap"] / bf16["min_seed_gap"]
    v["bf16.max_over_min"] = Value(f"{ratio:.2f}×", ratio)
    for s in STUDIES:  # the validation windows' bytes per token (scripts/val_bytes.py), where counted
        counted = os.path.join(results, s.folder, "val_bytes.json")
        if loaded.get(s.key) and os.path.isfile(counted):
            c = read_json(counted)["sources"].values()
            ratio = sum(x["bytes"] for x in c) / sum(x["tokens"] for x in c)
            v[f"{s.key}.bytes_per_token"] = Value(f"{ratio:.2f}", ratio)
    for (study, q), c in cells.items():
        v[f"{study}.{q}"] = Value(gap_text(c), c["gap_mean"], c["verdict"])
        v[f"{study}.{q}.seeds"] = Value(str(len(c["seeds"])), len(c["seeds"]))
        v[f"{study}.{q}.p"] = Value(report.fmt_p(c.get("p_holm", c["p"])), c.get("p_holm", c["p"]))
    for key, d in loaded.items():
        if d:
            v[f"{key}.scale"] = Value(scale_text(d["scale"]))
            v.update({f"{key}.drift.{g}": Value(f"{e:.2f}×", e) for g, (_, _, e, _, _) in d["drift"].items()})
            v.update({f"{key}.loss.{g}": Value(f"{r['final_val_mean']:.3f}", r["final_val_mean"]) for g, r in d["cmp"]["groups"].items()})
            v.update(
                {
                    f"{key}.bpb.{g}": Value(f"{r['final_bpb_mean']:.3f}", r["final_bpb_mean"])
                    for g, r in d["cmp"]["groups"].items()
                    if "final_bpb_mean" in r
                }
            )
            v.update(report.step_values(key, d["cmp"]))
            v.update(report.typo_values(key, d["robustness"]))
            v.update({f"{key}.own.{g}": Value(f"{r:.2f}×", r) for g, (_, r, _, _, _) in d["drift"].items()})
    return v


def opening_table(cells):
    keys = table_keys()
    lines = ["| question (gap = reference − other) | " + " | ".join(s.title for s in STUDIES if s.in_table) + " |"]
    lines.append("|---|" + "---|" * len(keys))
    for q, (question, ref, other) in QUESTIONS.items():
        row = [cells.get((k, q)) for k in keys]
        if any(row):
            shown = [f"{gap_text(c)}, {len(c['seeds'])} seeds: {verdict_text(q, c)}" if c else "—" for c in row]
            lines.append(f"| {question} ({ref} − {other}) | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def bpb_table(loaded):
    """Each arm's final bits per byte (mean over seeds) in every study that has its byte counts: the one
    unit in which studies with different tokenizers compare."""
    studies = [s for s in STUDIES if s.in_table and loaded.get(s.key)]
    groups = {s.key: loaded[s.key]["cmp"]["groups"] for s in studies}
    names = [g for g in dict.fromkeys(g for gs in groups.values() for g in gs) if all(g in gs for gs in groups.values())]
    lines = ["| group | " + " | ".join(f"{s.title} (V {loaded[s.key]['scale']['vocab_size']:,})" for s in studies) + " |"]
    lines.append("|---|" + "---|" * len(studies))
    for g in names:
        cells = [groups[s.key][g].get("final_bpb_mean") for s in studies]
        lines.append(f"| {g} | " + " | ".join("—" if b is None else f"{b:.3f}" for b in cells) + " |")
    return "\n".join(lines)


def machine_text(m):
    """'cpu, float32, 1 thread a run; CPU model: AMD EPYC × 60' from analysis.machine_summary."""
    threads = "/".join(m["threads"])
    models = ", ".join(f"{cpu} × {n}" for cpu, n in m["cpu"].items())
    if list(m["cpu"]) == ["not recorded"]:
        models = "not recorded (these logs predate the record)"
    return f"{'/'.join(m['device'])}, {'/'.join(m['dtype'])}, {threads} thread{'s' if threads != '1' else ''} a run; CPU model: {models}"


def setup_table(d):
    sc, c = d["scale"], d["cmp"]
    rows = [
        ("model", f"{sc['n_layer']} layers, d {sc['n_embd']}, block {sc['block_size']}, vocabulary {sc['vocab_size']:,}"),
        ("training", f"{sc['max_iters']} steps of {sc['tokens_per_step']:,} tokens = {millions(sc['tokens'])} tokens per run"),
        ("data", f"`{sc['data_dir']}` ({millions(sc['train_tokens'])} training tokens)"),
        ("groups × seeds", ", ".join(f"{g} × {len(r['seeds'])}" for g, r in c["groups"].items())),
        ("machine", machine_text(sc["machine"])),
    ]
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def contrasts_table(study, cells):
    lines = ["| question | reference − other | seeds | gap [95 % CI] | verdict |", "|---|---|---|---|---|"]
    for q in study.questions:
        c = cells.get((study.key, q))
        if c:
            question, ref, other = QUESTIONS[q]
            lines.append(f"| {question} | {ref} − {other} | {len(c['seeds'])} | {gap_text(c)} | {verdict_text(q, c)} |")
    return "\n".join(lines)


def study_detail(study, d, cells):
    """The generated part of results/<study>/README.md: every table this study has."""
    parts = ["## Setup", setup_table(d), "## Contrasts", contrasts_table(study, cells), "## Every group", d["md"]]
    parts += [
        "![validation loss](compare/val_curves.png)",
        "## Input scale over training (final / initial)",
        report.drift_markdown(d["drift"]),
    ]
    if d["robustness"]:
        parts += ["## Spelling robustness on every seed", report.robustness_markdown(d["robustness"])]
    return "\n\n".join(parts)


def replace_block(path, name, body):
    """Rewrite the text between `<!-- make_results: name -->` and `<!-- /make_results -->` in path (the
    rest is written by hand and kept); refused unless the file holds exactly one such block."""
    with open(path, encoding="utf-8") as f:
        text = report.replace_marked(f.read(), BLOCK[0].format(name), BLOCK[1], body, path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def render(template_path, values, tables):
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    return report.fill(text, {**values, **tables}, where=os.path.relpath(template_path, ROOT))


def progress(total):
    """step(what): one line per stage with the seconds since the start, on stderr."""
    start, done = time.time(), [0]

    def step(what):
        done[0] += 1
        print(f"make_results [{done[0]}/{total}, {time.time() - start:.0f} s]: {what} ...", file=sys.stderr, flush=True)

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=os.path.join(ROOT, "results"), help="where the studies' folders and templates are")
    p.add_argument("--out", default=os.path.join(ROOT, "RESULTS.md"))
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"), help="whose summary block to refresh ('' for none)")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.results, "RESULTS.template.md")):
        raise ValueError(f"--results {args.results!r}: no RESULTS.template.md there (expected the repository's results/ folder)")
    step = progress(len(STUDIES) + 2)
    loaded = {}
    for s in STUDIES:
        step(f"the {s.title} study ({s.folder})")
        loaded[s.key] = load(s, args.results)
    step("the documents")
    cells = cells_of(loaded)
    values = values_of(loaded, cells, args.results)
    kept = [(s, s.key) for s in STUDIES if s.in_table and loaded[s.key]]
    figure = os.path.join(args.results, "evidence.png")
    rows = [(f"{QUESTIONS[q][0]} ({QUESTIONS[q][1]} − {QUESTIONS[q][2]})", q) for q in SHARED]
    report.evidence_figure(
        rows, [(s.title, {"contrasts": {q: cells.get((k, q)) for q in SHARED}}) for s, k in kept], figure, CONCLUDE_SEEDS
    )
    step("the forecast study (fitted once its grid is complete)")
    fc = forecast_report.build(args.results)
    tables = {
        "table.opening": opening_table(cells),
        "table.bpb": bpb_table(loaded),
        "section.forecast": forecast_report.section_markdown(fc),
        "section.fair": fair_report.section_markdown(fair_report.answers(args.results)),
        "section.gpu": "\n".join(study_markdown(os.path.join(args.results, "gpu_124m"), fc and fc["F1"])),
    }
    for s in STUDIES:
        if loaded[s.key]:
            tables[f"table.{s.key}.setup"] = setup_table(loaded[s.key])
            tables[f"table.{s.key}.contrasts"] = contrasts_table(s, cells)
            replace_block(os.path.join(args.results, s.folder, "README.md"), "tables", study_detail(s, loaded[s.key], cells))
    text = render(os.path.join(args.results, "RESULTS.template.md"), values, tables)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out} and the tables in {sum(1 for d in loaded.values() if d)} studies' READMEs")
    if args.readme:
        replace_block(args.readme, "summary", render(os.path.join(args.results, "summary.template.md"), values, tables))
        print(f"refreshed the results summary in {args.readme}")


if __name__ == "__main__":
    run_cli(main, also=(ValueError,))  # a user's mistake: one line (--debug: the traceback)
