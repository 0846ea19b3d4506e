"""``Perplexity``: per-document perplexity under a reference causal LM, as a difficulty score column.

An operator in the project's contract (``operators.base.Operator``: Arrow batch in, same rows out plus a
column), so the pipeline runner can compute it on Ray and write it to Parquet, where ``Difficulty(column=
"perplexity")`` reads it. Perplexity = exp(mean next-token negative log-likelihood) over the document's
first ``max_tokens`` tokens (a BOS-free window; documents with fewer than 2 tokens get null). The model is a
Hugging Face folder (e.g. SmolLM2-135M), loaded once per worker in ``setup``; runs in float32 on CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from operators.base import Operator, Resources, check
from operators.tokenizer import read_tokenizer


@dataclass(frozen=True)
class Perplexity(Operator):
    model_dir: str = ""
    max_tokens: int = 256
    batch_size: int = 8
    column: str = "perplexity"

    stateful: ClassVar[bool] = True
    resources: ClassVar[Resources] = Resources(num_cpus=1.0, batch_size=64)

    def __post_init__(self) -> None:
        check(bool(self.model_dir), self, "model_dir", "must be a Hugging Face causal LM folder")
        check(self.max_tokens >= 2, self, "max_tokens", f"must be >= 2, got {self.max_tokens}")
        check(self.batch_size >= 1, self, "batch_size", f"must be >= 1, got {self.batch_size}")

    def setup(self) -> None:
        if getattr(self, "_model", None) is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        model.eval()
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_tokenizer", read_tokenizer(self.model_dir))

    def document_nll(self, texts: list[str]) -> list[tuple[float, int]]:
        """(sum of token NLLs, number of predicted tokens) per text."""
        import torch

        self.setup()
        encoded = [e.ids[:self.max_tokens] for e in self._tokenizer.encode_batch_fast(
            [t or "" for t in texts], add_special_tokens=False)]
        out: list[tuple[float, int]] = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start:start + self.batch_size]
            width = max(2, max(len(x) for x in chunk))
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, x in enumerate(chunk):
                ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
                mask[i, :len(x)] = 1
            with torch.no_grad():
                logits = self._model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
            out.extend((float(nll[i].sum()), int(mask[i, 1:].sum())) for i in range(len(chunk)))
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        import math

        texts = batch.column(self.text_column).to_pylist()
        values = [math.exp(s / n) if n > 0 else None for s, n in self.document_nll(texts)]
        return batch.append_column(self.column, pa.array(values, type=pa.float64()))
