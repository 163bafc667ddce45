"""A run folder under faults and hostile contents (runlog.py, checkpoint.py, train.py): nothing is
written through a link, an earlier run's log is moved aside rather than replaced, a sidecar torn from
its checkpoint by a crash is repaired, stale temp files are cleaned, and sizes are checked before
anything is allocated. Each case asserts the message and what is (still) on disk."""
import json
import os

import pytest
import torch

import checkpoint
import train
from configurator import ConfigError
from runlog import RunFolderError
from tests.conftest import tiny_config


@pytest.fixture
def finished_run(data_dir, tmp_path):
    out = tmp_path / "run"
    train.Trainer(tiny_config(data_dir, out, max_iters=4, eval_interval=2, lr_decay_iters=4)).run()
    return out


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl"])
def test_a_link_in_the_run_folder_is_never_written_through(data_dir, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / name)
    with pytest.raises(RunFolderError, match=f"{name} is a symbolic link .*refusing to write through it"):
        train.Trainer(tiny_config(data_dir, out)).run()
    assert victim.read_text() == "precious\n"


def test_a_linked_checkpoint_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.pt"
    victim.write_bytes(b"precious")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / "ckpt.pt")
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt is a symbolic link"):
        checkpoint.save(str(out), {"x": 1}, {"step": 0})
    assert victim.read_bytes() == b"precious" and os.path.islink(out / "ckpt.pt")


def test_an_earlier_runs_log_without_a_checkpoint_is_moved_aside_not_replaced(data_dir, finished_run, capsys):
    old_log = open(finished_run / "metrics.jsonl").read()
    os.remove(finished_run / "ckpt.pt")
    train.Trainer(tiny_config(data_dir, finished_run, max_iters=0, init_from="auto")).run()
    aside = [f for f in os.listdir(finished_run) if f.startswith("metrics.jsonl.replaced-")]
    assert len(aside) == 1 and open(finished_run / aside[0]).read() == old_log
    assert f"moved it to {finished_run / aside[0]}" in capsys.readouterr().out


def test_a_sidecar_torn_from_its_checkpoint_is_repaired_on_the_next_start(data_dir, finished_run, capsys):
    """Killed between writing ckpt.pt (finished at step 4) and ckpt.json (still step 2)."""
    meta = checkpoint.read_meta(str(finished_run))
    checkpoint.save_meta(str(finished_run), dict(meta, step=2, finished=False))
    log = open(finished_run / "metrics.jsonl").read()
    train.Trainer(tiny_config(data_dir, finished_run, max_iters=4, eval_interval=2, lr_decay_iters=4, init_from="auto")).run()
    repaired = checkpoint.read_meta(str(finished_run))
    assert repaired["step"] == 4 and repaired["finished"] and repaired["val_loss"] == meta["val_loss"]
    assert "did not match its checkpoint" in capsys.readouterr().out
    assert open(finished_run / "metrics.jsonl").read() == log  # the finished run's log is left as it was


def test_temp_files_of_a_killed_save_are_removed(data_dir, finished_run):
    for name in ("ckpt.pt.tmp4242", "ckpt.json.tmp77"):
        (finished_run / name).write_bytes(b"x" * 1000)
    (finished_run / "notes.tmp1").write_text("mine")  # not ours: kept
    train.Trainer(tiny_config(data_dir, finished_run, max_iters=6, eval_interval=2, lr_decay_iters=6, init_from="resume")).run()
    names = os.listdir(finished_run)
    assert "ckpt.pt.tmp4242" not in names and "ckpt.json.tmp77" not in names and "notes.tmp1" in names


def test_an_absurd_model_is_refused_before_anything_is_allocated(data_dir, tmp_path, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a model was built")
    monkeypatch.setattr(train, "GPT", no_build)
    with pytest.raises(ConfigError, match=r"n_layer=100000.*needs about [\d,]+ GiB .*more than this machine's"):
        train.Trainer(tiny_config(data_dir, tmp_path / "run", n_layer=100000, n_embd=128, n_head=2, device="cpu")).run()


def test_a_checkpoint_whose_model_args_are_absurd_is_refused_before_building(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    for args, message in ((dict(ckpt["model_args"], n_layer=10 ** 6), "blocks alone hold about"),
                          (dict(ckpt["model_args"], vocab_size=10 ** 12), "vocab_size 1,000,000,000,000"),
                          ("hello", "model_args is str, expected a dict"),
                          (dict(ckpt["model_args"], embedding="nope"), "model_args are not a valid model")):
        torch.save(dict(ckpt, model_args=args), tmp_path / "bad.pt")
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load_model(str(tmp_path / "bad.pt"))


def test_study_runner_refuses_a_parallelism_below_one(tmp_path, capsys):
    from scripts import run_study
    for value in ("0", "-2"):
        with pytest.raises(SystemExit):
            run_study.main(["--base", "config/kron_cpu.py", "--parallel", value, "--out-root", str(tmp_path / "s")])
        assert f"--parallel {value}: expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_make_results_never_replaces_a_kept_log_with_an_unfinished_runs(tmp_path, finished_run):
    from scripts import make_results
    kept = tmp_path / "kept"
    (kept / "run").mkdir(parents=True)
    (kept / "run" / "metrics.jsonl").write_text("kept\n")
    meta = checkpoint.read_meta(str(finished_run))
    checkpoint.save_meta(str(finished_run), dict(meta, finished=False))
    assert make_results.copy_logs(str(finished_run.parent), str(kept)) == 0
    assert (kept / "run" / "metrics.jsonl").read_text() == "kept\n"
    checkpoint.save_meta(str(finished_run), meta)
    assert make_results.copy_logs(str(finished_run.parent), str(kept)) == 1
    assert (kept / "run" / "metrics.jsonl").read_text() == open(finished_run / "metrics.jsonl").read()
    assert json.loads((kept / "run" / "metrics.jsonl").read_text().splitlines()[0])["kind"] == "config"
