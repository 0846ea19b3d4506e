"""Checkpoints in safetensors + JSON, never pickle.

A checkpoint is a folder ``<run>/checkpoints/step-NNNNNNN/`` holding

    model.safetensors      the model's parameters (tied weights stored once)
    optimizer.safetensors  AdamW's per-parameter tensors (step, exp_avg, exp_avg_sq), keyed "<index>.<name>"
    rng.safetensors        torch CPU (and CUDA) generator states
    state.json             step, model and training configs, optimizer param groups, the stream's
                           state_dict, Python and NumPy RNG states, the metrics at that step

It is written under a temporary name and renamed, then ``<run>/checkpoints/latest`` is replaced atomically
to name it, so a killed run always leaves the previous complete checkpoint as ``latest``. Loading uses
``safetensors`` only: nothing in a checkpoint can execute code (``torch.load`` is never called).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final`` to fill; on success it replaces ``final`` in one rename, on any
    error it is removed, so a killed run never leaves a half folder under the final name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py = random.getstate()
    return tensors, {"numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                     "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(tensors: dict[str, torch.Tensor], states: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    n = states["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = states["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"{index}.{name}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu()
    return tensors, state["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    stream_state: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` and point ``latest`` at it; returns its folder."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:07d}"
    with staged_folder(final) as staging:
        save_model(model, str(staging / "model.safetensors"))
        opt_tensors, groups = optimizer_tensors(optimizer)
        save_file(opt_tensors, str(staging / "optimizer.safetensors"))
        rng_tensors, rng_json = rng_state()
        save_file(rng_tensors, str(staging / "rng.safetensors"))
        state = {"step": step, "param_groups": groups, "stream": stream_state, "rng": rng_json, **extra}
        (staging / "state.json").write_text(json.dumps(state, indent=1))
    _atomic_write_text(root / "latest", final.name + "\n")
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / "state.json").is_file() else None


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Restore model (and optimizer, RNG) from ``folder``; returns its state.json."""
    folder = Path(folder)
    state = read_state(folder)
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=True,
                                     device=str(next(model.parameters()).device))
    if optimizer is not None:
        load_optimizer(optimizer, load_file(str(folder / "optimizer.safetensors")), state["param_groups"])
    if restore_rng:
        set_rng_state(load_file(str(folder / "rng.safetensors")), state["rng"])
    return state
