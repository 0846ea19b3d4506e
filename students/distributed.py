"""Distributed training with Ray Train's ``TorchTrainer`` (DDP) on several CPUs, GPUs or nodes.

Each worker builds the same ``ParquetTokenStream`` and reads its own shard of it (``shard(rank, world)``:
worker r takes batches r, r + world, ...), so world x batch_size sequences are trained per step, exactly the
batches a single process would see with the combined batch size. ``students.train.train`` runs unchanged
inside each worker: Ray Train has set up the process group, the loop wraps the model in DDP, and rank 0
writes metrics and checkpoints to ``run_dir`` (which must be on storage every node sees). Resuming works
as for one process: every worker loads the latest checkpoint and the stream position.

The process group meets through a file in ``run_dir`` (``_FileRendezvous``), not Ray Train's default TCP
store: torch's store binds every network interface and has no bind address, so on the embedded local Ray the
gloo sockets are also pinned to loopback (``GLOO_SOCKET_IFNAME=lo``) and nothing of a training run listens
off loopback (tests/test_loopback.py).

A NaN or infinite loss on any rank stops every rank at the same step (the loop all-reduces a finite flag
before backward); each worker records its ``TrainingDiverged`` in ``worker-RANK.json`` and the driver raises
it, instead of a wrapped Ray Train error.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ray.train.backend import Backend
from ray.train.torch import TorchConfig

from students.errors import TrainingDiverged
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
    model = None
    if (config.get("fault") or {}).get("rank") == rank:
        from students.model import Student
        torch.manual_seed(config["train"]["seed"])  # the initialisation train() would give
        model = _inject_nonfinite(Student(ModelConfig(**config["model"])), config["fault"]["step"])
    try:
        result = train(ModelConfig(**config["model"]), TrainConfig(**config["train"]), stream, config["run_dir"],
                       model=model, resume=config.get("resume", False), data_fingerprint=config.get("data_fingerprint"))
    except TrainingDiverged as error:
        Path(config["run_dir"], f"worker-{rank}.json").write_text(json.dumps({"rank": rank, "world": world,
                                                                              "error": str(error)}))
        raise
    checksum = float(sum(p.detach().double().abs().sum() for p in result.model.parameters()))
    Path(config["run_dir"], f"worker-{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "losses": result.losses, "first_batch_rows": first.input_ids[:, :4].tolist(),
        "param_checksum": checksum}))
    ray.train.report({"rank": rank, "loss": result.losses[-1] if result.losses else None, "step": result.step})


@dataclass
class _FileRendezvous(TorchConfig):
    """Ray Train's torch set-up with the process group's rendezvous in the file ``store`` (a path every worker
    sees: the run folder) and, when ``loopback``, gloo's sockets on the loopback interface."""

    store: str = ""
    loopback: bool = False

    @property
    def backend_cls(self):
        return _FileRendezvousBackend


class _FileRendezvousBackend(Backend):
    def on_start(self, worker_group, backend_config: _FileRendezvous) -> None:
        import ray

        world = len(worker_group)
        ray.get([worker_group.execute_single_async(rank, _join_group, backend=backend_config.backend,
                                                   store=backend_config.store, world_rank=rank,
                                                   world=world, loopback=backend_config.loopback,
                                                   timeout_s=backend_config.timeout_s)
                 for rank in range(world)])

    def on_shutdown(self, worker_group, backend_config: _FileRendezvous) -> None:
        worker_group.execute(_leave_group)


def _join_group(backend: str, store: str, world_rank: int, world: int, loopback: bool, timeout_s: float) -> None:
    import os
    from datetime import timedelta

    import torch.distributed as dist

    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=world_rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))


def _leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _inject_nonfinite(model, step: int):
    """Test-only fault (``fault={"rank": R, "step": S}``): from its S-th forward pass (0-based) on, this rank's
    final norm outputs NaN. A natural NaN on exactly one rank cannot be produced deterministically."""
    calls = [0]

    def poison(module, args, output):
        calls[0] += 1
        return output * float("nan") if calls[0] > step else output

    model.norm.register_forward_hook(poison)
    return model


def _diverged(run_dir: Path, workers: int) -> TrainingDiverged | None:
    """The workers' ``TrainingDiverged`` as one error naming every rank that stopped, if any did."""
    stopped = {}
    for rank in range(workers):
        path = run_dir / f"worker-{rank}.json"
        if path.exists() and "error" in (info := json.loads(path.read_text())):
            stopped[rank] = info["error"]
    if not stopped:
        return None
    first = stopped[min(stopped)]
    return TrainingDiverged(f"{first}; ranks that stopped: {', '.join(map(str, sorted(stopped)))} of {workers}")


def train_distributed(model_cfg: ModelConfig, train_cfg: TrainConfig, data: str | Path, run_dir: str | Path,
                      workers: int = 2, batch_size: int = 8, seq_len: int = 256, seed: int = 0,
                      use_gpu: bool = False, threads_per_worker: int = 1,
                      storage_path: str | Path | None = None, fault: dict | None = None, resume: bool = False,
                      data_fingerprint: str | None = None) -> TrainResult:
    """Train with ``workers`` DDP workers under Ray Train (uses the current Ray, or starts a local one).
    ``resume`` and ``data_fingerprint``: as for ``students.train.train``.

    ``fault`` is for tests only: ``{"rank": R, "step": S}`` makes rank R's loss NaN from step S on."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": model_cfg.to_dict(), "train": {**asdict(train_cfg), "progress": False},
              "data": str(Path(data).resolve()), "run_dir": str(run_dir), "batch_size": batch_size,
              "seq_len": seq_len, "seed": seed, "threads": threads_per_worker, "fault": fault, "resume": resume,
              "data_fingerprint": data_fingerprint}
    if resume:  # a checkpoint of other configs or data is refused here, before any worker starts
        from students.checkpoint import resumable_checkpoint
        resumable_checkpoint(run_dir, config["model"], config["train"], data_fingerprint)
    for stale in run_dir.glob("worker-*.json"):
        stale.unlink()
    import ray

    from curricula.ray_session import LOOPBACK, cluster_address, connect
    connect()  # the running Ray, else RAY_ADDRESS, else an embedded one set up as the pipelines' (loopback only)
    store = run_dir / f".rendezvous-{uuid.uuid4().hex}"
    embedded = cluster_address(None) is None and len(ray.nodes()) == 1 and \
        ray.util.get_node_ip_address() == LOOPBACK
    trainer = TorchTrainer(_worker, train_loop_config=config,
                           torch_config=_FileRendezvous(backend="nccl" if use_gpu else "gloo", store=str(store),
                                                        loopback=embedded),
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                        resources_per_worker={"CPU": threads_per_worker}),
                           run_config=RunConfig(name="students-train",
                                                storage_path=str(Path(storage_path or run_dir / "ray").resolve())))
    try:
        trainer.fit()
    except Exception as error:  # Ray Train wraps the workers' errors; a divergence is the user's to see plainly
        diverged = _diverged(run_dir, workers)
        if diverged is not None:
            raise diverged from error
        raise
    finally:
        store.unlink(missing_ok=True)
    rank0 = json.loads((run_dir / "worker-0.json").read_text())
    from students.checkpoint import latest_checkpoint
    return TrainResult(run_dir, train_cfg.steps, rank0["losses"], latest_checkpoint(run_dir))
