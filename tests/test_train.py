"""train.py: each arm learns, resume is exact, DDP matches accumulation, stops and eval_only keep the run,
and a bad start is refused with a clear error."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import checkpoint
import runtime
import train
from configurator import ConfigError
from runlog import read_metrics
from tests.conftest import ROOT, metrics_lines, run, tiny, tiny_config


def losses(out_dir):
    return {r["step"]: r["loss"] for r in read_metrics(str(out_dir), "train")}


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "bpe_untied"])
def test_each_arm_trains_with_falling_loss(data_dir, tmp_path, arm):
    train.train(tiny(data_dir, tmp_path, embedding=arm, max_iters=20, lr_decay_iters=20))
    loss = losses(tmp_path)
    assert len(loss) == 20
    assert np.mean([loss[s] for s in range(17, 20)]) < np.mean([loss[s] for s in range(3)]) - 0.5
    evals = read_metrics(str(tmp_path), "eval")
    assert [e["step"] for e in evals] == [0, 4, 8, 12, 16, 20]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    model, ckpt = checkpoint.load_model(str(tmp_path / "ckpt.pt"))
    assert ckpt["finished"] and ckpt["iter_num"] == 20 and model.config.embedding == arm
    key = "proj_std_sqrtD" if arm == "kron" else "wte_std"
    assert key in evals[0] and "head_std" in evals[0] and "emb_rms" in evals[0]
    if arm == "kron":
        assert evals[0]["proj_std_sqrtD"] == pytest.approx(1.0, abs=0.02)


def test_resume_matches_uninterrupted_run(data_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train.train(tiny(data_dir, full, dropout=0.1))
    train.train(tiny(data_dir, part, dropout=0.1, max_iters=6))  # stops at step 6 (not an eval step)
    train.train(tiny(data_dir, part, dropout=0.1, init_from="resume"))
    a, b = losses(full), losses(part)
    assert sorted(a) == sorted(b) == list(range(12))
    assert max(abs(a[s] - b[s]) for s in range(12)) < 1e-6
    va = [r["val_loss"] for r in read_metrics(str(full), "eval")]
    vb = [r["val_loss"] for r in read_metrics(str(part), "eval")]
    assert len(va) == len(vb) and np.allclose(va, vb, atol=1e-6)


def run_script(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def cli_args(cfg):
    keys = [
        "data_dir",
        "out_dir",
        "n_layer",
        "n_head",
        "n_embd",
        "block_size",
        "batch_size",
        "max_iters",
        "eval_interval",
        "eval_iters",
        "log_interval",
        "learning_rate",
        "min_lr",
        "warmup_iters",
        "lr_decay_iters",
        "embedding",
        "gradient_accumulation_steps",
        "init_from",
    ]
    return [f"--{k}={cfg[k]}" for k in keys]


@pytest.mark.slow
def test_ctrl_c_writes_checkpoint_and_resume_is_exact(data_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    cfg = tiny(data_dir, part, max_iters=40, lr_decay_iters=40, eval_interval=100, log_interval=1)
    train.train(dict(cfg, out_dir=str(full)))
    proc = run_script(["train.py", *cli_args(cfg)])
    metrics = part / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(losses(part)) >= 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "checkpoint written" in out
    ckpt = checkpoint.load(str(part / "ckpt.pt"))
    stopped = ckpt["iter_num"]
    assert 5 <= stopped < 40 and not ckpt["finished"]
    train.train(dict(cfg, init_from="resume"))
    a, b = losses(full), losses(part)
    assert sorted(b) == list(range(40))
    assert max(abs(a[s] - b[s]) for s in range(40)) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["kron", "kron_tied"])  # kron_tied: its head matrix is shared over micro-batches
def test_ddp_matches_single_process_with_double_accumulation(data_dir, tmp_path, arm):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    cfg = tiny(data_dir, single, max_iters=4, eval_interval=2, gradient_accumulation_steps=4, embedding=arm)  # 2 per rank
    train.train(cfg)
    proc = run_script(
        [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "train.py",
            *cli_args(dict(cfg, out_dir=str(ddp))),
            "--device=cpu",
            "--peak_flops=1e12",
        ]
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    a, b = losses(single), losses(ddp)
    # token accounting counts both ranks; MFU divides by both ranks' peak
    from model import GPT, GPTConfig

    with torch.device("meta"):
        flops = GPT(GPTConfig.from_dict(cfg)).flops_per_token()
    for rec in read_metrics(str(ddp), "train"):
        assert rec["tokens"] == (rec["step"] + 1) * 4 * 32 * 4
        assert rec["mfu"] == pytest.approx(flops * rec["tokens_per_s"] / (1e12 * 2))
    assert sorted(a) == sorted(b) == [0, 1, 2, 3]
    assert max(abs(a[s] - b[s]) for s in a) < 1e-5
    va = [r["val_loss"] for r in read_metrics(str(single), "eval")]
    vb = [r["val_loss"] for r in read_metrics(str(ddp), "eval")]
    assert np.allclose(va, vb, atol=1e-5)


def test_a_changed_weight_decay_takes_effect_on_resume(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=4))
    t = train.train(tiny(data_dir, tmp_path, max_iters=6, init_from="resume", weight_decay=0.0, beta2=0.99))
    assert [g["weight_decay"] for g in t.optimizer.param_groups] == [0.0, 0.0]
    assert all(g["betas"] == (0.9, 0.99) for g in t.optimizer.param_groups)


def test_cpu_bf16_autocast_trains(data_dir, tmp_path):
    t = train.train(tiny(data_dir, tmp_path, dtype="bfloat16", max_iters=8, lr_decay_iters=8))
    assert t.rt.dtype == "bfloat16"
    loss = losses(tmp_path)
    assert all(np.isfinite(v) for v in loss.values()) and loss[7] < loss[0]


def test_train_py_applies_paired_initialisation(data_dir, tmp_path):
    import train
    from tests.conftest import tiny_config

    models = {
        arm: train.train(tiny_config(data_dir, tmp_path / arm, embedding=arm, max_iters=0, paired_init=True)).model
        for arm in ("kron", "bpe_untied")
    }
    a, b = (dict(m.named_parameters()) for m in models.values())
    assert torch.equal(a["transformer.h.0.attn.c_attn.weight"], b["transformer.h.0.attn.c_attn.weight"])
    assert torch.equal(a["lm_head.weight"], b["lm_head.weight"])


def test_resume_of_a_cuda_style_checkpoint_on_cpu(data_dir, tmp_path):
    """A checkpoint whose optimizer says fused (CUDA's choice) resumes on CPU unfused, exactly."""
    cfg = tiny_config(data_dir, tmp_path / "run", max_iters=6, eval_interval=3)
    full = train.train(tiny_config(data_dir, tmp_path / "full", max_iters=6, eval_interval=3))
    train.train(dict(cfg, max_iters=3))
    path = tmp_path / "run" / "ckpt.pt"
    ckpt = checkpoint.load(str(path))
    for g in ckpt["optimizer"]["param_groups"]:
        g["fused"] = True
    torch.save(ckpt, path)
    t = train.train(dict(cfg, init_from="resume"))
    assert all(not g["fused"] for g in t.optimizer.param_groups)
    losses = [json.loads(ln) for ln in open(tmp_path / "run" / "metrics.jsonl")]
    ref = [json.loads(ln) for ln in open(tmp_path / "full" / "metrics.jsonl")]
    val = {r["step"]: r["val_loss"] for r in losses if r.get("kind") == "eval"}
    ref_val = {r["step"]: r["val_loss"] for r in ref if r.get("kind") == "eval"}
    assert val[6] == pytest.approx(ref_val[6], abs=1e-6) and full.iter_num == 6


def test_stop_flag_is_not_synchronised_every_step(data_dir, tmp_path, monkeypatch):
    """Alone, the stop check reads a flag; under DDP it all-reduces on log steps only."""
    calls = []
    real = runtime.Runtime.all_reduce

    def counting(self, values, op="sum"):
        calls.append(op)
        return real(self, values, op)

    monkeypatch.setattr(runtime.Runtime, "all_reduce", counting)
    t = train.train(tiny_config(data_dir, tmp_path / "run", max_iters=12, log_interval=4))
    assert "max" not in calls  # the single process never all-reduced the stop flag
    t.rt.data_parallel = True
    monkeypatch.setattr(runtime.Runtime, "all_reduce", lambda self, v, op="sum": calls.append(op) or [0.0])
    calls.clear()
    for t.iter_num in range(12):
        assert not train.stop_requested(t, train.StopGuard(verbose=False))
    assert calls == ["max"] * 3  # steps 0, 4, 8


def test_a_checkpoint_written_on_a_stop_does_not_pair_an_old_val_loss_with_its_step(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "stop_requested", lambda run, stop: run.iter_num == 3)
    train.train(tiny_config(data_dir, tmp_path / "run", max_iters=12, eval_interval=8))
    meta = checkpoint.read_meta(str(tmp_path / "run"))
    assert meta["step"] == 3 and meta["val_loss"] is None and meta["best_val_loss"] is not None


# --------------------------------------------------------------------------- eval_only and resuming


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


def test_eval_only_does_not_list_changed_settings(data_dir, finished_run, capsys):
    train.train(tiny_config(data_dir, finished_run, max_iters=150, eval_only=True))
    out = capsys.readouterr().out
    assert "eval_only: val loss" in out and "changed settings" not in out


def test_resume_names_changed_settings_and_refuses_fixed_ones(data_dir, finished_run, capsys):
    with pytest.raises(ConfigError, match="seed: checkpoint 1337 vs config 7"):
        train.train(tiny_config(data_dir, finished_run, init_from="resume", seed=7, max_iters=4, eval_interval=2, lr_decay_iters=4))
    capsys.readouterr()
    train.train(tiny_config(data_dir, finished_run, init_from="resume", max_iters=8, learning_rate=1e-3, eval_interval=2, lr_decay_iters=8))
    out = capsys.readouterr().out
    assert "changed settings: learning_rate 0.003 -> 0.001, max_iters 4 -> 8, lr_decay_iters 4 -> 8" in out
    assert "learning-rate schedule changes: lr at step 4 was" in out


def test_resuming_a_finished_run_says_so(data_dir, finished_run, capsys):
    lines = metrics_lines(finished_run)
    train.train(tiny_config(data_dir, finished_run, init_from="auto", max_iters=4, eval_interval=2, lr_decay_iters=4))
    assert "already finished at step 4" in capsys.readouterr().out
    assert metrics_lines(finished_run) == lines  # no re-evaluation, nothing appended


def test_checkpoint_from_another_arm_or_shape(data_dir, tmp_path):
    train.train(tiny(data_dir, tmp_path, max_iters=2, embedding="bpe_tied"))
    with pytest.raises(ConfigError, match="another run.*embedding: checkpoint 'bpe_tied' vs config 'kron'"):
        train.train(tiny(data_dir, tmp_path, init_from="resume", embedding="kron"))
    with pytest.raises(ConfigError, match="n_embd: checkpoint 32 vs config 64"):
        train.train(tiny(data_dir, tmp_path, init_from="resume", embedding="bpe_tied", n_embd=64))
    with pytest.raises(ConfigError, match="exists; use --init_from=resume"):
        train.train(tiny(data_dir, tmp_path, embedding="bpe_tied"))
    with pytest.raises(ConfigError, match="no checkpoint"):
        train.train(tiny(data_dir, tmp_path / "empty", init_from="resume"))


# --------------------------------------------------------------------------- clear errors


def test_bare_train_py_refuses_with_the_list_of_configs():
    r = run([sys.executable, "train.py"], timeout=60)
    assert r.returncode == 1 and "config/kron_cpu.py" in r.stderr and "no config given" in r.stderr


def test_gpu_sized_config_on_cpu_asks_for_device_cpu(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    r = run([sys.executable, "train.py", "config/kron_124m.py", "--wandb_log=False", f"--out_dir={tmp_path / 'run'}"], timeout=120)
    assert r.returncode == 1 and "GPU-sized" in r.stderr and "--device=cpu" in r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_absurd_model_is_refused_before_anything_is_allocated(data_dir, tmp_path, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a model was built")

    monkeypatch.setattr(train, "GPT", no_build)
    with pytest.raises(ConfigError, match=r"n_layer=100000.*needs about [\d,]+ GiB .*more than this machine's"):
        train.train(tiny_config(data_dir, tmp_path / "run", n_layer=100000, n_embd=128, n_head=2, device="cpu"))


def test_a_failed_start_leaves_no_folder_holding_only_a_lock(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no train shards"):
        train.train(tiny_config(str(empty), tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_with_step_and_keeps_checkpoint(data_dir, tmp_path, monkeypatch):
    real_forward = train.GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None, **kw):
        logits, loss = real_forward(self, idx, targets, **kw)
        if self.training and targets is not None:
            calls["n"] += 1
            if calls["n"] > 5:  # training step 5 onwards
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(train.GPT, "forward", forward)
    with pytest.raises(FloatingPointError, match="loss is nan at step 5"):
        train.train(tiny(data_dir, tmp_path))
    ckpt = checkpoint.load(str(tmp_path / "ckpt.pt"))
    assert ckpt["iter_num"] == 4  # the evaluation checkpoint before the bad step
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


@pytest.mark.slow
def test_user_errors_end_in_one_line_and_debug_shows_the_traceback(data_dir, finished_run):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "train.py",
        "config/kron_cpu.py",
        f"--data_dir={data_dir}",
        f"--out_dir={finished_run}",
        "--init_from=resume",
        "--max_iters=8",
        "--eval_only=True",
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KRON_DEBUG="0")
    r = subprocess.run(cmd + ["--eval_only=False"], cwd=root, capture_output=True, text=True, env=env, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") and "is another run (block_size" in lines[0]
    r = subprocess.run(cmd + ["--eval_only=False", "--debug"], cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_the_same_run_twice_is_identical_even_beside_a_cpu_bound_process(data_dir, tmp_path):
    """What reproduces exactly: the same settings on the same CPU, thread count and libraries give the
    same losses to the last digit, whatever else the machine is doing; the log records those facts."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        curves = []
        for name in ("alone", "busy"):
            if name == "alone":
                busy.send_signal(signal.SIGSTOP)
            else:
                busy.send_signal(signal.SIGCONT)
            train.train(tiny(data_dir, tmp_path / name, embedding="bpe_tied", max_iters=6, eval_interval=3, lr_decay_iters=6))
            curves.append([r["loss"] for r in read_metrics(str(tmp_path / name), "train")])
    finally:
        busy.kill()
    assert curves[0] == curves[1] and len(curves[0]) == 6
    facts = read_metrics(str(tmp_path / "busy"), "config")[0]["machine"]
    assert facts["cpu"] and facts["cpu_capability"] and facts["torch"] == torch.__version__
