"""scripts/run_forecast.py: the plan (budgets to steps, branch points, cost), and a tiny grid run end
to end: stable run, branch, from-scratch check, kept logs, a rerun that skips everything."""

import json
import os
import shutil

import pytest

from runlog import read_metrics
from scripts import run_forecast
from tests.conftest import tiny_config

KEYS = ("data_dir", "n_layer", "n_head", "n_embd", "block_size", "batch_size", "eval_iters", "warmup_iters", "learning_rate", "min_lr")


def write_base(data_dir, path, **kw):
    cfg = {**tiny_config(data_dir, "unused"), "eval_interval": 3, "cooldown_frac": 0.25, "dropout": 0.1, **kw}
    path.write_text("\n".join(f"{k} = {cfg[k]!r}" for k in KEYS + ("eval_interval", "cooldown_frac", "dropout")) + "\n")
    return str(path)


def test_plan_lists_stable_runs_branches_and_their_cost(data_dir, tmp_path, capsys):
    base = write_base(data_dir, tmp_path / "base.py")  # 4 x 32 = 128 tokens a step
    argv = ["--base", base, "--sizes", "1x32x2", "2x64x2", "--arms", "kron", "bpe_tied:input_scale=2", "--seeds", "1", "2"]
    runs = run_forecast.main(argv + ["--budgets", "1024", "2048", "1500", "--out-root", str(tmp_path / "f"), "--list"])
    assert len(runs) == 2 * 2 * 2 * 3
    first = [r for r in runs if r["size"] == (1, 32, 2) and r["seed"] == 1 and r["label"] == "kron"]
    assert [(r["role"], r["steps"], r["branch_step"], r["cost"]) for r in first] == [
        ("stable", 16, None, 16),
        ("branch", 8, 6, 2),  # round(0.25 * 8) = 2 cool-down steps from 6
        ("branch", 12, 9, 3),  # 1500 tokens: round(11.7) = 12 steps
    ]
    assert first[0]["overrides"]["keep_ckpt_steps"] == [6, 9] and first[0]["overrides"]["lr_schedule"] == "wsd"
    assert first[1]["overrides"]["init_from"] == f"branch:{tmp_path / 'f' / 'kron-L1d32h2-i16-s1' / 'ckpt_step6.pt'}"
    assert {r["name"] for r in runs if r["label"] != "kron"} >= {"bpe_tied-input_scale2-L2d64h2-i8"}
    out = capsys.readouterr().out
    assert "kron-L1d32h2-i8-s1: 8 steps = 1.02e+03 tokens, branch from step 6, trains 2 steps" in out
    assert "24 runs for 8 (size, arm, seed): 168 steps (2.15e+04 tokens) in all, 21 steps each" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "4x128"], "--sizes '4x128': expected n_layer x n_embd x n_head"),
        (["--arms", "kronn"], "unknown arm 'kronn'"),
        (["--arms", "kron:max_iters=5"], "expected ARM\\[:key=value,...\\] with settings other than"),
        (["--budgets", "1024", "1050"], "these are \\[8, 8\\] steps; expected distinct budgets"),
        (["--budgets", "-5"], "--budgets '-5': expected a number of training tokens > 0"),
        (["--from-scratch-check", "2048"], "16 steps is not one of the branched budgets \\(\\[8\\] steps\\)"),
        (["--arms", "bpe_tied:input_rms=big"], "input_rms 'big': expected a number > 0 or sqrt_d"),
        (["--arms", "bpe_tied:input_rms=1,input_scale=50"], "give input_rms or input_scale, not both"),
    ],
)
def test_bad_grids_are_refused_naming_the_value(data_dir, tmp_path, argv, message):
    base = write_base(data_dir, tmp_path / "base.py")
    defaults = {"--sizes": ["1x32x2"], "--budgets": ["1024", "2048"]}
    for flag, values in defaults.items():
        if flag not in argv:
            argv = argv + [flag, *values]
    with pytest.raises(ValueError, match=message):
        run_forecast.main(["--base", base, "--out-root", str(tmp_path / "f"), "--list"] + argv)


def test_a_grid_file_plans_what_its_flags_would_and_flags_override_it(data_dir, tmp_path):
    base = write_base(data_dir, tmp_path / "base.py")
    grid = {"base": base, "sizes": ["1x32x2"], "arms": ["kron", "bpe_tied"], "seeds": [1, 2], "budgets": ["1024", "2048"]}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    flags = ["--base", base, "--sizes", "1x32x2", "--arms", "kron", "bpe_tied", "--seeds", "1", "2", "--budgets", "1024", "2048"]
    out = ["--out-root", str(tmp_path / "f"), "--list"]
    by_file = run_forecast.main(["--grid", str(tmp_path / "grid.json")] + out)
    assert by_file == run_forecast.main(flags + out) == run_forecast.grid_runs(str(tmp_path / "grid.json"), str(tmp_path / "f"))
    assert len(run_forecast.main(["--grid", str(tmp_path / "grid.json"), "--seeds", "7"] + out)) == 2 * 2
    for bad, message in [({"size": []}, "unknown setting 'size'"), ({"sizes": "1x32x2"}, "sizes '1x32x2': expected a JSON list")]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            run_forecast.main(["--grid", str(tmp_path / "bad.json")] + out)


def test_input_rms_gives_each_size_its_own_multiplier(data_dir, tmp_path):
    """An arm asked for by the RMS it feeds the first block: sqrt_d is 0.02 sqrt(d) (x8 at d 64, x13.86
    at d 192 on a 0.02 table), a number is divided by the arm's own initial RMS (1 with the norm on)."""
    base = write_base(data_dir, tmp_path / "base.py")
    arms = ["bpe_untied:input_rms=sqrt_d", "bpe_tied:input_norm=True,input_rms=2", "kron:input_rms=0.5"]
    argv = ["--base", base, "--sizes", "1x64x2", "1x192x2", "--arms", *arms, "--seeds", "1", "--budgets", "1024", "2048"]
    runs = run_forecast.main(argv + ["--out-root", str(tmp_path / "f"), "--list"])
    scale = {(r["label"], r["size"][1]): r["overrides"]["input_scale"] for r in runs}
    assert scale == {
        ("bpe_untied-input_rmssqrt_d", 64): "8",
        ("bpe_untied-input_rmssqrt_d", 192): "13.86",
        ("bpe_tied-input_normTrue-input_rms2", 64): "2",
        ("bpe_tied-input_normTrue-input_rms2", 192): "2",
        ("kron-input_rms0.5", 64): "0.5",  # kron's code is z-normalised: its own RMS is 1
        ("kron-input_rms0.5", 192): "0.5",
    }
    assert not any("input_rms" in r["overrides"] for r in runs)  # train.py gets only the multiplier
    for elsewhere in ("--input_norm=True", "--input_scale=2"):  # per_size cannot see these: refused
        with pytest.raises(ValueError, match="give input_norm in the arm"):
            run_forecast.main(argv + ["--out-root", str(tmp_path / "f"), "--list", "--", elsewhere])


def test_the_checks_run_at_the_grids_checks_cell(data_dir, tmp_path, capsys):
    """--check scratch plans the checks cell with its from-scratch run (C1), --check cosine the same
    arm, size and budget on the cosine schedule through run_study (C2); both read the cell from the
    grid file alone, and a cell outside the grid is refused."""
    base = write_base(data_dir, tmp_path / "base.py")
    grid = {"base": base, "sizes": ["1x32x2", "1x64x2"], "arms": ["bpe_tied", "kron"], "seeds": [1, 2], "budgets": ["1024", "2048"]}
    grid["checks"] = {"arm": "kron", "size": "1x64x2", "budget": "1024"}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    out = ["--out-root", str(tmp_path / "f")]
    c1 = run_forecast.main(["--grid", str(tmp_path / "grid.json"), "--check", "scratch", "--list"] + out)
    flags = ["--base", base, "--sizes", "1x64x2", "--arms", "kron", "--seeds", "1", "2", "--budgets", "1024", "2048"]
    assert c1 == run_forecast.main(flags + ["--from-scratch-check", "1024", "--list"] + out)
    assert [r["name"] for r in c1 if r["role"] == "scratch"] == ["kron-L1d64h2-i8"] * 2
    c2 = run_forecast.main(["--grid", str(tmp_path / "grid.json"), "--check", "cosine", "--dry-run"] + out)
    assert [(r["name"], r["seed"]) for r in c2] == [("kron-lr_schedulecosine-max_iters8", 1), ("kron-lr_schedulecosine-max_iters8", 2)]
    plan = run_forecast.check_plan(str(tmp_path / "grid.json"))
    assert (plan["c1_name"], plan["c2_name"]) == ("kron-L1d64h2-i8", "kron-lr_schedulecosine-max_iters8")
    assert plan["c2_extra"] == ["--n_layer=1", "--n_embd=64", "--n_head=2"]  # the size, outside the group name
    bad = [({"size": "2x64x2"}, "expected an arm, size and budget of the grid"), ({"budget": "2048"}, "largest budget has no branch")]
    for cell, message in bad:
        (tmp_path / "bad.json").write_text(json.dumps({**grid, "checks": {**grid["checks"], **cell}}))
        with pytest.raises(ValueError, match=message):
            run_forecast.check_plan(str(tmp_path / "bad.json"))
    (tmp_path / "bad.json").write_text(json.dumps({**grid, "checks": ["kron"]}))
    with pytest.raises(ValueError, match="checks \\['kron'\\]: expected an object with arm, size, budget"):
        run_forecast.check_plan(str(tmp_path / "bad.json"))
    for flag, value in (("--sizes", "1x32x2"), ("--budgets", "4096"), ("--base", base)):
        with pytest.raises(ValueError, match=f"--check runs at the grid file's checks cell: {flag} would be ignored"):
            run_forecast.main(["--grid", str(tmp_path / "grid.json"), "--check", "cosine", flag, value, "--list"] + out)


def test_the_forecast_studys_grid_file_is_its_plans_grid():
    runs = run_forecast.grid_runs("results/forecast/grid.json")  # PLAN.md: 96 runs, 27,552 steps
    assert len(runs) == 96 and sum(r["cost"] for r in runs) == 27_552


def test_an_extra_override_of_a_planned_setting_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_forecast.main(["--base", "config/study_cpu.py", "--sizes", "1x32", "--budgets", "1e4", "--out-root", "x", "--max_iters=3"])
    assert "extra train.py overrides are --key=value, of settings other than" in capsys.readouterr().err


def losses(out_dir):
    return {r["step"]: r["loss"] for r in read_metrics(str(out_dir), "train")}


@pytest.mark.slow
def test_a_tiny_grid_runs_resumably_and_its_branch_matches_the_scratch_run(data_dir, tmp_path, monkeypatch, capsys):
    """The grid as run.sh runs it (from the repository root, a relative --out-root): the branch equals the
    scratch run, a rerun trains nothing, and after the run folders are lost (a new clone: kept logs only)
    with the branch not kept, the stable run is trained again for its checkpoint, its kept log untouched."""
    base = write_base(data_dir, tmp_path / "base.py")
    root, kept = tmp_path / "f", tmp_path / "kept"
    monkeypatch.chdir(run_forecast.run_study.ROOT)
    argv = ["--base", base, "--sizes", "1x32x2", "--arms", "kron", "--seeds", "1", "--budgets", "1024", "1536"]
    argv += ["--out-root", os.path.relpath(root), "--keep-logs", str(kept), "--from-scratch-check", "1024"]
    planned = run_forecast.main(argv + ["--dry-run"])
    assert [(r["role"], r["state"]) for r in planned] == [("stable", "new"), ("branch", "new"), ("scratch", "new")]
    runs = run_forecast.main(argv)
    assert [r["state"] for r in runs] == ["finished"] * 3
    stable, branch, scratch = (r["out_dir"] for r in runs)
    assert os.path.isfile(os.path.join(stable, "ckpt_step6.pt"))  # 8 steps: round(0.25 * 8) = 2 from step 6
    assert sorted(losses(branch)) == [6, 7]
    assert [losses(branch)[s] for s in (6, 7)] == [losses(scratch)[s] for s in (6, 7)]
    config = read_metrics(branch, "config")[-1]
    assert config["scale"]["tokens"] == 1024 and config["branched_from"]["step"] == 6
    assert sorted(os.listdir(kept)) == ["kron-L1d32h2-i12-s1", "kron-L1d32h2-i8-s1", "scratch"]
    assert os.listdir(kept / "scratch") == ["kron-L1d32h2-i8-s1"]
    mtimes = [os.path.getmtime(os.path.join(r["out_dir"], "ckpt.pt")) for r in runs]
    again = run_forecast.main(argv)
    assert [r["state"] for r in again] == ["finished"] * 3
    assert [os.path.getmtime(os.path.join(r["out_dir"], "ckpt.pt")) for r in runs] == mtimes
    assert [r["role"] for r in json.load(open(root / "forecast_runs.json"))["runs"]] == ["stable", "branch", "scratch"]

    stable_log, branch_losses = (kept / "kron-L1d32h2-i12-s1" / "metrics.jsonl").read_bytes(), losses(branch)
    shutil.rmtree(root)
    shutil.rmtree(kept / "kron-L1d32h2-i8-s1")
    capsys.readouterr()
    planned = run_forecast.main(argv + ["--dry-run"])
    assert [r["state"] for r in planned] == ["redo", "new", "finished"]
    redone = run_forecast.main(argv)
    assert [r["state"] for r in redone] == ["finished"] * 3
    assert (kept / "kron-L1d32h2-i12-s1" / "metrics.jsonl").read_bytes() == stable_log  # the kept log stays as it was
    assert losses(redone[1]["out_dir"]) == branch_losses  # the branch from the redone checkpoint is the same run
    assert "the redone evaluations differ from it by at most 0.00e+00 nats" in capsys.readouterr().out
    assert os.path.isfile(kept / "kron-L1d32h2-i8-s1" / "metrics.jsonl")
    again = run_forecast.main(argv)  # the redone run's folder log is finished too: the kept one still stays
    assert [r["state"] for r in again] == ["finished"] * 3 and "] start " not in capsys.readouterr().out
    assert (kept / "kron-L1d32h2-i12-s1" / "metrics.jsonl").read_bytes() == stable_log

    stable_dir = redone[0]["out_dir"]  # a redo interrupted after its first checkpoint, the branch not kept again
    meta = json.loads(open(os.path.join(stable_dir, "ckpt.json")).read())
    open(os.path.join(stable_dir, "ckpt.json"), "w").write(json.dumps({**meta, "finished": False}))
    os.remove(os.path.join(stable_dir, "ckpt_step6.pt"))
    shutil.rmtree(kept / "kron-L1d32h2-i8-s1")
    shutil.rmtree(redone[1]["out_dir"])
    assert [r["state"] for r in run_forecast.main(argv + ["--dry-run"])] == ["redo", "new", "finished"]


@pytest.mark.slow
def test_a_stable_run_that_diverges_settles_its_branches_as_skipped(data_dir, tmp_path, capsys):
    """A stable run whose loss stops being finite before a branch point is kept as diverged, and the
    branch is skipped, not blocked: the grid ends without a failure, and a rerun runs nothing."""
    base = write_base(data_dir, tmp_path / "base.py", learning_rate=1e30, min_lr=0.0)
    argv = ["--base", base, "--sizes", "1x32x2", "--arms", "bpe_tied", "--seeds", "1", "--budgets", "1024", "2048"]
    argv += ["--out-root", str(tmp_path / "f"), "--keep-logs", str(tmp_path / "kept")]
    runs = run_forecast.main(argv)  # no SystemExit
    assert [(r["role"], r["state"]) for r in runs] == [("stable", "diverged"), ("branch", "skipped")]
    assert read_metrics(str(tmp_path / "kept" / "bpe_tied-L1d32h2-i16-s1"))[-1]["kind"] == "diverged"
    capsys.readouterr()
    again = run_forecast.main(argv)
    assert [r["state"] for r in again] == ["diverged", "skipped"] and "] start " not in capsys.readouterr().out
