"""Parquet I/O for the runner: finding and validating input files, atomic writes, counting written rows.

Every file is written under a temporary name and renamed into place, so a killed run never leaves a
half-written file that looks whole.
"""
from __future__ import annotations

import glob
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputError

REQUIRED_COLUMNS = ("id", "text")


def _is_hidden(path: Path) -> bool:
    """Files Spark, Ray and we write beside data (``_manifest.json``, ``.tmp-*``) are not inputs."""
    return path.name.startswith((".", "_"))


def list_parquet_files(location: str) -> list[Path]:
    """Resolve a file, a directory (searched recursively) or a glob to a sorted list of files.

    Directories named ``_something`` (our ``_rejected``, ``_checkpoints``) and hidden files are skipped;
    any other file that is not ``*.parquet`` is an error, so a stray file is never read as data.
    """
    if glob.has_magic(location):
        candidates = [Path(p) for p in sorted(glob.glob(location, recursive=True)) if Path(p).is_file()]
        if not candidates:
            raise InputError(f"{location}: the pattern matches no files")
    else:
        root = Path(location)
        if not root.exists():
            raise InputError(f"{location}: no such file or directory")
        if root.is_file():
            candidates = [root]
        else:
            candidates = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                candidates += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith((".", "_"))]
            if not candidates:
                raise InputError(f"{location}: the directory holds no Parquet files")
    for path in candidates:
        if path.suffix != ".parquet" and not _is_hidden(path):
            raise InputError(f"{path}: not a Parquet file (inputs must end in .parquet)")
    return [p for p in candidates if not _is_hidden(p)]


@dataclass(frozen=True)
class InputSummary:
    files: list[str]
    schema: pa.Schema
    rows: int
    bytes: int
    fingerprint: list[tuple[str, int, int]]  # (path, size, mtime_ns) per file: resume invalidates on change


def validate_inputs(location: str, columns: list[str] | None = None) -> InputSummary:
    """Read every input's Parquet footer (not its data) and check the document contract.

    Raises ``InputError`` naming the file for: unreadable/corrupt files, a missing ``id``/``text`` or
    selected column, a non-string ``text``, or a schema that differs from the first file's.
    """
    files = list_parquet_files(location)
    wanted = list(dict.fromkeys([*(columns or []), *REQUIRED_COLUMNS])) if columns else None
    schema: pa.Schema | None = None
    rows = size = 0
    fingerprint = []
    for path in files:
        try:
            meta = pq.read_metadata(path)
            file_schema = meta.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc
        for column in wanted or REQUIRED_COLUMNS:
            if column not in file_schema.names:
                raise InputError(f"{path}: column {column!r} is missing (columns: {', '.join(file_schema.names)})")
        for column in REQUIRED_COLUMNS:
            kind = file_schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise InputError(f"{path}: column {column!r} must be a string, found {kind}")
        if wanted:
            file_schema = pa.schema([file_schema.field(c) for c in wanted])
        if schema is None:
            schema = file_schema
        elif not _same_columns(schema, file_schema):
            raise InputError(f"{path}: schema differs from {files[0]} ({_schema_diff(schema, file_schema)})")
        stat = path.stat()
        rows += meta.num_rows
        size += stat.st_size
        fingerprint.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    assert schema is not None
    _check_unique_ids(files)
    return InputSummary([str(p) for p in files], schema, rows, size, fingerprint)


def _check_unique_ids(files: list[Path]) -> None:
    """Ids must be unique: rejects and dedup decisions name rows by id. Reads only the id column."""
    import polars as pl

    repeated = (pl.scan_parquet(files).select("id").group_by("id").len().filter(pl.col("len") > 1)
                .sort("id").head(3).collect())
    if repeated.height:
        examples = ", ".join(f"{row['id']!r} ({row['len']}x)" for row in repeated.to_dicts())
        where = files[0] if len(files) == 1 else f"{files[0].parent}"
        raise InputError(f"{where}: column 'id' must be unique; repeated ids include {examples}")


def _normal_type(kind: pa.DataType) -> pa.DataType:
    return pa.string() if pa.types.is_large_string(kind) else kind


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    return {f.name: _normal_type(f.type) for f in a} == {f.name: _normal_type(f.type) for f in b}


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    fa = {f.name: _normal_type(f.type) for f in a}
    fb = {f.name: _normal_type(f.type) for f in b}
    parts = [f"missing {n!r}" for n in fa if n not in fb] + [f"extra {n!r}" for n in fb if n not in fa]
    parts += [f"{n!r} is {fb[n]} not {fa[n]}" for n in fa if n in fb and fa[n] != fb[n]]
    return "; ".join(parts)


def small_strings(table: pa.Table) -> pa.Table:
    """Cast ``large_string`` columns to ``string``: Ray's joins produce large strings and one dataset whose
    files disagree on the type cannot be read as one table. A batch never holds 2 GiB of text."""
    if not any(pa.types.is_large_string(f.type) for f in table.schema):
        return table
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema])
    return table.cast(schema)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` as Parquet (zstd) via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(data: Any, path: Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def parquet_rows(location: Path) -> tuple[int, int, int]:
    """(files, rows, bytes) of the Parquet files directly in ``location`` (not below), from footers."""
    if not location.exists():
        return 0, 0, 0
    files = [location] if location.is_file() else sorted(location.glob("*.parquet"))
    files = [f for f in files if not f.name.startswith(".")]
    return len(files), sum(pq.read_metadata(f).num_rows for f in files), sum(f.stat().st_size for f in files)
