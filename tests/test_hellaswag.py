"""probes/hellaswag.py: the scoring arithmetic against a hand computation, a model built to prefer one
ending picks it, every arm runs, and malformed files are one-line errors."""

import json
import math
import types

import pytest
import torch

import hellaswag
from probes import hellaswag as hellaswag_cli
from tokenizer import get_tokenizer

TOK = get_tokenizer("gpt2")
THE = TOK.encode(" the")[0]


class PrefersThe:
    """Logits 10 on ' the' and 0 elsewhere at every position: a model that prefers one ending."""

    config = types.SimpleNamespace(block_size=64)

    def eval(self):
        return self

    def __call__(self, ids):
        logits = torch.zeros(*ids.shape, 50304)
        logits[..., THE] = 10.0
        return logits, None


def example(ctx, endings, label):
    return {
        "ind": 0,
        "activity_label": "test",
        "ctx_a": ctx,
        "ctx_b": "",
        "ctx": ctx,
        "split": "val",
        "split_type": "indomain",
        "label": label,
        "endings": endings,
        "source_id": "hand",
    }


def test_losses_are_the_ending_tokens_negative_log_likelihood():
    ids, mask = hellaswag.example_rows(TOK, "A cat sat on", ["the the", "a mat", "the mat", "it"], 64)
    total, mean = hellaswag.ending_losses(PrefersThe()(ids)[0], ids, mask)
    z = math.exp(10) + 50303
    nll_the, nll_other = -math.log(math.exp(10) / z), -math.log(1 / z)
    expect = [2 * nll_the, 2 * nll_other, nll_the + nll_other, nll_other]  # by hand, per ending's tokens
    assert total.tolist() == pytest.approx(expect, rel=1e-5)
    assert mean.tolist() == pytest.approx([nll_the, nll_other, (nll_the + nll_other) / 2, nll_other], rel=1e-5)


def test_a_model_built_to_prefer_one_ending_picks_it(tmp_path):
    rows = [
        example("The man walked to", ["the the the", "a shop downtown", "his car slowly", "work"], 0),
        example("She opened", ["a book", "her mail", "the the", "the door"], 2),
    ]
    path = tmp_path / "hs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = hellaswag.evaluate(PrefersThe(), TOK, hellaswag.read_examples(str(path)), progress=False)
    assert res == {"acc": 1.0, "acc_norm": 1.0, "n": 2}


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "kron_tied"])
def test_every_arm_runs_from_the_command_line(tiny_checkpoints, tmp_path, arm):
    rows = [example("The value of x is", ["the same", "not defined here", "a list of numbers", "zero"], i % 4) for i in range(3)]
    (tmp_path / "hs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = hellaswag_cli.main(["--ckpt", tiny_checkpoints[arm], "--data", str(tmp_path / "hs.jsonl"), "--out", str(tmp_path)])
    assert res["n"] == 3 and 0 <= res["acc"] <= 1 and json.load(open(tmp_path / "hellaswag.json"))["arm"] == arm


@pytest.mark.parametrize(
    "row, message",
    [
        ({"ctx": "x", "endings": ["a", "b", "c"], "label": 0}, "'endings' must be a list of 4 strings"),
        ({"ctx": "x", "endings": ["a", "b", "c", "d"], "label": 4}, "'label' = 4, expected 0, 1, 2 or 3"),
        ({"endings": ["a", "b", "c", "d"], "label": 1}, "expected an object with a string 'ctx'"),
    ],
)
def test_malformed_lines_are_named(tiny_checkpoints, tmp_path, row, message):
    good = example("A", ["b", "c", "d", "e"], 1)
    (tmp_path / "hs.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SystemExit, match=f"hs.jsonl:2: {message}"):
        hellaswag_cli.main(["--ckpt", tiny_checkpoints["kron"], "--data", str(tmp_path / "hs.jsonl")])
    with pytest.raises(SystemExit, match="does not exist: pass --data"):
        hellaswag_cli.main(["--ckpt", tiny_checkpoints["kron"], "--data", str(tmp_path / "missing.jsonl")])


def test_hellaswag_is_logged_during_training_when_asked(data_dir, tmp_path):
    import train
    from runlog import read_metrics
    from tests.conftest import tiny_config

    rows = [example("The value of x is", ["the same", "not defined here", "a list", "zero"], i % 4) for i in range(4)]
    (tmp_path / "hs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train.train(
        tiny_config(
            data_dir,
            tmp_path / "run",
            max_iters=8,
            eval_interval=4,
            lr_decay_iters=8,
            hellaswag_interval=8,
            hellaswag_path=str(tmp_path / "hs.jsonl"),
        )
    )
    evals = {r["step"]: r for r in read_metrics(str(tmp_path / "run"), "eval")}
    assert "hellaswag_acc" in evals[0] and "hellaswag_acc" not in evals[4] and 0 <= evals[8]["hellaswag_acc_norm"] <= 1
    from configurator import ConfigError

    with pytest.raises(ConfigError, match="'hellaswag_interval' = 8: needs hellaswag_path"):
        train.train(tiny_config(data_dir, tmp_path / "r2", hellaswag_interval=8))
