"""The pipeline DSL: a lazy, immutable builder that reads like a recipe.

    pipe = (Pipeline("quickstart")
            .read_parquet("data/sample")
            .map(Normalize())
            .filter(LengthFilter(min_chars=50))
            .dedup(ExactDedup())
            .write_parquet("out/quickstart"))
    pipe.run()

Building does no work; ``run`` hands the plan to ``pipelines.runner``. Each operator becomes one stage
(``filter(a, b)`` is two stages, so the manifest counts each rule's rejects separately).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from operators import BoilerplateLines, Dedup, Filter, Operator, ParameterError, RequireText
from pipelines.errors import DistilleryError


@dataclass(frozen=True)
class Source:
    """Where documents come from: a Parquet file, a directory or a glob, with optional column selection."""

    path: str
    columns: tuple[str, ...] | None = None
    num_blocks: int | None = None  # Ray Data read parallelism; None lets Ray decide

    def config(self) -> dict[str, Any]:
        return {"path": self.path, "columns": list(self.columns) if self.columns else None}


@dataclass(frozen=True)
class Stage:
    """One operator at one position in the pipeline."""

    name: str
    op: Operator

    @property
    def kind(self) -> str:
        return self.op.kind


@dataclass(frozen=True)
class Pipeline:
    name: str
    source: Source | None = None
    stages: tuple[Stage, ...] = ()
    output: str | None = None

    def read_parquet(self, path: str, columns: list[str] | None = None, num_blocks: int | None = None) -> Pipeline:
        """Read documents (``id``, ``text``, ...) from a Parquet file, directory or glob."""
        if self.source is not None:
            raise DistilleryError(f"pipeline {self.name!r}: read_parquet was already called")
        if num_blocks is not None and (not isinstance(num_blocks, int) or num_blocks < 1):
            raise ParameterError(f"read_parquet.num_blocks: must be an integer >= 1, got {num_blocks!r}")
        return replace(self, source=Source(str(path), tuple(columns) if columns else None, num_blocks))

    def map(self, op: Operator) -> Pipeline:
        """Transform every batch (the operator keeps every row)."""
        return self._add(op, "map")

    def filter(self, *ops: Filter) -> Pipeline:
        """Apply filters in order; each rejected row is written to ``_rejected/`` with its reason."""
        return self._add_each(ops, "filter")

    def generate(self, *ops: Filter) -> Pipeline:
        """Teacher stages that write new rows (``teachers.GenerationTask``): each input row gives one or more
        rows, each kept or written to ``_rejected/`` with its reason; ``source_ids`` links them to their input."""
        return self._add_each(ops, "generate")

    def dedup(self, op: Dedup | BoilerplateLines) -> Pipeline:
        """A global stage over the whole dataset: document dedup (duplicates are rejected, not dropped) or
        line-level boilerplate removal."""
        return self._add(op, "dedup")

    def write_parquet(self, path: str) -> Pipeline:
        """Where the kept rows go (``distillery run --output`` overrides it)."""
        return replace(self, output=str(path))

    def _add_each(self, ops: tuple[Operator, ...], method: str) -> Pipeline:
        if not ops:
            raise ParameterError(f"{method}: give at least one operator")
        pipe = self
        for op in ops:
            pipe = pipe._add(op, method)
        return pipe

    def _add(self, op: Operator, method: str) -> Pipeline:
        kinds = {"dedup": ("dedup", "line_dedup")}.get(method, (method,))
        if not isinstance(op, Operator) or op.kind not in kinds:
            expected = {"map": "Operator", "filter": "Filter", "dedup": "Dedup",
                        "generate": "generation (teachers.GenerationTask)"}[method]
            raise ParameterError(f"{method}: expected a {expected} operator, got {op!r}")
        name = op.name
        count = sum(1 for stage in self.stages if stage.op.name == name)
        stage_name = name if count == 0 else f"{name}_{count + 1}"
        return replace(self, stages=(*self.stages, Stage(stage_name, op)))

    def planned_stages(self) -> list[Stage]:
        """The stages the runner executes: input validation (null/empty text) first, then the user's."""
        return [Stage("read", RequireText()), *self.stages]

    def run(self, output: str | None = None, address: str | None = None, resume: bool = False, **options: Any):
        """Execute on Ray (embedded local by default) and return the run's manifest as a dict."""
        from pipelines.runner import run_pipeline

        return run_pipeline(self, output=output, address=address, resume=resume, **options)
