"""The warmup-stable-decay schedule and its cool-down branches: cosine unchanged bit for bit, wsd's
shape, kept checkpoints, and a branch that reproduces the from-scratch run step for step."""

import json
import math
import os

import pytest

import checkpoint
import train
from configurator import ConfigError, TrainConfig, load_config
from runlog import read_metrics
from tests.conftest import tiny


def old_get_lr(it, c):
    """get_lr as it was before lr_schedule existed (commit 1812df8)."""
    if not c.decay_lr:
        return c.learning_rate
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    decay_iters = c.lr_decay_iters or c.max_iters
    if it >= decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_iters": 120, "warmup_iters": 15, "learning_rate": 2e-3, "min_lr": 2e-4},
        {"max_iters": 100, "warmup_iters": 0, "lr_decay_iters": 60},
        {"max_iters": 50, "warmup_iters": 10, "decay_lr": False},
        {"max_iters": 7, "warmup_iters": 7, "lr_decay_iters": 7, "min_lr": 0.0},
    ],
)
def test_cosine_is_the_old_schedule_bit_for_bit(settings):
    c = TrainConfig(**settings)
    assert c.lr_schedule == "cosine"
    for it in range(c.max_iters + 3):
        assert train.get_lr(it, c) == old_get_lr(it, c)


def test_wsd_warms_up_holds_then_decays_linearly_to_min_lr():
    c = TrainConfig(lr_schedule="wsd", max_iters=100, warmup_iters=10, cooldown_frac=0.2, learning_rate=1e-3, min_lr=1e-4)
    lr = [train.get_lr(it, c) for it in range(101)]
    assert lr[:10] == [1e-3 * (it + 1) / 11 for it in range(10)]  # the same warmup as cosine
    assert set(lr[10:80]) == {1e-3}  # stable until S = 100 - round(0.2 * 100) = 80
    assert lr[80] == 1e-3 and lr[100] == pytest.approx(1e-4)
    steps = [lr[i] - lr[i + 1] for i in range(80, 100)]
    assert steps == pytest.approx([(1e-3 - 1e-4) / 20] * 20)  # linear
    longer = TrainConfig(**{**c.to_dict(), "max_iters": 1000})
    assert [train.get_lr(it, longer) for it in range(80)] == lr[:80]  # the stable part ignores max_iters


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--lr_schedule=linear"], "'lr_schedule' = 'linear': expected 'cosine' or 'wsd'"),
        (["--cooldown_frac=0"], "'cooldown_frac' = 0.0: expected a number in (0, 1]"),
        (["--cooldown_frac=1.5"], "'cooldown_frac' = 1.5: expected a number in (0, 1]"),
        (["--keep_ckpt_steps=[0, 5]"], "'keep_ckpt_steps' = [0, 5]: expected None or a list of integers >= 1"),
        (["--keep_ckpt_steps=5"], "'keep_ckpt_steps' = 5: expected None or a list of integers >= 1"),
        (["--init_from=branch:"], "'init_from' = 'branch:': expected"),
        (["--lr_schedule=wsd", "--lr_decay_iters=100"], "'lr_decay_iters' = 100: cosine's setting"),
        (["--lr_schedule=wsd", "--max_iters=100", "--warmup_iters=50", "--cooldown_frac=0.6"], "cool-down would start at step 40"),
    ],
)
def test_wsd_settings_out_of_range_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_config(overrides)


def wsd(data_dir, out, **kw):
    """The tiny test config on a wsd schedule with a 25 % cool-down, dropout on (so RNG state matters)."""
    return tiny(data_dir, out, lr_schedule="wsd", cooldown_frac=0.25, lr_decay_iters=None, dropout=0.1, eval_interval=3, **kw)


def train_losses(out_dir):
    return {r["step"]: r["loss"] for r in read_metrics(str(out_dir), "train")}


@pytest.mark.slow
def test_a_branch_from_the_stable_run_is_the_from_scratch_run(data_dir, tmp_path, monkeypatch):
    """T = 12, cool-down round(0.25 * 12) = 3: the stable run (to 20, its own cool-down from 15) keeps
    step 9; the branch from it to 12, interrupted once and resumed, gives the from-scratch 12-step
    run's losses, exactly."""
    stable, branch, scratch = tmp_path / "stable", tmp_path / "branch", tmp_path / "scratch"
    train.train(wsd(data_dir, stable, max_iters=20, keep_ckpt_steps=[9, 30]))
    kept = stable / "ckpt_step9.pt"
    assert sorted(f for f in os.listdir(stable) if f.startswith("ckpt")) == ["ckpt.json", "ckpt.pt", "ckpt_step9.json", "ckpt_step9.pt"]
    assert checkpoint.load(str(kept))["iter_num"] == 9 and json.load(open(stable / "ckpt_step9.json"))["step"] == 9
    train.train(wsd(data_dir, scratch, max_iters=12))
    with monkeypatch.context() as mp:  # stopped before step 10, as SIGTERM would; the same command resumes it
        mp.setattr(train, "stop_requested", lambda run, stop: run.iter_num == 10)
        train.train(wsd(data_dir, branch, max_iters=12, init_from=f"branch:{kept}"))
    assert checkpoint.load(str(branch / "ckpt.pt"))["iter_num"] == 10
    train.train(wsd(data_dir, branch, max_iters=12, init_from=f"branch:{kept}"))
    a, b = train_losses(scratch), train_losses(branch)
    assert sorted(b) == [9, 10, 11]
    assert [b[s] for s in (9, 10, 11)] == [a[s] for s in (9, 10, 11)]  # bit-identical
    assert [train_losses(stable)[s] for s in range(9)] == [a[s] for s in range(9)]
    val = {r["step"]: r["val_loss"] for r in read_metrics(str(scratch), "eval")}
    branch_val = {r["step"]: r["val_loss"] for r in read_metrics(str(branch), "eval")}
    assert branch_val == {9: val[9], 12: val[12]}
    config = read_metrics(str(branch), "config")[-1]
    assert config["branched_from"] == {"path": str(kept), "step": 9, "max_iters": 20, "out_dir": str(stable)}
    assert config["scale"]["tokens"] == 12 * 4 * 32 and config["scale"]["non_embedding_params"] > 0
    assert read_metrics(str(branch), "eval")[-1]["tokens"] == 12 * 4 * 32
    assert checkpoint.load(str(branch / "ckpt.pt"))["branched_from"]["step"] == 9
    train.train(wsd(data_dir, branch, max_iters=12, init_from=f"branch:{kept}"))  # a rerun finds it finished
    assert train_losses(branch) == b


@pytest.mark.slow
def test_a_branch_that_would_be_another_run_is_refused(data_dir, tmp_path):
    stable = tmp_path / "stable"
    train.train(wsd(data_dir, stable, max_iters=16, keep_ckpt_steps=[6, 13]))
    kept, late = f"branch:{stable / 'ckpt_step6.pt'}", f"branch:{stable / 'ckpt_step13.pt'}"
    cases = [
        (dict(learning_rate=1e-3), "another run .*learning_rate: checkpoint 0.003 vs config 0.001"),
        (dict(warmup_iters=3), "warmup_iters: checkpoint 2 vs config 3"),
        (dict(seed=7), "seed: checkpoint 1337 vs config 7"),
        (dict(n_embd=64), "n_embd: checkpoint 32 vs config 64"),
        (dict(embedding="bpe_tied"), "embedding: checkpoint 'kron' vs config 'bpe_tied'"),
        (dict(max_iters=7), "step 6, is after this run's cool-down start, step 5"),
        (dict(lr_schedule="cosine", lr_decay_iters=8), "a branch cools down a wsd run"),
    ]
    for i, (kw, message) in enumerate(cases):
        cfg = {**wsd(data_dir, tmp_path / f"b{i}", max_iters=8, init_from=kept), **kw}
        with pytest.raises(ConfigError, match=message):
            train.train(cfg)
        assert not os.path.exists(tmp_path / f"b{i}" / "ckpt.pt")
    with pytest.raises(ConfigError, match="step 13, inside its own run's cool-down \\(from step 12\\)"):
        train.train(wsd(data_dir, tmp_path / "late", max_iters=40, init_from=late))
