"""``distillery inspect PATH``: what is in a Parquet output, summarised with polars.

Rows, schema, a few sample rows, per-column summaries, reject counts by stage and reason, and the
manifest's stages. ``inspect_path`` returns plain data (the ``--json`` form); ``format_report`` prints it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import InputError
from pipelines.io import list_parquet_files
from pipelines.manifest import read_manifest

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


def _column_summaries(frame: pl.LazyFrame, schema: pl.Schema) -> dict[str, dict[str, Any]]:
    summaries: dict[str, dict[str, Any]] = {name: {"type": str(dtype)} for name, dtype in schema.items()}
    if not schema:
        return summaries
    for key, value in frame.select(_summary_exprs(schema)).collect().row(0, named=True).items():
        name, stat = key.split("\x00")
        summaries[name][stat] = _round(value)
    return summaries


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def _rejects(root: Path) -> list[dict[str, Any]]:
    """Reject counts per (stage, reason), read from every stage's ``_rejected/`` directory."""
    counts = []
    for stage_dir in sorted((root / "_rejected").glob("*")) if (root / "_rejected").is_dir() else []:
        files = sorted(stage_dir.glob("*.parquet"))
        if not files:
            continue
        frame = pl.concat([pl.read_parquet(f, columns=["stage", "reason"]) for f in files])
        grouped = frame.group_by(["stage", "reason"]).len().sort(["stage", "len"], descending=[False, True])
        counts += [{"stage": r["stage"], "reason": r["reason"], "rows": r["len"]} for r in grouped.to_dicts()]
    return counts


def inspect_path(path: str, samples: int = 3) -> dict[str, Any]:
    root = Path(path)
    manifest = read_manifest(root) if root.is_dir() else None
    try:
        files = list_parquet_files(path)
    except InputError:
        if manifest is None and not (root / "_rejected").is_dir():
            raise
        files = []  # an output whose rows were all rejected
    frame = pl.scan_parquet(files) if files else pl.LazyFrame()
    schema = frame.collect_schema()
    sample_rows = []
    for row in frame.head(samples).collect().to_dicts():
        sample_rows.append({k: (v[:SAMPLE_CHARS] + "…" if isinstance(v, str) and len(v) > SAMPLE_CHARS else v)
                            for k, v in row.items()})
    report: dict[str, Any] = {
        "path": str(root), "files": len(files), "rows": frame.select(pl.len()).collect().item() if files else 0,
        "bytes": sum(Path(f).stat().st_size for f in files),
        "schema": {name: str(dtype) for name, dtype in schema.items()},
        "columns": _column_summaries(frame, schema),
        "samples": sample_rows,
        "rejected": _rejects(root) if root.is_dir() else [],
    }
    if "source" in schema:
        counts = frame.group_by("source").len().sort("source").collect()
        report["rows_by_source"] = dict(counts.iter_rows())
    if manifest:
        report["manifest"] = {key: manifest.get(key) for key in ("pipeline", "status", "started_at", "finished_at",
                                                                "seconds", "accounting", "input", "output")}
        report["stages"] = [{key: stage.get(key) for key in ("index", "name", "kind", "rows_in", "rows_out",
                                                             "rows_rejected", "seconds", "skipped")}
                            for stage in manifest.get("stages", [])]
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['path']}: {report['rows']:,} rows in {report['files']} Parquet files "
             f"({report['bytes'] / 1e6:.2f} MB)", "", "columns:"]
    for name, summary in report["columns"].items():
        details = ", ".join(f"{k}={v}" for k, v in summary.items() if k != "type")
        lines.append(f"  {name:<16} {summary['type']:<10} {details}")
    if report.get("rows_by_source"):
        lines += ["", "rows by source:"] + [f"  {k:<16} {v:,}" for k, v in report["rows_by_source"].items()]
    if report.get("stages"):
        lines += ["", "stages (rows in -> out, rejected):"]
        for s in report["stages"]:
            skipped = "  (reused)" if s.get("skipped") else ""
            lines.append(f"  {s['index']:>2} {s['name']:<16} {s['kind']:<6} {s['rows_in']:>9,} -> {s['rows_out']:>9,}"
                         f"  rejected {s['rows_rejected']:>8,}  {s['seconds']:>7.2f} s{skipped}")
        accounting = report["manifest"].get("accounting") or {}
        lines.append(f"  accounting: {'balanced' if accounting.get('balanced') else 'NOT CHECKED'}")
    if report["rejected"]:
        lines += ["", "rejected (stage, reason, rows):"]
        lines += [f"  {r['stage']:<16} {r['reason']:<36} {r['rows']:>9,}" for r in report["rejected"]]
    if report["samples"]:
        lines += ["", "samples:"]
        for row in report["samples"]:
            text = str(row.get("text", "")).replace("\n", " ⏎ ")
            lines.append(f"  [{row.get('id')}] ({row.get('source', '')}) {text}")
    return "\n".join(lines)
