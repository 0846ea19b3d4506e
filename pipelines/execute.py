"""What runs inside Ray Data tasks and actors: one stage applied to one Arrow batch.

``StageTask`` applies an operator, checks it kept the row count (a generate stage: that every input row
gave at least one output row, kept or rejected), splits filter/dedup rejects off to
``OUTPUT/_rejected/NN-stage/`` (one file per batch, named by the batch's content so a retried task
overwrites rather than duplicates), and reports the batch's counts to the run's ``Ledger`` actor.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from operators import DETAIL, REASON, SOURCE, Operator
from pipelines.io import small_strings, write_table_atomic


def batch_fingerprint(batch: pa.Table) -> str:
    """A stable name for a batch: the hash of its ids (the same rows give the same name on a retry).

    Ids are unique (checked when the input is validated), so two different batches never share a name."""
    ids = pc.fill_null(batch["id"].cast(pa.string()), "").to_pylist()
    return hashlib.blake2b("\x1f".join(ids).encode("utf-8"), digest_size=12).hexdigest()


# A generate stage counts its input rows by outcome: with at least one kept output, or with every output rejected.
GENERATE_COUNTS = ("sources_kept", "sources_rejected")


def empty_totals() -> dict[str, Any]:
    return {"rows_in": 0, "rows_out": 0, "rows_rejected": 0, "bytes_in": 0, "bytes_out": 0, "seconds": 0.0,
            "batches": 0, "reasons": {}, "metrics": {}}


class Ledger:
    """A Ray actor (created by the runner) that sums per-stage counts reported by every batch.

    Entries are keyed by (stage, batch fingerprint), so a task that Ray retries is not counted twice.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[int, str], dict[str, float]] = {}
        self.plans: dict[int, dict[str, Any]] = {}

    def describe(self, stage: int, info: dict[str, Any]) -> None:
        """Statistics a global stage's plan computed on the driver (candidate pairs, clusters, ...)."""
        self.plans[stage] = info

    def record(self, stage: int, fingerprint: str, counts: dict[str, float]) -> None:
        self.entries[(stage, fingerprint)] = counts

    def totals(self) -> dict[int, dict[str, Any]]:
        totals: dict[int, dict[str, Any]] = {}
        for (stage, _), counts in self.entries.items():
            into = totals.setdefault(stage, empty_totals())
            for key in ("rows_in", "rows_out", "rows_rejected", "bytes_in", "bytes_out", "seconds",
                        *GENERATE_COUNTS):
                if key in counts:
                    into[key] = into.get(key, 0) + counts[key]
            into["batches"] += 1
            for group in ("reasons", "metrics"):
                for name, n in counts[group].items():
                    into[group][name] = into[group].get(name, 0) + n
        for stage, info in self.plans.items():
            totals.setdefault(stage, empty_totals())["plan"] = info
        return totals


def _totals(name: str, column: pa.ChunkedArray) -> dict[str, float]:
    """A metric column's sum; a struct column's sum per field, named ``column.field`` (BiasMeasure's counts)."""
    if pa.types.is_struct(column.type):
        return {f"{name}.{f.name}": _totals(f.name, pc.struct_field(column, f.name))[f.name] for f in column.type}
    total = pc.sum(column).as_py()
    return {name: total if total is not None else 0}


@dataclass
class StageTask:
    """Callable given to ``Dataset.map_batches`` for one stage (a plain task, or built in an actor)."""

    index: int
    name: str
    op: Operator
    rejected_dir: str | None  # where this stage's rejects go; None for map stages
    ledger: Any               # ray.actor.ActorHandle of a Ledger
    annotate_only: bool = False  # dedup: the batch arrives with ``keep_id``; annotate instead of calling op
    clusters_dir: str | None = None  # dedup: where (id, cluster, kept) for every row goes
    context: Any = None  # line_dedup: an object ref to the frequent line keys

    def __post_init__(self) -> None:
        if self.op.stateful:
            self.op.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        import ray

        started = time.perf_counter()
        rows_in, bytes_in = batch.num_rows, batch.nbytes
        fingerprint = batch_fingerprint(batch)
        input_ids = batch["id"].cast(pa.string()) if self.op.kind == "generate" else None
        if self.annotate_only:
            batch = self._annotate_dedup(batch, fingerprint)
        elif self.context is not None:
            batch = self.op.remove(batch, ray.get(self.context))
        else:
            batch = self.op(batch)
        sources: dict[str, int] = {}
        if input_ids is not None:
            batch, sources = self._check_sources(batch, input_ids)
        elif batch.num_rows != rows_in:
            raise RuntimeError(f"stage {self.name!r}: operator {type(self.op).__name__} returned {batch.num_rows} "
                               f"rows for {rows_in}; operators must annotate rejects, not drop rows")
        # Metrics are summed over every row the operator saw, rejected rows included.
        metrics = {key: n for name in self.op.metrics if name in batch.column_names
                   for key, n in _totals(name, batch[name]).items()}
        reasons: dict[str, int] = {}
        rejected_rows = 0
        if REASON in batch.column_names:
            batch, rejected = self._split(batch, fingerprint)
            rejected_rows = rejected.num_rows
            if rejected.num_rows:
                reasons = {r["values"]: r["counts"] for r in pc.value_counts(rejected["reason"]).to_pylist()}
        # A generate stage's rows_out / rows_rejected count generated rows; its sources_* count input rows.
        counts = {"rows_in": rows_in, "rows_out": batch.num_rows, "rows_rejected": rejected_rows,
                  "bytes_in": bytes_in, "bytes_out": batch.nbytes, "seconds": time.perf_counter() - started,
                  "reasons": reasons, "metrics": metrics, **sources}
        ray.get(self.ledger.record.remote(self.index, fingerprint, counts))
        return small_strings(batch)

    def _check_sources(self, batch: pa.Table, input_ids: pa.ChunkedArray) -> tuple[pa.Table, dict[str, int]]:
        """A generate stage's output without ``_source``, and its input rows counted by outcome (with a kept
        row; with every row rejected). Raises unless every input row has at least one output row."""
        if SOURCE not in batch.column_names:
            raise RuntimeError(f"stage {self.name!r}: generate operator {type(self.op).__name__} returned no "
                               f"{SOURCE!r} column")
        produced = set(batch[SOURCE].to_pylist())
        missing = set(input_ids.to_pylist()) - produced
        if missing:
            raise RuntimeError(f"stage {self.name!r}: operator {type(self.op).__name__} gave no row (kept or "
                               f"rejected) for input row {sorted(missing)[0]!r}; generate operators must reject, not drop")
        kept = set(batch[SOURCE].filter(pc.is_null(batch[REASON])).to_pylist()) if REASON in batch.column_names \
            else produced
        # Counted from the rows, not by subtraction: a source the operator invented breaks the balance.
        return batch.drop_columns([SOURCE]), {"sources_kept": len(kept), "sources_rejected": len(produced - kept)}

    def _annotate_dedup(self, batch: pa.Table, fingerprint: str) -> pa.Table:
        """Rows joined to their group's decision (``keep_id``, ``cluster``; null: a group of one)."""
        ids = batch["id"].cast(pa.string())
        keep_id = pc.coalesce(batch["keep_id"].cast(pa.string()), ids)
        cluster = pc.coalesce(batch["cluster"].cast(pa.string()), keep_id) if "cluster" in batch.column_names else keep_id
        if self.clusters_dir:
            clusters = pa.table({"id": ids, "cluster": cluster, "kept": pc.equal(ids, keep_id)})
            write_table_atomic(clusters, Path(self.clusters_dir) / f"part-{fingerprint}.parquet")
        helpers = [c for c in ("keep_id", "cluster", "_dedup_key") if c in batch.column_names]
        return self.op.annotate(batch.drop_columns(helpers), keep_id.combine_chunks())

    def _split(self, batch: pa.Table, fingerprint: str) -> tuple[pa.Table, pa.Table]:
        """Kept rows (without annotation columns) and rejected rows (written to the rejects directory)."""
        rejected_mask = pc.is_valid(batch[REASON])
        kept = batch.filter(pc.invert(rejected_mask)).drop_columns([REASON, DETAIL])
        rejected = small_strings(batch.filter(rejected_mask))
        if rejected.num_rows:
            rejected = (rejected.rename_columns([{REASON: "reason", DETAIL: "detail"}.get(c, c)
                                                 for c in rejected.column_names])
                        .append_column("stage", pa.array([self.name] * rejected.num_rows, pa.string())))
            assert self.rejected_dir is not None
            write_table_atomic(rejected, Path(self.rejected_dir) / f"part-{fingerprint}.parquet")
        return kept, rejected
