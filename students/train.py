"""The training loop: one function, ``train``, for a single process or one worker of a DDP group.

AdamW (no weight decay on norms), linear warmup then cosine or warmup-stable-decay (WSD), gradient
clipping and accumulation, optional ``torch.compile``. Precision (``TrainConfig.precision``: auto | fp32 | bf16)
is resolved once per run by ``operators.hardware.resolve_precision``: auto is bf16 on a CUDA GPU that supports it
and on a CPU with native bf16 matmuls (AMX-BF16 or AVX512-BF16), else fp32. bf16 runs the forward pass under
``torch.autocast(device, bfloat16)`` on the CPU as on CUDA: matmuls and attention compute in bf16 while the
master weights, their gradients and AdamW's states stay fp32 (autocast casts per op; parameters are never
converted), and the norms and the fused loss (students/fused_ce.py) accumulate in fp32. The resolved precision,
why it was chosen and the CPU's features are written to ``config.json``; every metrics line names the precision;
a resume compares the resolved precision (a run trained in bf16 never continues in fp32). It consumes
any ``curricula.batch.TokenStream``; a ``FeedbackStream`` receives the mean loss per domain after each step.
Batches whose ``meta`` carries the teacher's ``topk_ids``/``topk_logprobs`` add the distillation KL
(students/distill.py). MoE models add their auxiliary losses and log per-expert loads.

Every ``checkpoint_every`` steps (and at the end) a checkpoint is written (students/checkpoint.py); with
``resume=True`` (the CLI's ``--resume``, as for pipelines) a run continues from its latest checkpoint and
reproduces the uninterrupted loss curve, but only when the checkpoint's model and training configs and data
fingerprint equal this call's: otherwise ``ConfigError`` names what differs. Without it a run starts over and
removes the folder's old checkpoints. Each
step appends one JSON line to ``<run>/metrics.jsonl``. A NaN or infinite loss stops the run before the
optimizer applies it, raising ``TrainingDiverged`` naming the step and the last good checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curricula.batch import FeedbackStream, TokenStream
from operators.hardware import check_precision, cpu_features, precision_reason, resolve_precision
from students.checkpoint import (clear_checkpoints, latest_checkpoint, load_checkpoint, resumable_checkpoint,
                                 save_checkpoint)
from students.distill import distill_loss
from students.errors import ConfigError, TrainingDiverged
from students.model import ModelConfig, Student


@dataclass
class TrainConfig:
    steps: int = 100
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    schedule: str = "cosine"          # cosine | wsd
    decay_fraction: float = 0.2       # wsd: the last fraction of steps decays linearly to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0            # 0 disables clipping
    grad_accum: int = 1
    checkpoint_every: int = 50
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "auto"           # auto | fp32 | bf16 (operators/hardware.py resolve_precision)
    compile: bool = False
    distill_alpha: float = 1.0
    distill_temperature: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "grad_accum", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.warmup_steps < 0 or self.warmup_steps > self.steps:
            raise ConfigError(f"warmup_steps must be between 0 and steps ({self.steps}), not {self.warmup_steps}")
        if self.schedule not in ("cosine", "wsd"):
            raise ConfigError(f"schedule must be cosine or wsd, not {self.schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], not {self.min_lr_ratio}")
        if not 0 < self.decay_fraction <= 1:
            raise ConfigError(f"decay_fraction must be in (0, 1], not {self.decay_fraction}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, not {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, not {self.device!r}")
        try:
            check_precision(self.precision, "train.precision")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown training field(s): {', '.join(unknown)}")
        return cls(**values)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    min_lr = cfg.lr * cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    decay_steps = max(1, round(cfg.decay_fraction * cfg.steps))
    decay_start = cfg.steps - decay_steps
    if step < decay_start:
        return cfg.lr
    return cfg.lr + (min_lr - cfg.lr) * (step - decay_start + 1) / decay_steps


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is available")
    return torch.device(name)


def resolved_config(cfg: TrainConfig, device: torch.device | str | None = None) -> dict[str, Any]:
    """The training config as a run records and compares it: ``precision`` resolved ("auto" -> fp32 | bf16 on
    ``device``, default ``cfg.device``), so a resume on a machine where auto means something else is refused."""
    device = pick_device(cfg.device) if device is None else device
    try:
        return {**asdict(cfg), "precision": resolve_precision(cfg.precision, device, "train.precision")}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def precision_record(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """What config.json says about precision: requested, resolved, why, and the CPU's features."""
    resolved = resolve_precision(cfg.precision, device, "train.precision")
    if cfg.precision != "auto":
        why = "requested explicitly (train.precision)"
    elif device.type == "cuda":
        why = f"CUDA device {'supports' if resolved == 'bf16' else 'does not support'} bf16"
    else:
        why = precision_reason()
    return {"requested": cfg.precision, "resolved": resolved, "device": device.type, "why": why,
            "cpu": cpu_features().to_dict()}


def load_cv(counts: torch.Tensor) -> float:
    """Coefficient of variation (std / mean) of expert loads, averaged over layers: 0 is perfect balance."""
    c = counts.float()
    return float((c.std(dim=-1, unbiased=False) / c.mean(dim=-1).clamp(min=1e-9)).mean())


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    losses: list[float]     # per step of this process's run (after resume: the resumed steps only)
    last_checkpoint: Path | None
    model: Student | None = None  # the trained model (this rank's copy)


def train(model_cfg: ModelConfig, cfg: TrainConfig, stream: TokenStream, run_dir: str | Path,
          resume: bool = False, init_from: str | Path | None = None, model: Student | None = None,
          data_fingerprint: str | None = None) -> TrainResult:
    """Train a student on ``stream`` for ``cfg.steps`` optimizer steps, writing to ``run_dir``.

    ``resume``: continue from the run's latest checkpoint if it has one, which must have been written with the
    same configs and ``data_fingerprint`` (``operators.fingerprint`` of the data; saved in every checkpoint);
    False: start over. ``init_from`` starts from another run's checkpoint weights (e.g. a context-extension
    fine-tune); ``model`` passes an already built model (its config must be ``model_cfg``). Inside a
    torch.distributed group, the model is wrapped in DDP and only rank 0 writes metrics and checkpoints.
    """
    run_dir = Path(run_dir)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = (model or Student(model_cfg)).to(device)
    optimizer = make_optimizer(model, cfg)
    train_record = resolved_config(cfg, device)  # what config.json, checkpoints and a resume hold
    precision = precision_record(cfg, device)
    start, last = 0, None
    if init_from is not None:
        load_checkpoint(init_from, model, restore_rng=False)
    if resume and (last := resumable_checkpoint(run_dir, model_cfg.to_dict(), train_record, data_fingerprint)):
        state = load_checkpoint(last, model, optimizer)
        saved = state["stream"]
        stream.load_state_dict(saved["per_rank"][rank] if isinstance(saved, dict) and "per_rank" in saved else saved)
        start = state["step"]
    if rank == 0:
        if start == 0:
            clear_checkpoints(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"model": model_cfg.to_dict(), "train": train_record,
                                                         "precision": precision,
                                                         "data_fingerprint": data_fingerprint}, indent=1))
        _truncate_metrics(run_dir / "metrics.jsonl", start)
    compute = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel
        compute = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        compute = torch.compile(compute)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision["resolved"] == "bf16" \
        else contextlib.nullcontext
    feedback = isinstance(stream, FeedbackStream)
    batches = iter(stream)
    losses: list[float] = []
    progress = _progress(cfg, start, rank)
    model.train()
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        lr = lr_at(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss, tokens, domain_sum, domain_n, counts, extra = 0.0, 0, {}, {}, None, {}
        for micro in range(cfg.grad_accum):
            try:
                batch = next(batches)
            except StopIteration:
                raise ConfigError(f"steps: the stream ran out after {step} steps "
                                  f"({cfg.steps} x grad_accum {cfg.grad_accum} batches needed)") from None
            ids = torch.as_tensor(batch.input_ids, device=device)
            labels = torch.as_tensor(batch.labels, device=device)
            docs = None if batch.document_ids is None else torch.as_tensor(batch.document_ids, device=device)
            sync = contextlib.nullcontext() if not distributed or micro == cfg.grad_accum - 1 else compute.no_sync()
            with sync:
                distilling = "topk_ids" in batch.meta
                with autocast():
                    out = compute(ids, labels=labels, document_ids=docs, return_logits=distilling)
                token_ce, valid, ce = out.token_loss, labels != -100, out.loss
                loss = ce
                if distilling:
                    loss, _, kl = distill_loss(out.logits, labels,
                                               torch.as_tensor(batch.meta["topk_ids"], device=device),
                                               torch.as_tensor(batch.meta["topk_logprobs"], device=device),
                                               cfg.distill_alpha, cfg.distill_temperature)
                    extra["kl"] = extra.get("kl", 0.0) + kl.item() / cfg.grad_accum
                if out.aux_loss is not None:
                    loss = loss + out.aux_loss
                    counts = out.expert_counts if counts is None else counts + out.expert_counts
                bad_ranks = _nonfinite_ranks(loss, distributed, device)
                if bad_ranks:  # in a DDP group every rank learns of it here and stops, so none waits in backward
                    good = latest_checkpoint(run_dir) if distributed else last  # rank 0 writes; all see it
                    where = f"last good checkpoint: {good}" if good else "no checkpoint was written yet"
                    ranks = ", ".join(map(str, bad_ranks))
                    whose = f"loss is {float(loss)}" if not distributed else \
                        f"loss is non-finite on rank(s) {ranks} (this rank {rank}: {float(loss)})"
                    raise TrainingDiverged(f"step {step}: {whose}; training stopped before applying it ({where})")
                (loss / cfg.grad_accum).backward()
            step_loss += ce.item() / cfg.grad_accum
            tokens += int(valid.sum())
            per_seq = ((token_ce * valid).sum(1) / valid.sum(1).clamp(min=1)).tolist()
            for d, v in zip(batch.domains, per_seq):
                domain_sum[d] = domain_sum.get(d, 0.0) + v
                domain_n[d] = domain_n.get(d, 0) + 1
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0
                                                         else float("inf")))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if distributed:
            step_loss = _all_mean(step_loss, device)
            tokens = int(_all_mean(tokens, device) * torch.distributed.get_world_size())
        if distributed:  # every rank's sums, so a feedback stream (DoReMi) sees the same losses everywhere
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (domain_sum, domain_n))
            domain_sum, domain_n = {}, {}
            for sums, counts_ in gathered:
                for d in sums:
                    domain_sum[d] = domain_sum.get(d, 0.0) + sums[d]
                    domain_n[d] = domain_n.get(d, 0) + counts_[d]
        domain_loss = {d: domain_sum[d] / domain_n[d] for d in sorted(domain_sum)}
        if feedback:
            stream.report_losses(domain_loss, step)
        losses.append(step_loss)
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {"step": step + 1, "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                                  "tokens": tokens, "tokens_per_s": tokens / seconds, "domain_loss": domain_loss,
                                  "precision": precision["resolved"], **extra}
        if counts is not None:
            record["expert_counts"] = counts.tolist()
            record["expert_load_cv"] = load_cv(counts)
        saving = (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps
        stream_state = stream.state_dict() if saving else None
        if saving and distributed:  # each rank reads its own shard: keep every rank's position
            per_rank: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(per_rank, stream_state)
            stream_state = {"per_rank": per_rank}
        if rank == 0:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{tokens / seconds:,.0f}")
            if saving:
                last = save_checkpoint(run_dir, step + 1, model, optimizer, stream_state,
                                       {"model": model_cfg.to_dict(), "train": train_record, "metrics": record,
                                        "data_fingerprint": data_fingerprint})
    if progress is not None:
        progress.close()
    return TrainResult(run_dir, cfg.steps, losses, last, model)


def _nonfinite_ranks(loss: torch.Tensor, distributed: bool, device: torch.device) -> list[int]:
    """The ranks whose loss is NaN or infinite. In a DDP group this is one all-reduce every micro-step, before
    backward: a rank that stopped alone would leave the others waiting in DDP's gradient all-reduce."""
    finite = bool(torch.isfinite(loss.detach()).all())
    if not distributed:
        return [] if finite else [0]
    flags = torch.zeros(torch.distributed.get_world_size(), device=device)
    flags[torch.distributed.get_rank()] = 0.0 if finite else 1.0
    torch.distributed.all_reduce(flags)
    return [r for r, bad in enumerate(flags.tolist()) if bad]


def _all_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([float(value)], device=device)
    torch.distributed.all_reduce(t)
    return float(t) / torch.distributed.get_world_size()


def _progress(cfg: TrainConfig, start: int, rank: int):
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=cfg.steps, initial=start, desc="train", unit="step")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume from checkpoint ``step``, drop lines of later steps (they will be recomputed)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]
