"""scripts/fair_choose.py and analysis.fair_*: the fair study's choosing rule and its phase-3 tests, on synthetic data."""

import json
import math

import pytest

import analysis
from scripts import fair_choose


def write_run(root, name, embedding, input_scale, seed, dev, norm=False, lr=2e-3, shuffle=None):
    folder = root / name
    folder.mkdir()
    config = {"embedding": embedding, "input_scale": input_scale, "input_norm": norm, "learning_rate": lr, "seed": seed}
    records = [{"kind": "config", "config": dict(config, kron_shuffle_seed=shuffle)}]
    if dev is not None:  # None: the run diverged and wrote no final record
        records.append({"kind": "final", "step": 500, "dev_loss": dev, "test_loss": dev + 5.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_each_arm_takes_its_lowest_dev_mean_and_an_edge_asks_for_the_next_point(tmp_path):
    # bpe_tied: best at R = 1 with the norm off (the grid's top edge): extend to R 3.6, i.e. input_scale 180
    for m, dev in ((1, 6.0), (13.86, 5.8), (50, 5.7)):
        for seed in (1337, 1338):
            write_run(tmp_path, f"bpe_tied-input_scale{m}-s{seed}", "bpe_tied", m, seed, dev + (seed - 1337) * 0.01)
    for m in (0.2771, 1):
        for seed in (1337, 1338):
            write_run(tmp_path, f"bpe_tied-input_normTrue-input_scale{m}-s{seed}", "bpe_tied", m, seed, 5.9, norm=True)
    # shuffled kron: interior best; one diverged run makes its setting infinitely bad, not chosen
    for m, dev in ((0.02, 6.1), (0.2771, 5.5), (1, None)):
        for seed in (1337, 1338):
            write_run(tmp_path, f"kron-kron_shuffle_seedseed-input_scale{m}-s{seed}", "kron", m, seed, dev, shuffle="seed")
    # hybrid: a setting with one seed only: incomplete, not chosen
    write_run(tmp_path, "hybrid-input_scale0.7071-s1337", "hybrid", 0.7071, 1337, 5.0)

    runs = analysis.fair_runs(str(tmp_path))
    assert not any("test" in r for r in runs)  # the test half is never read for choosing
    choice = analysis.fair_choice(runs)
    assert choice["bpe_tied"]["chosen"] == (False, 1.0, 2e-3)
    assert choice["bpe_tied"]["settings"][(False, 1.0, 2e-3)] == 5.705
    assert choice["kron_shuffled"]["chosen"] == (False, 0.2771, 2e-3)
    assert math.isinf(choice["kron_shuffled"]["settings"][(False, 1.0, 2e-3)])
    assert choice["hybrid"]["chosen"] is None
    text = fair_choose.main(["--axis", "R", "--logs", str(tmp_path)])
    assert "--arms bpe_tied --seeds 1338 --grid input_scale=180 -- --num_threads=1" in text
    assert "hybrid:" in text and "not chosen: a setting lacks a seed" in text
    assert "edge: run" not in text.split("kron_shuffled:")[1]  # an interior best needs no extension


def test_extensions_stop_after_two_beyond_the_grid_and_the_learning_rate_has_its_own_edges():
    tried = [(False, r, 2e-3) for r in (0.02, 0.2771, 1.0, 3.6, 12.96)]
    assert analysis.fair_extension((False, 12.96, 2e-3), tried, "R") is None  # two beyond the top already
    assert analysis.fair_extension((False, 0.02, 2e-3), tried, "R") == (False, round(0.02 / 3.6, 6), 2e-3)
    assert analysis.fair_extension((True, 0.2771, 2e-3), [(True, 0.2771, 2e-3), (True, 1.0, 2e-3)], "R") == (
        True,
        round(0.2771 / 3.6, 6),
        2e-3,
    )
    hybrid = [(False, r, 2e-3) for r in (0.019997, 0.277186, 0.99999)]  # the hybrid's grid as its multipliers log it
    assert analysis.fair_extension((False, 0.019997, 2e-3), hybrid, "R") == (False, round(0.019997 / 3.6, 6), 2e-3)
    twice = hybrid + [(False, 0.005555, 2e-3)]
    assert analysis.fair_extension((False, 0.005555, 2e-3), twice, "R") == (False, round(0.005555 / 3.6, 6), 2e-3)  # its second
    lrs = [(False, 1.0, lr) for lr in (1e-3, 2e-3, 4e-3)]
    assert analysis.fair_extension((False, 1.0, 4e-3), lrs, "lr") == (False, 1.0, 8e-3)
    assert analysis.fair_extension((False, 1.0, 2e-3), lrs, "lr") is None
    assert "--grid learning_rate=0.008 --grid min_lr=0.0008" in fair_choose.command("bpe_untied", (False, 1.0, 8e-3), 1337)


def test_the_next_phase_is_printed_only_when_every_arm_is_chosen_without_an_edge_run(tmp_path):
    for m, dev in ((1, 6.0), (13.86, 5.5), (50, 5.7)):  # interior best: input_scale 13.86 (R 0.2772)
        for seed in (1337, 1338):
            write_run(tmp_path, f"bpe_untied-input_scale{m}-s{seed}", "bpe_untied", m, seed, dev)
    text = fair_choose.main(["--axis", "R", "--logs", str(tmp_path)])
    assert "next phase (4 runs):" in text
    assert "--arms bpe_untied --seeds 1338 --grid input_scale=13.86 --grid learning_rate=0.004 --grid min_lr=0.0004" in text
    write_run(tmp_path, "bpe_tied-input_scale50-s1337", "bpe_tied", 50, 1337, 5.0)  # an arm not yet complete
    assert "next phase" not in fair_choose.main(["--axis", "R", "--logs", str(tmp_path)])


def test_phase_three_tests_and_verdicts_follow_the_plan():
    """Per-seed gaps on the test half, sources as a random factor, Holm over the family, and the
    verdict order of amendment 1 (a side first, then equivalence, else unresolved)."""
    from stats import holm

    def final(loss, shift=0.0):
        return {"test_loss": loss, "by_source": {"test": {"s1": loss - 0.1 + shift, "s2": loss + 0.1 - shift, "s3": loss}}}

    kron = {s: final(5.00 + 0.001 * k) for k, s in enumerate(range(2001, 2006))}
    table = {s: final(5.10 + 0.002 * k) for k, s in enumerate(range(2001, 2006))}
    same = {s: final(5.00 + 0.001 * k + (0.002 if k % 2 else -0.002)) for k, s in enumerate(range(2001, 2006))}
    mixed = {s: final(5.00 + 0.001 * k + (0.08 if k % 2 else -0.06)) for k, s in enumerate(range(2001, 2006))}
    tests = {
        "Q1": analysis.fair_test(kron, table),
        "Q2": analysis.fair_test(table, kron),
        "Q3": analysis.fair_test(kron, same),
        "Q4": analysis.fair_test(kron, mixed),
    }
    assert tests["Q1"]["mean"] == pytest.approx(0.102) and tests["Q1"]["seeds"] == list(range(2001, 2006))
    assert tests["Q1"]["sources"]["s1"] == pytest.approx(0.102)
    v = analysis.fair_verdicts(tests)
    assert [v[q]["p_holm"] for q in tests] == holm([tests[q]["p"] for q in tests])
    assert [v[q]["verdict"] for q in tests] == ["A better", "B better", "equivalent", "unresolved"]
    del table[2003]  # a diverged run: the question is answered on the seeds both finished
    assert analysis.fair_test(kron, table)["seeds"] == [2001, 2002, 2004, 2005]


def test_phase_three_keeps_q4s_checkpoints_for_three_arms_and_carries_the_sqrt_d_point_to_l(tmp_path):
    """After the lr phase: 5 seeds per arm at S (kron, shuffled kron and the best table keeping the
    checkpoints amendment 2 needs) and at L, where R = 0.02 sqrt(192) becomes 0.02 sqrt(128)."""
    arms = {"bpe_tied": (1, 5.9), "bpe_untied": (13.86, 5.5), "bpe_lowrank": (1, 5.8), "kron": (0.2771, 5.6), "hybrid": (0.7071, 5.7)}
    for arm, (m, dev) in arms.items():
        for lr, extra in ((1e-3, 0.1), (2e-3, 0.0), (4e-3, 0.2)):
            for seed in (1337, 1338):
                write_run(tmp_path, f"{arm}-{m}-{lr}-s{seed}", arm, m, seed, dev + extra, lr=lr)
    for lr, extra in ((1e-3, 0.1), (2e-3, 0.0), (4e-3, 0.2)):
        for seed in (1337, 1338):
            write_run(tmp_path, f"kron-shuffled-{lr}-s{seed}", "kron", 1, seed, 6.0 + extra, lr=lr, shuffle="seed")
    choice = analysis.fair_choice(analysis.fair_runs(str(tmp_path)))
    assert analysis.fair_best_table(choice) == "bpe_untied"
    runs = fair_choose.next_phase(choice, "lr")
    s_runs, l_runs = runs[:30], runs[30:]
    assert len(runs) == 60 and all("config/study_fair.py" in r for r in s_runs) and all("study_fair_v50k.py" in r for r in l_runs)
    keeping = [r for r in runs if fair_choose.KEEP_CKPTS in r]
    arm_of = {r.split("--arms ")[1].split(" ")[0] + (" shuffled" if "kron_shuffle_seed" in r else "") for r in keeping}
    assert arm_of == {"kron", "kron shuffled", "bpe_untied"} and len(keeping) == 15
    assert "--arms kron --seeds 2001 --grid input_scale=0.2771" in "".join(s_runs)
    assert "--keep-logs results/study_fair/runs_v50k --arms kron --seeds 2001 --grid input_scale=0.2263" in "".join(l_runs)
    assert "--arms bpe_untied --seeds 2003 --grid input_scale=11.31" in "".join(l_runs)  # 0.2263 / 0.02


def test_commands_ask_for_edges_first_then_the_next_phase_and_phase_two_does_not_move_r(tmp_path):
    """--commands (continue.sh's loop): the edge runs while any arm needs one, else the next phase; the
    R axis reads only lr 2e-3 runs, so phase 2's runs cannot reopen it."""
    for m, dev in ((1, 6.0), (13.86, 5.8), (50, 5.7)):  # bpe_tied: best at the top edge
        for seed in (1337, 1338):
            write_run(tmp_path, f"bpe_tied-input_scale{m}-s{seed}", "bpe_tied", m, seed, dev)
    for m, dev in ((0.02, 6.1), (0.2771, 5.5), (1, 5.9)):  # kron: interior
        for seed in (1337, 1338):
            write_run(tmp_path, f"kron-input_scale{m}-s{seed}", "kron", m, seed, dev)
    argv = ["--axis", "R", "--logs", str(tmp_path), "--commands"]
    assert fair_choose.main(argv).splitlines() == [
        fair_choose.command("bpe_tied", (False, 3.6, 2e-3), seed) for seed in (1337, 1338)
    ]  # the edge only: kron's phase 2 waits
    for seed in (1337, 1338):
        write_run(tmp_path, f"bpe_tied-input_scale180-s{seed}", "bpe_tied", 180, seed, 5.75)  # the edge: worse, R 1 stays
    phase2 = fair_choose.main(argv).splitlines()
    assert len(phase2) == 8 and all("learning_rate=0.001" in c or "learning_rate=0.004" in c for c in phase2)
    for seed in (1337, 1338):  # phase 2: bpe_tied at lr 4e-3 much better; the R axis must not see it
        write_run(tmp_path, f"bpe_tied-input_scale50-lr4-s{seed}", "bpe_tied", 50, seed, 5.0, lr=4e-3)
    assert fair_choose.main(argv).splitlines() == phase2
    (tmp_path / "kron-input_scale1-s1338" / "metrics.jsonl").unlink()  # a setting lacking a seed: that seed, first
    (tmp_path / "kron-input_scale1-s1338").rmdir()
    assert fair_choose.main(argv).splitlines() == [fair_choose.command("kron", (False, 1.0, 2e-3), 1338)]
    quoted = fair_choose.main(["--logs", str(tmp_path), "--axis", "lr", "--commands", "--python", "/my venv/python"])
    assert quoted.startswith("'/my venv/python' -m scripts.run_study")


def test_the_forecast_arm_is_the_best_table_at_its_setting_once_the_lr_axis_is_settled(tmp_path):
    """--forecast-arm (the forecast plan's amendment 3): the best table's chosen (norm, R, lr) as a
    run_forecast spec, the sqrt(d) point as input_rms=sqrt_d so each size gets its own multiplier;
    refused while an arm still lacks a learning-rate choice."""
    tables = {"bpe_tied": (1, 5.9, 2e-3), "bpe_untied": (13.86, 5.5, 4e-3), "bpe_lowrank": (1, 5.8, 2e-3)}
    argv = ["--axis", "lr", "--logs", str(tmp_path), "--forecast-arm"]
    for arm, (m, dev, best) in tables.items():
        for lr in (1e-3, 2e-3, 4e-3):
            for seed in (1337, 1338):
                write_run(tmp_path, f"{arm}-{m}-{lr}-s{seed}", arm, m, seed, dev if lr == best else dev + 0.1, lr=lr)
        if arm == "bpe_tied":  # one arm is not chosen yet: nothing to name
            with pytest.raises(ValueError, match="has not chosen every arm's learning rate"):
                fair_choose.main(argv)
    # bpe_untied's best lr sits at the grid's top edge: an edge run (8e-3, worse) settles it there
    for seed in (1337, 1338):
        write_run(tmp_path, f"bpe_untied-13.86-0.008-s{seed}", "bpe_untied", 13.86, seed, 5.6, lr=8e-3)
    assert fair_choose.main(argv) == "bpe_untied:input_rms=sqrt_d,learning_rate=0.004,min_lr=0.0004"

    def interior(norm, R, dev):  # chosen at lr 2e-3 between 1e-3 and 4e-3: no edge run
        return {"chosen": (norm, R, 2e-3), "settings": {(norm, R, lr): dev + (lr != 2e-3) for lr in (1e-3, 2e-3, 4e-3)}}

    choice = {"bpe_tied": interior(True, 1.0, 5.0), "bpe_untied": interior(False, 0.02, 6.0), "bpe_lowrank": interior(False, 0.02, 6.0)}
    assert fair_choose.forecast_arm(choice) == "bpe_tied:input_norm=True,input_rms=1"
    with pytest.raises(SystemExit):  # --forecast-arm reads the lr axis only
        fair_choose.main(["--axis", "R", "--logs", str(tmp_path), "--forecast-arm"])
