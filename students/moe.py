"""The Mixtral-style sparse Mixture-of-Experts feed-forward block.

A linear router scores E experts per token; the top-k experts (softmax probabilities renormalised over the
k chosen, as in Mixtral) each run a SwiGLU MLP and their outputs are mixed by those weights. Training adds

- a load-balancing loss (Switch Transformer / Mixtral): E * sum_e f_e * P_e, with f_e the fraction of
  routed assignments that went to expert e (no gradient) and P_e the mean router probability of e
  (differentiable: this is where the router's gradient comes from);
- a router z-loss (ST-MoE): mean over tokens of logsumexp(router logits)^2, keeping logits small;
- an optional capacity factor: each expert takes at most ceil(cf * tokens * k / E) assignments; first
  choices are served before second choices, and dropped assignments contribute nothing (the token keeps
  its residual stream).

``MoEStats`` carries the per-expert token counts (after dropping) and the number of dropped assignments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MoEStats:
    aux_loss: torch.Tensor      # load-balancing loss (scalar, has a gradient)
    z_loss: torch.Tensor        # router z-loss (scalar)
    expert_counts: torch.Tensor  # int64 [E]: assignments each expert processed
    dropped: int                # assignments dropped by the capacity limit


class SparseMoE(nn.Module):
    def __init__(self, d_model: int, hidden: int, n_experts: int, top_k: int,
                 capacity_factor: float | None = None):
        super().__init__()
        self.n_experts, self.top_k, self.capacity_factor = n_experts, top_k, capacity_factor
        self.router = nn.Linear(d_model, n_experts, bias=False)
        # Stacked expert weights: w13 holds Mixtral's w1 (gate, first ``hidden`` rows) and w3 (up) of every
        # expert, so each expert runs one input matmul; w2 (down).
        self.hidden = hidden
        self.w13 = nn.Parameter(torch.empty(n_experts, 2 * hidden, d_model))
        self.w2 = nn.Parameter(torch.empty(n_experts, d_model, hidden))

    @property
    def w1(self) -> torch.Tensor:
        return self.w13[:, :self.hidden]

    @property
    def w3(self) -> torch.Tensor:
        return self.w13[:, self.hidden:]

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router logits [N, E] (float32), chosen experts [N, k] and their normalised weights [N, k]."""
        logits = self.router(x).float()
        probs = logits.softmax(dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)
        return logits, experts, weights / weights.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, MoEStats]:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        n_tokens = x.shape[0]
        logits, experts, weights = self.route(x)

        # Assignments ordered rank-major (all first choices, then all second choices...), then grouped by
        # expert with a stable sort: within an expert, earlier ranks and earlier tokens come first.
        flat_expert = experts.t().reshape(-1)
        flat_token = torch.arange(n_tokens, device=x.device).repeat(self.top_k)
        flat_weight = weights.t().reshape(-1)
        order = torch.sort(flat_expert, stable=True).indices
        flat_expert, flat_token, flat_weight = flat_expert[order], flat_token[order], flat_weight[order]
        counts = torch.bincount(flat_expert, minlength=self.n_experts)
        dropped = 0
        if self.capacity_factor is not None:
            capacity = math.ceil(self.capacity_factor * n_tokens * self.top_k / self.n_experts)
            starts = torch.cumsum(counts, 0) - counts
            rank_in_expert = torch.arange(flat_expert.numel(), device=x.device) - starts[flat_expert]
            keep = rank_in_expert < capacity
            dropped = int((~keep).sum())
            flat_expert, flat_token, flat_weight = flat_expert[keep], flat_token[keep], flat_weight[keep]
            counts = torch.bincount(flat_expert, minlength=self.n_experts)

        # One gather and one scatter for all experts (not one per expert: each indexing op's backward
        # allocates and zeroes a gradient of x's full size).
        routed_x = x[flat_token]
        outputs = []
        for e, h in enumerate(routed_x.split(counts.tolist())):
            if h.shape[0]:
                gate, up = F.linear(h, self.w13[e]).chunk(2, dim=-1)
                outputs.append(F.linear(F.silu(gate) * up, self.w2[e]))
        mixed = torch.cat(outputs) * flat_weight[:, None].to(x.dtype) if outputs else x[:0]
        out = torch.zeros_like(x).index_add_(0, flat_token, mixed.to(x.dtype))

        probs = logits.softmax(dim=-1)
        routed = torch.bincount(experts.reshape(-1), minlength=self.n_experts).float()
        fraction = (routed / routed.sum()).detach()
        aux = self.n_experts * (fraction * probs.mean(dim=0)).sum()
        z = torch.logsumexp(logits, dim=-1).pow(2).mean()
        return out.reshape(shape), MoEStats(aux, z, counts.detach(), dropped)
