"""Shared fixtures and helpers: a small shard folder from the embedded corpus, tiny trained checkpoints, a
finished tiny run, the repository's paths, a script runner, synthetic study logs and a small kron_tied model."""

import json
import os
import subprocess

import pytest
import torch

import train
from model import GPT, GPTConfig
from shards import documents_to_shards

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "fineweb_edu_sample.jsonl")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from pydoc_data.topics import topics

    out = tmp_path_factory.mktemp("pydoc")
    documents_to_shards([topics[k] for k in sorted(topics)], str(out), "pydoc", shard_tokens=10**9, val_tokens=4096, num_proc=1)
    return str(out)


def tiny_config(data_dir, out_dir, **kw):
    cfg = dict(
        train.DEFAULTS,
        data_dir=data_dir,
        out_dir=str(out_dir),
        n_layer=1,
        n_head=2,
        n_embd=32,
        block_size=32,
        batch_size=4,
        max_iters=12,
        eval_interval=4,
        eval_iters=2,
        log_interval=100,
        learning_rate=3e-3,
        min_lr=3e-4,
        warmup_iters=2,
        lr_decay_iters=12,
        embedding="kron",
    )
    cfg.update(kw)
    return cfg


def tiny(data_dir, out_dir, **kw):
    return tiny_config(data_dir, out_dir, **kw)


@pytest.fixture(scope="session")
def tiny_checkpoints(data_dir, tmp_path_factory):
    """{arm: ckpt path} for 2-layer models trained briefly in the test session itself."""
    root = tmp_path_factory.mktemp("ckpts")
    out = {}
    for arm in ("bpe_tied", "kron", "kron_tied"):
        train.train(tiny_config(data_dir, root / arm, embedding=arm, n_layer=2, max_iters=16, lr_decay_iters=16))
        out[arm] = str(root / arm / "ckpt.pt")
    return out


@pytest.fixture
def finished_run(data_dir, tmp_path):
    out = tmp_path / "run"
    train.train(tiny_config(data_dir, out, max_iters=4, eval_interval=2, lr_decay_iters=4))
    return out


def metrics_lines(out_dir):
    return open(os.path.join(out_dir, "metrics.jsonl")).read().splitlines()


def run(args, timeout=300, **env):
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def write_run(root, name, seed, curve, key="wte_std"):
    d = root / f"{name}-s{seed}"
    d.mkdir(parents=True)
    with open(d / "metrics.jsonl", "w") as f:
        for step, v in curve:
            f.write(json.dumps({"kind": "eval", "step": step, "val_loss": v, key: 1.0 + step / 1000, "emb_rms": 1.0}) + "\n")
            f.write(json.dumps({"kind": "train", "step": step, "loss": v, "tokens_per_s": 1000.0, "dt_ms": 10.0}) + "\n")
    return d


def model(d=64, **kw):
    """A seeded 2-layer kron_tied GPT of width d."""
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, n_head=2, n_embd=d, block_size=32, embedding="kron_tied", **kw))
