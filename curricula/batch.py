"""The interface between curricula and students: what a training stream yields and what it accepts back.

A stream is any iterable of ``TokenBatch`` that can save and restore its position. The curriculum
scheduler's stream implements it; so can a plain Parquet token reader or a list in a test. Students depend
only on this module, never on how a stream decides what comes next.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np


@dataclass
class TokenBatch:
    """``batch_size`` packed sequences of ``seq_len`` tokens.

    input_ids:    int64 [B, T] model inputs.
    labels:       int64 [B, T] next-token targets (``input_ids`` shifted left by one within the packed
                  window of T + 1 tokens); -100 where no loss is taken.
    domains:      the domain (source) of each sequence, length B; a sequence is packed from one domain.
    document_ids: optional int32 [B, T]: which document of the sequence each token belongs to (0, 1, ...),
                  for per-document attention masking; None when the stream does not track it.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    domains: list[str]
    document_ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_ids.ndim != 2 or self.input_ids.shape != self.labels.shape:
            raise ValueError(f"input_ids {self.input_ids.shape} and labels {self.labels.shape} must both be [B, T]")
        if len(self.domains) != self.input_ids.shape[0]:
            raise ValueError(f"domains has {len(self.domains)} entries for {self.input_ids.shape[0]} sequences")
        if self.document_ids is not None and self.document_ids.shape != self.input_ids.shape:
            raise ValueError(f"document_ids {self.document_ids.shape} must match input_ids {self.input_ids.shape}")

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.size)


@runtime_checkable
class TokenStream(Protocol):
    """What a trainer consumes. ``state_dict`` after k batches + ``load_state_dict`` on a fresh stream
    yields exactly the batches k+1, k+2, ... of the uninterrupted stream."""

    def __iter__(self) -> Iterator[TokenBatch]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class FeedbackStream(TokenStream, Protocol):
    """A stream that adapts to the trainer: it receives the mean loss per domain of recent steps
    (online DoReMi-style reweighting). Trainers call it when the stream offers it."""

    def report_losses(self, losses: dict[str, float], step: int) -> None: ...
