"""What the machine can compute fast: CPU features from ``/proc/cpuinfo`` and the precision they call for.

The lowest layer on purpose: students (training precision) and teachers (the vLLM engine's dtype) both ask it,
and neither may import the other. Machines vary between sessions (an AMX Xeon one day, an AVX2-only EPYC the
next), so precision is detected, never assumed:

* ``cpu_features()``      the relevant flags of this machine's CPU (read once per process), a frozen dataclass;
* ``parse_cpuinfo(text)`` / ``parse_flags(flags, model_name)`` the same from given text (tests feed these);
* ``cpu_precision(features)`` "bf16" when the CPU has native bf16 matmuls (AMX-BF16 or AVX512-BF16), else
  "fp32": without them torch emulates bf16 and it is slower than fp32 (ENVIRONMENT.md: transformers bf16 at
  18 tokens/s vs 47 fp32 on an AVX2 CPU);
* ``resolve_precision(requested, device)`` "auto" | "fp32" | "bf16" -> "fp32" | "bf16" for a torch device;
* ``precision_dtype_name(precision)`` "bf16" -> "bfloat16", "fp32" -> "float32" (vLLM's and torch's names).

torch is imported only inside ``resolve_precision`` (for CUDA), so reading CPU flags stays cheap.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "bf16")
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16"}
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    model_name: str = "unknown"
    avx2: bool = False
    avx512f: bool = False
    avx512_bf16: bool = False
    amx_bf16: bool = False
    amx_tile: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_flags(flags: str, model_name: str = "unknown") -> CpuFeatures:
    """Features from a ``flags`` line's value (space-separated, as in /proc/cpuinfo)."""
    have = set(flags.split())
    return CpuFeatures(model_name=model_name.strip() or "unknown", avx2="avx2" in have, avx512f="avx512f" in have,
                       avx512_bf16="avx512_bf16" in have, amx_bf16="amx_bf16" in have, amx_tile="amx_tile" in have)


def parse_cpuinfo(text: str) -> CpuFeatures:
    """Features from the text of /proc/cpuinfo (the first processor's ``flags`` and ``model name``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in ("flags", "model name") and key not in fields:
            fields[key] = value.strip()
        if len(fields) == 2:
            break
    return parse_flags(fields.get("flags", ""), fields.get("model name", "unknown"))


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's CPU features. Without /proc/cpuinfo (not Linux) every flag is False (so: fp32)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text())
    except OSError:
        return CpuFeatures(model_name=platform.processor() or platform.machine() or "unknown")


def cpu_precision(features: CpuFeatures | None = None) -> str:
    """"bf16" when the CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16), else "fp32"."""
    f = features if features is not None else cpu_features()
    return "bf16" if f.amx_bf16 or f.avx512_bf16 else "fp32"


def precision_reason(features: CpuFeatures | None = None) -> str:
    """One line saying why ``cpu_precision`` chose what it chose (recorded next to the choice)."""
    f = features if features is not None else cpu_features()
    native = [name for name in ("amx_bf16", "avx512_bf16") if getattr(f, name)]
    if native:
        return f"CPU {f.model_name!r} has {' and '.join(native)}: native bf16 matmuls"
    return f"CPU {f.model_name!r} has no amx_bf16 or avx512_bf16: bf16 would be emulated, fp32 is faster"


def check_precision(requested: Any, parameter: str = "train.precision") -> str:
    """``requested`` if it is one of PRECISIONS, else ``ValueError`` naming ``parameter``."""
    if requested not in PRECISIONS:
        raise ValueError(f"{parameter} must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    return requested


def resolve_precision(requested: str, device: Any, parameter: str = "train.precision") -> str:
    """"fp32" or "bf16" for ``device`` (a torch.device or its type: "cpu", "cuda"). Explicit values pass through;
    "auto" on CUDA is bf16 when the GPU supports it, on the CPU ``cpu_precision(cpu_features())``."""
    check_precision(requested, parameter)
    if requested != "auto":
        return requested
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return cpu_precision(cpu_features())


def precision_dtype_name(precision: str) -> str:
    """"bfloat16" or "float32": the dtype name torch and vLLM use for a resolved precision."""
    if precision not in DTYPE_NAMES:
        raise ValueError(f"precision must be fp32 or bf16 (resolved), not {precision!r}")
    return DTYPE_NAMES[precision]
