"""Evaluating students: held-out perplexity per domain, passkey retrieval, MoE load balance, training
tokens/s and an MFU estimate, and a comparison table across students (``distillery students eval``).

MFU = achieved model FLOP/s / the device's peak. Model FLOPs per trained token follow PaLM's appendix B:
6 x (non-embedding active parameters + the output projection) + 12 x layers x width x sequence length
(attention scores and values), forward + backward. Peak FLOP/s come from ``--peak-tflops`` or, on known
GPUs, from their dense bf16 datasheet figure; on the CPU there is no reliable figure, so MFU is reported
only when a peak is given.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable

import torch

from curricula.batch import TokenBatch
from students.checkpoint import latest_checkpoint, load_checkpoint, read_state
from students.errors import ConfigError
from students.model import ModelConfig, Student
from students.train import load_cv

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def load_run(run_dir: str | Path, device: str = "cpu") -> Student:
    """The student of a training run (its latest checkpoint), in eval mode."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise ConfigError(f"run: {run_dir} has no checkpoint (checkpoints/latest)")
    model = Student(ModelConfig.from_dict(read_state(checkpoint)["model"])).to(device)
    load_checkpoint(checkpoint, model, restore_rng=False)
    return model.eval()


def flops_per_token(model: Student, seq_len: int, training: bool = True) -> float:
    cfg = model.cfg
    n = model.num_params(active=True, embeddings=False) + (cfg.vocab_size * cfg.d_model if cfg.tie_embeddings else 0)
    forward = 2 * n + 4 * cfg.n_layers * cfg.d_model * seq_len
    return 3 * forward if training else forward


def peak_flops(device: torch.device, peak_tflops: float | None = None) -> float | None:
    if peak_tflops:
        return peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12
    return None


@torch.no_grad()
def heldout(model: Student, batches: Iterable[TokenBatch]) -> dict:
    """Per-domain and overall perplexity, plus MoE expert loads (counts and coefficient of variation).

    Each batch goes through the model exactly as the training loop sends it (students/train.py): its labels
    and its ``document_ids`` (per-document attention masks in packed windows), so the loss of a batch here
    is the training loss of the same batch."""
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    experts = None
    for batch in batches:
        ids = torch.as_tensor(batch.input_ids, device=device)
        labels = torch.as_tensor(batch.labels, device=device)
        docs = None if batch.document_ids is None else torch.as_tensor(batch.document_ids, device=device)
        out = model(ids, labels=labels, document_ids=docs)
        ce = out.token_loss.float()  # 0 where the label is -100
        valid = labels != -100
        for domain, s, n in zip(batch.domains, (ce * valid).sum(1).tolist(), valid.sum(1).tolist()):
            sums[domain] = sums.get(domain, 0.0) + s
            counts[domain] = counts.get(domain, 0) + int(n)
        if out.expert_counts is not None:
            experts = out.expert_counts if experts is None else experts + out.expert_counts
    if not counts:
        raise ConfigError("data: no held-out batches")
    result = {"domains": {d: {"loss": sums[d] / counts[d], "perplexity": math.exp(sums[d] / counts[d]),
                              "tokens": counts[d]} for d in sorted(sums)}}
    loss = sum(sums.values()) / sum(counts.values())
    result["loss"], result["perplexity"], result["tokens"] = loss, math.exp(loss), sum(counts.values())
    if experts is not None:
        result["expert_counts"] = experts.tolist()
        result["expert_load_cv"] = load_cv(experts)
    return result


def training_throughput(model: Student, batch_size: int, seq_len: int, steps: int = 3, warmup: int = 1,
                        peak_tflops: float | None = None) -> dict:
    """Tokens/s of forward + backward + AdamW steps on random tokens, and the MFU estimate."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    ids = torch.randint(0, model.cfg.vocab_size, (batch_size, seq_len + 1), device=device)
    model.train()
    elapsed = 0.0
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if autocast is not None:
            with autocast:
                out = model(ids[:, :-1], labels=ids[:, 1:])
        else:
            out = model(ids[:, :-1], labels=ids[:, 1:])
        loss = out.loss + (out.aux_loss if out.aux_loss is not None else 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            elapsed += time.perf_counter() - t0
    model.eval()
    tokens_per_s = batch_size * seq_len * steps / elapsed
    peak = peak_flops(device, peak_tflops)
    achieved = tokens_per_s * flops_per_token(model, seq_len)
    return {"tokens_per_s": tokens_per_s, "model_tflops": achieved / 1e12,
            "mfu": achieved / peak if peak else None, "peak_tflops": peak / 1e12 if peak else None}


def evaluate_model(model: Student, batches: list[TokenBatch], name: str = "student",
                   passkey: dict | None = None, throughput: dict | None = None) -> dict:
    """One student's row: held-out results, passkey accuracies and throughput.

    ``passkey``: {"encode", "lengths", "depths", "trials"}; ``throughput``: {"batch_size",
    "seq_len", "steps", "peak_tflops"} (measured on a copy, so the model is unchanged)."""
    import copy

    from students.longctx import passkey_retrieval

    row = {"name": name, "params": model.num_params(), "active_params": model.num_params(active=True),
           "config": model.cfg.to_dict(), **heldout(model, batches)}
    if passkey:
        row["passkey"] = passkey_retrieval(model, passkey["encode"], passkey["lengths"],
                                           passkey.get("depths", (0.0, 0.5, 1.0)), passkey.get("trials", 2))
    if throughput:
        row.update(training_throughput(copy.deepcopy(model), **throughput))
    return row


def comparison_table(rows: list[dict]) -> str:
    """A Markdown table: one student per row, one domain per perplexity column."""
    domains = sorted({d for r in rows for d in r.get("domains", {})})
    lengths = sorted({p["length"] for r in rows for p in r.get("passkey", [])})
    head = (["student", "params", "active"] + [f"ppl {d}" for d in domains] + ["ppl all"]
            + [f"passkey@{n}" for n in lengths] + ["load CV", "tokens/s", "MFU"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{r['params'] / 1e6:.2f}M", f"{r['active_params'] / 1e6:.2f}M"]
        cells += [f"{r['domains'][d]['perplexity']:.1f}" if d in r.get("domains", {}) else "-" for d in domains]
        cells.append(f"{r['perplexity']:.1f}")
        for n in lengths:
            accs = [p["accuracy"] for p in r.get("passkey", []) if p["length"] == n]
            cells.append(f"{sum(accs) / len(accs):.2f}" if accs else "-")
        cells.append(f"{r['expert_load_cv']:.3f}" if "expert_load_cv" in r else "-")
        cells.append(f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else "-")
        cells.append(f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
