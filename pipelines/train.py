"""Train: the curriculum streams curated and synthetic data into students (the flagship's third step).

    curated stream   curated domains balanced by temperature (T = 2 over characters), with the synthetic
                     domains (grounded QA, rephrasings) rising linearly from 0 to ``synthetic_share`` of the
                     tokens by the end of training: a scheduled mixture
    raw stream       the uncurated training split in its natural proportions (T = 1): the baseline

    dense            a Llama-style student (GQA, RoPE, SDPA)
    moe              the same width with 4 experts, top-2 routing
    long_context     the dense student's context extended 4x with YaRN and fine-tuned at that length

Each run writes ``metrics.jsonl`` (loss overall and per domain), checkpoints (safetensors) and the stream's
``adherence.jsonl`` (planned vs realised domain shares). Sizes: ``SIZES["small"]`` runs in minutes on two
CPU cores; ``SIZES["full"]`` is the same recipe, larger; ``SIZES["test"]`` only checks that it runs.

With ``resume`` a run continues from its checkpoint only when that was written with the same configs and a
fingerprint of the same data (the streams' Parquet files, the tokenizer, and for long context the dense
weights it starts from); otherwise it retrains from scratch, so a rerun into the same folder with changed data
retrains (``resume_run``).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curricula.mixture import Temperature, piecewise, temperature_mixture
from curricula.source import Domain, split_by_source
from curricula.stream import CurriculumStream
from operators.fingerprint import dataset_fingerprint, fingerprint
from pipelines.io import list_parquet_files
from students.checkpoint import latest_checkpoint, resume_mismatch
from students.model import ModelConfig
from students.train import TrainConfig, resolved_config, train


@dataclass(frozen=True)
class TrainingSize:
    steps: int
    batch_size: int
    seq_len: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    lr: float = 3e-3
    long_context_factor: int = 4
    long_context_steps: int = 20


SIZES = {"test": TrainingSize(steps=12, batch_size=4, seq_len=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                              long_context_factor=2, long_context_steps=4),
         "small": TrainingSize(steps=200, batch_size=8, seq_len=128, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2),
         "full": TrainingSize(steps=2000, batch_size=16, seq_len=256, d_model=256, n_layers=4, n_heads=8, n_kv_heads=4,
                              lr=1e-3, long_context_steps=200)}
SYNTHETIC_SHARE = 0.25


def student_config(size: TrainingSize, kind: str = "dense") -> ModelConfig:
    dense = ModelConfig(d_model=size.d_model, n_layers=size.n_layers, n_heads=size.n_heads, n_kv_heads=size.n_kv_heads,
                        max_seq_len=size.seq_len)
    return dataclasses.replace(dense, n_experts=4, top_k=2) if kind == "moe" else dense


def chars_by_source(path: str) -> dict[str, float]:
    frame = pl.scan_parquet(list_parquet_files(path)).group_by("source").agg(pl.col("text").str.len_chars().sum())
    return {source: float(n) for source, n in frame.collect().iter_rows()}


def raw_stream(domains: list[Domain], sizes: dict[str, float], size: TrainingSize, seed: int, tokenizer: str,
               log_path: Path) -> CurriculumStream:
    """The raw split in its natural proportions (``sizes``: characters per domain)."""
    return CurriculumStream(domains, Temperature(1.0, sizes=sizes), tokenizer, seq_len=size.seq_len,
                            batch_size=size.batch_size, seed=seed, document_ids=True, log_every=200, log_path=log_path)


def curated_stream(domains: list[Domain], balanced: dict[str, float], size: TrainingSize, seed: int, tokenizer: str,
                   log_path: Path, seq_len: int | None = None) -> CurriculumStream:
    """``balanced`` weights for the curated domains at first; the other (synthetic) domains rise linearly to
    ``SYNTHETIC_SHARE`` of the tokens by the end of training."""
    seq_len = seq_len or size.seq_len
    synthetic = [d.name for d in domains if d.name not in balanced]
    end = {**{name: w * (1 - SYNTHETIC_SHARE) for name, w in balanced.items()},
           **{name: SYNTHETIC_SHARE / len(synthetic) for name in synthetic}}
    schedule = piecewise([(0, balanced), (size.steps * size.batch_size * seq_len, end)])
    return CurriculumStream(domains, schedule, tokenizer, seq_len=seq_len, batch_size=size.batch_size, seed=seed,
                            document_ids=True, log_every=200, log_path=log_path)


def data_fingerprint(paths: list[str], tokenizer: str, *extra: str) -> str:
    """The content a student is trained on: its streams' Parquet data and the tokenizer (not their paths)."""
    parts = [dataset_fingerprint(p)[:16] for p in paths] + [fingerprint(tokenizer)[:16], *extra]
    return hashlib.sha256("+".join(parts).encode()).hexdigest()[:32]


def resume_run(run_dir: Path, model: ModelConfig, cfg: TrainConfig, data_fp: str, resume: bool) -> bool:
    """Whether to continue ``run_dir``: only when asked, and when its latest checkpoint was written with these
    configs and this data fingerprint; otherwise the run retrains from scratch (and says why)."""
    last = latest_checkpoint(run_dir) if resume else None
    if last is None:
        return False
    mismatch = resume_mismatch(last, model.to_dict(), resolved_config(cfg), data_fp)  # auto precision resolved
    if mismatch:
        print(f"{run_dir.name}: retraining from scratch ({mismatch})", flush=True)
    return mismatch is None


def train_student(run_dir: Path, model: ModelConfig, size: TrainingSize, stream, seed: int, data_fp: str,
                  resume: bool = False) -> Path:
    cfg = TrainConfig(steps=size.steps, lr=size.lr, warmup_steps=max(1, size.steps // 20),
                      checkpoint_every=max(1, size.steps // 3), seed=seed, device="auto", progress=False)
    train(model, cfg, stream, run_dir, resume=resume_run(run_dir, model, cfg, data_fp, resume),
          data_fingerprint=data_fp)
    return run_dir


def train_students(curated: str, synthetic: dict[str, str], raw: str, out: Path, size: TrainingSize,
                   seeds: tuple[int, ...], tokenizer: str, resume: bool = False) -> list[Path]:
    """The experiment's dense students (curated and raw streams, every seed) plus MoE and long-context
    students on the curated stream (first seed). Returns the run folders."""
    curated_data = data_fingerprint([curated, *synthetic.values()], tokenizer)
    raw_data = data_fingerprint([raw], tokenizer)
    weights = temperature_mixture(chars_by_source(curated), 2.0).weights
    balanced = {name: w / sum(weights.values()) for name, w in weights.items()}
    curated_domains = split_by_source(curated) + [Domain(name, path) for name, path in synthetic.items()]
    raw_domains, raw_sizes = split_by_source(raw), chars_by_source(raw)
    runs = []
    for seed in seeds:
        run = out / f"dense-curated-seed{seed}"
        stream = curated_stream(curated_domains, balanced, size, seed, tokenizer, run / "adherence.jsonl")
        runs.append(train_student(run, student_config(size), size, stream, seed, curated_data, resume))
        run = out / f"dense-raw-seed{seed}"
        stream = raw_stream(raw_domains, raw_sizes, size, seed, tokenizer, run / "adherence.jsonl")
        runs.append(train_student(run, student_config(size), size, stream, seed, raw_data, resume))
    seed = seeds[0]
    run = out / f"moe-curated-seed{seed}"
    stream = curated_stream(curated_domains, balanced, size, seed, tokenizer, run / "adherence.jsonl")
    runs.append(train_student(run, student_config(size, "moe"), size, stream, seed, curated_data, resume))
    runs.append(extend_context(out / f"dense-curated-seed{seed}", out / f"long_context-curated-seed{seed}",
                               curated_domains, balanced, size, seed, tokenizer, curated_data, resume))
    return runs


def extend_context(source: Path, run: Path, domains: list[Domain], balanced: dict[str, float], size: TrainingSize,
                   seed: int, tokenizer: str, curated_data: str | None = None, resume: bool = False) -> Path:
    """The long-context student: ``source``'s weights fine-tuned at ``long_context_factor`` x the context. Its
    data fingerprint covers the curated data and the dense weights it starts from (a retrained source retrains it)."""
    from students import longctx
    from students.checkpoint import read_state

    long_len = size.seq_len * size.long_context_factor
    short = dataclasses.replace(size, batch_size=max(1, size.batch_size // size.long_context_factor),
                                steps=size.long_context_steps)
    stream = curated_stream(domains, balanced, short, seed, tokenizer, run / "adherence.jsonl", seq_len=long_len)
    cfg = TrainConfig(steps=short.steps, lr=size.lr / 3, warmup_steps=1, checkpoint_every=short.steps, seed=seed,
                      progress=False)
    start = latest_checkpoint(source)
    data_fp = None
    if start is not None:  # (without one, extend_context says so)
        data_fp = data_fingerprint([], tokenizer, curated_data or "", fingerprint(start / "model.safetensors"))
        model = longctx.extended_config(ModelConfig.from_dict(read_state(start)["model"]), long_len, "yarn")
        resume = resume_run(run, model, cfg, data_fp, resume)
    longctx.extend_context(source, run, stream, long_len, cfg, scaling="yarn", resume=resume and start is not None,
                           data_fingerprint=data_fp)
    return run
