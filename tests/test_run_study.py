"""scripts/run_study.py: planning, skipping finished runs, resuming interrupted ones, refusing bad grids and sidecars."""

import json
import os
import shutil

import pytest

import train
from configurator import ConfigError
from scripts import run_study
from tests.conftest import tiny_config


def test_plan_grid_only_varies_kron_keys():
    runs = run_study.plan(["bpe_tied", "kron"], [1, 2], run_study.parse_grid(["kron_pos_dim=16,32"]), "r")
    names = [(r["name"], r["seed"]) for r in runs]
    assert names == [
        ("bpe_tied", 1),
        ("kron-kron_pos_dim16", 1),
        ("kron-kron_pos_dim32", 1),
        ("bpe_tied", 2),
        ("kron-kron_pos_dim16", 2),
        ("kron-kron_pos_dim32", 2),
    ]


@pytest.mark.slow
def test_run_study_skips_finished_and_resumes_interrupted(data_dir, tmp_path):
    base = tmp_path / "base.py"
    cfg = tiny_config(data_dir, "unused", max_iters=6, lr_decay_iters=6, eval_interval=3)
    base.write_text(
        "\n".join(
            f"{k} = {cfg[k]!r}"
            for k in (
                "data_dir",
                "n_layer",
                "n_head",
                "n_embd",
                "block_size",
                "batch_size",
                "max_iters",
                "lr_decay_iters",
                "eval_interval",
                "eval_iters",
                "warmup_iters",
                "learning_rate",
                "min_lr",
            )
        )
        + "\n"
    )
    root = tmp_path / "study"
    # a finished run, and an interrupted one (stopped after step 2, as SIGTERM would)
    train.train(tiny_config(data_dir, root / "bpe_tied-s1", embedding="bpe_tied", seed=1, max_iters=6, lr_decay_iters=6, eval_interval=3))
    finished_mtime = os.path.getmtime(root / "bpe_tied-s1" / "ckpt.pt")
    with pytest.MonkeyPatch.context() as mp:  # step 1 is done: the loop stops before step 2, as SIGTERM would
        mp.setattr(train, "stop_requested", lambda run, stop: run.iter_num == 2)
        train.train(
            tiny_config(
                data_dir, root / "kron-s1", embedding="kron", seed=1, max_iters=6, lr_decay_iters=6, eval_interval=3, log_interval=1
            )
        )
    assert json.load(open(root / "kron-s1" / "ckpt.json"))["step"] == 2
    args = ["--base", str(base), "--arms", "bpe_tied", "kron", "--seeds", "1", "2", "--out-root", str(root)]
    states = {f"{r['name']}-s{r['seed']}": r["state"] for r in run_study.main(args + ["--dry-run"])}
    assert states == {"bpe_tied-s1": "finished", "kron-s1": "interrupted", "bpe_tied-s2": "new", "kron-s2": "new"}
    kept = tmp_path / "kept"
    runs = run_study.main(args + ["--parallel", "2", "--keep-logs", str(kept)])
    assert all(r["state"] == "finished" for r in runs)
    assert sorted(os.listdir(kept)) == ["bpe_tied-s1", "bpe_tied-s2", "kron-s1", "kron-s2"]
    # a fresh clone has the kept logs but no checkpoints: the runner still skips those runs
    fresh = run_study.main(
        [
            "--base",
            str(base),
            "--arms",
            "bpe_tied",
            "kron",
            "--seeds",
            "1",
            "2",
            "--out-root",
            str(tmp_path / "elsewhere"),
            "--keep-logs",
            str(kept),
            "--dry-run",
        ]
    )
    assert all(r["state"] == "finished" for r in fresh)
    changed = run_study.main(
        [
            "--base",
            str(base),
            "--arms",
            "kron",
            "--seeds",
            "1",
            "--out-root",
            str(tmp_path / "elsewhere"),
            "--keep-logs",
            str(kept),
            "--dry-run",
            "--",
            "--learning_rate=0.01",
        ]
    )
    assert changed[0]["state"] == "new"  # a kept log of other settings does not count as done
    assert os.path.getmtime(root / "bpe_tied-s1" / "ckpt.pt") == finished_mtime  # skipped, untouched
    steps = [json.loads(line)["step"] for line in open(root / "kron-s1" / "metrics.jsonl") if '"train"' in line]
    assert steps == list(range(6))
    assert "resumed" in open(root / "kron-s1" / "train.log").read()


def test_study_runner_does_not_skip_a_run_whose_config_changed(data_dir, tmp_path):
    from scripts import run_study

    base = tmp_path / "base.py"
    cfg = tiny_config(data_dir, "unused", max_iters=4, lr_decay_iters=4, eval_interval=2)
    keys = (
        "data_dir",
        "n_layer",
        "n_head",
        "n_embd",
        "block_size",
        "batch_size",
        "max_iters",
        "lr_decay_iters",
        "eval_interval",
        "eval_iters",
        "warmup_iters",
        "learning_rate",
        "min_lr",
        "log_interval",
    )
    base.write_text("\n".join(f"{k} = {cfg[k]!r}" for k in keys) + "\n")
    out = tmp_path / "study" / "kron-s1"
    train.train(dict(cfg, out_dir=str(out), seed=1))
    run = {"name": "kron", "arm": "kron", "seed": 1, "overrides": {}, "out_dir": str(out)}
    assert run_study.state(run, str(base)) == "finished"
    assert run_study.state(run, str(base), ["--max_iters=6"]) == "interrupted"  # continues to the new end
    with pytest.raises(ConfigError, match="other settings.*learning_rate: recorded 0.003, planned 0.001"):
        run_study.state(run, str(base), ["--learning_rate=0.001"])
    with pytest.raises(ConfigError, match="n_embd: recorded 32, planned 64"):
        run_study.state(run, str(base), ["--n_embd=64"])


@pytest.mark.parametrize(
    "meta, message",
    [
        ("hello", "holds a str, expected a JSON object"),
        ({"step": 4, "finished": True}, "has no 'config' entry"),
        ({"step": 4, "finished": "no", "config": {}}, "finished = 'no', expected true or false"),
        ({"step": 4, "finished": True, "config": "hello"}, "config = 'hello', expected a dict"),
    ],
)
def test_a_malformed_sidecar_stops_the_study_runner_naming_it(data_dir, tmp_path, meta, message):
    from scripts import run_study

    run = tmp_path / "study" / "kron-s1337"
    run.mkdir(parents=True)
    (run / "ckpt.json").write_text(json.dumps(meta))
    argv = ["--base", "config/kron_cpu.py", "--arms", "kron", "--seeds", "1337", "--out-root", str(tmp_path / "study")]
    with pytest.raises(SystemExit, match=message):
        run_study.main(argv + ["--", f"--data_dir={data_dir}"])
    assert os.listdir(run) == ["ckpt.json"] and json.loads((run / "ckpt.json").read_text()) == meta


def test_study_runner_refuses_a_parallelism_below_one(tmp_path, capsys):
    from scripts import run_study

    for value in ("0", "-2"):
        with pytest.raises(SystemExit):
            run_study.main(["--base", "config/kron_cpu.py", "--parallel", value, "--out-root", str(tmp_path / "s")])
        assert f"--parallel {value}: expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_study_grid_without_values_is_refused(tmp_path, capsys):
    from scripts import run_study

    with pytest.raises(SystemExit):
        run_study.main(["--base", "config/kron_cpu.py", "--grid", "kron_pos_dim=,", "--out-root", str(tmp_path / "s")])
    assert "--grid 'kron_pos_dim=,': expected key=value1,value2 with at least one value" in capsys.readouterr().err


def test_study_grid_with_an_unknown_arm_or_setting_or_misplaced_control_is_refused_before_any_run(tmp_path, capsys):
    from scripts import run_study

    root = tmp_path / "study"
    with pytest.raises(SystemExit):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "bpe_shuffled", "--out-root", str(root)])
    assert "invalid choice: 'bpe_shuffled'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown config key 'kron_shufle_seed'"):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "kron", "--grid", "kron_shufle_seed=1", "--out-root", str(root)])
    with pytest.raises(SystemExit, match="input_init_std=1.0 is the scale control"):
        run_study.main(["--base", "config/kron_cpu.py", "--arms", "bpe_tied", "--grid", "input_init_std=1.0", "--out-root", str(root)])
    assert not root.exists()  # nothing started


def test_a_kept_log_is_the_planned_run_whatever_its_data_folder_is_called(data_dir, tmp_path):
    """A corpus folder renamed (data/pydocs -> data/python_docs) keeps its kept logs: the runner compares
    the data by fingerprint, not by the folder's name; other data is still refused."""
    import json

    from scripts import run_study

    renamed = tmp_path / "renamed_corpus"
    os.symlink(data_dir, renamed)
    base = tmp_path / "base.py"
    cfg = tiny_config(str(renamed), "unused", max_iters=2, lr_decay_iters=2, eval_interval=2)
    base.write_text(
        "\n".join(
            f"{k} = {cfg[k]!r}"
            for k in (
                "data_dir",
                "n_layer",
                "n_head",
                "n_embd",
                "block_size",
                "batch_size",
                "max_iters",
                "lr_decay_iters",
                "eval_interval",
                "eval_iters",
                "warmup_iters",
                "learning_rate",
                "min_lr",
            )
        )
        + "\n"
    )
    train.train(
        tiny_config(data_dir, tmp_path / "runs" / "kron-s1", embedding="kron", seed=1, max_iters=2, lr_decay_iters=2, eval_interval=2)
    )
    kept = tmp_path / "kept" / "kron-s1"
    kept.mkdir(parents=True)
    shutil.copy(tmp_path / "runs" / "kron-s1" / "metrics.jsonl", kept / "metrics.jsonl")
    args = [
        "--base",
        str(base),
        "--arms",
        "kron",
        "--seeds",
        "1",
        "--out-root",
        str(tmp_path / "new"),
        "--keep-logs",
        str(tmp_path / "kept"),
        "--dry-run",
    ]
    assert [r["state"] for r in run_study.main(args)] == ["finished"]
    lines = (kept / "metrics.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["data"]["sha256"] = "0" * 16  # trained on other data
    (kept / "metrics.jsonl").write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n")
    with pytest.raises(SystemExit, match="was trained on data with fingerprint 0000000000000000"):
        run_study.main(args)


def test_several_grid_flags_all_count():
    """--grid a=1 --grid b=2 (the docstring's form) crosses both, as --grid a=1 b=2 does."""
    from scripts.run_study import parse_args

    for argv in (["--grid", "input_norm=True", "--grid", "input_scale=1,2"], ["--grid", "input_norm=True", "input_scale=1,2"]):
        _, _, grid = parse_args(["--base", "config/study_fair.py", "--out-root", "x", *argv])
        assert grid == [("input_norm", ["True"]), ("input_scale", ["1", "2"])]


def test_missing_data_is_named_with_its_command_before_anything_runs_even_in_a_dry_run(tmp_path):
    from scripts import run_study

    cfg = tmp_path / "cfg.py"
    cfg.write_text(f"data_dir = {str(tmp_path / 'python_help')!r}\n")
    with pytest.raises(SystemExit, match="does not exist: prepare it first with python -m data.python_help.prepare"):
        run_study.main(["--base", str(cfg), "--arms", "kron", "--seeds", "1", "--out-root", str(tmp_path / "s"), "--dry-run"])
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_diverged_run_is_kept_as_an_outcome_and_not_retried(data_dir, tmp_path, capsys):
    """A run whose loss stops being finite ends its log with a diverged record; the runner keeps that
    log (PLAN.md counts it as an infinite loss), does not count it as failed, and skips it on rerun."""
    from runlog import read_metrics

    cfg = tiny_config(data_dir, "unused", max_iters=4, eval_interval=2, grad_clip=0.0, learning_rate=1e30, min_lr=0.0)
    base = tmp_path / "base.py"
    keys = ("data_dir", "n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters", "eval_interval", "eval_iters")
    base.write_text("\n".join(f"{k} = {cfg[k]!r}" for k in keys + ("grad_clip", "learning_rate", "min_lr", "warmup_iters")) + "\n")
    argv = ["--base", str(base), "--arms", "bpe_tied", "--seeds", "1", "--out-root", str(tmp_path / "s")]
    argv += ["--keep-logs", str(tmp_path / "kept")]
    runs = run_study.main(argv)  # no SystemExit: a divergence is not a failure to mend
    assert runs[0]["state"] == "diverged"
    kept = read_metrics(str(tmp_path / "kept" / "bpe_tied-s1"))
    assert kept[-1]["kind"] == "diverged" and "loss is nan" in kept[-1]["reason"] and not [r for r in kept if r["kind"] == "final"]
    assert run_study.main(argv)[0]["state"] == "diverged" and "diverged 1" in capsys.readouterr().out


def test_execute_starts_a_run_once_it_is_ready_and_reports_what_never_was(tmp_path, monkeypatch):
    """With ready(run), a free lane takes the first ready run; one whose dependency never comes is
    returned 'blocked' once nothing is running (run_forecast's branches wait on their stable runs so).
    The command is a stub that writes a finished sidecar and a marker, not train.py."""
    import argparse
    import sys

    def stub(run, base, launcher, extra):
        meta = json.dumps({"step": 1, "finished": True, "config": {}})
        marker = os.path.join(run["out_dir"], "done")
        code = (
            f"import time; time.sleep(0.3); open({marker!r}, 'w'); open({os.path.join(run['out_dir'], 'ckpt.json')!r}, 'w').write({meta!r})"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(run_study, "command", stub)
    runs = [{"name": n, "seed": 1, "state": "new", "out_dir": str(tmp_path / n)} for n in ("stable", "branch", "orphan")]
    needs = {"branch": tmp_path / "stable" / "done", "orphan": tmp_path / "never" / "done"}
    started = []

    def ready(r):
        ok = r["name"] not in needs or needs[r["name"]].exists()
        if ok and r["name"] not in started:
            started.append(r["name"])
        return ok

    args = argparse.Namespace(parallel=2, base="base.py", launcher=None, keep_logs=None)
    failed = run_study.execute(runs, args, [], ready)
    assert started == ["stable", "branch"]  # the branch waited for the stable run's marker, though a lane was free
    assert [(r["name"], r["state"]) for r in failed] == [("orphan", "blocked")]
    assert [r["state"] for r in runs[:2]] == ["finished", "finished"]
