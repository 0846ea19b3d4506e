"""Output id uniqueness: rejects, dedup decisions, clusters and provenance name rows by ``id``, so every
Parquet output a run writes (its final rows and each checkpoint) must hold each id once. Inputs are checked
when they are validated (``pipelines.io``); stages that set ids (a generate stage, a user's map) are checked
here, on the staged files before they are committed, reading only the id column."""
from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.errors import DistilleryError

ID_WRITERS = ("generate", "map")  # stage kinds that may set a row's id; filters and dedup keep the input's


def repeated_ids(directory: Path, limit: int = 3) -> list[tuple[str, int]]:
    """Up to ``limit`` ids that occur more than once in the Parquet files of ``directory``, with their counts."""
    import polars as pl

    files = sorted(Path(directory).glob("*.parquet")) if Path(directory).exists() else []
    if not files:
        return []
    repeated = (pl.scan_parquet(files).select("id").group_by("id").len().filter(pl.col("len") > 1)
                .sort("id").head(limit).collect())
    return [(row["id"], row["len"]) for row in repeated.to_dicts()]


def id_writer(stages: list, first: int, last: int) -> int:
    """The index of the last stage in ``first..last`` that may set ids (else ``last``): the one to blame."""
    return next((i for i in range(last, first - 1, -1) if stages[i].kind in ID_WRITERS), last)


def check_output_ids(staging: Path, stage: str) -> None:
    """Raise naming ``stage`` and example ids if the staged output repeats an id; the staging folder (never
    committed) is removed first."""
    repeated = repeated_ids(staging)
    if repeated:
        shutil.rmtree(staging, ignore_errors=True)
        examples = ", ".join(f"{doc_id!r} ({count}x)" for doc_id, count in repeated)
        raise DistilleryError(f"stage {stage}: output ids are not unique; repeated ids include {examples} "
                              "(a stage that sets ids must give every row its own)")
