"""sample.py: nanoGPT's flags on any arm, deterministic for a seed, one-line errors for bad input."""

import os

import pytest

import sample


def run(ckpt, *flags):
    return sample.main(["--ckpt", ckpt, "--device", "cpu", "--max_new_tokens", "8", "--num_samples", "2", *flags])


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "kron_tied"])
def test_the_same_seed_gives_the_same_samples(tiny_checkpoints, arm, capsys):
    a = run(tiny_checkpoints[arm], "--start", "The value of", "--seed", "3")
    b = run(tiny_checkpoints[arm], "--start", "The value of", "--seed", "3")
    c = run(tiny_checkpoints[arm], "--start", "The value of", "--seed", "4", "--temperature", "2.0")
    assert a == b and len(a) == 2 and a != c
    assert capsys.readouterr().out.startswith("The value of")


def test_greedy_is_the_same_whatever_the_seed(tiny_checkpoints):
    greedy = [run(tiny_checkpoints["kron"], "--temperature", "0", "--seed", str(s)) for s in (1, 2)]
    assert greedy[0] == greedy[1] and greedy[0][0] == greedy[0][1]


def test_a_byte_word_enters_as_one_slot_on_kron_arms_only(tiny_checkpoints, capsys):
    import checkpoint

    model, _ = checkpoint.load_model(tiny_checkpoints["kron"])
    tok = sample.get_tokenizer(model.config.tokenizer)
    ids, overrides = sample.prompt_ids(model, tok, "The word", " kronekticus")
    assert ids.shape[1] == len(tok.encode("The word")) + 1 and overrides == {ids.shape[1] - 1: b" kronekticus"}
    with_word, _ = model(ids, byte_overrides=overrides)
    placeholder, _ = model(ids)
    assert (with_word[0, -1] - placeholder[0, -1]).abs().max() > 1e-6  # the slot's bytes reach the prediction
    run(tiny_checkpoints["kron"], "--start", "The word", "--byte_word", " kronekticus")
    assert "The word kronekticus" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--byte_word needs an arm whose input layer reads bytes.*'bpe_tied'"):
        run(tiny_checkpoints["bpe_tied"], "--byte_word", " kronekticus")


def test_bad_inputs_are_one_line(tiny_checkpoints, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"latin1.txt is not UTF-8 text \(byte 3"):
        run(tiny_checkpoints["kron"], "--start", f"FILE:{tmp_path / 'latin1.txt'}")
    with pytest.raises(SystemExit, match="the prompt is 40 tokens, longer than the model's block_size 32"):
        run(tiny_checkpoints["kron"], "--start", " a" * 40)
    with pytest.raises(SystemExit, match="does not exist"):
        run(str(tmp_path / "nope.pt"))
    with pytest.raises(SystemExit):
        run(tiny_checkpoints["kron"], "--top_p", "2")
    (tmp_path / "prompt.txt").write_text("Hello", encoding="utf-8")
    assert len(run(tiny_checkpoints["kron"], "--start", f"FILE:{tmp_path / 'prompt.txt'}")) == 2
    assert sorted(os.listdir(tmp_path)) == ["latin1.txt", "prompt.txt"]  # nothing written
