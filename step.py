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
    def __init__(self, model, optimizer, accum, grad_clip, autocast=None, scaler=None, ddp=False):
        """model: the module to run (compiled and/or DDP-wrapped); optimizer over its parameters;
        accum: micro-batches per step in this process; autocast: a context or None; scaler: a
        torch.amp.GradScaler or None (float16 only)."""
        if accum < 1:
            raise ValueError(f"accum={accum}: expected >= 1 micro-batches per step")
        self.model, self.optimizer, self.accum, self.grad_clip = model, optimizer, accum, grad_clip
        self.autocast = autocast or nullcontext()
        self.scaler = scaler or torch.amp.GradScaler(enabled=False)
        self.ddp = ddp

    def __call__(self, batch, fetch):
        """batch: (x, y) of micro-batch 0. fetch(i) -> (x, y) of micro-batch i; fetch(accum) is the
        next step's first. Returns (mean loss, grad norm, the next step's first batch), the first two
        as 0-dim device tensors (the grad norm is NaN when clipping is off)."""
        x, y = batch
        loss_sum = None
        for micro in range(self.accum):
            last = micro == self.accum - 1
            with self.model.no_sync() if self.ddp and not last else nullcontext():
                with self.autocast:
                    _, loss = self.model(x, y)
                    loss = loss / self.accum
                x, y = fetch(micro + 1)  # host work overlaps the device's forward
                self.scaler.scale(loss).backward()
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
