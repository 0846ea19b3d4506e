"""Checkpoints in safetensors + JSON, never pickle.

A checkpoint is a folder ``<run>/checkpoints/step-NNNNNNN/`` holding

    model.safetensors      the model's parameters (tied weights stored once)
    optimizer.safetensors  AdamW's per-parameter tensors (step, exp_avg, exp_avg_sq), keyed "<index>.<name>"
    rng.safetensors        torch CPU (and CUDA) generator states
    state.json             step, model and training configs, optimizer param groups, the stream's
                           state_dict, Python and NumPy RNG states, the metrics at that step

``state.json`` also records the fingerprint of the training data (``data_fingerprint``): ``resume_mismatch``
says why a checkpoint cannot be continued (another config, other data), so a resume never mixes two runs.

It is written under a temporary name and renamed, then ``<run>/checkpoints/latest`` is replaced atomically
to name it, so a killed run always leaves the previous complete checkpoint as ``latest``. Loading uses
``safetensors`` only: nothing in a checkpoint can execute code (``torch.load`` is never called).
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from students.errors import ConfigError

from operators.fileio import staged_folder, write_text_atomic


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
    write_text_atomic(root / "latest", final.name + "\n")
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / "state.json").is_file() else None


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


# Training fields that do not change what a run computes: a resumed run may set them differently.
RESUME_FREE_FIELDS = ("progress", "checkpoint_every", "device", "compile")


def resume_mismatch(folder: str | Path, model: dict[str, Any], train: dict[str, Any],
                    data_fingerprint: str | None) -> str | None:
    """Why checkpoint ``folder`` cannot be continued with these model and training configs and this data
    (``operators.fingerprint``), or None when it can. Each difference is named (``train.lr 0.001 -> 0.002``);
    a ``data_fingerprint`` of None skips the data check (a caller that cannot fingerprint its stream)."""
    state = read_state(folder)
    differences = []
    for section, now, free in (("model", model, ()), ("train", train, RESUME_FREE_FIELDS)):
        saved, now = state.get(section) or {}, json.loads(json.dumps(now))
        for name in sorted(set(saved) | set(now)):
            if name not in free and saved.get(name) != now.get(name):
                differences.append(f"{section}.{name} {saved.get(name)!r} -> {now.get(name)!r}")
    if data_fingerprint is not None and state.get("data_fingerprint") != data_fingerprint:
        differences.append(f"the data changed (fingerprint {state.get('data_fingerprint')} -> {data_fingerprint})")
    return "; ".join(differences) or None


def resumable_checkpoint(run_dir: str | Path, model: dict[str, Any], train: dict[str, Any],
                         data_fingerprint: str | None) -> Path | None:
    """The run's latest checkpoint to resume from (None: there is none), or ``ConfigError`` naming the run, the
    checkpoint and every difference when it was written with other configs or data."""
    last = latest_checkpoint(run_dir)
    mismatch = resume_mismatch(last, model, train, data_fingerprint) if last is not None else None
    if mismatch:
        raise ConfigError(f"{run_dir}: cannot resume from checkpoint {last.name}: {mismatch}; "
                          f"train without --resume to start over")
    return last


def clear_checkpoints(run_dir: str | Path) -> None:
    """A fresh start: remove a run's checkpoints, so none of an earlier run is ever resumed or reported."""
    shutil.rmtree(Path(run_dir) / "checkpoints", ignore_errors=True)


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
