"""Shared fixtures: a small shard folder from the embedded corpus and tiny trained checkpoints."""
import pytest

import train
from data.shards import documents_to_shards


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from pydoc_data.topics import topics
    out = tmp_path_factory.mktemp("pydoc")
    documents_to_shards([topics[k] for k in sorted(topics)], str(out), "pydoc", shard_tokens=10 ** 9,
                        val_tokens=4096, num_proc=1)
    return str(out)


def tiny_config(data_dir, out_dir, **kw):
    cfg = dict(train.DEFAULTS, data_dir=data_dir, out_dir=str(out_dir), n_layer=1, n_head=2, n_embd=32,
               block_size=32, batch_size=4, max_iters=12, eval_interval=4, eval_iters=2, log_interval=100,
               learning_rate=3e-3, min_lr=3e-4, warmup_iters=2, lr_decay_iters=12, embedding="kron")
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="session")
def tiny_checkpoints(data_dir, tmp_path_factory):
    """{arm: ckpt path} for 2-layer models trained briefly in the test session itself."""
    root = tmp_path_factory.mktemp("ckpts")
    out = {}
    for arm in ("bpe_tied", "kron", "kron_tied"):
        train.train(tiny_config(data_dir, root / arm, embedding=arm, n_layer=2, max_iters=16, lr_decay_iters=16))
        out[arm] = str(root / arm / "ckpt.pt")
    return out
