"""A bias report of Parquet outputs that hold ``BiasMeasure``'s ``bias_counts`` struct column, before and after
debiasing, and the rebalancing helpers that read a first run's results.

``bias_report(before, after=None)`` scans the files lazily with polars (one pass per path) and returns plain
data: per group, each category's mentions, share of the group's mentions, and documents that mention it
(with ``sample_weight``, the weighted share too); per co-occurrence attribute, the rate
P(attribute | category) = mentions with the attribute nearby / all mentions, and the ratio between
categories (female/male for two categories, max/min otherwise). ``format_bias_report`` prints it.

Rebalancing is two-pass (see ``operators.bias``): ``multipliers_from_manifest`` reads the totals of the last
``BiasMeasure`` stage from a run's manifest (exact when documents mention one category);
``multipliers_from_parquet`` reads the per-document counts and solves for exact multipliers.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from operators.bias import BIAS_COLUMN, fit_multipliers, rebalance_weights
from pipelines.errors import InputError
from pipelines.io import list_parquet_files
from pipelines.manifest import MANIFEST


def bias_fields(names: list[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Parse ``bias_counts`` field names: (group -> categories, group -> category -> co-occurrence attributes).
    Groups hold no ``_`` (``BiasMeasure`` checks), so ``<group>_<category>`` splits at the first one."""
    counts: dict[str, list[str]] = {}
    cooc: dict[str, dict[str, list[str]]] = {}
    for name in names:
        if name.startswith("cooc_") and "__" in name:
            head, attribute = name[len("cooc_"):].split("__", 1)
            group, _, category = head.partition("_")
            cooc.setdefault(group, {}).setdefault(category, []).append(attribute)
        elif "_" in name:
            group, _, category = name.partition("_")
            counts.setdefault(group, []).append(category)
    return counts, {g: v for g, v in cooc.items() if g in counts}


def _fields(path: str | Path, schema: pl.Schema) -> list[str]:
    """The field names of the ``bias_counts`` struct column; an error naming ``path`` when there is none."""
    dtype = schema.get(BIAS_COLUMN)
    if not isinstance(dtype, pl.Struct):
        raise InputError(f"{path}: no {BIAS_COLUMN} struct column; run BiasMeasure on it first")
    return [f.name for f in dtype.fields]


def _field(name: str) -> pl.Expr:
    return pl.col(BIAS_COLUMN).struct.field(name)


def _ratio(rates: dict[str, float | None]) -> tuple[str, float | None]:
    names = list(rates)
    if len(names) == 2:
        a, b = rates[names[0]], rates[names[1]]
        return f"{names[0]}/{names[1]}", (round(a / b, 4) if a is not None and b else None)
    known = [r for r in rates.values() if r is not None]
    return "max/min", (round(max(known) / min(known), 4) if known and min(known) > 0 else None)


def summarise(path: str | Path) -> dict[str, Any]:
    """The bias figures of one Parquet output (a file, directory or glob; ``_rejected/`` is not read)."""
    files = list_parquet_files(str(path))
    frame = pl.scan_parquet(files)
    schema = frame.collect_schema()
    counts, cooc = bias_fields(_fields(path, schema))
    if not counts:
        raise InputError(f"{path}: {BIAS_COLUMN} holds no <group>_<category> counts; run BiasMeasure on it first")
    weighted = "sample_weight" in schema.names()
    columns = [f"{g}_{c}" for g, cats in counts.items() for c in cats]
    exprs = [pl.len().alias("documents")]
    for name in columns:
        exprs += [_field(name).sum().alias(name), (_field(name) > 0).sum().alias(f"{name}\x00docs")]
        if weighted:
            exprs.append((_field(name) * pl.col("sample_weight")).sum().alias(f"{name}\x00weighted"))
    exprs += [_field(f"cooc_{g}_{c}__{a}").sum().alias(f"cooc_{g}_{c}__{a}")
              for g, cats in cooc.items() for c, attrs in cats.items() for a in attrs]
    row = frame.select(exprs).collect().row(0, named=True)
    documents = row["documents"]
    report: dict[str, Any] = {"path": str(path), "documents": documents, "weighted": weighted, "groups": {},
                              "cooccurrence": {}}
    for group, cats in counts.items():
        total = sum(row[f"{group}_{c}"] or 0 for c in cats)
        wtotal = sum(row[f"{group}_{c}\x00weighted"] or 0 for c in cats) if weighted else 0
        entry = {}
        for c in cats:
            name = f"{group}_{c}"
            entry[c] = {"mentions": int(row[name] or 0), "share": round((row[name] or 0) / total, 4) if total else None,
                        "documents": int(row[f"{name}\x00docs"]),
                        "document_share": round(row[f"{name}\x00docs"] / documents, 4) if documents else None}
            if weighted:
                entry[c]["weighted_share"] = round(row[f"{name}\x00weighted"] / wtotal, 4) if wtotal else None
        report["groups"][group] = {"mentions": int(total), "categories": entry}
    for group, cats in cooc.items():
        attributes = list(dict.fromkeys(a for attrs in cats.values() for a in attrs))
        table = {}
        for a in attributes:
            n = {c: int(row.get(f"cooc_{group}_{c}__{a}") or 0) for c in cats}
            mentions = {c: report["groups"][group]["categories"][c]["mentions"] for c in cats}
            rates = {c: (round(n[c] / mentions[c], 4) if mentions[c] else None) for c in cats}
            ratio_of, ratio = _ratio(rates)
            table[a] = {"counts": n, "rates": rates, "ratio_of": ratio_of, "ratio": ratio}
        report["cooccurrence"][group] = table
    return report


def bias_report(path_before: str | Path, path_after: str | Path | None = None) -> dict[str, Any]:
    """Bias figures for ``path_before`` and, if given, ``path_after`` with the change in each share."""
    report: dict[str, Any] = {"before": summarise(path_before), "after": None, "change": None}
    if path_after is None:
        return report
    after = report["after"] = summarise(path_after)
    change: dict[str, dict[str, Any]] = {}
    for group, entry in report["before"]["groups"].items():
        for c, stats in entry["categories"].items():
            later = after["groups"].get(group, {}).get("categories", {}).get(c)
            if later is None:
                continue
            key = "weighted_share" if after["weighted"] else "share"
            a, b = stats["share"], later.get(key)
            change.setdefault(group, {})[c] = {"share_before": a, "share_after": b,
                                               "delta": round(b - a, 4) if a is not None and b is not None else None}
    report["change"] = change
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _format_one(title: str, summary: dict[str, Any]) -> list[str]:
    lines = [f"{title}: {summary['path']} ({summary['documents']:,} documents)"]
    weighted = summary["weighted"]
    lines.append(f"  {'group / category':<28} {'mentions':>9} {'share':>7} {'docs':>7} {'docs %':>7}"
                 + (f" {'weighted':>9}" if weighted else ""))
    for group, entry in summary["groups"].items():
        lines.append(f"  {group:<28} {entry['mentions']:>9,}")
        for c, s in entry["categories"].items():
            weighted_share = f" {_pct(s.get('weighted_share')):>9}" if weighted else ""
            lines.append(f"    {c:<26} {s['mentions']:>9,} {_pct(s['share']):>7} {s['documents']:>7,} "
                         f"{_pct(s['document_share']):>7}{weighted_share}")
    for group, table in summary["cooccurrence"].items():
        if not table:
            continue
        cats = list(summary["groups"][group]["categories"])
        ratio_of = next(iter(table.values()))["ratio_of"]
        lines.append(f"  co-occurrence, {group}: P(attribute | category) = mentions near the attribute / mentions")
        lines.append(f"    {'attribute':<14}" + "".join(f" {c[:10]:>10}" for c in cats) + f" {ratio_of:>14}")
        for a, row in table.items():
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
            lines.append(f"    {a:<14}" + "".join(f" {_pct(row['rates'][c]):>10}" for c in cats) + f" {ratio:>14}")
    return lines


def format_bias_report(report: dict[str, Any]) -> str:
    """The report as text tables: counts and shares per group, co-occurrence rates, and the change."""
    lines = _format_one("before" if report.get("after") else "bias", report["before"])
    if report.get("after"):
        lines += [""] + _format_one("after", report["after"]) + ["", "change in share (after: weighted if "
                                                                 "sample_weight is present):"]
        for group, cats in (report.get("change") or {}).items():
            for c, d in cats.items():
                delta = "-" if d["delta"] is None else f"{100 * d['delta']:+.1f} pts"
                lines.append(f"  {group + ' / ' + c:<30} {_pct(d['share_before']):>7} -> {_pct(d['share_after']):>7}"
                             f"  {delta}")
    return "\n".join(lines)


def multipliers_from_manifest(path: str | Path, target: Mapping[str, float] | None = None, group: str = "gender",
                              max_weight: float | None = 10.0) -> dict[str, float]:
    """``rebalance_weights`` from the totals the last BiasMeasure stage of a run recorded in its manifest
    (``path``: the run's output directory or its ``_manifest.json``; ``target`` None: equal shares)."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST if path.is_dir() else path).read_text())
    prefix = f"{BIAS_COLUMN}.{group}_"  # the runner sums each field of the struct metric as bias_counts.<field>
    for stage in reversed(manifest.get("stages", [])):
        totals = {k[len(prefix):]: v for k, v in stage.get("metrics", {}).items() if k.startswith(prefix)}
        if totals and stage.get("config", {}).get("operator") == "BiasMeasure":
            return rebalance_weights(totals, target, max_weight)
    raise InputError(f"{path}: no BiasMeasure stage with {prefix}* metrics in the manifest")


def multipliers_from_parquet(path: str | Path, target: Mapping[str, float] | None = None, group: str = "gender",
                             max_weight: float | None = 10.0) -> dict[str, float]:
    """Exact multipliers (``fit_multipliers``) from the per-document counts of a BiasMeasure output."""
    frame = pl.scan_parquet(list_parquet_files(str(path)))
    cats = bias_fields(_fields(path, frame.collect_schema()))[0].get(group)
    if not cats:
        raise InputError(f"{path}: {BIAS_COLUMN} has no {group}_* fields; run BiasMeasure with that group first")
    data = frame.select([_field(f"{group}_{c}").alias(c) for c in cats]).collect()
    return fit_multipliers({c: data[c].fill_null(0).to_numpy().astype(np.float64) for c in cats},
                           target, max_weight)
