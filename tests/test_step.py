"""step.py: the training step's shared head matrix over micro-batches."""
import pytest
import torch

from tests.conftest import model


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
