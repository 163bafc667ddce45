"""runlog.py: the run folder's lock, its metrics log (never written through a link, an earlier one moved aside), wandb."""

import glob
import json
import os
import subprocess
import sys

import pytest

import train
from runlog import RunFolderError, RunInUseError, RunLock
from tests.conftest import ROOT, metrics_lines, tiny_config


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
    code = (
        "import sys, time; sys.path.insert(0, %r); from runlog import RunLock; RunLock(%r).acquire(); "
        "print('locked', flush=True); time.sleep(30)"
    ) % (ROOT, str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUseError, match=f"pid {proc.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        proc.kill()
        proc.wait()
    RunLock(str(tmp_path)).acquire().release()  # a dead holder leaves no stale lock


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl"])
def test_a_link_in_the_run_folder_is_never_written_through(data_dir, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / name)
    with pytest.raises(RunFolderError, match=f"{name} is a symbolic link .*refusing to write through it"):
        train.train(tiny_config(data_dir, out))
    assert victim.read_text() == "precious\n"


def test_an_earlier_runs_log_without_a_checkpoint_is_moved_aside_not_replaced(data_dir, finished_run, capsys):
    old_log = open(finished_run / "metrics.jsonl").read()
    os.remove(finished_run / "ckpt.pt")
    train.train(tiny_config(data_dir, finished_run, max_iters=0, init_from="auto"))
    aside = [f for f in os.listdir(finished_run) if f.startswith("metrics.jsonl.replaced-")]
    assert len(aside) == 1 and open(finished_run / aside[0]).read() == old_log
    assert f"moved it to {finished_run / aside[0]}" in capsys.readouterr().out


def test_wandb_offline_run_logs_loss_val_loss_and_norms_grouped_by_arm(data_dir, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = {}
    real_init = wandb.init

    def init(**kw):
        seen.update(kw)
        return real_init(**kw)

    monkeypatch.setattr(wandb, "init", init)
    out = tmp_path / "run"
    t = train.train(tiny_config(data_dir, out, embedding="kron", max_iters=4, eval_interval=2, wandb_log=True))
    assert seen["group"] == "kron" and seen["name"] == "kron-s1337" and seen["mode"] == "offline"
    wandb.teardown()  # the wandb-core service writes the run file asynchronously; a user's process flushes at exit
    folders = glob.glob(str(out / "wandb" / f"offline-run-*-{t.wandb_id}"))
    assert len(folders) == 1, os.listdir(out / "wandb")
    data = open(os.path.join(folders[0], f"run-{t.wandb_id}.wandb"), "rb").read()
    for key in (b"train/loss", b"val/loss", b"norms/proj_std_sqrtD", b"norms/emb_rms", b"kron-s1337"):
        assert key in data, key
    # a resumed run continues the same wandb run
    t2 = train.train(
        tiny_config(data_dir, out, embedding="kron", max_iters=6, eval_interval=2, lr_decay_iters=12, wandb_log=True, init_from="resume")
    )
    assert t2.wandb_id == t.wandb_id
