"""data/shards.py: nanoGPT's raw uint16 train.bin / val.bin train as they are; the wrong format,
size or dtype under those names is a one-line error."""
import glob
import os

import numpy as np
import pytest

import train
from data.shards import ShardError, read_shard, shard_paths, write_shard
from runlog import read_metrics
from tests.conftest import tiny_config


def nanogpt_folder(data_dir, out):
    """The session's shards rewritten as nanoGPT writes its data: raw uint16, no header."""
    os.makedirs(out, exist_ok=True)
    for split in ("train", "val"):
        tokens = np.concatenate([np.asarray(read_shard(p)) for p in sorted(glob.glob(os.path.join(data_dir, f"*_{split}_*.bin")))])
        tokens.astype(np.uint16).tofile(os.path.join(out, f"{split}.bin"))
    return str(out)


def test_a_nanogpt_data_folder_trains_as_is_and_sees_the_same_batches(data_dir, tmp_path):
    folder = nanogpt_folder(data_dir, tmp_path / "nanogpt_data")
    a = train.train(tiny_config(folder, tmp_path / "a", max_iters=4, eval_interval=2, lr_decay_iters=4))
    train.train(tiny_config(data_dir, tmp_path / "b", max_iters=4, eval_interval=2, lr_decay_iters=4))
    la = [r["loss"] for r in read_metrics(str(tmp_path / "a"), "train")]
    lb = [r["loss"] for r in read_metrics(str(tmp_path / "b"), "train")]
    assert la == lb and a.data.n_train_tokens > 0  # the same tokens in one file: the same windows, the same losses


@pytest.mark.parametrize("content, message", [
    ("llm.c", "starts with the llm.c shard header"),
    ("odd", "not a whole number of uint16 tokens"),
    ("uint32", "looks like uint32/int64 tokens"),
])
def test_the_wrong_thing_named_train_bin_is_a_clear_error(data_dir, tmp_path, content, message):
    folder = nanogpt_folder(data_dir, tmp_path / "d")
    path = os.path.join(folder, "train.bin")
    tokens = np.fromfile(path, dtype=np.uint16)[:5000]
    if content == "llm.c":
        write_shard(path, tokens)
    elif content == "odd":
        with open(path, "ab") as f:
            f.write(b"\x00")
    else:
        tokens.astype(np.uint32).tofile(path)
    before = open(path, "rb").read()
    with pytest.raises(ShardError, match=message):
        train.train(tiny_config(folder, tmp_path / "run"))
    assert open(path, "rb").read() == before


def test_a_corpus_folder_under_its_old_name_says_where_it_went(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data/pydoc is now data/python_help: .* python -m data.python_help.prepare"):
        shard_paths(str(tmp_path / "data" / "pydoc"), "train")
    with pytest.raises(FileNotFoundError, match="does not exist: prepare it first") as e:
        shard_paths(str(tmp_path / "data" / "elsewhere"), "train")
    assert "is now" not in str(e.value)
