"""arms.py: arms are (input layer, head) compositions from a registry; a new arm is one class and one
register() call, and trains through train.py, the probes and the study runner untouched; the study's
controls do what they say and are refused where they mean nothing; kron_tied's Kronecker head."""

import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch

import arms
import checkpoint
import train
from configurator import ConfigError, load_config
from model import GPT, GPTConfig
from runlog import read_metrics
from tests import toy_arm  # noqa: F401 (registers "toy_tripled")
from tests.conftest import model, tiny_config


def test_the_four_arms_are_compositions():
    kinds = {}
    for name in ("bpe_tied", "kron", "bpe_untied", "kron_tied"):
        torch.manual_seed(0)
        m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, embedding=name))
        kinds[name] = (type(m.transformer.wte).__name__, type(m.lm_head).__name__)
        if name == "bpe_tied":
            assert m.transformer.wte.weight is m.lm_head.weight
    assert kinds == {
        "bpe_tied": ("TableInput", "LinearHead"),
        "kron": ("KronInput", "LinearHead"),
        "bpe_untied": ("TableInput", "LinearHead"),
        "kron_tied": ("KronInput", "KronTiedHead"),
    }


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
    cfg.write_text(
        "import tests.toy_arm\n"
        + "".join(
            f"{k} = {v!r}\n"
            for k, v in tiny_config(data_dir, "unused", max_iters=4, lr_decay_iters=4).items()
            if k not in ("out_dir", "embedding")
        )
    )
    from scripts import run_study

    runs = run_study.main(
        [
            "--base",
            str(cfg),
            "--arms",
            "toy_tripled",
            "bpe_tied",
            "--seeds",
            "1",
            "--out-root",
            str(tmp_path / "study"),
            "--grid",
            "kron_pos_dim=8",
        ]
    )
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


# --------------------------------------------------------------------------- the controls


def small(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, **kw))


def test_scale_control_gives_the_untied_table_the_kron_input_rms():
    ids = torch.arange(50257)
    kron_rms = small(embedding="kron").embed(ids).pow(2).mean().sqrt().item()
    ctrl_rms = small(embedding="bpe_untied", input_init_std=1.0).embed(ids).pow(2).mean().sqrt().item()
    plain = small(embedding="bpe_untied")
    assert ctrl_rms == pytest.approx(1.0, abs=0.01) and kron_rms == pytest.approx(1.0, abs=0.1)
    assert plain.embed(ids).std().item() == pytest.approx(0.02, rel=0.02)
    assert small(embedding="bpe_untied", input_init_std=1.0).lm_head.weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_kron_scale_multiplies_the_input_embeddings():
    ids = torch.tensor([[5, 6, 7]])
    a, b = small(embedding="kron"), small(embedding="kron", kron_scale=0.02)
    assert torch.allclose(b.embed(ids), 0.02 * a.embed(ids))


@pytest.mark.parametrize(
    "arm,setting,message",
    [
        ("bpe_tied", "--input_init_std=1.0", "input_init_std=1.0 is the scale control of the untied BPE table"),
        ("kron", "--input_init_std=1.0", "input_init_std=1.0 is the scale control"),
        ("bpe_tied", "--kron_shuffle_seed=3", "kron_shuffle_seed=3 shuffles the Kronecker byte table"),
        ("bpe_untied", "--kron_scale=0.02", "kron_scale=0.02 scales Kronecker embeddings"),
    ],
)
def test_a_control_on_an_arm_where_it_means_nothing_is_refused(arm, setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config([f"--embedding={arm}", setting])


def relative_change_of_input(steps=20, lr=2e-3, **kw):
    """||W_T - W_0|| / ||W_0|| of the input layer's parameters after AdamW steps on random tokens."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, **kw))
    params = list(m.transformer.wte.parameters())
    start = [p.detach().clone() for p in params]
    opt = m.configure_optimizers(0.1, lr, (0.9, 0.95), "cpu")
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(0, 50257, (4, 16), generator=g)
        _, loss = m(x, torch.roll(x, -1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return [((p.detach() - s).norm() / s.norm()).item() for p, s in zip(params, start)], m


def test_the_input_scale_control_keeps_the_tables_learning_dynamics():
    """input_scale=50 gives inputs of the Kron layer's RMS (~1) from a table that still starts at 0.02
    and moves like the ordinary table under AdamW; input_init_std=1.0 gives the RMS but a table that
    hardly moves (a frozen random code)."""
    ids = torch.arange(50257)
    scaled = small(embedding="bpe_untied", input_scale=50.0)
    assert scaled.embed(ids).pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.02)
    assert scaled.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.02)
    (plain,), _ = relative_change_of_input(embedding="bpe_untied")
    (control,), _ = relative_change_of_input(embedding="bpe_untied", input_scale=50.0)
    (frozen,), _ = relative_change_of_input(embedding="bpe_untied", input_init_std=1.0)
    assert 0.5 < control / plain < 2.0
    assert frozen < plain / 10


def test_the_low_rank_table_matches_the_kron_projections_parameters_and_learns():
    for shape in (dict(n_layer=4, n_head=4, n_embd=128, block_size=256), dict()):  # the CPU study's and 124M
        with torch.device("meta"):
            low = GPT(GPTConfig(embedding="bpe_lowrank", **shape)).param_groups_by_role()["input"]
            kron = GPT(GPTConfig(embedding="kron", **shape)).param_groups_by_role()["input"]
        assert abs(low - kron) / kron < 0.05
    m = small(embedding="bpe_lowrank")
    assert m.embed(torch.arange(50257)).std().item() == pytest.approx(0.02, rel=0.25)  # rank 3 here: a noisy product
    changes, _ = relative_change_of_input(embedding="bpe_lowrank")
    (plain,), _ = relative_change_of_input(embedding="bpe_untied")
    assert all(c > plain / 10 for c in changes)  # both factors learn; neither is frozen
    with pytest.raises(ValueError, match="lowrank_rank=8 is the rank of the factorised table"):
        GPTConfig(embedding="bpe_untied", lowrank_rank=8)


# --------------------------------------------------------------------------- kron_tied


def test_initial_loss_is_ln_v_and_padding_gets_no_probability():
    m = model()
    x, y = torch.randint(0, 50257, (4, 32)), torch.randint(0, 50257, (4, 32))
    logits, loss = m(x, y)
    assert logits is None  # the chunked loss (the default) never materialises them
    assert loss.item() == pytest.approx(math.log(50304), abs=0.1)
    probs = torch.softmax(m(x)[0].float(), dim=-1)
    assert probs[..., 50257:].sum().item() == 0.0
    loss.backward()
    assert m.transformer.wte.weight.grad.abs().sum() > 0 and m.lm_head.logit_scale.grad is not None


def test_parameter_count_at_124m():
    with torch.device("meta"):
        counts = GPT(GPTConfig(embedding="kron_tied")).param_groups_by_role()
    assert counts == {"input": 3_145_728, "output_head": 1, "body": 85_842_432, "total": 88_988_161}


def test_tiny_run_learns_and_resume_is_exact(data_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train.train(tiny_config(data_dir, full, embedding="kron_tied"))
    train.train(tiny_config(data_dir, part, embedding="kron_tied", max_iters=6))
    train.train(tiny_config(data_dir, part, embedding="kron_tied", init_from="resume"))
    a = {r["step"]: r["loss"] for r in read_metrics(str(full), "train")}
    b = {r["step"]: r["loss"] for r in read_metrics(str(part), "train")}
    assert sorted(a) == sorted(b) == list(range(12)) and max(abs(a[s] - b[s]) for s in a) < 1e-6
    assert np.mean([a[s] for s in (9, 10, 11)]) < np.mean([a[s] for s in (0, 1, 2)]) - 0.5
    evals = read_metrics(str(full), "eval")
    assert evals[0]["logit_scale"] == pytest.approx(0.02) and "proj_std_sqrtD" in evals[0]
    with pytest.raises(ConfigError, match="embedding: checkpoint 'kron_tied' vs config 'kron'"):
        train.train(tiny_config(data_dir, full, embedding="kron", init_from="resume", max_iters=14))
    loaded, _ = checkpoint.load_model(str(full / "ckpt.pt"))
    assert loaded.config.embedding == "kron_tied" and loaded.lm_head.tied


def test_real_tokens_without_bytes_are_refused():
    class Layer:  # a tokenizer whose real id 7 has no bytes
        tokenizer_name, n_tokenizer_vocab, pos_dim, byte_stats = "toy", 10, 16, {"colliding_tokens": 0}

        @staticmethod
        def has_bytes():
            return torch.tensor([True] * 7 + [False] + [True] * 2 + [False] * 6)

    with pytest.raises(ValueError, match="1 real tokens of 'toy' have no bytes"):
        arms.no_bytes_bias(Layer)


def test_pos_dim_so_small_that_tokens_collide_warns_with_the_count():
    with pytest.raises(ValueError, match="255 real tokens of 'gpt2' have no bytes"):
        model(d=16, kron_pos_dim=2)  # 2 bytes cannot hold a whole 3- or 4-byte UTF-8 character
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = model(d=16, kron_pos_dim=4)
    msgs = [str(w.message) for w in caught if "kron_tied" in str(w.message)]
    n = m.transformer.wte.byte_stats["colliding_tokens"]
    assert n > 1000 and len(msgs) == 1 and f"{n} real tokens share their byte row" in msgs[0]


def test_the_tied_logit_scale_control_sets_the_kron_tied_heads_start_and_then_learns():
    """tied_logit_scale=0: every real token's logit is 0 at init, so the step-0 loss is ln(real vocabulary)
    exactly; under AdamW the scale then moves away from 0 (it is a starting point, not a frozen value)."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, embedding="kron_tied", tied_logit_scale=0.0))
    x, y = torch.randint(0, 50257, (4, 16)), torch.randint(0, 50257, (4, 16))
    _, loss = m(x, y)
    assert loss.item() == pytest.approx(math.log(50257), abs=1e-4)
    assert small(embedding="kron_tied").lm_head.logit_scale.item() == pytest.approx(arms.KRON_TIED_LOGIT_SCALE)
    opt = m.configure_optimizers(0.1, 2e-3, (0.9, 0.95), "cpu")
    for _ in range(5):
        _, loss = m(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert abs(m.lm_head.logit_scale.item()) > 1e-3
    with pytest.raises(ValueError, match="tied_logit_scale=0.0 is the initial logit scale of kron_tied's head"):
        GPTConfig(embedding="kron", tied_logit_scale=0.0)


def test_the_toy_arm_declares_the_initial_rms_it_produces():
    from arms import ARMS
    from model import GPT, GPTConfig

    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=4, n_embd=128, block_size=16, embedding="toy_tripled"))
    assert m.norm_stats()["emb_rms"] == pytest.approx(ARMS["toy_tripled"].init_rms, rel=0.05)
