"""Figures the documents quote from kept data: each is recomputed here from its file, so an edit to the
data or to the prose that lets them disagree fails (the rule: documents are written by people, numbers by
code). Figures that a script renders into a marked block are checked beside that script instead."""

import json
import os
import re

import analysis
import runlog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(rel):
    return open(os.path.join(ROOT, rel)).read()


def prose(rel):
    """The document with every run of whitespace as one space: a figure is found whatever the line breaks."""
    return " ".join(read(rel).split())


def test_the_readme_intro_quotes_the_counted_input_sizes():
    """The intro's "from 38,633,472 to 3,145,728": bpe_tied's and kron's input parameters at GPT-2 124M."""
    rows = {r["arm"].split(" ")[0]: r["input"] for r in analysis.gpt2_rows(pos_dims=(16,))}
    quoted = re.search(r"from ([\d,]+) to ([\d,]+) trainable parameters", read("README.md"))
    assert quoted, "README: the intro's 'from X to Y trainable parameters' is missing"
    assert [int(q.replace(",", "")) for q in quoted.groups()] == [rows["bpe_tied"], rows["kron"]]


def test_the_readme_quickstart_table_and_times_are_the_kept_summary():
    """The README's quickstart block is results/quickstart_cpu/summary.json: every loss to 4 decimals, the
    wall time per arm in whole seconds, the load at the start to one decimal."""
    summary = json.load(open(os.path.join(ROOT, "results", "quickstart_cpu", "summary.json")))
    readme = read("README.md")
    arms = list(summary["curves"])
    table = ["  step" + "".join(f"{a:>13}" for a in arms)]
    for step in summary["curves"][arms[0]]:
        table.append(f"{int(step):6d}" + "".join(f"{summary['curves'][a][step]:13.4f}" for a in arms))
    assert "\n".join(table) in readme, "README's quickstart table differs from results/quickstart_cpu/summary.json"
    times = ", ".join(f"{a} {summary['wall_seconds_per_arm'][a]:.0f} s" for a in arms)
    m = summary["machine"]
    text = prose("README.md")
    assert f"Wall time per arm, start-up included: {times}." in text
    assert f"load average {m['load_average_at_start'][0]:.1f} at the start" in text
    isa = m["cpu_capability"].replace("AVX512", "AVX-512")
    assert f"Machine: a {m['cores']}-core {m['cpu']} ({isa}), {m['threads']} threads, torch {m['torch']}," in text


def test_training_md_quotes_the_kept_cpu_run():
    """docs/training.md's kron_cpu figures are what `python runlog.py results/cpu_config/kron_cpu` prints."""
    s = runlog.summary(os.path.join(ROOT, "results", "cpu_config", "kron_cpu"))
    quoted = (
        f"median {s['median_step_ms'] / 1000:.2f} s a step ({s['median_tokens_per_s']:,.0f} tokens/s), "
        f"final validation loss {s['final_val_loss']:.3f}"
    )
    assert quoted in prose("docs/training.md"), f"docs/training.md should say: {quoted}"


def test_training_md_quotes_the_kept_step_benchmark():
    """docs/training.md's bench_train sentence is results/bench_train_cpu_after.json: the first arm's step
    time, throughput and peak RSS (GiB), then each arm's time and memory ratios to it."""
    res = json.load(open(os.path.join(ROOT, "results", "bench_train_cpu_after.json")))["results"]
    first = res["bpe_tied"]
    ratios = {arm.split("[")[0]: (r["ratio_to_first"], r["peak_mem_ratio_to_first"]) for arm, r in res.items()}
    quoted = (
        f"bpe_tied {first['median_ms']:,.0f} ms a step ({first['tokens_per_s']:,.0f} tokens/s), "
        f"{first['peak_mem_bytes'] / 2**30:.2f} GiB peak RSS; "
        f"kron {ratios['kron'][0]:.3f}× the step time, {ratios['kron'][1]:.3f}× the memory; "
        f"bpe_untied {ratios['bpe_untied'][0]:.3f}×, {ratios['bpe_untied'][1]:.3f}×; "
        f"kron_tied {ratios['kron_tied'][0]:.3f}×, {ratios['kron_tied'][1]:.3f}×"
    )
    assert quoted in prose("docs/training.md"), f"docs/training.md should say: {quoted}"


def kept_bench(name):
    return json.load(open(os.path.join(ROOT, "results", name)))


def test_kron_layer_md_tables_and_targets_are_the_kept_benchmarks():
    """docs/kron_layer.md's two tables are what `scripts.bench_embed --table` prints from the kept JSON
    (the 124M shape from the plain-allocator run, the 131K shape from the earlier one), and its Targets
    and allocator sentences quote those files' values."""
    from scripts.bench_embed import doc_table

    doc = read("docs/kron_layer.md")
    plain, earlier, keep_freed = (kept_bench(f"bench_embed_cpu{n}.json") for n in ("_plain", "", "_keep_freed"))
    assert doc_table(plain["results"]["cpu"]["gpt2"]) in doc
    assert doc_table(earlier["results"]["cpu"]["large"]) in doc
    quoted = [t["value"] for t in plain["targets"][:3]] + [t["value"] for t in earlier["targets"][2:4]]
    quoted += [t["value"] for t in keep_freed["targets"][:2]]
    for value in quoted:  # e.g. 0.08x, 38.4x, 4.457 MB, 1.16x
        assert value.replace("x", "×") in doc, f"docs/kron_layer.md does not quote {value}"
    k = keep_freed["results"]["cpu"]["gpt2"]
    assert (
        f"drops to {k['embedding']['fwd_bwd_median_ms']:.1f} ms" in doc and f"fused layer's {k['fused']['fwd_bwd_median_ms']:.1f} ms" in doc
    )


def test_the_readme_quotes_the_paper_as_results_md_does():
    """The paper's figures in the README's intro are the ones scripts/make_results.py declares for RESULTS.md."""
    from scripts.make_results import PAPER

    text = prose("README.md")
    for key in ("tokens", "gap", "steps", "top1"):
        assert PAPER[key] in text, f"README's intro should quote the paper's {key} as {PAPER[key]!r}"


def test_the_readme_quotes_how_far_the_intel_xeon_quickstart_moved():
    """The README's Intel Xeon figures are the largest differences, per arm, between the two kept
    quickstart summaries (the table's own machine, an AMD EPYC, and an Intel Xeon)."""
    kept = os.path.join(ROOT, "results", "quickstart_cpu")
    amd, intel = (json.load(open(os.path.join(kept, name))) for name in ("summary.json", "summary_intel_xeon.json"))
    assert "AMD EPYC" in amd["machine"]["cpu"] and "Xeon" in intel["machine"]["cpu"]
    moved = {arm: max(abs(amd["curves"][arm][s] - intel["curves"][arm][s]) for s in amd["curves"][arm]) for arm in amd["curves"]}
    assert f"moves by up to {moved['bpe_tied']:.2g} nats for bpe_tied and {moved['kron']:.2g} for kron" in prose("README.md")
