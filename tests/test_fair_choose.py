"""scripts/fair_choose.py and analysis.fair_*: the fair study's choosing rule and its phase-3 tests, on synthetic data."""

import json
import math
import shutil

import pytest

import analysis
from scripts import fair_choose


def write_run(root, name, embedding, input_scale, seed, dev, norm=False, lr=2e-3, shuffle=None):
    folder = root / name
    folder.mkdir()
    config = {"embedding": embedding, "input_scale": input_scale, "input_norm": norm, "learning_rate": lr, "min_lr": lr / 10, "seed": seed}
    records = [{"kind": "config", "config": dict(config, kron_shuffle_seed=shuffle)}]
    if dev is not None:  # None: the run diverged and wrote no final record
        records.append({"kind": "final", "step": 500, "dev_loss": dev, "test_loss": dev + 5.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


SQRT_D_POINT = (False, analysis.FAIR_SQRT_D["S"], 2e-3)  # the sqrt(d) point, norm off, lr 2e-3: interior on both axes (no edge run)


def write_label(root, name, arm, input_scale, seed, dev, norm=False, lr=2e-3):
    """write_run for an arm as the plan names it (kron_shuffled is kron with kron_shuffle_seed='seed')."""
    shuffled = arm == "kron_shuffled"
    write_run(root, name, "kron" if shuffled else arm, input_scale, seed, dev, norm, lr, "seed" if shuffled else None)


def write_phases_1_2(root, base, chosen=None, write=write_label, skip=()):
    """The kept logs of phases 1 and 2, each arm best at chosen.get(arm, SQRT_D_POINT) (dev base.get(arm, 6.0)
    there, 0.1 worse for another (norm, R), 0.1 for another lr): analysis.FAIR_PHASE1 at lr 2e-3, FAIR_LRS at
    the best (norm, R), and the edge runs the plan's rule asks for, so every arm is settled; skip:
    (arm, norm, R, lr) points left out."""
    root.mkdir(parents=True, exist_ok=True)
    same = analysis.fair_same_setting
    for arm in analysis.FAIR_ARMS:
        norm, R, lr = (chosen or {}).get(arm, SQRT_D_POINT)
        points = [(n, r, 2e-3) for n, r in analysis.FAIR_PHASE1]
        norm, R, _ = next(
            (q for q in points if same(q, (norm, R, 2e-3))), (norm, R, 2e-3)
        )  # the planned point's R (a table logs 0.2772 for 0.2771)
        points += [(norm, R, x) for x in analysis.FAIR_LRS if (norm, R, x) not in points]
        best = (norm, R, lr)
        points += [] if best in points else [best]
        for axis in ("R", "lr"):
            on_axis = (norm, R, 2e-3) if axis == "R" else best
            while nxt := analysis.fair_extension(on_axis, [p for p in points if axis == "lr" or p[2] == 2e-3], axis):
                points.append(nxt)
        for norm_, R_, lr_ in points:
            if (arm, norm_, R_, lr_) in skip:
                continue
            m = fair_choose.input_scale(arm, (norm_, R_, lr_))
            dev = base.get(arm, 6.0) + 0.1 * (not same((norm_, R_, 0), (norm, R, 0))) + 0.1 * (lr_ != lr)
            for seed in (1337, 1338):
                write(root, f"{arm}-n{int(norm_)}-m{m:g}-lr{lr_:g}-s{seed}", arm, m, seed, dev, norm=norm_, lr=lr_)


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


def test_the_next_phase_is_printed_only_when_every_planned_run_is_kept_and_no_arm_needs_an_edge(tmp_path):
    write_phases_1_2(tmp_path, {"bpe_untied": 5.5})
    text = fair_choose.main(["--axis", "R", "--logs", str(tmp_path)])
    assert "next phase (28 runs):" in text  # 7 arms x lr 1e-3, 4e-3 x 2 seeds
    assert "--arms bpe_untied --seeds 1338 --grid input_scale=13.86 --grid learning_rate=0.004 --grid min_lr=0.0004" in text
    assert fair_choose.main(["--axis", "R", "--logs", str(tmp_path), "--settled"]) == "--axis R is settled"
    # a planned setting never kept at all (both seeds): asked for, not invisible as before
    for seed in (1337, 1338):
        shutil.rmtree(tmp_path / f"kron_tied-n1-m1-lr{2e-3:g}-s{seed}")
    argv = ["--axis", "R", "--logs", str(tmp_path)]
    assert "next phase" not in fair_choose.main(argv)
    asked = [fair_choose.command("kron_tied", (True, 1.0, 2e-3), seed) for seed in (1337, 1338)]
    assert fair_choose.main(argv + ["--commands"]).splitlines() == asked
    with pytest.raises(fair_choose.NotSettled, match="kron_tied: a setting lacks a seed"):
        fair_choose.main(argv + ["--settled"])
    with pytest.raises(fair_choose.NotSettled, match="the input axis is not settled"):  # no lr choice while R is open
        fair_choose.main(["--axis", "lr", "--logs", str(tmp_path), "--commands"])


def test_the_learning_rate_is_not_chosen_before_every_phase_two_run_is_kept(tmp_path):
    """Phase 2 half done: kron's lr 4e-3 runs not kept (neither seed). Its lr 2e-3 is then the top of what
    was tried, but the plan's 4e-3 must run, not an edge run, and nothing is settled until it has."""
    point = analysis.FAIR_SQRT_D["S"]
    write_phases_1_2(tmp_path, {}, skip={("kron", False, point, 4e-3)})
    argv = ["--axis", "lr", "--logs", str(tmp_path)]
    assert fair_choose.main(argv + ["--commands"]).splitlines() == [
        fair_choose.command("kron", (False, 0.2771, 4e-3), s) for s in (1337, 1338)
    ]
    with pytest.raises(fair_choose.NotSettled, match="kron: a setting lacks a seed"):
        fair_choose.main(argv + ["--settled"])
    with pytest.raises(ValueError, match="has not chosen every arm's learning rate"):
        fair_choose.main(argv + ["--forecast-arm"])


def test_an_arm_whose_every_setting_diverged_is_not_chosen_and_stops_the_study(tmp_path):
    write_phases_1_2(tmp_path, {}, skip={("hybrid", n, R, 2e-3) for n, R in analysis.FAIR_PHASE1})
    for n, R in analysis.FAIR_PHASE1:
        for seed in (1337, 1338):
            write_label(
                tmp_path, f"hybrid-diverged-n{int(n)}-{R}-s{seed}", "hybrid", fair_choose.input_scale("hybrid", (n, R, 2e-3)), seed, None, n
            )
    choice = fair_choose.choice_from(str(tmp_path), "R")
    assert choice["hybrid"]["chosen"] is None and choice["hybrid"]["diverged"]
    assert fair_choose.main(["--axis", "R", "--logs", str(tmp_path), "--commands"]) == ""  # continue.sh: --settled names it
    assert (
        "hybrid:" in (text := fair_choose.main(["--axis", "R", "--logs", str(tmp_path)])) and "not chosen: every setting diverged" in text
    )


def test_min_lr_must_be_a_tenth_of_the_learning_rate(tmp_path):
    write_run(tmp_path, "kron-s1337", "kron", 1, 1337, 5.0)
    config = tmp_path / "kron-s1337" / "metrics.jsonl"
    config.write_text(config.read_text().replace('"min_lr": 0.0002', '"min_lr": 0.0001'))
    with pytest.raises(ValueError, match=r"min_lr 0.0001 is not learning_rate / 10 = 0.0002 \(amendment 1\)"):
        analysis.fair_runs(str(tmp_path))


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
    edge = {("bpe_tied", False, 3.6, 2e-3)} | {("bpe_tied", False, 1.0, lr) for lr in (1e-3, 4e-3)}
    write_phases_1_2(tmp_path, {}, chosen={"bpe_tied": (False, 1.0, 2e-3)}, skip=edge)  # bpe_tied best at R 1: an edge
    argv = ["--axis", "R", "--logs", str(tmp_path), "--commands"]
    assert fair_choose.main(argv).splitlines() == [
        fair_choose.command("bpe_tied", (False, 3.6, 2e-3), seed) for seed in (1337, 1338)
    ]  # the edge only: the other arms' phase 2 waits
    for seed in (1337, 1338):
        write_run(tmp_path, f"bpe_tied-input_scale180-s{seed}", "bpe_tied", 180, seed, 6.05)  # the edge: worse, R 1 stays
    phase2 = fair_choose.main(argv).splitlines()
    assert len(phase2) == 28 and all("learning_rate=0.001" in c or "learning_rate=0.004" in c for c in phase2)
    assert "--arms bpe_tied --seeds 1337 --grid input_scale=50 --grid learning_rate=0.001" in "".join(phase2)
    for seed in (1337, 1338):  # phase 2: bpe_tied at lr 4e-3 much better; the R axis must not see it
        write_run(tmp_path, f"bpe_tied-input_scale50-lr4-s{seed}", "bpe_tied", 50, seed, 5.0, lr=4e-3)
    assert fair_choose.main(argv).splitlines() == phase2
    quoted = fair_choose.main(["--logs", str(tmp_path), "--axis", "R", "--commands", "--python", "/my venv/python"])
    assert quoted.startswith("'/my venv/python' -m scripts.run_study")
    (tmp_path / "kron-n0-m1-lr0.002-s1338" / "metrics.jsonl").unlink()  # a setting lacking a seed: that seed, first
    (tmp_path / "kron-n0-m1-lr0.002-s1338").rmdir()
    assert fair_choose.main(argv).splitlines() == [fair_choose.command("kron", (False, 1.0, 2e-3), 1338)]


def test_phase_one_as_phase1_sh_runs_it_is_the_grid_the_choosing_step_expects():
    """phase1.sh (bash, run first) and analysis.FAIR_PHASE1 (what the choosing step counts as
    missing) name the same 70 runs."""
    import subprocess

    listed = subprocess.run(
        ["bash", "results/study_fair/phase1.sh", "--list"],
        cwd=fair_choose.ROOT,
        env={"PYTHON": "python"},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = {
        fair_choose.command(arm, (norm, R, 2e-3), seed)
        for arm in analysis.FAIR_ARMS
        for norm, R in analysis.FAIR_PHASE1
        for seed in (1337, 1338)
    }
    assert set(listed.stdout.splitlines()) == expected and len(listed.stdout.splitlines()) == len(expected) == 70


def test_the_forecast_arm_is_the_best_table_at_its_setting_once_the_lr_axis_is_settled(tmp_path):
    """--forecast-arm (the forecast plan's amendment 3): the best table's chosen (norm, R, lr) as a
    run_forecast spec, the sqrt(d) point as input_rms=sqrt_d so each size gets its own multiplier;
    refused while an arm still lacks a learning-rate choice."""
    argv = ["--axis", "lr", "--logs", str(tmp_path), "--forecast-arm"]
    best = {"bpe_untied": (False, analysis.FAIR_SQRT_D["S"], 4e-3)}  # at the lr grid's top edge: settled only by its 8e-3 edge run
    write_phases_1_2(
        tmp_path,
        {"bpe_tied": 5.9, "bpe_untied": 5.5, "bpe_lowrank": 5.8},
        chosen=best,
        skip={("bpe_untied", False, analysis.FAIR_SQRT_D["S"], 8e-3)},
    )
    with pytest.raises(ValueError, match="has not chosen every arm's learning rate"):
        fair_choose.main(argv)
    for seed in (1337, 1338):
        write_run(tmp_path, f"bpe_untied-13.86-0.008-s{seed}", "bpe_untied", 13.86, seed, 5.6, lr=8e-3)
    assert fair_choose.main(argv) == "bpe_untied:input_rms=sqrt_d,learning_rate=0.004,min_lr=0.0004"

    def interior(norm, R, dev):  # chosen at lr 2e-3 between 1e-3 and 4e-3: no edge run
        return {"chosen": (norm, R, 2e-3), "settings": {(norm, R, lr): dev + (lr != 2e-3) for lr in (1e-3, 2e-3, 4e-3)}}

    choice = {"bpe_tied": interior(True, 1.0, 5.0), "bpe_untied": interior(False, 0.02, 6.0), "bpe_lowrank": interior(False, 0.02, 6.0)}
    assert fair_choose.forecast_arm(choice) == "bpe_tied:input_norm=True,input_rms=1"
    with pytest.raises(SystemExit):  # --forecast-arm reads the lr axis only
        fair_choose.main(["--axis", "R", "--logs", str(tmp_path), "--forecast-arm"])
