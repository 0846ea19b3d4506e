"""``distillery report RUN_DIR --output report.html``: everything a run folder holds, gathered into one
summary and rendered as a self-contained HTML page (``pipelines.report_html``; inline SVG, no scripts, no
network).

The report finds its material by the files each part of Distillery writes, anywhere under RUN_DIR:

    _manifest.json         a pipeline run: the funnel of rows per stage with reject reasons, dedup cluster
                           sizes and the run's output folder (score histograms, bias figures, synthetic rows)
    metrics.jsonl          a student's training run: loss (overall and per domain) by step
    *adherence*.jsonl      a curriculum stream's log: planned vs realised domain shares by window
    eval*.json             student evaluations: one row (or a list of rows) per student

Sections without material are left out, so the same command serves a curation run alone and the flagship.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from operators.bias import BIAS_COLUMN
from pipelines.errors import InputError
from pipelines.io import list_parquet_files
from pipelines.manifest import MANIFEST, read_json

HISTOGRAM_BINS = 20
SCORE_SUFFIXES = ("_score", "perplexity", "judge_score")
SYNTHETIC_COLUMNS = ("teacher", "task")
SAMPLES = 5


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """Plain data for every section that RUN_DIR has material for."""
    root = Path(run_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such run folder")
    report: dict[str, Any] = {"run_dir": str(root), "pipelines": [], "training": [], "mixtures": [], "evaluation": []}
    for path in sorted(root.rglob(MANIFEST)):
        if "_checkpoints" not in path.parts:
            report["pipelines"].append(_pipeline(path))
    for path in sorted(root.rglob("metrics.jsonl")):
        report["training"].append({"name": _name(path.parent, root), "steps": _jsonl(path)})
    for path in sorted(root.rglob("*adherence*.jsonl")):
        report["mixtures"].append({"name": _name(path, root), "windows": _jsonl(path)})
    for path in sorted(root.rglob("eval*.json")):
        rows = json.loads(path.read_text())
        report["evaluation"].extend(rows if isinstance(rows, list) else [rows])
    if not any(report[k] for k in ("pipelines", "training", "mixtures", "evaluation")):
        raise InputError(f"{root}: nothing to report (no _manifest.json, metrics.jsonl, *adherence*.jsonl or eval*.json)")
    return report


def _name(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    return str(relative) if str(relative) != "." else root.name


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}, line {number}: not JSON ({exc.msg})") from None
    return rows


def _pipeline(manifest_path: Path) -> dict[str, Any]:
    manifest = read_json(manifest_path)
    if manifest is None:
        raise InputError(f"{manifest_path}: unreadable manifest")
    output = manifest_path.parent
    stages = [{"name": s["name"], "kind": s["kind"], "rows_in": s["rows_in"], "rows_out": s["rows_out"],
               "rows_rejected": s["rows_rejected"], "reject_reasons": s.get("reject_reasons", {}),
               "cluster_sizes": s.get("plan", {}).get("cluster_sizes", {}), "metrics": s.get("metrics", {})}
              for s in manifest.get("stages", [])]
    section = {"pipeline": manifest.get("pipeline", output.name), "output": str(output),
               "status": manifest.get("status", "succeeded"), "seconds": manifest.get("seconds"),
               "stages": stages, "histograms": {}, "synthetic": None, "bias": None}
    files = _outputs(output)
    if files:
        frame = pl.scan_parquet(files)
        schema = frame.collect_schema()
        section["histograms"] = _histograms(frame, schema)
        if all(c in schema.names() for c in SYNTHETIC_COLUMNS):
            section["synthetic"] = _synthetic(frame, schema)
        if BIAS_COLUMN in schema.names():  # BiasMeasure's bias_counts
            from pipelines.bias_report import summarise

            section["bias"] = summarise(str(output))
    return section


def _outputs(output: Path) -> list[str]:
    try:
        return [str(f) for f in list_parquet_files(str(output))]
    except InputError:
        return []


def _histograms(frame: pl.LazyFrame, schema: pl.Schema) -> dict[str, dict[str, Any]]:
    """Equal-width histograms of the score columns (floats named *_score, perplexity)."""
    columns = [n for n, t in schema.items() if t.is_numeric() and n.endswith(SCORE_SUFFIXES)]
    if not columns:
        return {}
    values = frame.select(columns).collect()
    result = {}
    for name in columns:
        series = values[name].drop_nulls().drop_nans() if values[name].dtype.is_float() else values[name].drop_nulls()
        if series.len() == 0:
            continue
        low, high = float(series.min()), float(series.max())
        width = (high - low) / HISTOGRAM_BINS or 1.0
        bins = ((series.cast(pl.Float64) - low) / width).floor().clip(0, HISTOGRAM_BINS - 1).cast(pl.Int64)
        counts = bins.value_counts().sort(bins.name)
        histogram = [0] * HISTOGRAM_BINS
        for index, count in counts.iter_rows():
            histogram[index] = count
        result[name] = {"low": low, "high": high, "counts": histogram, "rows": series.len(),
                        "mean": float(series.mean())}
    return result


def _synthetic(frame: pl.LazyFrame, schema: pl.Schema) -> dict[str, Any]:
    """Rows per teacher task, a few samples of each, and the diversity of the generated text."""
    text = next((c for c in ("text", "response", "instruction", "output") if c in schema.names()), None)
    by_task = frame.group_by(["teacher", "task"]).len().sort(["task", "teacher"]).collect()
    samples: dict[str, list[str]] = {}
    texts: list[str] = []
    if text:
        rows = frame.select(["task", text]).collect()
        for task, part in rows.group_by("task", maintain_order=True):
            samples[str(task[0])] = [str(v)[:600] for v in part[text].head(SAMPLES).to_list()]
        texts = [str(v) for v in rows[text].drop_nulls().head(400).to_list()]
    diversity = None
    if texts:
        from teachers.diversity import diversity_report

        diversity = diversity_report(texts, sample=100)  # 4,950 ROUGE-L pairs
    return {"by_task": by_task.to_dicts(), "samples": samples, "diversity": diversity, "text_column": text}


def write_html_report(run_dir: str | Path, html_path: str | Path) -> dict[str, Any]:
    """Build the report of RUN_DIR and write it as one HTML file (atomically); return the report data."""
    from operators.fileio import write_text_atomic
    from pipelines.report_html import render

    report = build_report(run_dir)
    write_text_atomic(Path(html_path), render(report))
    return report
