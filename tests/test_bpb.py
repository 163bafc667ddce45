"""Bits per byte: the loss summed over tokens / (ln 2 * the UTF-8 bytes of those tokens)."""

import math

import numpy as np
import pytest

import train
from runlog import read_metrics
from shards import TokenData
from tests.conftest import tiny
from tokenizer import get_tokenizer, text_byte_counts

TEXT = "Hello world, the naïve café — 3.14! Kronecker embeddings read a token's own bytes.\n" * 3


@pytest.mark.parametrize("name,vocab", [("gpt2", 50304), ("data/english_bpe8k/tokenizer.json", 8192)])
def test_a_texts_tokens_stand_for_exactly_its_utf8_bytes(name, vocab):
    ids = get_tokenizer(name).encode(TEXT)
    assert int(text_byte_counts(name, vocab)[ids].sum()) == len(TEXT.encode("utf-8"))


def test_one_quality_in_bits_per_byte_is_two_losses_per_token():
    """A model that pays 0.9 nats per byte of this text: the same bits per byte under both
    tokenizers, a different loss per token (the 8k tokenizer cuts the text into more tokens)."""
    per_token, per_byte = {}, {}
    for name, vocab in (("gpt2", 50304), ("data/english_bpe8k/tokenizer.json", 8192)):
        ids = get_tokenizer(name).encode(TEXT)
        nbytes = int(text_byte_counts(name, vocab)[ids].sum())
        loss_sum = 0.9 * nbytes
        per_token[name], per_byte[name] = loss_sum / len(ids), loss_sum / (math.log(2) * nbytes)
    assert per_byte["gpt2"] == pytest.approx(per_byte["data/english_bpe8k/tokenizer.json"]) == pytest.approx(0.9 / math.log(2))
    assert per_token["gpt2"] > 1.2 * per_token["data/english_bpe8k/tokenizer.json"]


def test_the_logged_bits_per_byte_are_the_hand_computed_ones(data_dir, tmp_path):
    run = train.train(tiny(data_dir, tmp_path, embedding="kron", max_iters=4, eval_interval=4, lr_decay_iters=4))
    last = read_metrics(str(tmp_path), "eval")[-1]
    data = TokenData(data_dir, 32, 50304, "gpt2")
    batches = data.val_batches(run.c.batch_size, run.c.eval_iters, run.c.val_sample)
    counts = text_byte_counts("gpt2", 50304)
    tokens = sum(y.size for _, y, _ in batches)
    nbytes = sum(int(counts[y].sum()) for _, y, _ in batches)
    assert last["val_bpb"] == pytest.approx(last["val_loss"] * tokens / (math.log(2) * nbytes), rel=1e-9)
    assert 0 < np.mean([counts[y].mean() for _, y, _ in batches]) < 10  # a few bytes per GPT-2 token


def test_validation_keeps_no_autograd_graph_whatever_calls_it():
    """losses_by_source runs under no_grad for every caller: final_evaluation called it with gradients
    on, and a graph kept over every validation window of a study run reached 19 GB (killed by the OOM
    killer). Same numbers either way (the graph changes memory, not values)."""
    import contextlib
    import types

    import torch

    modes = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, y):
            modes.append(torch.is_grad_enabled())
            return None, self.w * 2.0

    rt = types.SimpleNamespace(device="cpu", world=1, rank=0, autocast=contextlib.nullcontext(), to_device=torch.from_numpy)
    rt.all_reduce = list
    run = types.SimpleNamespace(model=Probe(), rt=rt, c=types.SimpleNamespace(tokenizer="gpt2", vocab_size=50304))
    batches = [(np.zeros((2, 4), np.int64), np.full((2, 4), 15496, np.int64), "src")]  # "Hello": 5 bytes a token
    loss, bpb, _, _ = train.losses_by_source(run, batches)
    assert modes == [False] and loss == 2.0 and bpb == pytest.approx(2.0 / (5 * np.log(2)))


def test_a_kept_logs_bits_per_byte_come_from_its_per_source_losses_and_the_counted_bytes(tmp_path):
    """Logs older than val_bpb: bpb = sum_s loss_s * tokens_s / (ln 2 * sum_s bytes_s), with the byte
    counts of the study's validation windows (scripts/val_bytes.py writes them beside runs/); a log that
    has val_bpb is read as it is."""
    import json

    import analysis

    counts = {"a": {"tokens": 10, "bytes": 40}, "b": {"tokens": 10, "bytes": 20}}
    assert analysis.bits_per_byte({"a": 2.0, "b": 1.0}, counts) == pytest.approx(30 / (math.log(2) * 60))
    with pytest.raises(ValueError, match=r"sources differ: losses for \['a'\], byte counts for \['a', 'b'\]"):
        analysis.bits_per_byte({"a": 2.0}, counts)
    run = tmp_path / "study" / "runs" / "kron-s1"
    run.mkdir(parents=True)
    old = {"kind": "eval", "step": 5, "val_loss": 1.5, "val_loss_by_source": {"a": 2.0, "b": 1.0}}
    assert analysis.final_bpb(str(run), old) is None  # no counts kept: no bits per byte
    (tmp_path / "study" / "val_bytes.json").write_text(json.dumps({"sources": counts}))
    assert analysis.final_bpb(str(run), old) == pytest.approx(30 / (math.log(2) * 60))
    assert analysis.final_bpb(str(run), dict(old, val_bpb=0.7)) == 0.7
