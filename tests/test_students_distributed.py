"""Ray Train TorchTrainer (DDP) on 2 CPU workers, each reading its own shard of the stream."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from students.data import ParquetTokenStream, tokenize_texts, write_token_parquet
from students.model import ModelConfig
from students.train import TrainConfig, read_metrics, train

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_cpu_workers_match_one_process_with_the_combined_batch(ray_local, tmp_path, smollm2_dir):
    from students.distributed import train_distributed

    table = pq.read_table(REPO / "data" / "sample", columns=["text", "source"]).slice(0, 100)
    data = write_token_parquet(tmp_path / "tokens.parquet",
                               tokenize_texts([t[:1500] for t in table.column("text").to_pylist()], smollm2_dir),
                               table.column("source").to_pylist())
    model = ModelConfig(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, max_seq_len=32)
    cfg = TrainConfig(steps=6, lr=3e-3, warmup_steps=1, checkpoint_every=3, progress=False)
    result = train_distributed(model, cfg, data, tmp_path / "ddp", workers=2, batch_size=2, seq_len=32)

    workers = [json.loads((tmp_path / "ddp" / f"worker-{r}.json").read_text()) for r in (0, 1)]
    assert [w["world"] for w in workers] == [2, 2]
    assert workers[0]["first_batch_rows"] != workers[1]["first_batch_rows"]        # own shards
    assert workers[0]["param_checksum"] == workers[1]["param_checksum"]          # DDP kept replicas equal
    assert [m["step"] for m in read_metrics(tmp_path / "ddp")] == list(range(1, 7))
    assert result.last_checkpoint.name == "step-0000006"
    saved = json.loads((result.last_checkpoint / "state.json").read_text())["stream"]["per_rank"]
    assert len(saved) == 2 and saved[0] != saved[1]  # each worker's own position in its own shard

    # One process with batch 4 sees exactly the two shards' batches side by side: the same loss curve.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = train(model, cfg, ParquetTokenStream(data, 4, 32), tmp_path / "single")
    torch.set_num_threads(threads)
    np.testing.assert_allclose(result.losses, single.losses, rtol=1e-4)
    assert result.losses[-1] < result.losses[0]
