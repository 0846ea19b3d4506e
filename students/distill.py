"""Logit distillation: the teacher-record format, a stream over it, and the loss.

Distillation records (written by teachers' logit-distillation task, or by ``records_from_hf_model`` here)
are Parquet rows:

    input_ids      list<int32>          the token sequence, SmolLM2's vocabulary, length L
    topk_ids       list<list<int32>>    [L, k] the teacher's k most likely next tokens after input_ids[:t+1]
    topk_logprobs  list<list<float>>    [L, k] their log-probabilities (float16 or float32), full-vocab softmax
    teacher        string               provenance: teacher model name
    domain         string               the source domain (optional; "default")
    (any other provenance columns: id, source_id, task, template_version, seed, ... are carried, not read)

The loss at every position with a label is ``CE(student, next token) + alpha * KL(p_teacher || q_student)``
where p_teacher is the softmax of the k teacher logprobs (renormalised over the top-k) and q_student is the
student's distribution restricted to the same k tokens and renormalised; with temperature tau both are
computed from logprobs / tau and the KL is multiplied by tau^2 (Hinton et al.).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from curricula.batch import TokenBatch
from students.errors import ConfigError

REQUIRED = ("input_ids", "topk_ids", "topk_logprobs")


def distill_loss(logits: torch.Tensor, labels: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor,
                 alpha: float = 1.0, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, cross-entropy, KL), each a mean over positions whose label is not -100."""
    valid = labels != -100
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)
    teacher = F.log_softmax(topk_logprobs.float() / temperature, dim=-1)
    student = F.log_softmax(logits.gather(-1, topk_ids.long()) / temperature, dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    kl = (kl * valid).sum() / valid.sum().clamp(min=1) * temperature ** 2
    return ce + alpha * kl, ce, kl


def read_records(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"distill records: {path} does not exist")
    table = pq.read_table(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ConfigError(f"distill records: {path} lacks column(s) {missing}; has {table.column_names}")
    return table


def write_records(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema_fields = [("input_ids", pa.list_(pa.int32())), ("topk_ids", pa.list_(pa.list_(pa.int32()))),
                     ("topk_logprobs", pa.list_(pa.list_(pa.float32())))]
    extra = [k for k in rows[0] if k not in REQUIRED]
    table = pa.table({name: pa.array([r[name] for r in rows], type=t) for name, t in schema_fields}
                     | {k: [r[k] for r in rows] for k in extra})
    pq.write_table(table, path)
    return path


class DistillStream:
    """Batches of distillation records as a TokenStream: ``meta`` carries ``topk_ids`` / ``topk_logprobs``
    [B, T, k]. Records are cut to seq_len + 1 tokens; shorter ones are padded with labels -100."""

    def __init__(self, path: str | Path, batch_size: int, seq_len: int, loop: bool = True):
        table = read_records(path)
        self.batch_size, self.seq_len, self.loop, self.position = batch_size, seq_len, loop, 0
        ids, tk, tl = (table.column(c).to_pylist() for c in REQUIRED)
        domains = table.column("domain").to_pylist() if "domain" in table.column_names else ["default"] * len(ids)
        n, T = len(ids), seq_len
        if n < batch_size:
            raise ConfigError(f"batch_size: {n} records cannot fill a batch of {batch_size}")
        k = len(tk[0][0])
        self.input_ids = np.zeros((n, T), np.int64)
        self.labels = np.full((n, T), -100, np.int64)
        self.topk_ids = np.zeros((n, T, k), np.int64)
        self.topk_logprobs = np.zeros((n, T, k), np.float32)
        for r in range(n):
            seq = ids[r][: T + 1]
            m = len(seq) - 1
            self.input_ids[r, :m], self.labels[r, :m] = seq[:-1], seq[1:]
            self.topk_ids[r, :m], self.topk_logprobs[r, :m] = np.asarray(tk[r][:m]), np.asarray(tl[r][:m])
        self.domains = [str(d) for d in domains]

    def __iter__(self) -> Iterator[TokenBatch]:
        n = len(self.input_ids) // self.batch_size
        while self.position < n or self.loop:
            if self.position >= n:
                self.position = 0
            rows = slice(self.position * self.batch_size, (self.position + 1) * self.batch_size)
            self.position += 1
            yield TokenBatch(self.input_ids[rows], self.labels[rows], self.domains[rows],
                             meta={"topk_ids": self.topk_ids[rows], "topk_logprobs": self.topk_logprobs[rows]})

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])


@torch.no_grad()
def records_from_hf_model(model_dir: str | Path, sequences: list[list[int]], k: int = 8, domain: str = "default",
                          batch_size: int = 4) -> list[dict[str, Any]]:
    """Distillation records from a real Hugging Face causal LM's forward pass (fp32, CPU): for each
    sequence, the top-k next-token log-probabilities at every position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        for seq in chunk:  # one at a time: no padding, so positions are exact
            logprobs = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), dim=-1)
            values, ids = logprobs.topk(k, dim=-1)
            rows.append({"input_ids": list(seq), "topk_ids": ids.tolist(), "topk_logprobs": values.tolist(),
                         "teacher": Path(model_dir).name, "domain": domain, "task": "logit_distillation"})
    return rows
