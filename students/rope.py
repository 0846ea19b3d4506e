"""Rotary position embeddings and their long-context scalings, plus ALiBi slopes.

``rope_frequencies`` returns the inverse frequencies and the attention (cos/sin) factor for one scaling:

- ``none``:   theta ** (-2i/d), the original RoPE.
- ``linear``: position interpolation; every frequency divided by ``factor`` (position p acts as p / factor).
- ``ntk``:    NTK-aware base change; theta becomes theta * factor ** (d / (d - 2)) (static, not dynamic).
- ``yarn``:   YaRN "NTK-by-parts": low frequencies interpolated, high ones kept, a linear ramp between
              (beta_fast = 32, beta_slow = 1 rotations), cos/sin scaled by 0.1 ln(factor) + 1.

The formulas follow the papers and match transformers' ``modeling_rope_utils`` (checked by the export tests:
the exported model's logits equal ours), so a scaled student exports to a Llama config unchanged.
"""
from __future__ import annotations

import math

import torch


def rope_frequencies(head_dim: int, theta: float, scaling: str = "none", factor: float = 1.0,
                     original_max_len: int = 2048) -> tuple[torch.Tensor, float]:
    """(inv_freq [head_dim // 2] float32, attention factor) for the given scaling."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    if scaling == "none":
        return 1.0 / theta ** exponents, 1.0
    if scaling == "linear":
        return 1.0 / theta ** exponents / factor, 1.0
    if scaling == "ntk":
        return 1.0 / ntk_theta(theta, factor, head_dim) ** exponents, 1.0
    if scaling == "yarn":
        return _yarn(head_dim, theta, factor, original_max_len)
    raise ValueError(f"rope_scaling must be none, linear, ntk or yarn, not {scaling!r}")


def ntk_theta(theta: float, factor: float, head_dim: int) -> float:
    """The NTK-aware base: scaling the base this way keeps the highest frequency and stretches the lowest."""
    return theta * factor ** (head_dim / (head_dim - 2))


def _yarn(dim: int, theta: float, factor: float, original_max_len: int,
          beta_fast: float = 32.0, beta_slow: float = 1.0) -> tuple[torch.Tensor, float]:
    def correction_dim(rotations: float) -> float:
        return dim * math.log(original_max_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolate = 1 - ramp  # 1: keep the original frequency; 0: interpolate it
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
    attention = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, attention


def rope_cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor, attention_factor: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [..., T, head_dim] for integer ``positions`` [..., T] (computed in float32)."""
    angles = positions.float()[..., None] * inv_freq.to(positions.device)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos() * attention_factor, emb.sin() * attention_factor


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, H, T, D] by cos/sin [T, D] or [B, T, D]."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    return (x * cos + rotate_half(x) * sin).to(x.dtype)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al.): a geometric sequence, interleaved for non powers of two."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    return torch.tensor(power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest])
