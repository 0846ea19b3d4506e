"""Output projection + cross-entropy in one chunked pass (the idea of Liger-Kernel's fused linear CE).

With a 49k vocabulary the [tokens, vocab] logits dominate memory and bandwidth: the plain path writes them,
writes their log-softmax, and reads both back in the backward pass. Here rows are processed in chunks through
one reused [chunk, vocab] workspace: the chunk's logits are written into it, turned in place into their
log-softmax (the loss), then into the gradient of the mean loss (softmax - one-hot, scaled), and immediately
multiplied into the gradients of the hidden states and of the weight. The full logits never exist, no
[chunk, vocab] temporary is allocated per chunk (on the CPU a fresh 100 MB tensor costs as much as a pass over
it: page faults), and backward only scales the stored gradients. Results equal ``F.cross_entropy(h @ W.T, y)``
(tested); the per-token losses come back detached, for per-domain metrics.
"""
from __future__ import annotations

import torch


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, labels, chunk: int, need_grad: bool):
        valid = labels != -100
        n_valid = valid.sum().clamp(min=1)
        autocast = torch.is_autocast_enabled(h.device.type)  # matmuls then run in the autocast type
        wide = torch.float32 if autocast or weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
        direct = not autocast and h.dtype == weight.dtype == wide  # matmuls can write into the workspace
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.empty(weight.shape, dtype=wide, device=weight.device) if need_grad else None
        losses = torch.zeros(h.shape[0], dtype=wide, device=h.device)
        workspace = torch.empty(min(chunk, h.shape[0]), weight.shape[0], dtype=wide, device=h.device)
        for start in range(0, h.shape[0], chunk):
            hc, lc, vc = h[start:start + chunk], labels[start:start + chunk], valid[start:start + chunk]
            logp = workspace[:len(lc)]
            if direct:
                torch.mm(hc, weight.t(), out=logp)
            else:
                logp.copy_(hc @ weight.t())
            torch.log_softmax(logp, dim=-1, out=logp)  # in place: the row-wise kernel allows it
            target = lc.clamp(min=0)
            losses[start:start + chunk] = -logp.gather(1, target[:, None]).squeeze(1) * vc
            if not need_grad:
                continue
            g = logp.exp_()  # softmax
            g[torch.arange(len(lc), device=h.device), target] -= 1.0
            g.mul_((vc.to(wide) / n_valid)[:, None])
            rows = slice(start, start + chunk)
            if direct:
                torch.mm(g, weight, out=grad_h[rows])
                if start == 0:  # the first chunk writes grad_w, the others add to it (no zero fill)
                    torch.mm(g.t(), hc, out=grad_w)
                else:
                    grad_w.addmm_(g.t(), hc)
                continue
            # autocast or low-precision weights: matmuls in their type, the weight's gradient summed in fp32
            grad_h[rows] = ((g if autocast else g.to(weight.dtype)) @ weight).to(h.dtype)
            partial = (g.t() @ hc).float() if autocast else g.t() @ hc.to(wide)
            if start == 0:
                grad_w.copy_(partial)
            else:
                grad_w.add_(partial)
        if need_grad and not h.shape[0]:
            grad_w.zero_()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(losses)
        return (losses.sum() / n_valid).float(), losses.float()

    @staticmethod
    def backward(ctx, grad_loss, _grad_losses):
        grad_h, grad_w = ctx.saved_tensors
        if grad_loss.numel() == 1 and float(grad_loss) == 1.0:  # the usual loss.backward(): no 2 x 50 MB copies
            return grad_h, grad_w, None, None, None
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss over labels != -100, detached per-token losses [N]) for hidden states h [N, d], weight [V, d]."""
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    loss, losses = _LinearCrossEntropy.apply(h, weight, labels, chunk, need_grad)
    return loss, losses.detach()
