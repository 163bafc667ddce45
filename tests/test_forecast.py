"""forecast.py on synthetic grids drawn from a known surface L = E + A/N^alpha + B/D^beta with noise:
the fit recovers the surface, the held-out forecast of the largest size is close, the gap's interval
covers the true gap, and contains zero when the arms do not differ. Run folders are read as
scripts/run_forecast.py names them."""

import json
import math

import numpy as np
import pytest

import forecast

TRUE = (math.log(1.8), math.log(400.0), math.log(410.0), 0.34, 0.28)  # Hoffmann et al.'s surface, E raised
SIZES = [1e6, 3e6, 1e7, 3e7, 1e8]
BUDGETS = [1e8, 3e8, 1e9, 3e9]


def synthetic(log_e_shift, noise=0.003, seed=0):
    """Points of two arms 'ref' and 'other' (other's E is e^shift times ref's), 3 seeds per cell,
    multiplicative log-normal noise."""
    rng, points = np.random.default_rng(seed), []
    for arm, shift in (("ref", 0.0), ("other", log_e_shift)):
        theta = (TRUE[0] + shift,) + TRUE[1:]
        for i, n in enumerate(SIZES):
            for d in BUDGETS:
                for s in (1, 2, 3):
                    loss = float(forecast.predict(theta, n, d)) * math.exp(rng.normal(0, noise))
                    points.append({"arm": arm, "size": (i + 1, 64, 2), "seed": s, "n": n, "d": d, "loss": loss, "path": ""})
    return points


def test_the_fit_recovers_the_surface_and_forecasts_the_held_out_size():
    points = synthetic(0.0)
    thetas = forecast.fit(points, ["ref", "other"])
    for theta in thetas.values():
        p = forecast.params_of(theta)
        assert p["alpha"] == pytest.approx(0.34, abs=0.03) and p["beta"] == pytest.approx(0.28, abs=0.03)
        assert p["E"] == pytest.approx(1.8, rel=0.1)
        for n, d in [(3e7, 1e9), forecast.TARGET]:
            assert forecast.predict(theta, n, d) == pytest.approx(forecast.predict(TRUE, n, d), rel=0.01)
    shared = forecast.fit(points, ["ref", "other"], shared=True)
    assert shared["ref"][3:].tolist() == shared["other"][3:].tolist()
    assert forecast.params_of(shared["ref"])["alpha"] == pytest.approx(0.34, abs=0.03)
    for shared_exponents in (False, True):  # the plan's main form shares them
        held = forecast.held_out(points, ["ref", "other"], shared=shared_exponents)
        assert held["N"] == 1e8 and len(held["cells"]) == 2 * len(BUDGETS)
        assert held["mean_abs_error"] < 0.03 and held["max_abs_error"] < 0.06  # nats, on losses of 3.4 to 5


def test_the_interval_covers_the_true_gap():
    out = forecast.forecast(synthetic(-0.02), "ref", "other", replicates=20)
    true_gap = 1.8 * (1 - math.exp(-0.02))  # E_ref - E_other: the other terms are the same
    assert out["gap"] == pytest.approx(true_gap, abs=0.01)
    lo, hi = out["interval95"]
    assert lo < true_gap < hi and lo > 0 and out["p_other_better"] == 1.0
    assert set(out["forms"]) == {
        "per-arm exponents, all sizes",
        "shared exponents, all sizes",
        "per-arm exponents, without the smallest size",
        "shared exponents, without the smallest size",
    }
    assert len(out["cells"]) == 2 * len(SIZES) * len(BUDGETS) and out["cells"][0]["seeds"] == [1, 2, 3]


def test_no_true_gap_gives_an_interval_containing_zero():
    out = forecast.forecast(synthetic(0.0, seed=1), "ref", "other", replicates=20)
    lo, hi = out["interval95"]
    assert lo < 0 < hi and 0 < out["p_other_better"] < 1


def drawn_seeds(boot):
    """{(size, D): {arm: the seeds drawn, repeats kept, in order}}."""
    out = {}
    for p in boot:
        out.setdefault((p["size"], p["d"]), {}).setdefault(p["arm"], []).append(p["seed"])
    return out


def test_resampling_draws_a_sizes_seeds_once_for_all_its_budgets_and_arms():
    """Amendment 5: one draw per size (its budgets share each seed's stable run, its arms each seed's
    initialisation); the first plan's per="cell" draws each budget apart, still paired across arms."""
    points = synthetic(0.0)
    for per in ("size", "cell"):
        by_size = {}
        for rep in range(20):
            boot = forecast.resample(points, np.random.default_rng(rep), per)
            assert len(boot) == len(points)
            for (size, d), by_arm in drawn_seeds(boot).items():
                assert by_arm["ref"] == by_arm["other"]  # paired by seed
                by_size.setdefault((rep, size), set()).add(tuple(by_arm["ref"]))
        one_draw = all(len(draws) == 1 for draws in by_size.values())
        assert one_draw == (per == "size")  # per cell, some size's budgets got different draws


def test_a_cell_missing_a_seed_takes_the_drawn_seeds_it_has():
    """A diverged run leaves its cell one seed short: the size's draw still pairs the other arm's seeds,
    and a cell that has none of the drawn seeds keeps the one it has."""
    points = [p for p in synthetic(0.0) if not (p["arm"] == "other" and p["size"][0] == 1 and p["seed"] == 3)]
    for rep in range(30):
        boot = forecast.resample(points, np.random.default_rng(rep))
        for (size, d), by_arm in drawn_seeds(boot).items():
            if size[0] == 1:
                assert by_arm["other"] == [s for s in by_arm["ref"] if s != 3] or (set(by_arm["ref"]) == {3} and by_arm["other"] == [1, 2])
            else:
                assert by_arm["other"] == by_arm["ref"]


def test_each_replicate_is_widened_about_its_own_forms_full_data_gap(monkeypatch):
    monkeypatch.setattr(forecast, "START_GRID", forecast.START_GRID[::40])  # the wiring, not the global search
    points = synthetic(-0.02)
    points = [p for p in points if p["seed"] != 3]  # two seeds a size, as the grid
    fits = {name: (sh, pts, forecast.fit(pts, ["ref", "other"], sh)) for name, (sh, pts) in forecast.forms(points).items()}
    calls = []
    monkeypatch.setattr(forecast, "widen", lambda g, centre, n: calls.append((centre, n)) or g)
    forecast.bootstrap(points, fits, ["ref", "other"], "ref", "other", [forecast.TARGET], 8, 0, "size")
    centres = [forecast.gap_at(t, "ref", "other", *forecast.TARGET) for _, _, t in fits.values()]
    assert calls == [(centres[r % len(fits)], 2) for r in range(8)]
    calls.clear()
    forecast.bootstrap(points, fits, ["ref", "other"], "ref", "other", [forecast.TARGET], 4, 0, "cell")
    assert calls == []  # the first plan's interval is not widened


def test_a_replicate_is_widened_about_its_forms_gap_for_two_seeds():
    assert forecast.widen(1.0, 0.5, 2) == pytest.approx(0.5 + math.sqrt(2) * 0.5)
    assert forecast.widen(1.0, 0.5, 5) == pytest.approx(0.5 + math.sqrt(5 / 4) * 0.5)
    assert forecast.widen(1.0, 0.5, 1) == 1.0  # one seed: nothing to resample, nothing to widen


def test_residuals_bounds_and_both_held_out_checks_are_reported(monkeypatch):
    monkeypatch.setattr(forecast, "START_GRID", [TRUE] + forecast.START_GRID[::40])  # what is reported, not the search
    points = synthetic(-0.02)
    out = forecast.forecast(points, "ref", "other", replicates=8, shared=True)
    for c in out["cells"]:
        assert c["residual"] == pytest.approx(c["mean_loss"] - c["fitted"]) and abs(c["residual"]) < 0.03
    assert out["at_bounds"] == {"ref": [], "other": []} and 0 <= out["bootstrap"]["share_on_a_bound"] <= 1
    assert out["bootstrap"]["per"] == "size" and len(out["first_plan_interval95"]) == 2
    size, budget = out["held_out"], out["held_out_budget"]
    assert size["N"] == max(SIZES) and budget["D"] == max(BUDGETS)
    assert {tuple(c["size"]) for c in size["cells"]} == {(len(SIZES), 64, 2)} and {c["D"] for c in budget["cells"]} == {max(BUDGETS)}
    assert len(budget["cells"]) == 2 * len(SIZES) and len(budget["gap_errors"]) == len(SIZES)
    for held in (size, budget):
        assert set(held["arm_mean_abs_error"]) == {"ref", "other"} and held["mean_abs_error"] < 0.03
        for arm, e in held["arm_mean_abs_error"].items():
            assert e == pytest.approx(np.mean([abs(c["error"]) for c in held["cells"] if c["arm"] == arm]))
    assert forecast.at_bounds(np.array([50.0, 0.0, 0.0, 0.3, 3.0])) == ["E", "beta"]


def write_runs(root, points):
    for p in points:
        steps = int(p["d"] / 1000)
        folder = root / f"{p['arm']}-L{p['size'][0]}d{p['size'][1]}h{p['size'][2]}-i{steps}-s{p['seed']}"
        folder.mkdir()
        scale = {"non_embedding_params": p["n"], "tokens_per_step": 1000, "tokens": p["d"]}
        records = [
            {"kind": "config", "config": {"max_iters": steps}, "scale": scale},
            {"kind": "eval", "step": steps, "val_loss": p["loss"] - (p["arm"] == "ref"), "tokens": p["d"]},  # not the metric
            {"kind": "final", "step": steps, "dev_loss": p["loss"] + 2.0, "test_loss": p["loss"]},
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_the_command_reads_the_grid_runs_and_writes_forecast_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(forecast, "START_GRID", [TRUE] + forecast.START_GRID[::40])  # the command, not the search
    runs, out = tmp_path / "runs", tmp_path / "forecast.json"
    runs.mkdir()
    write_runs(runs, synthetic(-0.02))
    unfinished = runs / "other-L1d64h2-i77-s9"
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text(json.dumps({"kind": "config", "config": {"max_iters": 77}, "scale": {}}) + "\n")
    (runs / "scratch").mkdir()  # the from-scratch checks live there and are not grid cells
    forecast.main([str(runs), "--ref", "ref", "--other", "other", "--replicates", "8", "--also", "85e6", "30.1e6", "--out", str(out)])
    got = json.loads(out.read_text())
    assert got["target"] == {"N": 85e6, "D": 2.5e9} and got["gap"] > 0 and got["bootstrap"]["replicates"] == 8
    assert got["form"] == "shared exponents, all sizes"  # the plan's main form is the command's default
    assert got["also"][0]["target"] == {"N": 85e6, "D": 30.1e6} and len(got["also"][0]["interval95"]) == 2
    held = got["held_out"]
    assert held["gap_mean_abs_error"] == pytest.approx(sum(abs(e) for e in held["gap_errors"].values()) / len(held["gap_errors"]))
    assert "left out" in capsys.readouterr().out
    with pytest.raises(ValueError, match="arm 'kron' has no finished runs; arms found: \\['other', 'ref'\\]"):
        forecast.main([str(runs), "--ref", "ref", "--other", "kron"])


def test_a_run_whose_log_ends_diverged_or_whose_final_loss_is_not_finite_is_no_point(tmp_path):
    scale = {"non_embedding_params": 1e6, "tokens_per_step": 1000, "tokens": 1e6}
    config = {"kind": "config", "config": {"max_iters": 1000}, "scale": scale}
    for name, tail in [
        ("ok", []),
        ("diverged", [{"kind": "diverged", "step": 1000, "reason": "final evaluation loss is nan"}]),
    ]:
        (tmp_path / name).mkdir()
        final = {"kind": "final", "step": 1000, "dev_loss": 4.0, "test_loss": 4.0}
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [config, final, *tail]))
    assert forecast.run_point(str(tmp_path / "ok")) == {"n": 1e6, "d": 1e6, "loss": 4.0}
    assert forecast.run_point(str(tmp_path / "diverged")) is None
    (tmp_path / "nan").mkdir()
    nan = {"kind": "final", "step": 1000, "dev_loss": float("nan"), "test_loss": float("nan")}
    (tmp_path / "nan" / "metrics.jsonl").write_text(json.dumps(config) + "\n" + json.dumps(nan) + "\n")
    assert forecast.run_point(str(tmp_path / "nan")) is None
