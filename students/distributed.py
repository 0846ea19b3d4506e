"""Distributed training with Ray Train's ``TorchTrainer`` (DDP) on several CPUs, GPUs or nodes.

Each worker builds the same ``ParquetTokenStream`` and reads its own shard of it (``shard(rank, world)``:
worker r takes batches r, r + world, ...), so world x batch_size sequences are trained per step, exactly the
batches a single process would see with the combined batch size. ``students.train.train`` runs unchanged
inside each worker: Ray Train has set up the process group, the loop wraps the model in DDP, and rank 0
writes metrics and checkpoints to ``run_dir`` (which must be on storage every node sees). Resuming works
as for one process: every worker loads the latest checkpoint and the stream position.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from students.model import ModelConfig
from students.train import TrainConfig, TrainResult


def _worker(config: dict) -> None:
    import ray.train
    import torch

    from students.data import ParquetTokenStream
    from students.train import train

    torch.set_num_threads(config["threads"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    stream = ParquetTokenStream(config["data"], config["batch_size"], config["seq_len"], seed=config["seed"],
                                rank=rank, world=world)
    first = next(iter(stream.shard(rank, world)))
    result = train(ModelConfig(**config["model"]), TrainConfig(**config["train"]), stream, config["run_dir"])
    checksum = float(sum(p.detach().double().abs().sum() for p in result.model.parameters()))
    Path(config["run_dir"], f"worker-{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "losses": result.losses, "first_batch_rows": first.input_ids[:, :4].tolist(),
        "param_checksum": checksum}))
    ray.train.report({"rank": rank, "loss": result.losses[-1] if result.losses else None, "step": result.step})


def train_distributed(model_cfg: ModelConfig, train_cfg: TrainConfig, data: str | Path, run_dir: str | Path,
                      workers: int = 2, batch_size: int = 8, seq_len: int = 256, seed: int = 0,
                      use_gpu: bool = False, threads_per_worker: int = 1,
                      storage_path: str | Path | None = None) -> TrainResult:
    """Train with ``workers`` DDP workers under Ray Train (uses the current Ray, or starts a local one)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": model_cfg.to_dict(), "train": {**asdict(train_cfg), "progress": False},
              "data": str(Path(data).resolve()), "run_dir": str(run_dir), "batch_size": batch_size,
              "seq_len": seq_len, "seed": seed, "threads": threads_per_worker}
    if not ray.is_initialized():
        ray.init()
    trainer = TorchTrainer(_worker, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                        resources_per_worker={"CPU": threads_per_worker}),
                           run_config=RunConfig(name="students-train",
                                                storage_path=str(Path(storage_path or run_dir / "ray").resolve())))
    trainer.fit()
    rank0 = json.loads((run_dir / "worker-0.json").read_text())
    from students.checkpoint import latest_checkpoint
    return TrainResult(run_dir, train_cfg.steps, rank0["losses"], latest_checkpoint(run_dir))
