"""``distillery inspect PATH``: what is in a Parquet output, summarised with polars.

Rows, schema, a few sample rows, per-column summaries, reject counts by stage and reason, and the
manifest's stages. ``inspect_path`` returns plain data (the ``--json`` form); ``format_report`` prints it
for people, with every text from the data passed through ``printable`` (no raw control characters).
Files are checked by the runner's validator first, so a corrupt or non-regular file is named, never opened
blind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import InputError
from pipelines.io import NoParquetFiles, read_footer, require_regular_file, validate_inputs
from pipelines.manifest import MANIFEST, read_manifest
from pipelines.terminal import printable

SAMPLE_CHARS = 160


def _summary_exprs(schema: pl.Schema) -> list[pl.Expr]:
    """Aggregations for every column, evaluated in one lazy pass over the files (never all in memory)."""
    exprs = []
    for name, dtype in schema.items():
        column = pl.col(name)
        exprs.append(column.null_count().alias(f"{name}\x00nulls"))
        if dtype == pl.String:
            lengths = column.str.len_chars()
            exprs += [column.n_unique().alias(f"{name}\x00distinct"), lengths.min().alias(f"{name}\x00min_chars"),
                      lengths.mean().alias(f"{name}\x00mean_chars"), lengths.max().alias(f"{name}\x00max_chars")]
        elif dtype.is_numeric():
            exprs += [column.min().alias(f"{name}\x00min"), column.mean().alias(f"{name}\x00mean"),
                      column.max().alias(f"{name}\x00max")]
        elif dtype == pl.Boolean:
            exprs.append(column.sum().alias(f"{name}\x00true"))
    return exprs


def _collect(frame: pl.LazyFrame, files: list[str]) -> pl.DataFrame:
    """``frame.collect()``; a data page that cannot be decoded (the footer was fine) is named by file."""
    try:
        return frame.collect()
    except pl.exceptions.PolarsError as exc:
        import pyarrow.parquet as pq

        for path in files:
            try:
                pq.read_table(path)
            except Exception as file_exc:  # noqa: BLE001 - any failure of this file is the answer
                reason = str(file_exc).strip().splitlines()[0] if str(file_exc).strip() else type(file_exc).__name__
                raise InputError(f"{path}: not a readable Parquet file ({reason})") from exc
        raise


def _column_summaries(frame: pl.LazyFrame, schema: pl.Schema, files: list[str]) -> dict[str, dict[str, Any]]:
    summaries: dict[str, dict[str, Any]] = {name: {"type": str(dtype)} for name, dtype in schema.items()}
    if not schema:
        return summaries
    for key, value in _collect(frame.select(_summary_exprs(schema)), files).row(0, named=True).items():
        name, stat = key.rsplit("\x00", 1)
        summaries[name][stat] = _round(value)
    return summaries


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def _rejects(root: Path) -> list[dict[str, Any]]:
    """Reject counts per (stage, reason), read from every stage's ``_rejected/`` directory."""
    counts = []
    for stage_dir in sorted((root / "_rejected").glob("*")) if (root / "_rejected").is_dir() else []:
        files = [f for f in sorted(stage_dir.glob("*.parquet")) if not f.name.startswith(".")]
        if not files:
            continue
        for f in files:  # each batch's rejects are one file; their other columns may differ in type
            names = read_footer(f).schema.to_arrow_schema().names
            missing = [c for c in ("stage", "reason") if c not in names]
            if missing:
                raise InputError(f"{f}: rejected rows without a {missing[0]!r} column")
        frame = pl.concat([_collect(pl.scan_parquet(f).select("stage", "reason"), [str(f)]) for f in files])
        grouped = frame.group_by(["stage", "reason"]).len().sort(["stage", "len"], descending=[False, True])
        counts += [{"stage": r["stage"], "reason": r["reason"], "rows": r["len"]} for r in grouped.to_dicts()]
    return counts


def inspect_path(path: str, samples: int = 3) -> dict[str, Any]:
    root = Path(path)
    manifest = None
    if root.is_dir() and os.path.lexists(root / MANIFEST):
        require_regular_file(root / MANIFEST)  # a FIFO there would block the read
        manifest = read_manifest(root)
    try:
        files = validate_inputs(path, documents=False).files
    except NoParquetFiles:
        if manifest is None and not (root / "_rejected").is_dir():
            raise
        files = []  # an output whose rows were all rejected
    frame = pl.scan_parquet(files) if files else pl.LazyFrame()
    schema = frame.collect_schema()
    sample_rows = []
    for row in _collect(frame.head(samples), files).to_dicts():
        sample_rows.append({k: (v[:SAMPLE_CHARS] + "…" if isinstance(v, str) and len(v) > SAMPLE_CHARS else v)
                            for k, v in row.items()})
    report: dict[str, Any] = {
        "path": str(root), "files": len(files), "rows": _collect(frame.select(pl.len()), files).item() if files else 0,
        "bytes": sum(Path(f).stat().st_size for f in files),
        "schema": {name: str(dtype) for name, dtype in schema.items()},
        "columns": _column_summaries(frame, schema, files),
        "samples": sample_rows,
        "rejected": _rejects(root) if root.is_dir() else [],
    }
    if "source" in schema:
        counts = _collect(frame.group_by("source").len().sort("source"), files)
        report["rows_by_source"] = dict(counts.iter_rows())
    if manifest:
        report["manifest"] = {key: manifest.get(key) for key in ("pipeline", "status", "started_at", "finished_at",
                                                                "seconds", "accounting", "input", "output")}
        report["stages"] = [{key: stage.get(key) for key in ("index", "name", "kind", "rows_in", "rows_out",
                                                             "rows_rejected", "seconds", "skipped")}
                            for stage in manifest.get("stages", [])]
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report for people. Every text that comes from the data or the folder (path, column names and
    types, sources, stage names, reasons, ids, samples) goes through ``printable``: one field, one line,
    control characters shown as ``\\x1b``, never sent to the terminal."""
    p = printable
    lines = [f"{p(report['path'])}: {report['rows']:,} rows in {report['files']} Parquet files "
             f"({report['bytes'] / 1e6:.2f} MB)", "", "columns:"]
    for name, summary in report["columns"].items():
        details = ", ".join(f"{p(k)}={p(v)}" for k, v in summary.items() if k != "type")
        lines.append(f"  {p(name):<16} {p(summary['type']):<10} {details}")
    if report.get("rows_by_source"):
        lines += ["", "rows by source:"] + [f"  {p(k):<16} {v:,}" for k, v in report["rows_by_source"].items()]
    if report.get("stages"):
        lines += ["", "stages (rows in -> out, rejected):"]
        for s in report["stages"]:
            skipped = "  (reused)" if s.get("skipped") else ""
            lines.append(f"  {s['index']:>2} {p(s['name']):<16} {p(s['kind']):<6} {s['rows_in']:>9,} -> "
                         f"{s['rows_out']:>9,}  rejected {s['rows_rejected']:>8,}  {s['seconds']:>7.2f} s{skipped}")
        accounting = report["manifest"].get("accounting") or {}
        lines.append(f"  accounting: {'balanced' if accounting.get('balanced') else 'NOT CHECKED'}")
    if report["rejected"]:
        lines += ["", "rejected (stage, reason, rows):"]
        lines += [f"  {p(r['stage']):<16} {p(r['reason']):<36} {r['rows']:>9,}" for r in report["rejected"]]
    if report["samples"]:
        lines += ["", "samples:"]
        for row in report["samples"]:
            text = p(str(row.get("text", "")).replace("\n", " ⏎ "))
            lines.append(f"  [{p(row.get('id'))}] ({p(row.get('source', ''))}) {text}")
    return "\n".join(lines)
