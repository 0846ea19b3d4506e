"""Output projection + cross-entropy in one chunked pass (the idea of Liger-Kernel's fused linear CE).

With a 49k vocabulary the [tokens, vocab] logits dominate memory and bandwidth: the plain path writes them,
writes their log-softmax, and reads both back in the backward pass. Here rows are processed in chunks: the
chunk's logits are computed, turned in place into the gradient of the mean loss (softmax - one-hot, scaled),
and immediately multiplied into the gradients of the hidden states and of the weight, so the full logits
never exist and backward only scales the stored gradients. Results equal ``F.cross_entropy(h @ W.T, y)``
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
        grad_h = torch.empty_like(h) if need_grad else None
        wide = torch.float32 if autocast or weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
        grad_w = torch.zeros(weight.shape, dtype=wide, device=weight.device) if need_grad else None
        losses = torch.zeros(h.shape[0], dtype=wide, device=h.device)
        for start in range(0, h.shape[0], chunk):
            hc, lc, vc = h[start:start + chunk], labels[start:start + chunk], valid[start:start + chunk]
            logits = (hc @ weight.t()).to(wide)
            lse = torch.logsumexp(logits, dim=-1)
            target = lc.clamp(min=0)
            losses[start:start + chunk] = (lse - logits.gather(1, target[:, None]).squeeze(1)) * vc
            if need_grad:
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(len(lc), device=h.device), target] -= 1.0
                g = probs.mul_((vc.to(wide) / n_valid)[:, None])
                if autocast:
                    grad_h[start:start + chunk] = (g @ weight).to(h.dtype)
                    grad_w += (g.t() @ hc).float()
                else:
                    grad_h[start:start + chunk] = (g.to(weight.dtype) @ weight).to(h.dtype)
                    grad_w.addmm_(g.t(), hc.to(wide))
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(losses)
        return (losses.sum() / n_valid).float(), losses.float()

    @staticmethod
    def backward(ctx, grad_loss, _grad_losses):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss over labels != -100, detached per-token losses [N]) for hidden states h [N, d], weight [V, d]."""
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    loss, losses = _LinearCrossEntropy.apply(h, weight, labels, chunk, need_grad)
    return loss, losses.detach()
