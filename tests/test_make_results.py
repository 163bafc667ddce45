"""scripts/make_results.py and report.fill: the documents rebuilt byte for byte from the kept logs, every
quoted number a placeholder, and a finding that stops holding refuses to render."""

import os
import re
import shutil

import pytest

import analysis
import report
from report import Value
from stats import holm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = ("results/RESULTS.template.md", "results/summary.template.md")


@pytest.mark.slow
def test_results_and_readmes_regenerate_byte_identical_from_committed_logs(tmp_path):
    """RESULTS.md, every study's README and the README's summary block are rebuilt from the kept logs
    (no training, no checkpoints) into a scratch copy and must equal the committed files byte for byte:
    a number edited by hand in any of them, or a log changed under them, fails here."""
    from scripts import make_results

    results = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), results)
    shutil.copy(os.path.join(ROOT, "README.md"), tmp_path / "README.md")
    make_results.main(["--results", str(results), "--out", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md")])
    assert (tmp_path / "RESULTS.md").read_text() == open(os.path.join(ROOT, "RESULTS.md")).read(), "run python -m scripts.make_results"
    assert (tmp_path / "README.md").read_text() == open(os.path.join(ROOT, "README.md")).read(), "README's summary is stale"
    for s in make_results.STUDIES:
        rel = os.path.join(s.folder, "README.md")
        assert (results / rel).read_text() == open(os.path.join(ROOT, "results", rel)).read(), f"results/{rel} is stale"


def test_the_templates_quote_no_number_by_hand():
    """Every decimal number in the documents' prose comes from a placeholder (the paper's figures too):
    a number typed into a template could never be checked against the data."""
    for path in TEMPLATES:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            assert report.hand_typed_numbers(f.read()) == [], path
    assert report.hand_typed_numbers("the gap was 0.083 nats, {{paired.total}}") == ["0.083"]
    assert report.hand_typed_numbers("set `input_scale=13.86` and {{x}}") == []


def test_every_placeholder_and_claim_in_the_templates_holds_on_the_kept_data():
    """Rendering checks each claim ({{paired.total|?}}, {{paired.drift.kron|>2}}) against the data; the
    committed RESULTS.md exists, so they held when it was written: check that each template names only
    known claims and that RESULTS.md carries none of the placeholders unfilled."""
    for path in TEMPLATES:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            for m in report.PLACEHOLDER.finditer(f.read()):
                assert m.group(2) is None or re.fullmatch(r"[+\-?]|[<>]-?\d+(\.\d+)?", m.group(2)), m.group(0)
    with open(os.path.join(ROOT, "RESULTS.md"), encoding="utf-8") as f:
        assert "{{" not in f.read()


def test_fill_refuses_an_unknown_value_and_a_claim_the_data_no_longer_make():
    values = {"a.gap": Value("+0.100 [+0.029, +0.170]", 0.1, "+"), "b.gap": Value("-0.023 [-0.041, -0.005]", -0.023, "?")}
    values["drift"] = Value("2.68×", 2.68)
    assert report.fill("kron wins by {{a.gap|+}}; {{ b.gap | ? }}; {{drift|>2}}", values) == (
        "kron wins by +0.100 [+0.029, +0.170]; -0.023 [-0.041, -0.005]; 2.68×"
    )
    with pytest.raises(ValueError, match=r"\{\{a.gap\|-\}\} claims a resolved negative gap, the data says \+0.100"):
        report.fill("{{a.gap|-}}", values)
    with pytest.raises(ValueError, match=r"\{\{b.gap\|-\}\} claims a resolved negative gap"):
        report.fill("{{b.gap|-}}", values)  # its interval excludes 0, but not after Holm: '?'
    with pytest.raises(ValueError, match=r"\{\{drift\|<1.5\}\}: the data says 2.68"):
        report.fill("{{drift|<1.5}}", values)
    with pytest.raises(ValueError, match=r"RESULTS.template.md: \{\{c.gap\}\}: no such value; \{\{a.gap\|!\}\}: unknown claim"):
        report.fill("{{c.gap}} {{a.gap|!}}", values, where="RESULTS.template.md")


def test_the_table_is_one_holm_family_and_fewer_than_five_seeds_stay_open():
    def cell(gaps):
        return {"seeds": list(range(len(gaps))), "per_seed": dict(enumerate(gaps)), "gap_mean": sum(gaps) / len(gaps)}

    strong, weak, few = cell([0.10, 0.11, 0.12, 0.10, 0.11]), cell([0.05, -0.01, 0.09, 0.02, 0.04]), cell([0.3, 0.31])
    alone = analysis.table_verdicts({"strong": strong}, 5)
    family = analysis.table_verdicts({"strong": strong, "weak": weak, "neg": cell([-0.2, -0.21, -0.19, -0.2, -0.22]), "few": few}, 5)
    assert alone["strong"]["verdict"] == "+" and family["neg"]["verdict"] == "-" and family["weak"]["verdict"] == "?"
    assert family["few"]["verdict"] == "open" and "p_holm" not in family["few"]  # not in the family
    in_family = ("strong", "weak", "neg")
    assert [family[k]["p_holm"] for k in in_family] == holm([family[k]["p"] for k in in_family])
    assert family["strong"]["p_holm"] > alone["strong"]["p_holm"] == alone["strong"]["p"]


def test_a_block_is_replaced_and_the_hand_written_rest_kept(tmp_path):
    from scripts.make_results import replace_block

    path = tmp_path / "README.md"
    path.write_text("# hand\n\n<!-- make_results: tables -->\nold\n<!-- /make_results -->\n\nafter\n")
    replace_block(str(path), "tables", "new table\n")
    assert path.read_text() == "# hand\n\n<!-- make_results: tables -->\nnew table\n<!-- /make_results -->\n\nafter\n"
    path.write_text("# no markers\n")
    with pytest.raises(ValueError, match="expected one '<!-- make_results: tables -->' ... '<!-- /make_results -->' block"):
        replace_block(str(path), "tables", "x")
    assert path.read_text() == "# no markers\n"


def test_results_md_opens_with_the_answers_and_stays_short():
    """Issue 41: the question × study table within the first 60 lines, the document under ~250 lines,
    no line over ~400 characters except generated table rows."""
    with open(os.path.join(ROOT, "RESULTS.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert any(ln.startswith("| does kron beat bpe_tied?") for ln in lines[:60])
    assert len(lines) <= 250
    assert all(len(ln) <= 400 or ln.startswith("|") for ln in lines)


def test_a_studys_machine_row_counts_its_runs_by_cpu_model():
    """Each study's setup table says how its runs ran: device, precision, threads, and runs per CPU model
    as their logs record it (a run resumed on another model counts under both; older logs say nothing)."""
    from scripts import make_results

    def scale(cpu, threads=1):
        return {"device": "cpu", "dtype": "float32", "threads": threads, "cpu": cpu}

    m = analysis.machine_summary({"a": scale("AMD EPYC"), "b": scale("AMD EPYC + Intel Xeon"), "c": scale("AMD EPYC"), "d": None})
    assert m == {"device": ["cpu"], "dtype": ["float32"], "threads": ["1"], "cpu": {"AMD EPYC": 2, "AMD EPYC + Intel Xeon": 1}}
    assert make_results.machine_text(m) == "cpu, float32, 1 thread a run; CPU model: AMD EPYC × 2, AMD EPYC + Intel Xeon × 1"
    old = analysis.machine_summary({"a": scale("not recorded", threads=2)})
    assert make_results.machine_text(old) == "cpu, float32, 2 threads a run; CPU model: not recorded (these logs predate the record)"
