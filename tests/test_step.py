"""step.py: micro-batches accumulate to the step one batch of their total size would take."""

import pytest
import torch

from step import TrainStep
from tests.conftest import model


@pytest.mark.parametrize("loss_chunk", [0, 16])
def test_three_micro_batches_take_the_step_of_one_batch_three_times_their_size(loss_chunk):
    """Every head alike (kron_tied here: its E(W) rebuilt per micro-batch): mean loss and the
    parameters after two steps match the single-batch step."""
    g = torch.Generator().manual_seed(3)
    xs, ys = torch.randint(0, 50257, (12, 32), generator=g), torch.randint(0, 50257, (12, 32), generator=g)
    results = []
    for accum in (1, 3):
        m = model(d=32, loss_chunk=loss_chunk)
        start = [p.detach().clone() for p in m.parameters()]
        opt = m.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
        step = TrainStep(m, opt, accum=accum, grad_clip=1.0)
        size = 6 // accum

        def fetch(i, s):
            i = s * accum + i  # micro-batch i of step s; i == accum is the next step's first
            return xs[i * size : (i + 1) * size], ys[i * size : (i + 1) * size]

        losses = [step(fetch(0, s), lambda i, s=s: fetch(i, s))[0].item() for s in range(2)]
        results.append((losses, [p.detach() - p0 for p, p0 in zip(m.parameters(), start)]))
    (l0, d0), (l1, d1) = results
    assert l0 == pytest.approx(l1, abs=1e-6)
    # Adam's m / sqrt(v) turns float-order differences in near-zero gradients (the byte rows a batch
    # barely touches) into update differences of ~1 % on a few entries; a wrong accumulation (a
    # micro-batch lost or counted twice) changes every tensor's update by tens of percent
    worst = max(((a - b).norm() / b.norm()).item() for a, b in zip(d1, d0) if b.norm() > 0)
    assert worst < 0.01, f"largest relative difference of a tensor's update: {worst:.2e}"
