"""The fused output projection + cross-entropy equals the plain computation, values and gradients."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from students.fused_ce import linear_cross_entropy


def test_fused_cross_entropy_matches_plain():
    torch.manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    y[[3, 10, 11]] = -100
    loss, per_token = linear_cross_entropy(h, w, y, chunk=8)  # chunks that do not divide the rows
    ref = F.cross_entropy(h @ w.t(), y, ignore_index=-100, reduction="none")
    torch.testing.assert_close(per_token, ref.float())
    (3.0 * loss).backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    (3.0 * F.cross_entropy(h @ w.t(), y, ignore_index=-100)).backward()
    torch.testing.assert_close(gh, h.grad)
    torch.testing.assert_close(gw.double(), w.grad)
    assert float(per_token[3]) == 0.0


def test_fused_cross_entropy_under_bf16_autocast_and_with_no_rows():
    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    w = torch.randn(50, 16, requires_grad=True)
    y = torch.randint(0, 50, (37,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = linear_cross_entropy(h, w, y, chunk=8)
    loss.backward()
    reference = F.cross_entropy(h.detach() @ w.detach().t(), y)
    assert abs(loss.item() - reference.item()) < 0.05 and h.grad.dtype == w.grad.dtype == torch.float32
    empty = torch.zeros(0, 16, requires_grad=True)
    loss, per_token = linear_cross_entropy(empty, w, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and per_token.numel() == 0
