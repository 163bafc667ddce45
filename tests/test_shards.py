"""shards.py: batches, shards written and resumed exactly, nanoGPT's raw uint16 train.bin / val.bin
as they are, and a clear error for a missing, corrupt or foreign shard."""

import glob
import json
import os

import numpy as np
import pytest

import train
from runlog import read_metrics
from shards import ShardError, TokenData, documents_to_shards, read_shard, shard_paths, write_shard
from tests.conftest import FIXTURE, tiny, tiny_config


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


@pytest.mark.parametrize(
    "content, message",
    [
        ("llm.c", "starts with the llm.c shard header"),
        ("odd", "not a whole number of uint16 tokens"),
        ("uint32", "looks like uint32/int64 tokens"),
    ],
)
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
    (tmp_path / "data" / "pydocs").mkdir(parents=True)  # a clone prepared before the rename, run with today's config
    with pytest.raises(FileNotFoundError, match=r"pydocs \(its name before\) exists: move its shards into .*python_docs"):
        shard_paths(str(tmp_path / "data" / "python_docs"), "train")


def test_same_seed_same_batches_across_arms(data_dir):
    data = TokenData(data_dir, 32, 50304)
    a = data.train_batch(4, seed=1337, step=5, micro_step=1)
    b = data.train_batch(4, seed=1337, step=5, micro_step=1)
    c = data.train_batch(4, seed=1338, step=5, micro_step=1)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    assert np.array_equal(a[0][:, 1:], a[1][:, :-1])


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*prepare"):
        train.train(tiny(str(tmp_path / "nope"), tmp_path / "out"))


def test_corrupt_truncated_and_out_of_vocab_shards(tmp_path):
    path = str(tmp_path / "x_train_000001.bin")
    write_shard(path, np.arange(100))
    assert len(read_shard(path)) == 100
    raw = bytearray(open(path, "rb").read())
    open(path, "wb").write(raw[:-10])
    with pytest.raises(ShardError, match="truncated"):
        read_shard(path)
    raw[0:4] = np.int32(1234).tobytes()
    open(path, "wb").write(raw)
    with pytest.raises(ShardError, match="magic 1234"):
        read_shard(path)
    open(path, "wb").write(b"abc")
    with pytest.raises(ShardError, match="shorter than"):
        read_shard(path)
    write_shard(path, np.array([1, 2, 60000, 3]))
    with pytest.raises(ShardError, match="token id 60000.*position 2.*50304"):
        read_shard(path, vocab_size=50304)


def test_shards_from_another_tokenizer_are_refused_naming_both(data_dir, tmp_path):
    """The session's shards were made with GPT-2 (documents_to_shards records it); a model with a
    300-token tokenizer.json must not train on them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from shards import ShardError

    hf = Tokenizer(models.BPE(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator(
        ["the quick brown fox jumps over the lazy dog"] * 50, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"])
    )
    hf.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ShardError, match=r"tokenised with 'gpt2' \(50257 tokens\), but the model's tokenizer is .*tokenizer.json"):
        train.train(tiny_config(data_dir, tmp_path / "run", tokenizer=str(tmp_path / "tokenizer.json"), embedding="bpe_tied"))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# --------------------------------------------------------------------------- writing shards, resumed after an interruption


def fixture_docs():
    return [json.loads(line)["text"] for line in open(FIXTURE)]


def interrupted(docs, at=15):
    """The documents, with a kill (KeyboardInterrupt) when the at-th is reached."""
    for i, d in enumerate(docs):
        if i == at:
            raise KeyboardInterrupt
        yield d


def assert_same_shards(a, b):
    files = sorted(p for p in os.listdir(b) if p.endswith(".bin"))
    assert files == sorted(p for p in os.listdir(a) if p.endswith(".bin"))
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_prepare_resumes_exactly_after_interruption(tmp_path):
    docs = fixture_docs()
    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(interrupted(docs), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    state = json.load(open(tmp_path / "a" / "fw_progress.json"))
    assert 0 < state["shard"] and not state["done"]
    documents_to_shards(docs, str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(docs, str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=1)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_prepare_from_a_stream_resumes_its_position_without_rereading(tmp_path):
    """FineWeb-Edu preparation killed mid-way resumes from the saved stream position (datasets'
    state_dict), reads only what was not done, and writes the same shards byte for byte."""
    from data.fineweb_edu.prepare import load_documents
    from shards import Stream

    n_docs = sum(1 for _ in open(FIXTURE))
    read = []

    class Counted(Stream):
        stop_at = None

        def __iter__(self):
            for i, item in enumerate(super().__iter__()):
                if i == self.stop_at:
                    raise KeyboardInterrupt
                read.append(item[0])
                yield item

    def stream(stop_at=None):
        s = load_documents(None, None, [FIXTURE])
        counted = Counted(s.ds, s.column, s.describe)
        counted.stop_at = stop_at
        return counted

    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(stream(stop_at=15), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    state = json.load(open(tmp_path / "a" / "fw_progress.json"))
    assert 0 < state["shard"] and state["stream"] is not None
    read.clear()
    documents_to_shards(stream(), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    assert len(read) == n_docs - state["docs"] + (1 if state["carry"] else 0)  # only what was not done
    documents_to_shards(stream(), str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=2)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_a_stream_resumed_from_progress_without_a_position_skips_what_is_done(tmp_path):
    """Progress written without a stream position (by a plain iterable, or older code) is resumed by
    reading past the finished documents: the same shards as an uninterrupted run, nothing twice."""
    from data.fineweb_edu.prepare import load_documents

    docs = fixture_docs()
    with pytest.raises(KeyboardInterrupt):
        documents_to_shards(interrupted(docs), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(load_documents(None, None, [FIXTURE]), str(tmp_path / "a"), "fw", shard_tokens=1000, num_proc=1)
    documents_to_shards(docs, str(tmp_path / "b"), "fw", shard_tokens=1000, num_proc=1)
    assert_same_shards(tmp_path / "a", tmp_path / "b")


def test_a_random_validation_sample_is_fixed_spread_and_the_same_for_every_run(data_dir):
    a, b = (TokenData(data_dir, 32, 50304) for _ in range(2))
    first = a.val_batches(4, 3)
    rand_a, rand_b = a.val_batches(4, 3, "random"), b.val_batches(4, 3, "random")
    assert len(rand_a) == len(first) == 3
    assert all((x1 == x2).all() and (y1 == y2).all() for (x1, y1, _), (x2, y2, _) in zip(rand_a, rand_b))  # fixed
    assert not all((x1 == x2).all() for (x1, _, _), (x2, _, _) in zip(first, rand_a))  # not the first windows
    val = a.val[0]
    starts = {
        int(np.flatnonzero(np.lib.stride_tricks.sliding_window_view(val, 32).__eq__(row).all(1))[0]) for x, _, _ in rand_a for row in x
    }
    assert max(starts) > 12 * 32  # drawn from beyond the first 12 windows that "first" takes
    with pytest.raises(ValueError, match="sample='middle'"):
        a.val_batches(4, 3, "middle")
