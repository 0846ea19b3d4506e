"""Domains as Parquet sources: a light index of where each document is, and reads of chosen documents.

A ``Domain`` is a Parquet file, directory or glob, optionally restricted to rows whose ``source`` column
equals a value (so one directory such as ``data/sample`` can hold several domains). ``DomainIndex`` scans
only metadata and the small columns it needs (``source``, a score column) row group by row group, never the
text, and keeps one int64 per document: its row position in the concatenation of the domain's row groups
(files in sorted order, row groups in file order). The corpus itself is never materialised: ``fetch``
reads only the row groups holding the requested documents, keeping the last few in a small cache.

Sharding for Ray Train workers: ``shard(rank, world_size)`` keeps a contiguous block of the documents, so
workers get disjoint shares and each reads only about 1/world_size of the row groups.
"""
from __future__ import annotations

import glob
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curricula.mixture import CurriculumConfigError

TOKENS_COLUMN = "input_ids"  # written by curricula.pretokenize; used instead of tokenising ``text``
LENGTH = "length"            # a score column name that, when absent from the data, means len(text) in chars


@dataclass(frozen=True)
class Domain:
    """One domain: ``name``, Parquet ``path`` and, optionally, the ``source`` value its rows must have."""

    name: str
    path: str
    source: str | None = None
    text_column: str = "text"


def split_by_source(path: str | Path, sources: list[str] | None = None) -> list[Domain]:
    """One ``Domain`` per distinct value of the ``source`` column of ``path`` (or per value in ``sources``)."""
    if sources is None:
        values: set[str] = set()
        for f in parquet_files(str(path), "domains"):
            values.update(v for v in pq.read_table(f, columns=["source"]).column("source").unique().to_pylist()
                          if v is not None)
        sources = sorted(values)
    return [Domain(name=s, path=str(path), source=s) for s in sources]


def parquet_files(path: str, field_name: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*.parquet") if not any(
            part.startswith(("_", ".")) for part in p.relative_to(path).parts))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
    else:
        files = [path] if os.path.isfile(path) else []
    if not files:
        raise CurriculumConfigError(f"{field_name}.path: empty source, no Parquet files at {path!r}")
    return files


class DomainIndex:
    """Where the documents of one domain are, plus optional per-document scores."""

    def __init__(self, domain: Domain, field_name: str, score_column: str | None = None, cache_row_groups: int = 4):
        self.domain = domain
        self.field_name = field_name
        self.files = parquet_files(domain.path, field_name)
        schema = pq.read_schema(self.files[0])
        self.pretokenized = TOKENS_COLUMN in schema.names
        needed = [domain.text_column] if not self.pretokenized else [TOKENS_COLUMN]
        if domain.source is not None:
            needed.append("source")
        for col in needed:
            if col not in schema.names:
                raise CurriculumConfigError(f"{field_name}.path: {self.files[0]} has no column {col!r}")
        self.length_score = score_column == LENGTH and LENGTH not in schema.names
        if score_column is not None and not self.length_score and score_column not in schema.names:
            raise CurriculumConfigError(f"{field_name}.difficulty.column: {self.files[0]} has no column "
                                        f"{score_column!r}")
        self.row_groups: list[tuple[int, int]] = []  # (file index, row group index)
        starts, refs, scores = [0], [], []
        for fi, f in enumerate(self.files):
            pf = pq.ParquetFile(f)
            for rg in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(rg).num_rows
                keep = np.arange(n, dtype=np.int64)
                cols = ([] if domain.source is None else ["source"])
                if score_column is not None:
                    cols.append(domain.text_column if self.length_score else score_column)
                table = pf.read_row_group(rg, columns=cols) if cols else None
                if domain.source is not None:
                    mask = pc.fill_null(pc.equal(table.column("source"), domain.source), False)
                    keep = keep[np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)]
                if score_column is not None:
                    col = table.column(domain.text_column if self.length_score else score_column)
                    if self.length_score:
                        col = pc.utf8_length(col)
                    values = np.asarray(pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(
                        zero_copy_only=False), dtype=float)
                    scores.append(values[keep])
                refs.append(keep + starts[-1])
                self.row_groups.append((fi, rg))
                starts.append(starts[-1] + n)
        self.starts = np.array(starts, dtype=np.int64)
        self.refs = np.concatenate(refs) if refs else np.zeros(0, dtype=np.int64)
        self.scores = np.concatenate(scores) if scores else None
        if len(self.refs) == 0:
            where = f" with source == {domain.source!r}" if domain.source is not None else ""
            raise CurriculumConfigError(f"{field_name}.source: empty source, no documents in {domain.path}{where}")
        self._cache: OrderedDict[int, pa.Array] = OrderedDict()
        self._cache_size = cache_row_groups

    def __len__(self) -> int:
        return len(self.refs)

    def shard(self, rank: int, world_size: int) -> None:
        """Keep this worker's contiguous block of documents (disjoint across ranks)."""
        lo, hi = (len(self.refs) * rank) // world_size, (len(self.refs) * (rank + 1)) // world_size
        if hi <= lo:
            raise CurriculumConfigError(f"{self.field_name}: {len(self.refs)} documents cannot feed rank {rank} "
                                        f"of {world_size} workers")
        self.refs = self.refs[lo:hi]
        if self.scores is not None:
            self.scores = self.scores[lo:hi]

    def row_group_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, positions, side="right") - 1

    def _column(self, rg: int) -> pa.Array:
        if rg in self._cache:
            self._cache.move_to_end(rg)
            return self._cache[rg]
        fi, index = self.row_groups[rg]
        name = TOKENS_COLUMN if self.pretokenized else self.domain.text_column
        column = pq.ParquetFile(self.files[fi]).read_row_group(index, columns=[name]).column(name).combine_chunks()
        self._cache[rg] = column
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return column

    def fetch(self, positions: np.ndarray) -> list:
        """The texts (or token lists, when pretokenized) at ``positions``, in that order."""
        rgs = self.row_group_of(positions)
        out: list = [None] * len(positions)
        for rg in dict.fromkeys(rgs.tolist()):  # first-seen order, each row group read once
            where = np.nonzero(rgs == rg)[0]
            values = self._column(rg).take(pa.array(positions[where] - self.starts[rg])).to_pylist()
            for i, v in zip(where.tolist(), values):
                out[i] = v
        return out
