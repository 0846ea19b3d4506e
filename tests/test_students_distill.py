"""Distillation from real SmolLM2 top-k records: the record format, the loss, and a student learning it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from students.data import tokenize_texts
from students.distill import DistillStream, distill_loss, read_records, records_from_hf_model, write_records
from students.errors import ConfigError
from students.model import ModelConfig
from students.train import TrainConfig, read_metrics, train

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def records(smollm2_dir, tmp_path_factory):
    """Top-8 records of SmolLM2-135M's real forward pass over 8 sample documents (33 tokens each)."""
    texts = pq.read_table(REPO / "data" / "sample", columns=["text"]).slice(0, 40).column("text").to_pylist()
    seqs = [ids[:33] for ids in tokenize_texts([t[:1000] for t in texts], smollm2_dir) if len(ids) >= 33][:8]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = records_from_hf_model(smollm2_dir, seqs, k=8, domain="sample")
    torch.set_num_threads(threads)
    return write_records(tmp_path_factory.mktemp("distill") / "records.parquet", rows), seqs


def test_records_hold_the_teachers_topk(records, smollm2_dir):
    from transformers import AutoModelForCausalLM

    path, seqs = records
    table = read_records(path)
    import pyarrow as pa
    assert table.num_rows == 8 and table.schema.field("topk_ids").type.value_type.value_type == pa.int32()
    assert table.column("teacher")[0].as_py() == "SmolLM2-135M-Instruct"
    hf = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logprobs = torch.log_softmax(hf(torch.tensor([seqs[0]])).logits[0], -1)
    ids = np.asarray(table.column("topk_ids")[0].as_py())
    values = np.asarray(table.column("topk_logprobs")[0].as_py())
    assert ids.shape == (33, 8) and np.array_equal(ids[:, 0], logprobs.argmax(-1).numpy())
    np.testing.assert_allclose(values, np.take_along_axis(logprobs.numpy(), ids, 1), atol=1e-5)
    assert (np.diff(values, axis=1) <= 0).all() and (values <= 0).all()


def test_loss_is_zero_kl_for_the_teacher_itself_and_ce_at_alpha_zero(records, smollm2_dir):
    from students.export import student_from_hf

    path, _ = records
    batch = next(iter(DistillStream(path, batch_size=2, seq_len=32)))
    teacher = student_from_hf(smollm2_dir)
    with torch.no_grad():
        logits = teacher(torch.as_tensor(batch.input_ids)).logits
    ids, lp = (torch.as_tensor(batch.meta[k]) for k in ("topk_ids", "topk_logprobs"))
    labels = torch.as_tensor(batch.labels)
    total, ce, kl = distill_loss(logits, labels, ids, lp, alpha=1.0)
    assert float(kl) < 1e-5 and float(total) == pytest.approx(float(ce) + float(kl))
    noisy = logits + torch.randn_like(logits)
    _, ce0, kl0 = distill_loss(noisy, labels, ids, lp, alpha=0.0)
    assert float(kl0) > 0.05
    assert float(distill_loss(noisy, labels, ids, lp, alpha=0.0)[0]) == pytest.approx(float(ce0))
    _, _, kl_t = distill_loss(noisy, labels, ids, lp, temperature=2.0)
    assert float(kl_t) != pytest.approx(float(kl0))


def test_student_learns_the_teachers_distribution(records, tmp_path):
    path, _ = records
    cfg = ModelConfig(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, max_seq_len=32)
    train(cfg, TrainConfig(steps=25, lr=3e-3, warmup_steps=2, progress=False, distill_alpha=1.0),
          DistillStream(path, batch_size=4, seq_len=32), tmp_path)
    kl = [m["kl"] for m in read_metrics(tmp_path)]
    assert np.mean(kl[-3:]) < 0.5 * np.mean(kl[:3])


def test_missing_columns_are_named(tmp_path):
    import pyarrow as pa
    pq.write_table(pa.table({"input_ids": [[1, 2, 3]]}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="topk_ids"):
        DistillStream(tmp_path / "bad.parquet", batch_size=1, seq_len=2)
