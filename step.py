"""The training step: one optimizer step of accumulated micro-batches, used by train.py and timed
as it is by scripts/bench_train.py.

    loss = sum_i L(x_i, y_i) / A over A micro-batches; clip ||g|| to grad_clip; AdamW step.

Nothing is read back to the host: the loss and the gradient norm come back as device tensors, to be
read at the next log step, so a step on a GPU never waits for it. The next micro-batch is fetched
(and copied, non-blocking from pinned memory) while the device runs the current forward. Under DDP
the gradients are all-reduced once, on the last micro-batch (no_sync on the others).
"""
from contextlib import nullcontext

import torch


class TrainStep:
    def __init__(self, model, optimizer, accum, grad_clip, autocast=None, scaler=None, ddp=False, output_matrix=None):
        """model: the module to run (compiled and/or DDP-wrapped); optimizer over its parameters;
        accum: micro-batches per step in this process; autocast: a context or None; scaler: a
        torch.amp.GradScaler or None (float16 only); output_matrix: for a model whose head matrix is
        rebuilt from its parameters (kron_tied: GPT.output_matrix), built here once per step and
        shared by the micro-batches instead of once per micro-batch."""
        if accum < 1:
            raise ValueError(f"accum={accum}: expected >= 1 micro-batches per step")
        self.model, self.optimizer, self.accum, self.grad_clip = model, optimizer, accum, grad_clip
        self.autocast = autocast or nullcontext()
        self.scaler = scaler or torch.amp.GradScaler(enabled=False)
        self.ddp = ddp
        self.output_matrix = output_matrix

    def __call__(self, batch, fetch):
        """batch: (x, y) of micro-batch 0. fetch(i) -> (x, y) of micro-batch i; fetch(accum) is the
        next step's first. Returns (mean loss, grad norm, the next step's first batch), the first two
        as 0-dim device tensors (the grad norm is NaN when clipping is off)."""
        x, y = batch
        loss_sum = None
        # A shared head matrix E: the micro-batches before the last use a detached copy and collect
        # dL/dE on it; the last uses E itself and adds <E, dL/dE so far> to its backward, so the
        # earlier micro-batches' head gradient reaches the parameters in the one synchronised backward.
        E = self.output_matrix() if self.output_matrix is not None else None
        E_early = E.detach().requires_grad_() if E is not None and self.accum > 1 else None
        for micro in range(self.accum):
            last = micro == self.accum - 1
            kwargs = {} if E is None else {"output_matrix": E if last or E_early is None else E_early}
            with self.model.no_sync() if self.ddp and not last else nullcontext():
                with self.autocast:
                    _, loss = self.model(x, y, **kwargs)
                    loss = loss / self.accum
                x, y = fetch(micro + 1)  # host work overlaps the device's forward
                scaled = self.scaler.scale(loss)
                if last and E_early is not None and E_early.grad is not None:
                    scaled = scaled + (E * E_early.grad).sum()  # E_early.grad is already scaled
                scaled.backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        if self.ddp:
            import torch.distributed as dist
            dist.all_reduce(loss_sum)  # on the device: no host wait (gloo has no AVG)
            loss_sum = loss_sum / dist.get_world_size()
        grad_norm = torch.full((), float("nan"), device=loss_sum.device)
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, grad_norm, (x, y)
