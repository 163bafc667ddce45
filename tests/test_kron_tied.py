"""kron_tied: the Kronecker layer as the output head too (logits = s * h @ E(W)^T, no V x d matrix)."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import arms
import checkpoint
import train
from configurator import ConfigError
from kron_embed import KroneckerEmbedding, codec_table, reference_forward
from model import GPT, GPTConfig
from runlog import read_metrics
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def cached_layer():
    """A layer and its explicit (V, D) codec table (the paper's cached construction)."""
    torch.manual_seed(0)
    layer = KroneckerEmbedding(50304, 16, pos_dim=4)
    layer.table = codec_table(layer)
    return layer


def test_vocabulary_equals_row_by_row_forward_of_every_id(cached_layer):
    """The fused full-vocabulary rebuild against the cached-table path, id by id (in chunks)."""
    with torch.no_grad():
        rebuilt = cached_layer.vocabulary()
        ids = torch.arange(50304)
        rows = torch.cat([reference_forward(cached_layer, ids[i:i + 4096], "cached", cached_layer.table)
                          for i in range(0, 50304, 4096)])
    assert rebuilt.shape == (50304, 16)
    assert torch.allclose(rebuilt, rows, atol=1e-5)
    assert torch.all(rebuilt[50257:] == 0) and not cached_layer.has_bytes()[50257:].any()


def test_head_gradient_through_w_matches_cached_table_reference(cached_layer):
    torch.manual_seed(1)
    h = torch.randn(8, 16)
    target = torch.randint(0, 50257, (8,))
    W = cached_layer.weight
    W.grad = None
    F.cross_entropy(0.5 * h @ cached_layer.vocabulary().T, target).backward()
    fused_grad = W.grad.clone()
    W.grad = None
    F.cross_entropy(0.5 * h @ (cached_layer.table @ W).T, target).backward()  # the explicit V x D route
    assert ((fused_grad - W.grad).norm() / W.grad.norm()).item() < 1e-5


def model(d=64, **kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, n_head=2, n_embd=d, block_size=32, embedding="kron_tied", **kw))


def test_initial_loss_is_ln_v_and_padding_gets_no_probability():
    m = model()
    x, y = torch.randint(0, 50257, (4, 32)), torch.randint(0, 50257, (4, 32))
    logits, loss = m(x, y)
    assert loss.item() == pytest.approx(math.log(50304), abs=0.1)
    probs = torch.softmax(logits.float(), dim=-1)
    assert probs[..., 50257:].sum().item() == 0.0
    loss.backward()
    assert m.transformer.wte.weight.grad.abs().sum() > 0 and m.lm_head.logit_scale.grad is not None


def test_parameter_count_at_124m():
    with torch.device("meta"):
        counts = GPT(GPTConfig(embedding="kron_tied")).param_groups_by_role()
    assert counts == {"input": 3_145_728, "output_head": 1, "body": 85_842_432, "total": 88_988_161}


def test_generate_builds_the_vocabulary_once_per_call(monkeypatch):
    m = model().eval()
    calls = {"n": 0}
    real = m.transformer.wte.vocabulary

    def counted():
        calls["n"] += 1
        return real()
    monkeypatch.setattr(m.transformer.wte, "vocabulary", counted)
    out = m.generate(torch.tensor([[464, 1573]]), 8, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert calls["n"] == 1 and out.shape == (1, 10) and int(out.max()) < 50257


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
    assert loaded.config.embedding == "kron_tied" and loaded.lm_head.rebuilt_each_step


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


def test_shared_head_matrix_over_micro_batches_equals_rebuilding_it_each_time():
    """TrainStep builds kron_tied's E(W) once per optimizer step and shares it across micro-batches;
    the parameters after two steps equal those of the plain per-micro-batch rebuild."""
    from step import TrainStep
    results = []
    for shared in (False, True):
        m = model(d=32)
        opt = m.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
        step = TrainStep(m, opt, accum=3, grad_clip=1.0, output_matrix=m.output_matrix if shared else None)
        g = torch.Generator().manual_seed(3)
        batches = [(torch.randint(0, 50257, (2, 32), generator=g), torch.randint(0, 50257, (2, 32), generator=g))
                   for _ in range(7)]
        losses = []
        for s in range(2):
            loss, _, _ = step(batches[3 * s], lambda i, s=s: batches[3 * s + i])
            losses.append(loss.item())
        results.append((losses, [p.detach().clone() for p in m.parameters()]))
    (l0, p0), (l1, p1) = results
    assert l0 == pytest.approx(l1, abs=1e-6)
    # Adam's m / sqrt(v) turns float-order differences in near-zero gradients into parameter
    # differences of up to ~1e-5 (lr 1e-2): 1e-4 is 1% of one update, far below a real mismatch
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(p0, p1))
