"""scripts/fair_progress.py: the fair study's kept runs counted by phase, with no loss shown."""

import shutil

from scripts import fair_choose, fair_progress
from tests.test_fair_choose import write_label, write_phases_1_2, write_run

DEV = 7.654321  # a dev loss no count or label can spell


def test_phase_one_in_part_is_counted_and_its_missing_seeds_are_what_is_asked_for(tmp_path):
    write_phases_1_2(tmp_path, {arm: DEV for arm in fair_progress.analysis.FAIR_ARMS})
    dropped = sorted(p for p in tmp_path.iterdir() if p.name.startswith("kron-") and "lr0.002" in p.name)[:3]
    for p in dropped:
        shutil.rmtree(p)
    text = fair_progress.main(["--logs", str(tmp_path), "--logs-l", str(tmp_path / "absent")])
    kept = fair_progress.counts(str(tmp_path), str(tmp_path / "absent"))
    assert kept["phase 1"] == 70 - 3 and kept["phase 2"] == 28 and kept["phase 3 at L"] == 0
    assert "phase 1        67 of 70" in text
    assert "the input axis (R) is open (kron: a setting lacks a seed): the choosing step asks for 3 runs" in text
    assert f"left: {3 + 35 + 35} runs in the fixed phases" in text
    assert "7.65" not in text and "7.75" not in text  # no dev loss


def test_edge_runs_and_phase_three_are_counted_where_the_plan_puts_them(tmp_path):
    S, L = tmp_path / "S", tmp_path / "L"
    write_phases_1_2(S, {})
    for seed in (1337, 1338):
        write_run(S, f"bpe_tied-input_scale180-s{seed}", "bpe_tied", 180, seed, 6.3)  # R 3.6: an R edge run
        write_run(S, f"kron-lr8e-3-s{seed}", "kron", 1, seed, 6.3, lr=8e-3)  # lr 8e-3: an lr edge run
    for seed in fair_choose.PHASE3_SEEDS:
        write_label(S, f"hybrid-s{seed}", "hybrid", 0.196, seed, 6.0)
    L.mkdir()
    write_run(L, "kron-s2001", "kron", 1, 2001, 6.0)
    kept = fair_progress.counts(str(S), str(L))
    assert kept == {"phase 1": 70, "R edge runs": 2, "phase 2": 28, "lr edge runs": 2, "phase 3 at S": 5, "phase 3 at L": 1}
    text = fair_progress.report(str(S), str(L))
    assert "now: both axes are settled: phase 3, then Q4" in text
    assert f"left: {35 - 5 + 35 - 1} runs" in text
