"""A hostile or careless user: checkpoints that would run code, runs that share a folder, settings
out of range, files that are not what they claim. Each case gives a message naming the bad value,
and nothing on disk is lost."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

import checkpoint
import train
from configurator import ConfigError, load_config
from runlog import RunInUseError, RunLock
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metrics_lines(out_dir):
    return open(os.path.join(out_dir, "metrics.jsonl")).read().splitlines()


class WritesAFile:
    """Unpickling this object writes a file: what a crafted checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_checkpoint(path, marker):
    """A checkpoint-shaped zip whose unpickling would create `marker`."""
    torch.save({"model": {}, "model_args": {"embedding": "kron"}, "config": {}, "payload": WritesAFile(str(marker))}, path)


@pytest.fixture
def finished_run(data_dir, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(data_dir, out, max_iters=4, eval_interval=2, lr_decay_iters=4))
    return out


def test_crafted_checkpoint_runs_no_code_anywhere(data_dir, tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    crafted_checkpoint(str(out / "ckpt.pt"), marker)
    assert not marker.exists()
    for attempt in (lambda: checkpoint.load(str(out / "ckpt.pt")),
                    lambda: checkpoint.load_model(str(out / "ckpt.pt")),
                    lambda: train.train(tiny_config(data_dir, out, init_from="resume")),
                    lambda: train.train(tiny_config(data_dir, out, init_from="auto")),
                    lambda: train.train(tiny_config(data_dir, out, eval_only=True))):
        with pytest.raises(checkpoint.CheckpointError, match="refused to load.*--convert-trusted"):
            attempt()
        assert not marker.exists()
    # the probes' command line and the study runner's planning
    probe = subprocess.run([sys.executable, "-m", "probes.robustness", str(out / "ckpt.pt"), "--out", str(tmp_path / "p")],
                           cwd=ROOT, capture_output=True, text=True)
    assert probe.returncode != 0 and "refused to load" in probe.stderr and not marker.exists()
    from scripts import run_study
    run = {"name": "kron", "arm": "kron", "seed": 1, "overrides": {}, "out_dir": str(out)}
    assert run_study.state(run, "config/kron_cpu.py") == "interrupted" and not marker.exists()  # no sidecar: not opened


def test_convert_trusted_makes_an_old_checkpoint_safe(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    import numpy as np
    ckpt["rng"]["numpy"] = np.random.get_state()  # format 1 kept numpy's RNG state
    ckpt.pop("format")
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    assert checkpoint.load(str(old))["iter_num"] == 4  # format 1 still loads, with weights_only
    new = tmp_path / "new.pt"
    checkpoint.convert_trusted(str(old), str(new))
    converted = checkpoint.load(str(new))
    assert converted["format"] == checkpoint.FORMAT and "numpy" not in converted["rng"]


def test_files_that_are_not_checkpoints(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="empty.pt.*is empty"):
        checkpoint.load(str(empty))
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(checkpoint.CheckpointError, match="notes.pt.*(not a torch checkpoint|refused)"):
        checkpoint.load(str(text))
    other = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, other)
    with pytest.raises(checkpoint.CheckpointError, match=r"weights.pt.*not a train.py checkpoint.*\['w'\]"):
        checkpoint.load(str(other))
    with pytest.raises(checkpoint.CheckpointError, match="is a folder.*ckpt.pt"):
        checkpoint.load(str(tmp_path))


def test_truncated_checkpoint_names_the_file(finished_run):
    path = finished_run / "ckpt.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt.*truncated or not a torch checkpoint"):
        checkpoint.load(str(path))


def test_failed_save_of_any_kind_keeps_previous(finished_run, monkeypatch):
    before = (finished_run / "ckpt.pt").read_bytes()

    def broken(obj, f, *a, **kw):
        open(f, "wb").write(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/3")
    monkeypatch.setattr(checkpoint.torch, "save", broken)
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt failed.*RuntimeError.*previous ckpt.pt is intact"):
        checkpoint.save(str(finished_run), {"model": {}}, {})
    assert (finished_run / "ckpt.pt").read_bytes() == before
    assert not [f for f in os.listdir(finished_run) if ".tmp" in f]


def test_eval_only_never_touches_a_run(data_dir, finished_run, capsys):
    log_before = metrics_lines(finished_run)
    ckpt_before = (finished_run / "ckpt.pt").read_bytes()
    t = train.train(tiny_config(data_dir, finished_run, max_iters=4, eval_only=True))
    assert metrics_lines(finished_run) == log_before and (finished_run / "ckpt.pt").read_bytes() == ckpt_before
    assert t.last_val == pytest.approx(json.load(open(finished_run / "ckpt.json"))["val_loss"], abs=1e-5)
    assert "eval_only: val loss" in capsys.readouterr().out


def test_eval_only_without_checkpoint_refuses(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"eval_only=True needs a checkpoint.*{tmp_path.name}"):
        train.train(tiny_config(data_dir, tmp_path, eval_only=True))
    assert not os.listdir(tmp_path)


def test_second_run_on_a_live_out_dir_is_refused(data_dir, finished_run):
    lines = metrics_lines(finished_run)
    with RunLock(str(finished_run)):  # a live run holds the folder
        for init_from in ("auto", "resume"):
            with pytest.raises(RunInUseError, match=f"in use by a live run \\(pid {os.getpid()}"):
                train.train(tiny_config(data_dir, finished_run, init_from=init_from, max_iters=8))
    assert metrics_lines(finished_run) == lines
    # released on exit (and by the OS when a process dies): the run can continue now
    train.train(tiny_config(data_dir, finished_run, init_from="auto", max_iters=6, lr_decay_iters=4))
    assert json.load(open(finished_run / "ckpt.json"))["step"] == 6


def test_lock_held_by_another_process(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r); from runlog import RunLock; RunLock(%r).acquire(); "
            "print('locked', flush=True); time.sleep(30)") % (ROOT, str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=f"pid {proc.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        proc.kill()
        proc.wait()
    RunLock(str(tmp_path)).acquire().release()  # a dead holder leaves no stale lock


@pytest.mark.parametrize("key,value,expected", [
    ("gradient_accumulation_steps", 0, "integer >= 1"), ("batch_size", 0, "integer >= 1"), ("batch_size", -1, "integer >= 1"),
    ("eval_interval", 0, "integer >= 1"), ("max_iters", -5, "integer >= 0"), ("learning_rate", -1e-3, "number > 0"),
    ("beta2", 1.0, r"\[0, 1\)"), ("dropout", 1.5, r"\[0, 1\)"), ("embedding", "kronn", "'bpe_tied', 'kron'"),
    ("device", "gpu", "'cuda:N'"), ("seed", -1, "2\\*\\*63"), ("lr_decay_iters", 0, "None or an integer >= 1"),
])
def test_settings_out_of_range_are_refused_with_key_and_value(key, value, expected):
    with pytest.raises(ConfigError, match=f"'{key}' = " + re.escape(repr(value)) + f": expected .*{expected}"):
        load_config([f"--{key}={value}"])


def test_config_file_may_import_helpers(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text("from math import pi\nimport math\nlearning_rate = pi / 1000\nmax_iters = math.ceil(9.5)\n")
    c = load_config([str(cfg)])
    assert c["learning_rate"] == pytest.approx(0.0031416, rel=1e-4) and c["max_iters"] == 10


def test_resume_names_changed_settings_and_refuses_fixed_ones(data_dir, finished_run, capsys):
    with pytest.raises(ConfigError, match="seed: checkpoint 1337 vs config 7"):
        train.train(tiny_config(data_dir, finished_run, init_from="resume", seed=7, max_iters=4, eval_interval=2,
                                  lr_decay_iters=4))
    capsys.readouterr()
    train.train(tiny_config(data_dir, finished_run, init_from="resume", max_iters=8, learning_rate=1e-3, eval_interval=2,
                              lr_decay_iters=8))
    out = capsys.readouterr().out
    assert "changed settings: learning_rate 0.003 -> 0.001, max_iters 4 -> 8, lr_decay_iters 4 -> 8" in out
    assert "learning-rate schedule changes: lr at step 4 was" in out


def test_resuming_a_finished_run_says_so(data_dir, finished_run, capsys):
    lines = metrics_lines(finished_run)
    train.train(tiny_config(data_dir, finished_run, init_from="auto", max_iters=4, eval_interval=2, lr_decay_iters=4))
    assert "already finished at step 4" in capsys.readouterr().out
    assert metrics_lines(finished_run) == lines  # no re-evaluation, nothing appended


def test_study_runner_does_not_skip_a_run_whose_config_changed(data_dir, tmp_path):
    from scripts import run_study
    base = tmp_path / "base.py"
    cfg = tiny_config(data_dir, "unused", max_iters=4, lr_decay_iters=4, eval_interval=2)
    keys = ("data_dir", "n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters", "lr_decay_iters",
            "eval_interval", "eval_iters", "warmup_iters", "learning_rate", "min_lr", "log_interval")
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


def test_kron_ids_of_the_wrong_dtype(tmp_path):
    from kron_embed import KroneckerEmbedding
    layer = KroneckerEmbedding(50304, 8, pos_dim=4)
    for dtype in (torch.uint8, torch.int16):
        with pytest.raises(TypeError, match=f"int64 or torch.int32 tensor, got {dtype}"):
            layer(torch.tensor([1, 2], dtype=dtype))


def test_probe_inputs_that_are_not_what_they_claim(tmp_path, tiny_checkpoints):
    from probes import robustness
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"category": "a", "clean": "x y", "typo": "x z"}\n[1, 2]\n"text"\n')
    with pytest.raises(ValueError, match="line 2: a JSON list, expected an object.*\n.*line 3: a JSON str"):
        robustness.load_pairs(str(pairs))
    pairs.write_bytes(b'{"category": "a", "clean": "caf\xe9", "typo": "x"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl.*is not UTF-8 text \(byte 31"):
        robustness.load_pairs(str(pairs))
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n\n")
    ckpt = tiny_checkpoints["kron"]
    r = subprocess.run([sys.executable, "-m", "probes.robustness", ckpt, "--generate", str(empty), "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "holds no prompts" in r.stderr
    r = subprocess.run([sys.executable, "-m", "probes.robustness", os.path.dirname(ckpt), "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "is a folder; expected a ckpt.pt" in r.stderr
