"""The operator contract: small typed operators with one call, a ``pyarrow.Table`` batch in and out.

* ``Operator``   — a map: returns the batch with the same rows (it may add or rewrite columns).
* ``Filter``     — annotates: returns the batch plus ``_reason`` / ``_detail`` columns; a null reason
                   keeps the row. The runner routes rejected rows to ``OUTPUT/_rejected/``.
* ``Dedup``      — a global operator: it gives each row a grouping key and chooses the row to keep in
                   each group. Its ``__call__`` deduplicates one batch (for tests and small data); the
                   runner has the distributed plan that applies the same rule across the whole dataset.
* ``kind = "generate"`` — a filter whose output rows are new (teachers' ``GenerationTask``): each input row
                   gives one or more rows, kept or annotated, and ``_source`` names the input row of each.

Parameters are dataclass fields validated in ``__post_init__``; a bad value raises ``ParameterError``
naming the operator and the field. Operators never import Ray: the runner decides where they run.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

REASON = "_reason"
DETAIL = "_detail"
SOURCE = "_source"  # generate stages: the id of the input row an output row was generated from


class ParameterError(ValueError):
    """A user gave an operator a bad parameter; the message names the operator and the field."""


@dataclass(frozen=True)
class Resources:
    """What one copy of an operator needs; the runner turns this into Ray Data arguments."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 4096
    concurrency: int | None = None  # actor-pool size for stateful operators (None: runner decides)


def check(condition: bool, op: object, field: str, message: str) -> None:
    """Raise ``ParameterError`` naming ``op.field`` unless ``condition`` holds."""
    if not condition:
        raise ParameterError(f"{type(op).__name__}.{field}: {message}")


def snake_case(name: str) -> str:
    """``LengthFilter`` -> ``length_filter``, ``RedactPII`` -> ``redact_pii``, ``LanguageID`` -> ``language_id``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class Operator:
    """A map over Arrow batches. Subclasses are frozen dataclasses and implement ``__call__``."""

    kind: ClassVar[str] = "map"
    # Stateful operators (models, engines) load in ``setup`` once per Ray actor, not per batch.
    stateful: ClassVar[bool] = False
    resources: ClassVar[Resources] = Resources()
    text_column: ClassVar[str] = "text"
    # Numeric columns this operator adds whose totals belong in the manifest (e.g. PII counts per type).
    metrics: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        return snake_case(type(self).__name__)

    def config(self) -> dict[str, Any]:
        """The operator's identity: class and parameters (recorded in manifests, hashed for resume)."""
        return {"operator": type(self).__name__, **dataclasses.asdict(self)}

    def setup(self) -> None:
        """Load heavy state (models); called once per worker before the first batch."""

    def __call__(self, batch: pa.Table) -> pa.Table:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Filter(Operator):
    """Decides, per row, keep (null reason) or reject (a short human-readable reason + detail)."""

    kind: ClassVar[str] = "filter"

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:  # pragma: no cover - abstract
        """Return (reason, detail) string arrays, null where the row is kept."""
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        reason, detail = self.reasons(batch)
        return batch.append_column(REASON, reason).append_column(DETAIL, detail)


def reject_where(mask: pa.Array, reason: str, detail: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    """(reason, detail) arrays that reject rows where ``mask`` is true and keep the rest."""
    mask = pc.fill_null(mask, False)
    null = pa.scalar(None, pa.string())
    reasons = pc.if_else(mask, pa.scalar(reason), null)
    details = pc.if_else(mask, detail.cast(pa.string()), null) if detail is not None else pa.nulls(len(mask), pa.string())
    return reasons, details


def merge_reasons(*pairs: tuple[pa.Array, pa.Array]) -> tuple[pa.Array, pa.Array]:
    """Combine several rules' (reason, detail) arrays: the first rule that fails names the row."""
    reason, detail = pairs[0]
    for r, d in pairs[1:]:
        take_new = pc.and_(pc.is_null(reason), pc.is_valid(r))
        reason = pc.if_else(take_new, r, reason)
        detail = pc.if_else(take_new, d, detail)
    return reason, detail


@dataclass(frozen=True)
class Dedup(Operator):
    """A global operator: rows with the same ``keys`` form a group; ``choose`` keeps one per group.

    The keep rule is deterministic: the highest ``score_column`` value if given, ties and the default
    broken by the smallest ``id``. The same rule serves one batch and the distributed plan.
    """

    kind: ClassVar[str] = "dedup"
    reason: ClassVar[str] = "duplicate"
    # True when ``keys`` of a row depends only on that row (exact dedup), so the runner can group keys
    # across the whole dataset; False when keys are clusters found within the batch (MinHash for now).
    keys_are_global: ClassVar[bool] = True
    score_column: str | None = None

    def keys(self, batch: pa.Table) -> pa.Array:  # pragma: no cover - abstract
        """A string key per row: rows with equal keys are duplicates of each other."""
        raise NotImplementedError

    def choose(self, group: pa.Table) -> pa.Table:
        """For a table of (key, id[, score]) rows, return one (key, keep_id) row per key."""
        sort = [("key", "ascending")]
        if self.score_column:
            sort.append((self.score_column, "descending"))
        sort.append(("id", "ascending"))
        ordered = group.sort_by(sort)
        winners = ordered.group_by("key", use_threads=False).aggregate([("id", "first")])
        return pa.table({"key": winners["key"], "keep_id": winners["id_first"]})

    def narrow(self, batch: pa.Table) -> pa.Table:
        """The columns the keep rule needs: key, id and the score column if any."""
        columns = {"key": self.keys(batch), "id": batch["id"]}
        if self.score_column:
            columns[self.score_column] = batch[self.score_column]
        return pa.table(columns)

    def annotate(self, batch: pa.Table, keep_id: pa.Array) -> pa.Table:
        """Reject rows whose id is not their group's kept id, naming the kept one."""
        keep_id = keep_id.cast(pa.string())
        duplicate = pc.not_equal(batch["id"].cast(pa.string()), keep_id)
        reason, detail = reject_where(duplicate, self.reason,
                                      pc.binary_join_element_wise(f"{self.reason} of ", keep_id, ""))
        return batch.append_column(REASON, reason).append_column(DETAIL, detail)

    def __call__(self, batch: pa.Table) -> pa.Table:
        narrow = self.narrow(batch)
        rows = narrow.select(["key"]).append_column("row", pa.array(range(batch.num_rows), pa.int64()))
        keep_id = rows.join(self.choose(narrow), "key").sort_by("row")["keep_id"]
        return self.annotate(batch, keep_id.combine_chunks())
