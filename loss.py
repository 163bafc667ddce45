"""The output layer and the loss: logits = h W^T + b, then the mean cross-entropy over targets != -1.

At V = 50,304 the plain path holds the (N, V) logits, their fp32 copy, the softmax and its gradient at
once: ~0.8 GB each for N = 4,096 tokens, for a CPU model whose weights are ~0.2 GB. The chunked path
(`chunk` tokens at a time, the technique of fused linear cross-entropy kernels such as Liger's)
computes, for each chunk of rows,

    z = h_c W^T + b,  loss_c = -sum(log_softmax(z)[target]),  G = softmax(z) - onehot(target),
    dL/dh_c = G W / n_valid,  dL/dW += G^T h_c / n_valid,

in the forward pass, so no (N, V) tensor ever exists and the backward pass only multiplies the stored
gradients by the incoming scalar. Same FLOPs as the plain path (three N x V x d products).

Under float16 autocast the plain path is taken: its GradScaler scales the loss before the backward,
while the chunked gradients are formed in the forward, unscaled, where float16 would underflow them.
Precision otherwise follows the plain path: the matmuls run in the dtype F.linear would use (bf16 under
autocast), the softmax and the loss in fp32; dL/dW is summed over chunks in fp32 and handed back in
W's own dtype (the plain path rounds the whole of it to bf16 once, under autocast).
"""

import torch
from torch.nn import functional as F


def cross_entropy(logits, targets):
    """The plain path: mean cross-entropy of materialised logits (..., V), in fp32, targets -1 ignored."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def linear_cross_entropy(h, weight, bias, targets, chunk=0):
    """Mean cross-entropy of logits h @ weight^T + bias against targets (-1: ignored).
    h (..., d), weight (V, d), bias (V,) or None (it gets no gradient), targets (...) int.
    chunk: tokens per chunk, 0 for the plain path (the (N, V) logits materialised)."""
    if chunk <= 0:
        return cross_entropy(F.linear(h, weight, bias), targets)
    device = h.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype  # as F.linear would
    if dtype == torch.float16:  # the gradients are formed in the forward, before a GradScaler's scale: they would underflow
        return cross_entropy(F.linear(h, weight, bias), targets)
    h, targets = h.reshape(-1, h.size(-1)), targets.reshape(-1)
    want_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)  # none during evaluation
    with torch.autocast(device, enabled=False):
        return ChunkedLinearCrossEntropy.apply(h, weight, bias, targets, chunk, dtype, want_grad)


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """The loss and both gradients, chunk by chunk, in one pass (see the module docstring)."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, dtype, want_grad):
        if bias is not None and bias.requires_grad:
            raise ValueError("linear_cross_entropy: a learned bias is not supported by the chunked path; use chunk=0")
        n_valid = (targets != -1).sum().clamp(min=1)
        inv_n = 1.0 / n_valid  # a device tensor: nothing is read back to the host
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if want_grad else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if want_grad else None
        w = weight.to(dtype)
        for start in range(0, h.size(0), chunk):
            h_c, t_c = h[start : start + chunk].to(dtype), targets[start : start + chunk]
            z = F.linear(h_c, w).float()
            if bias is not None:
                z += bias
            logp = torch.log_softmax(z, dim=-1)  # one fused pass (logsumexp, then a subtraction: two)
            del z
            valid = t_c != -1
            safe_t = t_c.clamp(min=0).unsqueeze(1)
            loss -= torch.where(valid, logp.gather(1, safe_t).squeeze(1), 0.0).sum()
            if not want_grad:
                continue
            # dL/dz = (softmax - onehot) / n_valid, in the plain path's order of operations (softmax / n,
            # then - 1/n at the target), in place of the log-probabilities, then in the matmul dtype
            g = logp.exp_().mul_(inv_n)
            g = g.scatter_add_(1, safe_t, (-inv_n).expand(safe_t.shape)).to(dtype)
            keep = valid.unsqueeze(1).to(dtype)  # ignored rows: zeroed on the (c, d) side, not the (c, V) one
            grad_h[start : start + chunk] = (g @ w) * keep
            grad_w += (g.t() @ (h_c * keep)).float()
        if want_grad:
            ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return loss / n_valid

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss.to(grad_h.dtype), grad_w * grad_loss.to(grad_w.dtype), None, None, None, None, None
