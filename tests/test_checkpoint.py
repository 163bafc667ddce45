"""checkpoint.py: crafted and tampered checkpoints, the ckpt.json sidecar, atomic saves, old checkpoints."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

import checkpoint
import train
from runlog import read_metrics
from tests.conftest import FIXTURE, ROOT, tiny, tiny_config


class WritesAFile:
    """Unpickling this object writes a file: what a crafted checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_checkpoint(path, marker):
    """A checkpoint-shaped zip whose unpickling would create `marker`."""
    torch.save({"model": {}, "model_args": {"embedding": "kron"}, "config": {}, "payload": WritesAFile(str(marker))}, path)


def test_crafted_checkpoint_runs_no_code_anywhere(data_dir, tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    crafted_checkpoint(str(out / "ckpt.pt"), marker)
    assert not marker.exists()
    for attempt in (
        lambda: checkpoint.load(str(out / "ckpt.pt")),
        lambda: checkpoint.load_model(str(out / "ckpt.pt")),
        lambda: train.train(tiny_config(data_dir, out, init_from="resume")),
        lambda: train.train(tiny_config(data_dir, out, init_from="auto")),
        lambda: train.train(tiny_config(data_dir, out, eval_only=True)),
    ):
        with pytest.raises(checkpoint.CheckpointError, match="refused to load.*--convert-trusted"):
            attempt()
        assert not marker.exists()
    # the probes' command line and the study runner's planning
    probe = subprocess.run(
        [sys.executable, "-m", "probes.robustness", str(out / "ckpt.pt"), "--out", str(tmp_path / "p")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "refused to load" in probe.stderr and not marker.exists()
    from scripts import run_study

    run = {"name": "kron", "arm": "kron", "seed": 1, "overrides": {}, "out_dir": str(out)}
    assert run_study.state(run, "config/kron_cpu.py") == "interrupted" and not marker.exists()  # no sidecar: not opened


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


def test_a_checkpoint_whose_model_args_are_absurd_is_refused_before_building(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    for args, message in (
        (dict(ckpt["model_args"], n_layer=10**6), "blocks alone hold about"),
        (dict(ckpt["model_args"], vocab_size=10**12), "vocab_size 1,000,000,000,000"),
        ("hello", "model_args = 'hello', expected a dict"),
        (dict(ckpt["model_args"], embedding="nope"), "model_args are not a valid model"),
    ):
        torch.save(dict(ckpt, model_args=args), tmp_path / "bad.pt")
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load_model(str(tmp_path / "bad.pt"))


def test_a_checkpoint_with_an_absurd_step_is_refused(finished_run, tmp_path):
    ckpt = checkpoint.load(str(finished_run / "ckpt.pt"))
    for key, value, message in (
        ("iter_num", 10**30, "iter_num = '1000000000000000000000000000000'"),
        ("config", "hello", "config = 'hello', expected a dict"),
    ):
        torch.save(dict(ckpt, **{key: value}), tmp_path / "bad.pt")
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.load(str(tmp_path / "bad.pt"))


def test_checkpoint_loads_for_inference(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=2))
    model, _ = checkpoint.load_model(str(tmp_path / "ckpt.pt"))
    out = model.generate(torch.tensor([[464, 1573]]), 4, temperature=0.0)
    assert out.shape == (1, 6) and int(out.max()) < 50257
    old = checkpoint.load(str(tmp_path / "ckpt.pt"))  # written when the Kron layer had modes: kron_mode is ignored
    old["model_args"]["kron_mode"] = "cached"
    torch.save(old, tmp_path / "old.pt")
    assert torch.equal(checkpoint.load_model(str(tmp_path / "old.pt"))[0].generate(torch.tensor([[464, 1573]]), 4, temperature=0.0), out)
    with pytest.raises(checkpoint.CheckpointError, match="missing.pt.*does not exist"):
        checkpoint.load_model(str(tmp_path / "missing.pt"))
    shutil.copy(FIXTURE, tmp_path / "not_a_ckpt.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not_a_ckpt.pt.*not a torch checkpoint"):
        checkpoint.load_model(str(tmp_path / "not_a_ckpt.pt"))


# --------------------------------------------------------------------------- saves


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


def test_failed_checkpoint_write_keeps_previous(data_dir, tmp_path, monkeypatch):
    real_save = torch.save
    saves = {"n": 0}

    def save(obj, f, *a, **kw):
        saves["n"] += 1
        if saves["n"] == 2:
            with open(f, "wb") as fh:
                fh.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(train.torch, "save", save)
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt failed.*No space left.*previous ckpt.pt is intact"):
        train.train(tiny(data_dir, tmp_path))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    assert checkpoint.load(str(tmp_path / "ckpt.pt"))["iter_num"] == 0


def test_a_full_disk_is_named_as_such(tmp_path, monkeypatch):
    import errno
    import shutil

    from errors import describe

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 5 * 2**20, 5 * 2**20))

    def failing_save(state, path):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 1234 vs 1200")

    monkeypatch.setattr(torch, "save", failing_save)
    full = r"unexpected pos.*no space left on device \(5 MB free\).*previous ckpt.pt is intact"
    with pytest.raises(checkpoint.CheckpointError, match=full):
        checkpoint.save(str(tmp_path), {"x": 1}, {"step": 0})
    assert describe(OSError(errno.ENOSPC, "No space left on device", "shard.bin")).startswith("no space left on device (shard.bin)")


def test_a_linked_checkpoint_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.pt"
    victim.write_bytes(b"precious")
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(victim, out / "ckpt.pt")
    with pytest.raises(checkpoint.CheckpointError, match="ckpt.pt is a symbolic link"):
        checkpoint.save(str(out), {"x": 1}, {"step": 0})
    assert victim.read_bytes() == b"precious" and os.path.islink(out / "ckpt.pt")


def test_a_sidecar_torn_from_its_checkpoint_is_repaired_on_the_next_start(data_dir, finished_run, capsys):
    """Killed between writing ckpt.pt (finished at step 4) and ckpt.json (still step 2)."""
    meta = checkpoint.read_meta(str(finished_run))
    checkpoint.save_meta(str(finished_run), dict(meta, step=2, finished=False))
    log = open(finished_run / "metrics.jsonl").read()
    train.train(tiny_config(data_dir, finished_run, max_iters=4, eval_interval=2, lr_decay_iters=4, init_from="auto"))
    repaired = checkpoint.read_meta(str(finished_run))
    assert repaired["step"] == 4 and repaired["finished"] and repaired["val_loss"] is None  # step 2's loss is not step 4's
    assert "did not match its checkpoint" in capsys.readouterr().out
    assert open(finished_run / "metrics.jsonl").read() == log  # the finished run's log is left as it was


def test_temp_files_of_a_killed_save_are_removed(data_dir, finished_run):
    for name in ("ckpt.pt.tmp4242", "ckpt.json.tmp77"):
        (finished_run / name).write_bytes(b"x" * 1000)
    (finished_run / "notes.tmp1").write_text("mine")  # not ours: kept
    train.train(tiny_config(data_dir, finished_run, max_iters=6, eval_interval=2, lr_decay_iters=6, init_from="resume"))
    names = os.listdir(finished_run)
    assert "ckpt.pt.tmp4242" not in names and "ckpt.json.tmp77" not in names and "notes.tmp1" in names


# --------------------------------------------------------------------------- old checkpoints and other devices


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


def test_kron_tied_checkpoints_from_before_the_head_owned_its_scale_resume_exactly(data_dir, tmp_path):
    """Old kron_tied checkpoints named the scale 'logit_scale' and listed it first among the optimizer's
    scalars; they load, and resume with the losses an uninterrupted run has."""
    full, part = tmp_path / "full", tmp_path / "part"
    train.train(tiny_config(data_dir, full, embedding="kron_tied"))
    train.train(tiny_config(data_dir, part, embedding="kron_tied", max_iters=6))
    ckpt = checkpoint.load(str(part / "ckpt.pt"))
    ckpt["model"] = {("logit_scale" if k == "lm_head.logit_scale" else k): v for k, v in ckpt["model"].items()}
    ids = ckpt["optimizer"]["param_groups"][1]["params"]
    ckpt["optimizer"]["param_groups"][1]["params"] = ids[-1:] + ids[:-1]  # the old order: the scale first
    torch.save(ckpt, part / "ckpt.pt")
    train.train(tiny_config(data_dir, part, embedding="kron_tied", init_from="resume"))
    a = {r["step"]: r["loss"] for r in read_metrics(str(full), "train")}
    b = {r["step"]: r["loss"] for r in read_metrics(str(part), "train")}
    assert sorted(a) == sorted(b) and max(abs(a[s] - b[s]) for s in a) < 1e-6


def _adamw_state(fused, steps=2):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = torch.optim.AdamW([p], lr=1e-2, fused=fused)
    for _ in range(steps):
        p.grad = torch.randn(4, 3)
        opt.step()
    return p, opt


def test_restore_optimizer_keeps_this_devices_choices():
    """A fused save (as CUDA writes it) restored into an unfused optimizer stays unfused, and back."""
    _, saved_fused = _adamw_state(fused=True)
    p, opt = _adamw_state(fused=False, steps=0)
    checkpoint.restore_optimizer(opt, saved_fused.state_dict())
    assert not opt.param_groups[0]["fused"]
    assert opt.state[p]["step"].device.type == "cpu" and float(opt.state[p]["step"]) == 2.0
    _, saved_plain = _adamw_state(fused=False)
    p, opt = _adamw_state(fused=True, steps=0)
    checkpoint.restore_optimizer(opt, saved_plain.state_dict())
    assert opt.param_groups[0]["fused"] and opt.state[p]["step"].dtype == torch.float32
    p.grad = torch.randn(4, 3)
    opt.step()  # runs fused from the restored moments
    assert float(opt.state[p]["step"]) == 3.0


def test_a_setting_a_record_predates_is_compared_as_its_default():
    from configurator import DEFAULTS

    old = {k: v for k, v in DEFAULTS.items() if k not in ("val_sample", "tied_logit_scale")}  # a record from before them
    assert checkpoint.config_changes(old, dict(DEFAULTS)) == ({}, {})
    fixed, changed = checkpoint.config_changes(old, dict(DEFAULTS, val_sample="random", tied_logit_scale=0.0))
    assert changed == {"val_sample": ("first", "random")} and fixed == {"tied_logit_scale": (None, 0.0)}


def test_a_record_from_before_the_chunked_loss_ran_the_plain_path():
    """Kept study logs predate loss_chunk: they computed loss_chunk=0, which their configs now say."""
    from configurator import DEFAULTS

    old = {k: v for k, v in DEFAULTS.items() if k != "loss_chunk"}
    assert checkpoint.config_changes(old, dict(DEFAULTS, loss_chunk=0)) == ({}, {})
    assert checkpoint.config_changes(old, dict(DEFAULTS))[1] == {"loss_chunk": (0, DEFAULTS["loss_chunk"])}
