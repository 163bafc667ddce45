"""arms.py: arms are (input layer, head) compositions from a registry; a new arm is one class and one
register() call, and trains through train.py, the probes and the study runner untouched."""
import json
import os
import sys

import numpy as np
import pytest
import torch

import arms
import checkpoint
import train
from model import GPT, GPTConfig
from runlog import read_metrics
from tests import toy_arm  # noqa: F401 (registers "toy_tripled")
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_four_arms_are_compositions():
    kinds = {}
    for name in ("bpe_tied", "kron", "bpe_untied", "kron_tied"):
        torch.manual_seed(0)
        m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, embedding=name))
        kinds[name] = (type(m.transformer.wte).__name__, type(m.lm_head).__name__)
        if name == "bpe_tied":
            assert m.transformer.wte.weight is m.lm_head.weight
    assert kinds == {"bpe_tied": ("TableInput", "LinearHead"), "kron": ("KronInput", "LinearHead"),
                     "bpe_untied": ("TableInput", "LinearHead"), "kron_tied": ("KronInput", "KronTiedHead")}


@pytest.mark.slow
def test_a_registered_toy_arm_trains_probes_and_runs_in_a_study(data_dir, tmp_path):
    t = train.train(tiny_config(data_dir, tmp_path / "toy", embedding="toy_tripled"))
    losses = [r["loss"] for r in read_metrics(str(tmp_path / "toy"), "train")]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3
    ids = torch.tensor([[5, 6]])
    assert torch.allclose(t.model.embed(ids), 3.0 * t.model.transformer.wte.weight[ids])
    evals = read_metrics(str(tmp_path / "toy"), "eval")
    assert evals[0]["emb_rms"] == pytest.approx(3 * evals[0]["wte_std"], rel=0.01)  # stats of what it produces
    model, _ = checkpoint.load_model(str(tmp_path / "toy" / "ckpt.pt"))
    assert type(model.transformer.wte).__name__ == "TripledTable"
    from probes import robustness
    sys.argv = ["robustness.py", f"toy={tmp_path / 'toy' / 'ckpt.pt'}", "--out", str(tmp_path / "probe")]
    robustness.main()
    assert json.load(open(tmp_path / "probe" / "robustness.json"))["models"]["toy"]["arm"] == "toy_tripled"
    cfg = tmp_path / "toy_study.py"  # a study config registers its arm by importing the module
    cfg.write_text("import tests.toy_arm\n" + "".join(
        f"{k} = {v!r}\n" for k, v in tiny_config(data_dir, "unused", max_iters=4, lr_decay_iters=4).items()
        if k not in ("out_dir", "embedding")))
    from scripts import run_study
    runs = run_study.main(["--base", str(cfg), "--arms", "toy_tripled", "bpe_tied", "--seeds", "1",
                           "--out-root", str(tmp_path / "study"), "--grid", "kron_pos_dim=8"])
    assert {r["name"] for r in runs} == {"toy_tripled", "bpe_tied"}  # kron_* settings vary byte-reading arms only
    for name in ("toy_tripled", "bpe_tied"):
        assert checkpoint.read_meta(str(tmp_path / "study" / f"{name}-s1"))["finished"]


def test_a_control_belongs_to_the_arms_that_take_it():
    with pytest.raises(ValueError, match="kron_scale=0.5 scales Kronecker embeddings; with embedding='toy_tripled'"):
        GPTConfig(embedding="toy_tripled", kron_scale=0.5)
    with pytest.raises(ValueError, match="embedding='nope': expected one of"):
        GPTConfig(embedding="nope")
    with pytest.raises(ValueError, match="unknown controls"):
        arms.register("bad", lambda cfg: None, controls=("kron_sclae",))


def test_kron_tied_checkpoints_from_before_the_head_owned_its_scale_resume_exactly(data_dir, tmp_path):
    """Old kron_tied checkpoints named the scale 'logit_scale' and listed it first among the optimizer's
    scalars; they load, and resume with the losses an uninterrupted run has."""
    full, part = tmp_path / "full", tmp_path / "part"
    train.train(tiny_config(data_dir, full, embedding="kron_tied"))
    train.train(tiny_config(data_dir, part, embedding="kron_tied", max_iters=6))
    ckpt = checkpoint.load(str(part / "ckpt.pt"))
    ckpt["model"] = {("logit_scale" if k == "lm_head.logit_scale" else k): v for k, v in ckpt["model"].items()}
    ids = ckpt["optimizer"]["param_groups"][1]["params"]
    ckpt["optimizer"]["param_groups"][1]["params"] = ids[-1:] + ids[:-1]  # the old order: the scale first
    torch.save(ckpt, part / "ckpt.pt")
    train.train(tiny_config(data_dir, part, embedding="kron_tied", init_from="resume"))
    a = {r["step"]: r["loss"] for r in read_metrics(str(full), "train")}
    b = {r["step"]: r["loss"] for r in read_metrics(str(part), "train")}
    assert sorted(a) == sorted(b) and max(abs(a[s] - b[s]) for s in a) < 1e-6
