"""Exact deduplication: documents whose normalised text is identical are duplicates.

The key is a 128-bit BLAKE2b digest of the text after NFKC, whitespace collapse and (optionally)
lower-casing; the kept document is chosen by the rule in ``operators.base.Dedup`` (highest score, then
smallest id), so the result does not depend on how the data is split into blocks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from operators.base import Dedup, check
from operators.text import UNICODE_FORMS, normalize_text


@dataclass(frozen=True)
class ExactDedup(Dedup):
    """Remove exact duplicates of normalised text, keeping one document per group."""

    form: str | None = "NFKC"
    lowercase: bool = False

    def __post_init__(self) -> None:
        check(self.form is None or self.form in UNICODE_FORMS, self, "form",
              f"must be one of {UNICODE_FORMS} or None, got {self.form!r}")
        check(self.score_column is None or (isinstance(self.score_column, str) and self.score_column), self,
              "score_column", f"must be a column name or None, got {self.score_column!r}")

    def keys(self, batch: pa.Table) -> pa.Array:
        text = normalize_text(batch[self.text_column], self.form, collapse_all_whitespace=True,
                              lowercase=self.lowercase)
        digests = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() if t is not None else None
                   for t in text.to_pylist()]
        return pa.array(digests, pa.string())
