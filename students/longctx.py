"""Long context: passkey retrieval, perplexity by position, and extending a trained student's context.

- ``passkey_prompt`` hides "The pass key is NNNNN" at a relative ``depth`` of a filler text of exactly
  ``length`` tokens ending in "What is the pass key? The pass key is"; ``passkey_retrieval`` checks whether greedy
  decoding answers exactly the key (in one teacher-forced pass) at several lengths x depths.
- ``perplexity_by_position`` buckets next-token losses by position (does quality hold past the training length?).
- ``extend_context`` fine-tunes a trained run with RoPE scaling (linear, ntk or yarn) at a longer sequence
  length: same weights, new frequencies, a short run of ``train``.
"""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from curricula.batch import TokenBatch
from students.checkpoint import latest_checkpoint, load_checkpoint
from students.errors import ConfigError
from students.model import ModelConfig, Student

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key. "
QUESTION = "What is the pass key? The pass key is"


def passkey_prompt(encode: Callable[[str], list[int]], length: int, depth: float, key: int) -> list[int]:
    """Token ids of exactly ``length`` tokens with the needle starting at ``depth`` (0 = start, 1 = end)."""
    if not 0.0 <= depth <= 1.0:
        raise ConfigError(f"depth must be in [0, 1], not {depth}")
    needle, question, filler = encode(NEEDLE.format(key=key)), encode(QUESTION), encode(FILLER)
    room = length - len(needle) - len(question)
    if room < 0:
        raise ConfigError(f"length {length} is shorter than the needle and question ({length - room} tokens)")
    hay = (filler * (room // len(filler) + 1))[:room]
    at = round(depth * room)
    return hay[:at] + needle + hay[at:] + question


@torch.no_grad()
def greedy_reproduces(model: Student, prompt: list[int], answer: list[int]) -> bool:
    """Whether greedy decoding after ``prompt`` starts with ``answer``: one teacher-forced forward pass whose
    argmax at every answer position must be the answer's token (equivalent to decoding token by token)."""
    device = next(model.parameters()).device
    logits = model(torch.tensor([prompt + answer], device=device)).logits[0]
    predicted = logits[len(prompt) - 1: len(prompt) + len(answer) - 1].argmax(-1)
    return predicted.tolist() == answer


def passkey_retrieval(model: Student, encode: Callable[[str], list[int]], lengths: Iterable[int] = (256, 512), depths: Iterable[float] = (0.0, 0.5, 1.0),
                      trials: int = 2, seed: int = 0) -> list[dict]:
    """[{length, depth, accuracy, trials}]: the share of prompts whose greedy answer starts with " KEY"."""
    was_training = model.training
    model.eval()
    rng = random.Random(seed)
    results = []
    for length in lengths:
        for depth in depths:
            hits = 0
            for _ in range(trials):
                key = rng.randint(10000, 99999)
                hits += greedy_reproduces(model, passkey_prompt(encode, length, depth, key), encode(f" {key}"))
            results.append({"length": length, "depth": depth, "accuracy": hits / trials, "trials": trials})
    model.train(was_training)
    return results


@torch.no_grad()
def perplexity_by_position(model: Student, batches: Iterable[TokenBatch], bucket: int = 64) -> list[dict]:
    """[{start, end, loss, perplexity, tokens}] over position buckets of ``bucket`` tokens."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total: torch.Tensor | None = None
    count: torch.Tensor | None = None
    for batch in batches:
        ids = torch.as_tensor(batch.input_ids, device=device)
        labels = torch.as_tensor(batch.labels, device=device)
        logits = model(ids).logits.float()
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                             reduction="none").view(labels.shape)
        valid = (labels != -100).float()
        s, c = (ce * valid).sum(0), valid.sum(0)
        total = s if total is None else total[: len(s)] + s[: len(total)]
        count = c if count is None else count[: len(c)] + c[: len(count)]
    model.train(was_training)
    if total is None:
        raise ConfigError("perplexity_by_position: no batches")
    rows = []
    for start in range(0, len(total), bucket):
        n = float(count[start:start + bucket].sum())
        loss = float(total[start:start + bucket].sum()) / max(n, 1.0)
        rows.append({"start": start, "end": min(start + bucket, len(total)), "loss": loss,
                     "perplexity": math.exp(min(loss, 50.0)), "tokens": int(n)})
    return rows


def extended_config(cfg: ModelConfig, max_seq_len: int, scaling: str = "linear",
                    factor: float | None = None) -> ModelConfig:
    """``cfg`` with its context extended to ``max_seq_len`` by RoPE ``scaling``; factor defaults to the ratio."""
    if max_seq_len <= cfg.max_seq_len:
        raise ConfigError(f"max_seq_len ({max_seq_len}) must exceed the trained context ({cfg.max_seq_len})")
    factor = factor if factor is not None else max_seq_len / cfg.max_seq_len
    return dataclasses.replace(cfg, max_seq_len=max_seq_len, rope_scaling=scaling, rope_factor=float(factor),
                               rope_original_max_len=cfg.rope_original_max_len or cfg.max_seq_len)


def extend_context(source_run: str | Path, run_dir: str | Path, stream, max_seq_len: int, train_cfg,
                   scaling: str = "linear", factor: float | None = None, resume: bool = False,
                   data_fingerprint: str | None = None):
    """Fine-tune ``source_run``'s latest checkpoint at ``max_seq_len`` with RoPE scaling; returns TrainResult.
    ``resume`` and ``data_fingerprint``: as for ``students.train.train``."""
    from students.checkpoint import read_state
    from students.train import train

    checkpoint = latest_checkpoint(source_run)
    if checkpoint is None:
        raise ConfigError(f"source_run: {source_run} has no checkpoint")
    cfg = extended_config(ModelConfig.from_dict(read_state(checkpoint)["model"]), max_seq_len, scaling, factor)
    model = Student(cfg)
    load_checkpoint(checkpoint, model, restore_rng=False)
    return train(cfg, train_cfg, stream, run_dir, model=model, resume=resume, data_fingerprint=data_fingerprint)
