"""The student model: a decoder-only Llama-style transformer in one file, dense or Mixture-of-Experts.

Read top to bottom: ``ModelConfig`` (validated at construction; errors name the field), ``RMSNorm``,
``Attention`` (RoPE with optional long-context scaling, grouped-query attention, optional ALiBi and
per-document masking, all through ``F.scaled_dot_product_attention`` so GPUs use FlashAttention when no
explicit mask is needed), ``SwiGLU``, ``Block`` and ``Student``. The MoE feed-forward lives in moe.py,
RoPE and ALiBi formulas in rope.py.

    model = Student(ModelConfig(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2))
    out = model(input_ids, labels=labels)          # out.logits, out.loss, out.aux_loss, out.expert_counts
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from students.errors import ConfigError
from students.fused_ce import linear_cross_entropy
from students.moe import SparseMoE
from students.rope import alibi_slopes, apply_rope, rope_cos_sin, rope_frequencies


@dataclass
class ModelConfig:
    vocab_size: int = 49152            # SmolLM2's tokenizer
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int | None = None      # grouped-query attention; None = n_heads (multi-head)
    ffn_hidden: int | None = None      # None = 8/3 d_model rounded up to a multiple of 64
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    rope_scaling: str = "none"         # none | linear | ntk | yarn
    rope_factor: float = 1.0
    rope_original_max_len: int | None = None  # the pre-extension context (yarn); None = max_seq_len
    alibi: bool = False                # ALiBi biases instead of RoPE
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    init_std: float = 0.02
    # Mixture of Experts: n_experts = 0 is dense.
    n_experts: int = 0
    top_k: int = 2
    capacity_factor: float | None = None
    aux_loss_coef: float = 0.01
    z_loss_coef: float = 0.001

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.ffn_hidden is None:
            self.ffn_hidden = 64 * math.ceil(8 * self.d_model / 3 / 64)
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"head dimension d_model / n_heads = {self.d_model // self.n_heads} must be even (RoPE)")
        if self.rope_scaling not in ("none", "linear", "ntk", "yarn"):
            raise ConfigError(f"rope_scaling must be none, linear, ntk or yarn, not {self.rope_scaling!r}")
        if not self.rope_factor >= 1.0:
            raise ConfigError(f"rope_factor must be >= 1, not {self.rope_factor!r}")
        if self.rope_theta <= 0:
            raise ConfigError(f"rope_theta must be positive, not {self.rope_theta!r}")
        if self.n_experts < 0:
            raise ConfigError(f"n_experts must be >= 0 (0 = dense), not {self.n_experts}")
        if self.n_experts and not 1 <= self.top_k <= self.n_experts:
            raise ConfigError(f"top_k ({self.top_k}) must be between 1 and n_experts ({self.n_experts})")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ConfigError(f"capacity_factor must be positive or None, not {self.capacity_factor}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model field(s): {', '.join(unknown)}")
        return cls(**values)


@dataclass
class StudentOutput:
    logits: torch.Tensor | None            # [B, T, V]; None when the loss was computed fused (labels given)
    loss: torch.Tensor | None = None       # mean next-token cross-entropy over labels != -100
    token_loss: torch.Tensor | None = None  # [B, T] per-token cross-entropy (detached; 0 where label -100)
    aux_loss: torch.Tensor | None = None   # MoE: aux_loss_coef * balance + z_loss_coef * z (mean over layers)
    expert_counts: torch.Tensor | None = None  # MoE: int64 [n_layers, E]
    dropped: int = 0                       # MoE: assignments dropped by the capacity limit


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        # q, k and v projections in one matmul (rows: the query heads, then the key heads, then the value heads)
        self.qkv_sizes = [cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim]
        self.qkv_proj = nn.Linear(cfg.d_model, sum(self.qkv_sizes), bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.qkv_sizes, dim=-1)
        q = q.reshape(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.reshape(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.reshape(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        gqa = self.n_kv_heads != self.n_heads
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype) if mask.is_floating_point()
                                               else mask, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up_proj = nn.Linear(d_model, 2 * hidden, bias=False)  # gate rows, then up rows: one matmul
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = (SparseMoE(cfg.d_model, cfg.ffn_hidden, cfg.n_experts, cfg.top_k, cfg.capacity_factor)
                    if cfg.is_moe else SwiGLU(cfg.d_model, cfg.ffn_hidden))

    def forward(self, x, rope, mask):
        x = x + self.attn(self.attn_norm(x), rope, mask)
        h = self.mlp(self.mlp_norm(x))
        if isinstance(h, tuple):
            return x + h[0], h[1]
        return x + h, None


class Student(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.set_rope(cfg)
        self.register_buffer("alibi", alibi_slopes(cfg.n_heads) if cfg.alibi else torch.empty(0), persistent=False)
        self.reset_parameters()

    def set_rope(self, cfg: ModelConfig) -> None:
        """(Re)compute RoPE frequencies from ``cfg`` (used when extending the context of a trained model)."""
        inv_freq, self.rope_attention_factor = rope_frequencies(
            cfg.head_dim, cfg.rope_theta, cfg.rope_scaling, cfg.rope_factor,
            cfg.rope_original_max_len or cfg.max_seq_len)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.cfg = cfg

    def reset_parameters(self) -> None:
        std, out_std = self.cfg.init_std, self.cfg.init_std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight", ".w2")):
                nn.init.normal_(p, std=out_std)
            else:
                nn.init.normal_(p, std=std)

    def num_params(self, active: bool = False, embeddings: bool = True) -> int:
        """Parameter count; ``active`` counts only top_k of the experts (the per-token compute of a MoE)."""
        total = sum(p.numel() for p in self.parameters())
        if not embeddings:
            total -= self.embed.weight.numel()
        if active and self.cfg.is_moe:
            per_expert = 3 * self.cfg.d_model * self.cfg.ffn_hidden
            total -= self.cfg.n_layers * (self.cfg.n_experts - self.cfg.top_k) * per_expert
        return total

    def attention_mask(self, T: int, document_ids: torch.Tensor | None, device) -> torch.Tensor | None:
        """None (plain causal, the fast path), or a bool [B|1, 1, T, T] mask, or an additive float
        [B|1, H, T, T] mask when ALiBi biases are on."""
        if document_ids is None and not self.cfg.alibi:
            return None
        i = torch.arange(T, device=device)
        allowed = (i[None, :] <= i[:, None])[None, None]                     # [1, 1, T, T]
        if document_ids is not None:
            same = document_ids[:, :, None] == document_ids[:, None, :]       # [B, T, T]
            allowed = allowed & same[:, None]
        if not self.cfg.alibi:
            return allowed
        distance = (i[:, None] - i[None, :]).float()                          # query - key >= 0 where allowed
        bias = -self.alibi.to(device)[:, None, None] * distance                # [H, T, T]
        return bias[None].masked_fill(~allowed, float("-inf"))

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                document_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                return_logits: bool = False) -> StudentOutput:
        """Logits, or with ``labels`` the loss through the fused output projection + cross-entropy (no
        [B, T, V] logits are materialised unless ``return_logits``)."""
        B, T = input_ids.shape
        x = self.embed(input_ids)
        rope = None
        if not self.cfg.alibi:
            if positions is None:
                positions = torch.arange(T, device=input_ids.device)
            cos, sin = rope_cos_sin(self.inv_freq, positions, self.rope_attention_factor)
            rope = (cos.to(x.dtype), sin.to(x.dtype))
        mask = self.attention_mask(T, document_ids, input_ids.device)
        stats = []
        for block in self.blocks:
            x, s = block(x, rope, mask)
            if s is not None:
                stats.append(s)
        x = self.norm(x)
        if labels is not None and not return_logits:
            loss, token_loss = linear_cross_entropy(x.reshape(B * T, -1), self.lm_head.weight, labels.reshape(-1))
            out = StudentOutput(logits=None, loss=loss, token_loss=token_loss.view(B, T))
        else:
            out = StudentOutput(logits=self.lm_head(x))
            if labels is not None:
                token_loss = F.cross_entropy(out.logits.float().reshape(-1, out.logits.size(-1)), labels.reshape(-1),
                                             ignore_index=-100, reduction="none").view(B, T)
                out.loss = token_loss.sum() / (labels != -100).sum().clamp(min=1)
                out.token_loss = token_loss.detach()
        if stats:
            aux = torch.stack([s.aux_loss for s in stats]).mean()
            z = torch.stack([s.z_loss for s in stats]).mean()
            out.aux_loss = self.cfg.aux_loss_coef * aux + self.cfg.z_loss_coef * z
            out.expert_counts = torch.stack([s.expert_counts for s in stats])
            out.dropped = sum(s.dropped for s in stats)
        return out
