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
SURFACE = {"bpe_tied": 0.0, "kron": -0.03, "bpe_untied-input_scale50": -0.01}  # each arm's ln E shift


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
    """A results/ folder holding the real grid.json and a synthetic kept log for every grid run."""
    (tmp_path / "forecast").mkdir()
    shutil.copy(GRID, tmp_path / "forecast" / "grid.json")
    rng = np.random.default_rng(0)
    for run in grid_runs(GRID):
        n, loss = loss_of(run, rng.normal(0, 0.0005))
        write_log(tmp_path / "forecast" / "runs" / f"{run['name']}-s{run['seed']}", run, loss, n)
    return tmp_path


def test_nothing_is_fitted_or_stated_until_every_grid_run_is_kept(results):
    name = "kron-L6d192h6-i977-s1338"
    shutil.rmtree(results / "forecast" / "runs" / name)
    assert forecast_report.missing_runs(str(results)) == [name]
    assert forecast_report.build(str(results)) is None
    assert not (results / "forecast" / "forecast.json").exists()
    assert forecast_report.section_markdown(None).startswith("Not computed yet")


def test_the_complete_grid_gives_the_forecast_its_figure_and_the_plans_verdict(results, monkeypatch):
    monkeypatch.setattr(forecast, "START_GRID", forecast.START_GRID[::20])  # the fit's own tests use every start
    out = forecast_report.build(str(results), replicates=12)
    kept = json.loads((results / "forecast" / "forecast.json").read_text())
    assert kept == json.loads(json.dumps(out)) and (results / "forecast" / "forecast.png").stat().st_size > 10_000
    monkeypatch.setattr(forecast, "forecast", None)  # the same inputs again: the kept fit is reused, not refitted
    assert forecast_report.build(str(results), replicates=12) == kept
    f1, f2 = out["F1"], out["F2"]
    assert (f1["ref"], f1["other"], f2["ref"]) == ("bpe_tied", "kron", "bpe_untied-input_scale50")
    assert f1["form"] == "shared exponents, all sizes" and len(f1["cells"]) == 48  # 4 sizes x 4 budgets x 3 arms
    assert f1["gap"] > 0 and f2["gap"] > 0 and f1["also"][0]["target"] == {"N": 85e6, "D": 30.1e6}  # kron's E is lowest
    rule = forecast_report.verdict(f1, f1["held_out"]["gap_mean_abs_error"])
    text = forecast_report.section_markdown(out)
    opening = {"stated": "**Forecast: kron ahead", "no sign": "**No sign forecast", "unsupported": "**The 124M forecast is unsupported"}
    assert text.startswith(opening[rule]) and f"{f1['gap']:+.3f} [{f1['interval95'][0]:+.3f}" in text.splitlines()[0]
    assert "| F2: bpe_untied-input_scale50 − kron |" in text and "C1 (branch vs scratch) not kept." in text


def test_the_decision_rules_as_the_plan_fixes_them():
    fc = {"interval95": [0.01, 0.05]}
    assert forecast_report.verdict(fc, 0.021) == "unsupported"  # rule 1 comes first
    assert forecast_report.verdict(fc, 0.019) == "stated"
    assert forecast_report.verdict({"interval95": [-0.01, 0.05]}, 0.001) == "no sign"


def test_the_checks_compare_branch_with_scratch_and_wsd_with_cosine(results):
    runs = results / "forecast" / "runs"
    loss = {s: forecast_report.final_loss(str(runs / f"bpe_tied-L4d128h4-i488-s{s}")) for s in (1337, 1338)}
    run = {"steps": 488}
    assert forecast_report.checks(str(results / "forecast")) == {"C1": None, "C2": None}
    for s in (1337, 1338):
        write_log(runs / "scratch" / f"bpe_tied-L4d128h4-i488-s{s}", run, loss[s], 1.0)
        write_log(results / "forecast" / "cosine" / f"bpe_tied-lr_schedulecosine-max_iters488-s{s}", run, loss[s] + 0.01 * (s - 1336), 1.0)
    c = forecast_report.checks(str(results / "forecast"))
    assert c["C1"] == {"scratch_minus_branch": {"1337": 0.0, "1338": 0.0}, "seed_spread": abs(loss[1337] - loss[1338])}
    assert c["C2"]["cosine_minus_wsd"] == pytest.approx({"1337": 0.01, "1338": 0.02}) and c["C2"]["mean"] == pytest.approx(0.015)
    assert "scratch − branch seed 1337: +0.00e+00" in forecast_report.checks_text(c)
