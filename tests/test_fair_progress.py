"""scripts/fair_progress.py: the fair study's kept runs counted by phase, with no loss shown."""

import shutil

import analysis
from scripts import fair_choose, fair_progress
from tests.test_fair_choose import write_label, write_phases_1_2, write_run

DEV = 7.654321  # a dev loss no count or label can spell
SQRT_D = analysis.FAIR_SQRT_D["S"]


def test_phase_one_in_part_is_counted_and_its_missing_seeds_are_what_is_asked_for(tmp_path):
    write_phases_1_2(tmp_path, {arm: DEV for arm in analysis.FAIR_ARMS})
    dropped = sorted(p for p in tmp_path.iterdir() if p.name.startswith("kron-") and "lr0.002" in p.name)[:3]
    for p in dropped:
        shutil.rmtree(p)
    text = fair_progress.main(["--logs", str(tmp_path), "--logs-l", str(tmp_path / "absent")])
    kept = fair_progress.counts(str(tmp_path), str(tmp_path / "absent"))
    assert kept["phase 1"] == 70 - 3 and kept["phase 2"] == 28 and kept["phase 3 at L"] == 0
    assert "phase 1        67 of 70" in text
    assert "now: the input axis (R) is open: the choosing step asks for 3 runs (planned, not kept yet)" in text
    assert f"left: {3 + 35 + 35} runs in the fixed phases" in text
    assert "7.65" not in text and "7.75" not in text  # no dev loss


def test_with_r_settled_the_learning_rate_asks_for_phase_two(tmp_path):
    write_phases_1_2(tmp_path, {})
    for p in tmp_path.iterdir():
        if "lr0.002" not in p.name:
            shutil.rmtree(p)  # phase 1 only
    text = fair_progress.report(str(tmp_path), str(tmp_path / "absent"))
    assert "now: the learning rate is open: the choosing step asks for 28 runs (planned, not kept yet)" in text
    assert "phase 2         0 of 28" in text and f"left: {28 + 70} runs" in text


def test_edge_runs_and_phase_three_are_counted_where_the_plan_puts_them(tmp_path):
    S, L = tmp_path / "S", tmp_path / "L"
    # kron best at R 3.6 (two R edges, then phase 2 there), the hybrid best at lr 8e-3 (two lr edges)
    write_phases_1_2(S, {}, chosen={"kron": (False, 3.6, 2e-3), "hybrid": (False, SQRT_D, 8e-3)})
    for seed in fair_choose.PHASE3_SEEDS:
        write_label(S, f"hybrid-s{seed}", "hybrid", 0.196, seed, 6.0)
    L.mkdir()
    write_run(L, "kron-s2001", "kron", 1, 2001, 6.0)
    write_run(L, "kron-s1337", "kron", 1, 1337, 6.0)  # not a phase-3 seed: not counted
    kept = fair_progress.counts(str(S), str(L))
    assert kept == {"phase 1": 70, "R edge runs": 4, "phase 2": 28, "lr edge runs": 4, "phase 3 at S": 5, "phase 3 at L": 1}
    text = fair_progress.report(str(S), str(L))
    assert "now: both axes are settled: phase 3, then Q4" in text
    assert f"left: {35 - 5 + 35 - 1} runs" in text


def test_an_arm_whose_every_setting_diverged_is_reported_as_stuck(tmp_path):
    write_phases_1_2(tmp_path, {})
    for p in tmp_path.iterdir():
        if p.name.startswith("kron_tied-"):
            shutil.rmtree(p)
    for norm, R in analysis.FAIR_PHASE1:
        for seed in analysis.FAIR_CHOOSING_SEEDS:
            m = fair_choose.input_scale("kron_tied", (norm, R, 2e-3))
            write_label(tmp_path, f"kron_tied-{norm}-{m}-s{seed}", "kron_tied", m, seed, None, norm=norm)  # diverged
    text = fair_progress.report(str(tmp_path), str(tmp_path / "absent"))
    assert "now: the input axis (R) is stuck: `python -m scripts.fair_choose --axis R --settled` says why" in text
