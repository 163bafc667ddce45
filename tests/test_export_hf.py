"""scripts/export_hf.py: every arm's checkpoint opens in transformers as GPT2LMHeadModel with no code
of ours, and gives our model's logits over the real vocabulary (to 1e-4)."""

import os

import pytest
import torch

import checkpoint
import train
from tests.conftest import tiny_config

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bpe_untied_ckpt(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("untied") / "run"
    train.train(tiny_config(data_dir, out, embedding="bpe_untied", n_layer=2, max_iters=8, lr_decay_iters=8))
    return str(out / "ckpt.pt")


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "bpe_untied", "kron_tied"])
def test_export_loads_in_transformers_with_our_logits(tiny_checkpoints, bpe_untied_ckpt, tmp_path, arm):
    from scripts import export_hf

    ckpt = bpe_untied_ckpt if arm == "bpe_untied" else tiny_checkpoints[arm]
    export_hf.main(["--ckpt", ckpt, "--out", str(tmp_path / "hf")])
    assert sorted(os.listdir(tmp_path / "hf")) == ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json", "vocab.json"]
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    ours, _ = checkpoint.load_model(ckpt)
    ids = torch.randint(0, 50257, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf(ids).logits[..., :50257]
        mine = ours(ids)[0][..., :50257]
    assert (theirs - mine).abs().max().item() < 1e-4
    if arm == "bpe_tied":
        assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # still tied
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert tok("Hello world")["input_ids"] == [15496, 995]


def test_bad_exports_are_one_line_and_write_nothing(tiny_checkpoints, tmp_path):
    from scripts import export_hf

    with pytest.raises(SystemExit, match="does not exist"):
        export_hf.main(["--ckpt", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "hf")])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="not a torch checkpoint"):
        export_hf.main(["--ckpt", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "hf")])
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit, match="exists; choose a new folder"):
        export_hf.main(["--ckpt", tiny_checkpoints["kron"], "--out", str(tmp_path / "taken")])
    assert sorted(os.listdir(tmp_path)) == ["junk.pt", "taken"] and not os.listdir(tmp_path / "taken")
