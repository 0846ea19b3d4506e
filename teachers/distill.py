"""Logit-distillation records: the teacher's top-k next-token log-probabilities at every position of a text.

One row per document, in the format ``students.distill`` reads (see its docstring):

    input_ids      list<int32>        the document's tokens (the teacher's tokenizer, no special tokens), length L
    topk_ids       list<list<int32>>  [L, k] the teacher's k most likely next tokens after input_ids[:t+1]
    topk_logprobs  list<list<float>>  [L, k] their log-probabilities (full-vocabulary log-softmax), best first
    domain         string             the row's ``source`` (else "default")

plus the provenance columns every synthetic row carries. One engine request per document, with no sampling:
vLLM's ``prompt_logprobs`` give positions 1..L-1 (the distribution after input_ids[:t] is stored at row t-1)
and the one generated token's ``logprobs`` give the distribution after the whole text (row L-1). Stored
compactly: k <= 20 entries per position (not the 49k vocabulary), int32 ids, float32 (or float16) values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from operators.base import check
from teachers.engines import MAX_TOP_K, Sampling
from teachers.task import GenerationTask, Reject, first_sample


@dataclass(frozen=True)
class LogitDistill(GenerationTask):
    top_k: int = 20
    max_length: int | None = 256   # cut documents to this many tokens; None: a longer-than-context one is rejected
    min_length: int = 2
    logprob_type: str = "float32"  # or "float16"

    task: ClassVar[str] = "logit_distillation"
    template_version: ClassVar[str] = "distill-1"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.top_k, int) and 1 <= self.top_k <= MAX_TOP_K, self, "top_k",
              f"must be an integer in 1..{MAX_TOP_K}, got {self.top_k!r}")
        check(self.max_length is None or (isinstance(self.max_length, int) and self.max_length >= 2), self,
              "max_length", f"must be None or an integer >= 2, got {self.max_length!r}")
        check(self.logprob_type in ("float32", "float16"), self, "logprob_type", "must be 'float32' or 'float16'")
        # One forward pass per document: greedy, one token, top-k on every prompt position and on that token.
        object.__setattr__(self, "sampling", Sampling(max_tokens=1, temperature=0.0, n=1, seed=self.sampling.seed,
                                                      logprobs=self.top_k, prompt_logprobs=self.top_k))

    @property
    def columns(self) -> dict[str, pa.DataType]:  # type: ignore[override]
        return {"input_ids": pa.list_(pa.int32()), "topk_ids": pa.list_(pa.list_(pa.int32())),
                "topk_logprobs": pa.list_(pa.list_(getattr(pa, self.logprob_type)())), "domain": pa.string()}

    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | Reject]:
        prompts = []
        for row in rows:
            ids = self.engine.encode(row["text"] or "")
            prompts.append(ids[: self.max_length] if self.max_length else ids)
        results: list[dict[str, Any] | Reject] = []
        for row, ids, (response, stamp) in zip(rows, prompts, self.ask(prompts)):
            try:
                if len(ids) < self.min_length:
                    raise Reject(f"fewer than {self.min_length} tokens", f"{len(ids)} tokens")
                results.append({**self.record(ids, response), "text": row["text"], "generated_at": stamp,
                                "domain": str(row.get("source") or "default")})
            except Reject as reject:
                results.append(reject)
        return results

    def record(self, ids: list[int], response) -> dict[str, Any]:
        sample = first_sample(response)
        prompt_lp = response.prompt_logprobs
        if not prompt_lp or len(prompt_lp) != len(ids) or not sample.logprobs:
            raise Reject("teacher returned no logprobs", f"{len(prompt_lp or [])} prompt positions for {len(ids)} tokens")
        positions = [*prompt_lp[1:], sample.logprobs[0]]
        if any(p is None or len(p) < self.top_k for p in positions):
            raise Reject(f"teacher returned fewer than {self.top_k} logprobs at a position")
        return {"input_ids": ids, "topk_ids": [[int(t) for t, _ in p[: self.top_k]] for p in positions],
                "topk_logprobs": [[float(v) for _, v in p[: self.top_k]] for p in positions]}
