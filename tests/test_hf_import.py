"""hf_import.py: a Hugging Face GPT-2 folder in (nanoGPT's init_from='gpt2', offline)."""

import os
import sys
import warnings

import pytest
import torch

import checkpoint
import train
from hf_import import load_hf
from runlog import read_metrics
from tests.conftest import ROOT, run, tiny

IDS = torch.tensor([[464, 1573, 318, 257, 11, 290, 262, 995]])


@pytest.mark.parametrize("arm", ["bpe_tied", "kron"])  # a tied table; an own head (kron exports as a table + head)
def test_our_export_comes_back_with_the_same_logits(tiny_checkpoints, tmp_path, arm):
    from scripts.export_hf import export

    ours, _ = checkpoint.load_model(tiny_checkpoints[arm])
    export(tiny_checkpoints[arm], str(tmp_path / "hf"))
    back, cfg = load_hf(str(tmp_path / "hf"))
    assert cfg.embedding == ("bpe_tied" if arm == "bpe_tied" else "bpe_untied")
    with torch.no_grad():
        assert torch.allclose(back(IDS)[0], ours(IDS)[0], atol=1e-4)


def test_a_folder_written_by_transformers_itself_gives_its_logits(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=50257, activation_function="gelu"))
    hf.eval().save_pretrained(tmp_path / "gpt2")
    ours, cfg = load_hf(str(tmp_path / "gpt2"))
    assert (cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.vocab_size, cfg.embedding) == (2, 32, 64, 50257, "bpe_tied")
    with torch.no_grad():
        assert torch.allclose(ours(IDS)[0], hf(IDS).logits, atol=1e-4)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64)).save_pretrained(tmp_path / "tanh")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_hf(str(tmp_path / "tanh"))  # GPT-2's own gelu_new: computed as exact GELU, and said so
    assert any("computed as exact GELU" in str(w.message) for w in caught)


def test_another_architecture_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(checkpoint.CheckpointError, match="model_type 'llama', expected 'gpt2'"):
        load_hf(str(tmp_path))


@pytest.mark.slow
def test_train_and_sample_start_from_a_hugging_face_folder(tiny_checkpoints, data_dir, tmp_path):
    from scripts.export_hf import export

    export(tiny_checkpoints["bpe_tied"], str(tmp_path / "hf"))
    out = tmp_path / "run"
    t = train.train(tiny(data_dir, out, init_from=f"hf:{tmp_path / 'hf'}", max_iters=4, eval_interval=2, lr_decay_iters=4))
    first = read_metrics(str(out), "eval")[0]["val_loss"]
    theirs = checkpoint.read_meta(os.path.dirname(tiny_checkpoints["bpe_tied"]))["val_loss"]  # the same val batches
    assert t.c.n_layer == 2 and t.c.embedding == "bpe_tied" and first == pytest.approx(theirs, abs=1e-4)
    sampled = run([sys.executable, f"{ROOT}/sample.py", f"--init_from=hf:{tmp_path / 'hf'}", "--num_samples=1", "--max_new_tokens=5"])
    assert sampled.returncode == 0 and sampled.stdout.strip(), sampled.stderr[-400:]
