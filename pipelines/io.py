"""Parquet I/O for the runner: finding and validating input files, atomic writes, counting written rows.

Every file is written under a temporary name and renamed into place, so a killed run never leaves a
half-written file that looks whole.
"""
from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from operators.fileio import atomic_path
from pipelines.errors import InputError

REQUIRED_COLUMNS = ("id", "text")


def _is_hidden(path: Path) -> bool:
    """Files Spark, Ray and we write beside data (``_manifest.json``, ``.tmp-*``) are not inputs."""
    return path.name.startswith((".", "_"))


class NoParquetFiles(InputError):
    """The location exists but holds no Parquet files (``inspect`` accepts that for an all-rejected output)."""


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def require_regular_file(path: Path) -> os.stat_result:
    """``os.stat`` (never ``open``: opening a FIFO for reading blocks until a writer comes) and refuse
    anything that is not a regular file, by name."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (a broken symbolic link?)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise InputError(f"{path}: is {kind}, not a regular file; inputs must be Parquet files")
    return info


def _unreadable(exc: OSError) -> None:
    """``os.walk`` skips a directory it cannot list unless told otherwise: that would lose its files."""
    raise InputError(f"{exc.filename}: cannot be read ({exc.strerror})")


def list_parquet_files(location: str) -> list[Path]:
    """Resolve a file, a directory (searched recursively) or a glob to a sorted list of files.

    Directories named ``_something`` (our ``_rejected``, ``_checkpoints``) and hidden files are skipped;
    any other file that is not ``*.parquet`` is an error, so a stray file is never read as data, and so is
    anything that is not a regular file (FIFO, socket, device), found with ``stat`` before anything opens it.
    """
    if glob.has_magic(location):
        candidates = [Path(p) for p in sorted(glob.glob(location, recursive=True)) if not Path(p).is_dir()]
        if not candidates:
            raise InputError(f"{location}: the pattern matches no files")
    else:
        root = Path(location)
        if not root.exists():
            raise InputError(f"{location}: no such file or directory")
        if not root.is_dir():
            candidates = [root]
        else:
            candidates = []
            for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                candidates += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith((".", "_"))]
            if not candidates:
                raise NoParquetFiles(f"{location}: the directory holds no Parquet files")
    named = not glob.has_magic(location) and not Path(location).is_dir()  # one file, named by the user
    files = candidates if named else [p for p in candidates if not _is_hidden(p)]
    if not files:
        raise NoParquetFiles(f"{location}: matches only hidden files (names starting with '.' or '_')")
    for path in files:
        require_regular_file(path)
        if path.suffix != ".parquet":
            raise InputError(f"{path}: not a Parquet file (inputs must end in .parquet)")
    return files


def read_footer(path: Path) -> pq.FileMetaData:
    """The Parquet footer of one regular file, or an ``InputError`` naming it (zero-byte, truncated, not
    Parquet at all)."""
    require_regular_file(path)
    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file ({reason})") from exc


@dataclass(frozen=True)
class InputSummary:
    files: list[str]
    schema: pa.Schema
    rows: int
    bytes: int
    fingerprint: list[tuple[str, int, int]]  # (path, size, mtime_ns) per file: resume invalidates on change


def validate_inputs(location: str, columns: list[str] | None = None, documents: bool = True) -> InputSummary:
    """Read every input's Parquet footer (not its data) and check the document contract.

    Raises ``InputError`` naming the file for: non-regular files (FIFO, socket, device: never opened),
    unreadable/corrupt files (zero-byte, truncated, not Parquet), a missing ``id``/``text`` or selected
    column, a non-string ``text``, a schema that differs from the first file's, or repeated ids.
    ``documents=False`` (``inspect``: any Parquet output) checks only that the files are readable Parquet
    with one schema.
    """
    files = list_parquet_files(location)
    wanted = list(dict.fromkeys([*(columns or []), *REQUIRED_COLUMNS])) if columns else None
    schema: pa.Schema | None = None
    rows = size = 0
    fingerprint = []
    for path in files:
        meta = read_footer(path)
        file_schema = meta.schema.to_arrow_schema()
        for column in wanted or (REQUIRED_COLUMNS if documents else ()):
            if column not in file_schema.names:
                raise InputError(f"{path}: column {column!r} is missing (columns: {', '.join(file_schema.names)})")
        for column in REQUIRED_COLUMNS if documents else ():
            kind = file_schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise InputError(f"{path}: column {column!r} must be a string, found {kind}")
        if wanted:
            file_schema = pa.schema([file_schema.field(c) for c in wanted])
        if schema is None:
            schema = file_schema
        elif not _same_columns(schema, file_schema):
            raise InputError(f"{path}: schema differs from {files[0]} ({_schema_diff(schema, file_schema)})")
        info = path.stat()
        rows += meta.num_rows
        size += info.st_size
        fingerprint.append((str(path.resolve()), info.st_size, info.st_mtime_ns))
    assert schema is not None
    if documents:
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
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def parquet_rows(location: Path) -> tuple[int, int, int]:
    """(files, rows, bytes) of the Parquet files directly in ``location`` (not below), from footers."""
    if not location.exists():
        return 0, 0, 0
    files = [location] if location.is_file() else sorted(location.glob("*.parquet"))
    files = [f for f in files if not f.name.startswith(".")]
    return len(files), sum(pq.read_metadata(f).num_rows for f in files), sum(f.stat().st_size for f in files)
