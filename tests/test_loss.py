"""loss.py: the chunked output layer + cross-entropy equals the plain path, per head, in fp32 and bf16."""

import pytest
import torch

import train
from loss import linear_cross_entropy
from model import GPT, GPTConfig
from runlog import read_metrics
from tests.conftest import tiny


def rel(a, b):
    """||a - b|| / ||b||: the relative error of a whole tensor."""
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def loss_and_grads(m, idx, targets, chunk, autocast):
    m.config.loss_chunk = chunk
    m.zero_grad(set_to_none=True)
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        _, loss = m(idx, targets)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arm", ["bpe_tied", "kron", "kron_tied"])  # a tied table, an own matrix, a rebuilt one
@pytest.mark.parametrize("autocast", [False, True])
def test_chunked_loss_and_every_gradient_equal_the_plain_path(arm, autocast):
    """fp32: 1e-6 relative (at chunk sizes of a few vector widths; a 7-row chunk takes another BLAS
    kernel whose order of summation over V gives dL/dh 2e-6 off). bf16 autocast: the logits are the
    same bf16 products on both paths, so the loss agrees to 1e-6 and the body's gradients exactly;
    dL/dW differs by one bf16 rounding (the plain path rounds the summed dL/dW to bf16, the chunked
    path sums its chunks in fp32): under 2^-8 relative."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, embedding=arm))
    g = torch.Generator().manual_seed(1)
    idx, targets = torch.randint(0, 50257, (3, 16), generator=g), torch.randint(0, 50257, (3, 16), generator=g)
    targets[0, :5] = -1  # ignored positions count in neither the loss nor its mean
    plain, g0 = loss_and_grads(m, idx, targets, 0, autocast)
    chunked, g1 = loss_and_grads(m, idx, targets, 20, autocast)  # 48 tokens: chunks of 20, 20 and 8
    assert chunked == pytest.approx(plain, rel=1e-6)
    assert g0.keys() == g1.keys()
    tol = 2**-8 if autocast else 1e-6
    worst = max(rel(g1[n], g0[n]) for n in g0)
    assert worst < tol, f"largest relative gradient difference {worst:.2e}"


def test_chunked_path_never_materialises_the_logits_and_handles_a_padding_bias():
    """A -inf bias (kron_tied's ids with no bytes) gives those ids probability 0 on both paths."""
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(10, 8, generator=g, requires_grad=True), torch.randn(50, 8, generator=g, requires_grad=True)
    bias = torch.zeros(50)
    bias[40:] = float("-inf")
    t = torch.randint(0, 40, (10,), generator=g)
    plain = linear_cross_entropy(h, w, bias, t, 0)
    chunked = linear_cross_entropy(h, w, bias, t, 3)
    assert torch.isfinite(chunked) and chunked.item() == pytest.approx(plain.item(), rel=1e-6)
    (gh, gw) = torch.autograd.grad(chunked, (h, w))
    (ph, pw) = torch.autograd.grad(plain, (h, w))
    assert rel(gh, ph) < 1e-6 and rel(gw, pw) < 1e-6 and gw[40:].abs().max() == 0


def test_a_twenty_step_run_is_the_same_curve_chunked_or_not(data_dir, tmp_path):
    curves = {}
    for chunk in (0, 24):
        out = tmp_path / f"c{chunk}"
        train.train(tiny(data_dir, out, embedding="bpe_tied", max_iters=20, lr_decay_iters=20, loss_chunk=chunk))
        curves[chunk] = [r["loss"] for r in read_metrics(str(out), "train")]
    assert len(curves[0]) == 20
    assert curves[24] == pytest.approx(curves[0], rel=1e-5)  # 20 AdamW steps amplify 1e-7 differences


def test_evaluation_takes_no_gradient_work(monkeypatch):
    """Under no_grad the chunked path computes the loss alone: no V x d gradient buffer is made (and
    none of the two gradient products), though its inputs require gradients."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 16, generator=g).requires_grad_()
    w = torch.randn(1000, 16, generator=g).requires_grad_()
    t = torch.randint(0, 1000, (64,), generator=g)
    shapes, real = [], torch.zeros

    def zeros(*args, **kw):
        shapes.append(tuple(args[0]) if args and isinstance(args[0], (tuple, torch.Size)) else args)
        return real(*args, **kw)

    monkeypatch.setattr(torch, "zeros", zeros)
    with torch.no_grad():
        value = linear_cross_entropy(h, w, None, t, 16)
    assert (1000, 16) not in shapes
    linear_cross_entropy(h, w, None, t, 16)
    assert (1000, 16) in shapes  # with gradients on, the buffer is made: the check above can fail
    assert value.item() == pytest.approx(linear_cross_entropy(h, w, None, t, 0).item(), rel=1e-6)
