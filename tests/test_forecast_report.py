"""scripts/forecast_report.py: RESULTS.md's forecast section stays "not computed" until every run that
results/forecast/grid.json plans is kept; then forecast.json, the figure and the section are built from
the kept logs with the plan's decision rules. Logs here are synthetic, drawn from a known surface."""

import json
import math
import shutil

import numpy as np
import pytest

import forecast
from scripts import forecast_report
from scripts.run_forecast import grid_runs

GRID = "results/forecast/grid.json"
SURFACE = {"bpe_tied": 0.0, "kron": -0.1, "bpe_untied-input_scale50": -0.03}  # each arm's ln E shift


def loss_of(run, seed_noise):
    """A run's final test loss from L = E + A/N^0.34 + B/D^0.28 (Hoffmann et al.'s exponents, E raised)."""
    n = 12 * run["size"][0] * run["size"][1] ** 2
    theta = (math.log(1.8) + SURFACE[run["label"]], math.log(400.0), math.log(410.0), 0.34, 0.28)
    return n, float(forecast.predict(theta, n, run["steps"] * 4096)) * math.exp(seed_noise)


def write_log(folder, run, loss, n, extra_config=None):
    folder.mkdir(parents=True)
    scale = {"non_embedding_params": n, "tokens_per_step": 4096, "tokens": run["steps"] * 4096}
    records = [
        {"kind": "config", "config": {"max_iters": run["steps"], **(extra_config or {})}, "scale": scale},
        {"kind": "final", "step": run["steps"], "dev_loss": loss + 1.0, "test_loss": loss},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def results(tmp_path):
    """A results/ folder holding the real grid.json, a synthetic kept log for every grid run, and the
    fair study's (empty) log folder: it has chosen nothing, so F2's table is the x50 one."""
    (tmp_path / "forecast").mkdir()
    (tmp_path / "study_fair" / "runs").mkdir(parents=True)
    shutil.copy(GRID, tmp_path / "forecast" / "grid.json")
    rng = np.random.default_rng(0)
    for run in grid_runs(GRID):
        n, loss = loss_of(run, rng.normal(0, 1e-6))  # near-exact: the fit's behaviour under noise is tests/test_forecast.py's
        write_log(tmp_path / "forecast" / "runs" / f"{run['name']}-s{run['seed']}", run, loss, n)
    return tmp_path


def test_nothing_is_fitted_or_stated_until_every_grid_run_is_kept(results):
    name = "kron-L6d192h6-i977-s1338"
    shutil.rmtree(results / "forecast" / "runs" / name)
    assert forecast_report.missing_runs(str(results)) == [name]
    assert forecast_report.build(str(results)) is None
    assert not (results / "forecast" / "forecast.json").exists()
    assert forecast_report.section_markdown(None).startswith("Not computed yet")


TRUE_START = (math.log(1.8), math.log(400.0), math.log(410.0), 0.34, 0.28)


def test_the_complete_grid_gives_the_forecast_its_figure_and_the_plans_verdict(results, monkeypatch):
    # a few starts, one at the true surface: the fit's global search is tests/test_forecast.py's; this is the report's
    monkeypatch.setattr(forecast, "START_GRID", [TRUE_START] + forecast.START_GRID[::40])
    out = forecast_report.build(str(results), replicates=8)
    kept = json.loads((results / "forecast" / "forecast.json").read_text())
    assert kept == json.loads(json.dumps(out)) and (results / "forecast" / "forecast.png").stat().st_size > 10_000
    monkeypatch.setattr(forecast, "forecast", None)  # the same inputs again: the kept fit is reused, not refitted
    assert forecast_report.build(str(results), replicates=8) == kept
    calls, first = [], {(out[q]["ref"], out[q]["other"]): out[q] for q in ("F1", "F2")}
    # from here only whether build refits is tested: a refit returns the first fit instead of computing it again
    monkeypatch.setattr(forecast, "forecast", lambda points, ref, other, **k: calls.append(k["replicates"]) or first[(ref, other)])
    forecast_report.build(str(results), replicates=6)  # a setting of the fit changed: refitted, once per question
    assert len(calls) == 2
    log = results / "forecast" / "runs" / "kron-L2d64h2-i122-s1337" / "metrics.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    records[-1]["test_loss"] += 0.01
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    forecast_report.build(str(results), replicates=6)  # one run's loss changed: refitted
    forecast_report.build(str(results), replicates=6)  # nothing changed: reused
    assert calls == [6, 6, 6, 6]  # the new setting reaches the fit
    f1, f2 = out["F1"], out["F2"]
    assert (f1["ref"], f1["other"], f2["ref"]) == ("bpe_tied", "kron", "bpe_untied-input_scale50")
    assert f1["form"] == "shared exponents, all sizes" and len(f1["cells"]) == 48  # 4 sizes x 4 budgets x 3 arms
    assert f1["also"][0]["target"] == {"N": 85e6, "D": 920 * 32 * 1024}  # F3: config/gpu_study_124m.py's tokens
    true_gap = 1.8 * (1 - math.exp(-0.1))  # the arms' surfaces differ in E only
    assert f1["gap"] == pytest.approx(true_gap, abs=0.005)
    assert f2["gap"] == pytest.approx(1.8 * (math.exp(-0.03) - math.exp(-0.1)), abs=0.005)
    assert forecast_report.verdict(f1, f1["held_out"]["gap_mean_abs_error"]) == "stated"
    text = forecast_report.section_markdown(out)
    assert text.startswith(f"**Forecast: kron ahead at 124M**, bpe_tied − kron = {f1['gap']:+.3f} [{f1['interval95'][0]:+.3f}")
    assert "| F2: bpe_untied-input_scale50 − kron |" in text and "C1 (branch vs scratch) not kept." in text
    assert f"Held-out budget (D = {4096 * 977 / 1e6:.1f}M, descriptive, amendment 5): bpe_tied " in text
    assert "Largest residual (measured − fitted): " in text
    assert f"and the verdict it would give: F1 {forecast_report.interval_text(f1['first_plan_interval95'])}, verdict stated;" in text


def test_the_decision_rules_as_the_plan_fixes_them():
    fc = {"interval95": [0.01, 0.05]}
    assert forecast_report.verdict(fc, 0.021) == "unsupported"  # rule 1 comes first
    assert forecast_report.verdict(fc, 0.019) == "stated"
    assert forecast_report.verdict({"interval95": [-0.01, 0.05]}, 0.001) == "no sign"
    assert forecast_report.verdict(fc, None) == "unsupported"  # no held-out cell with both arms: rule 1 unmet
    f1 = {"gap": 0.03, "interval95": [0.01, 0.05], "p_other_better": 1.0}
    assert forecast_report.first_sentence(f1, "unsupported", None, "").startswith(
        "**The 124M forecast is unsupported:** no cell of the largest size has both arms, so rule 1 cannot be checked"
    )


def test_the_checks_compare_branch_with_scratch_and_wsd_with_cosine(results):
    runs = results / "forecast" / "runs"
    loss = {s: forecast.run_point(str(runs / f"bpe_tied-L4d128h4-i488-s{s}"))["loss"] for s in (1337, 1338)}
    run = {"steps": 488}
    assert forecast_report.checks(str(results / "forecast")) == {"C1": None, "C2": None}
    for s in (1337, 1338):
        write_log(runs / "scratch" / f"bpe_tied-L4d128h4-i488-s{s}", run, loss[s], 1.0)
        write_log(results / "forecast" / "cosine" / f"bpe_tied-lr_schedulecosine-max_iters488-s{s}", run, loss[s] + 0.01 * (s - 1336), 1.0)
    c = forecast_report.checks(str(results / "forecast"))
    assert c["C1"] == {"scratch_minus_branch": {"1337": 0.0, "1338": 0.0}, "seed_spread": abs(loss[1337] - loss[1338])}
    assert c["C2"]["cosine_minus_wsd"] == pytest.approx({"1337": 0.01, "1338": 0.02}) and c["C2"]["mean"] == pytest.approx(0.015)
    assert "scratch − branch seed 1337: +0.00e+00" in forecast_report.checks_text(c)


def test_a_diverged_run_settles_its_cell_its_branches_and_is_named(results, monkeypatch):
    """The plan: a diverged run is reported and its cell uses the other seed; a cell with neither is
    dropped and named. A stable run that diverged before a branch point takes that branch with it."""
    runs = results / "forecast" / "runs"
    for seed in (1337, 1338):  # both seeds of kron at the smallest size diverge at step 150 of 977
        stable = runs / f"kron-L2d64h2-i977-s{seed}" / "metrics.jsonl"
        config = stable.read_text().splitlines()[0]
        stable.write_text(config + "\n" + json.dumps({"kind": "diverged", "step": 150, "reason": "training loss is nan"}) + "\n")
        for steps in (244, 488):  # branches from steps 195 and 390: never started
            shutil.rmtree(runs / f"kron-L2d64h2-i{steps}-s{seed}")
    planned, diverged, skipped, missing = forecast_report.grid_status(str(results))
    assert missing == [] and diverged == ["kron-L2d64h2-i977-s1337", "kron-L2d64h2-i977-s1338"]
    assert sorted(skipped) == sorted(f"kron-L2d64h2-i{t}-s{s}" for t in (244, 488) for s in (1337, 1338))
    monkeypatch.setattr(forecast, "START_GRID", [TRUE_START])
    out = forecast_report.build(str(results), replicates=4)
    assert out["dropped_cells"] == ["kron-L2d64h2-i244", "kron-L2d64h2-i488", "kron-L2d64h2-i977"]  # i122 branched at 98: kept
    text = forecast_report.section_markdown(out)
    assert "Diverged (a cell keeps its other seed): kron-L2d64h2-i977-s1337, kron-L2d64h2-i977-s1338." in text
    assert "Dropped from the fit (no finished seed): kron-L2d64h2-i244, kron-L2d64h2-i488, kron-L2d64h2-i977." in text


def test_f2_is_whichever_learned_table_the_grid_declares(tmp_path):
    """F2's table is read from grid.json (the ×50 table now; the fair study's best once the plan's
    amendment 3 writes it there); a grid without exactly bpe_tied, kron and one table is refused."""
    grid = json.load(open(GRID))
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    assert forecast_report.questions(str(tmp_path)) == {"F1": ("bpe_tied", "kron"), "F2": ("bpe_untied-input_scale50", "kron")}
    grid["arms"][2] = "bpe_tied:input_norm=True,input_rms=sqrt_d,learning_rate=0.004,min_lr=0.0004"
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    f2 = forecast_report.questions(str(tmp_path))["F2"]
    assert f2 == ("bpe_tied-input_normTrue-input_rmssqrt_d-learning_rate0.004-min_lr0.0004", "kron")
    grid["arms"] = ["bpe_tied", "kron"]
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    with pytest.raises(ValueError, match="expected bpe_tied, kron and one learned table"):
        forecast_report.questions(str(tmp_path))


def write_fair_tables(logs, best):
    """Phases 1-2 of the fair study, every arm settled; the tables' dev at their chosen point {arm: (multiplier, dev)}
    (norm off, lr 2e-3), every other arm worse (6.0)."""
    from scripts import fair_choose
    from tests.test_fair_choose import write_phases_1_2

    chosen = {arm: (False, round(m * 0.02, 6), 2e-3) for arm, (m, _) in best.items()}
    write_phases_1_2(logs, {arm: dev for arm, (_, dev) in best.items()}, chosen=chosen)
    assert fair_choose.settled(fair_choose.choice_from(str(logs), "lr"), "lr")


def test_before_the_first_run_the_third_arm_must_be_the_fair_studys_best_table(tmp_path):
    """run.sh's guard (amendments 3-4): the x50 table while the fair study has not chosen; otherwise its
    best table at its setting, which must be in grid.json before the first grid run; once one is kept
    the arms stand (a stray file or the scratch checks do not count). Missing fair-study logs stop it.
    RESULTS.md's F2 then says which table and why."""
    (tmp_path / "forecast").mkdir()
    grid = json.load(open(GRID))
    (tmp_path / "forecast" / "grid.json").write_text(json.dumps(grid))
    with pytest.raises(ValueError, match="not a folder of kept run logs"):  # fails closed, not "not chosen"
        forecast_report.before_first_run(str(tmp_path))
    logs = tmp_path / "study_fair" / "runs"
    logs.mkdir(parents=True)
    assert forecast_report.before_first_run(str(tmp_path)).endswith("the fair study has not chosen every arm's learning rate")
    write_fair_tables(logs, {"bpe_tied": (1, 5.9), "bpe_untied": (13.86, 5.5), "bpe_lowrank": (1, 5.8)})  # bpe_untied at sqrt(d)
    (tmp_path / "forecast" / "runs" / "scratch" / "bpe_tied-L4d128h4-i488-s1337").mkdir(parents=True)
    (tmp_path / "forecast" / "runs" / ".gitkeep").write_text("")
    with pytest.raises(ValueError, match="asks for 'bpe_untied:input_rms=sqrt_d'.*write it into grid.json and commit"):
        forecast_report.main(["--before-first-run", "--results", str(tmp_path)])  # what run.sh calls
    record = forecast_report.third_arm_record(str(tmp_path))  # as if the grid had started before the fair study chose
    assert record == {
        "arm": "bpe_untied:input_scale=50",
        "why": "the fair study had not chosen every arm's learning rate when the grid started",
        "exploratory": False,
    }
    assert forecast_report.third_arm_text(record) == (
        "F2's table is bpe_untied:input_scale=50: the fair study had not chosen every arm's learning rate when the grid "
        "started (results/forecast/PLAN.md, amendments 3-4)."
    )
    grid["arms"][2] = "bpe_untied:input_rms=sqrt_d"
    (tmp_path / "forecast" / "grid.json").write_text(json.dumps(grid))
    assert (
        forecast_report.before_first_run(str(tmp_path))
        == "third arm bpe_untied:input_rms=sqrt_d: the fair study's best table at its chosen setting"
    )
    record = forecast_report.third_arm_record(str(tmp_path))
    assert forecast_report.third_arm_text(record) == (
        "F2's table is bpe_untied:input_rms=sqrt_d: the fair study's best table at its chosen setting "
        "(results/forecast/PLAN.md, amendments 3-4). F2 is exploratory: an amendment set its arm."
    )
    grid["arms"][2] = "bpe_lowrank:input_rms=1"  # not what the amendments ask for: said so, and exploratory
    (tmp_path / "forecast" / "grid.json").write_text(json.dumps(grid))
    record = forecast_report.third_arm_record(str(tmp_path))
    assert record["exploratory"] and record["why"].endswith("not what the plan's amendments ask for, bpe_untied:input_rms=sqrt_d")
    write_log(tmp_path / "forecast" / "runs" / "bpe_tied-L2d64h2-i977-s1337", {"steps": 977}, 5.0, 1.0)
    assert forecast_report.before_first_run(str(tmp_path)) == "1 grid runs kept: the grid's arms stand"


def test_the_best_table_as_bpe_tied_stands_keeps_the_x50_table(tmp_path):
    """Amendment 4: bpe_tied at its own setting (norm off, R 0.02, lr 2e-3) is F1's arm already."""
    (tmp_path / "forecast").mkdir()
    shutil.copy(GRID, tmp_path / "forecast" / "grid.json")
    write_fair_tables(tmp_path / "study_fair" / "runs", {"bpe_tied": (1, 5.0), "bpe_untied": (1, 5.5), "bpe_lowrank": (1, 5.8)})
    assert forecast_report.before_first_run(str(tmp_path)).startswith("third arm bpe_untied:input_scale=50")
    record = forecast_report.third_arm_record(str(tmp_path))
    assert record == {
        "arm": "bpe_untied:input_scale=50",
        "why": "the fair study's best table is bpe_tied as it stands, already F1's arm",
        "exploratory": False,
    }
