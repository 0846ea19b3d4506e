"""Render the data of ``pipelines.report.build_report`` as one self-contained HTML page: tables and inline
SVG plots (bars, histograms, lines), no scripts and nothing fetched, so the file opens anywhere, offline.
Every plot is an ``<svg class="plot">`` with a ``data-plot`` name, which the tests look for in a browser.
"""
from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 560, 220, 36
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:.9em;color:#555}pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em}
svg.plot{background:#fff;border:1px solid #eee}"""


def render(report: dict[str, Any]) -> str:
    parts = [f"<h1>Distillery report</h1><p>Run folder: <code>{escape(report['run_dir'])}</code></p>"]
    for pipeline in report["pipelines"]:
        parts.append(_pipeline(pipeline))
    if report["mixtures"]:
        parts.append("<h2>Mixture: planned vs realised</h2>" + "".join(_mixture(m) for m in report["mixtures"]))
    if report["training"]:
        parts.append("<h2>Training</h2>" + "".join(_training(t) for t in report["training"]))
    if report["evaluation"]:
        parts.append("<h2>Evaluation</h2>" + _table(report["evaluation"]))
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Distillery report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def _pipeline(p: dict[str, Any]) -> str:
    stages = p["stages"]
    html = [f"<h2>Pipeline {escape(p['pipeline'])}</h2><p>Output <code>{escape(p['output'])}</code>, "
            f"status {escape(str(p['status']))}"
            + (f", {p['seconds']:.1f} s" if isinstance(p.get("seconds"), (int, float)) else "") + "</p>"]
    if stages:
        html.append(_figure(f"Rows kept after each stage of {p['pipeline']}",
                            _bars("funnel", [s["name"] for s in stages], [s["rows_out"] for s in stages])))
        html.append(_table([{"stage": s["name"], "rows in": s["rows_in"], "rows out": s["rows_out"],
                             "rejected": s["rows_rejected"],
                             "reject reasons": "; ".join(f"{k}: {v:,}" for k, v in s["reject_reasons"].items())}
                            for s in stages]))
    plots = []
    for s in stages:
        if s["cluster_sizes"]:
            sizes = sorted(s["cluster_sizes"].items(), key=lambda kv: int(kv[0]))
            plots.append(_figure(f"{s['name']}: clusters by size (log scale)",
                                 _bars("clusters", [k for k, _ in sizes], [v for _, v in sizes], log=True)))
    for name, h in p["histograms"].items():
        step = (h["high"] - h["low"]) / len(h["counts"])
        labels = [f"{h['low'] + i * step:.3g}" for i in range(len(h["counts"]))]
        plots.append(_figure(f"{name} ({h['rows']:,} rows, mean {h['mean']:.3g})", _bars("histogram", labels, h["counts"])))
    if plots:
        html.append(f"<div class=plots>{''.join(plots)}</div>")
    if p["bias"]:
        html.append("<h3>Bias</h3>" + _bias(p["bias"]))
    if p["synthetic"]:
        html.append(_synthetic(p["synthetic"]))
    return "".join(html)


def _bias(summary: dict[str, Any]) -> str:
    rows = []
    for group, info in summary.get("groups", {}).items():
        for category, figures in info.get("categories", {}).items():
            rows.append({"group": group, "category": category,
                         **{k: v for k, v in figures.items() if isinstance(v, (int, float))}})
    return _table(rows) if rows else f"<pre>{escape(str(summary))[:3000]}</pre>"


def _synthetic(s: dict[str, Any]) -> str:
    html = ["<h3>Synthetic data</h3>", _table(s["by_task"])]
    if s["diversity"]:
        html.append("<p>Diversity: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["diversity"].items()) + "</p>")
    for task, samples in s["samples"].items():
        html.append(f"<h4>{escape(task)}</h4>" + "".join(f"<pre>{escape(x)}</pre>" for x in samples))
    return "".join(html)


def _mixture(m: dict[str, Any]) -> str:
    windows = m["windows"]
    if not windows:
        return ""
    x = [w.get("tokens") or w.get("sequences") or i for i, w in enumerate(windows)]
    domains = list(windows[0]["planned"])
    series = {}
    for d in domains:
        series[f"{d} planned"] = [w["planned"].get(d, 0.0) for w in windows]
        series[f"{d} realised"] = [w["realised"].get(d, 0.0) for w in windows]
    worst = max(w.get("max_abs_error", 0.0) for w in windows)
    return _figure(f"{m['name']}: domain shares by training tokens (dashed: planned); largest gap {worst:.4f}",
                   _lines("mixture", x, series, dashed=lambda name: name.endswith("planned")))


def _training(t: dict[str, Any]) -> str:
    steps = t["steps"]
    if not steps:
        return ""
    x = [s["step"] for s in steps]
    series = {"loss": [s["loss"] for s in steps]}
    for d in sorted({d for s in steps for d in s.get("domain_loss", {})}):
        series[d] = [s.get("domain_loss", {}).get(d) for s in steps]
    return _figure(f"{t['name']}: training loss by step, overall and per domain", _lines("loss", x, series))


def _figure(caption: str, svg: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _bars(name: str, labels: list[str], values: list[float], log: bool = False) -> str:
    import math

    scale = (lambda v: math.log10(v + 1)) if log else float
    top = max((scale(v) for v in values), default=0) or 1.0
    slot = (WIDTH - 2 * PAD) / max(len(values), 1)
    bars, texts = [], []
    for i, (label, value) in enumerate(zip(labels, values)):
        h = (HEIGHT - 2 * PAD) * scale(value) / top
        x = PAD + i * slot
        bars.append(f'<rect x="{x + slot * 0.1:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
                    f'fill="{COLOURS[0]}"><title>{escape(str(label))}: {value:,}</title></rect>')
        if len(values) <= 12 or i % max(1, len(values) // 8) == 0:
            texts.append(f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" text-anchor="middle">'
                         f'{escape(str(label)[:max(4, min(14, int(slot // 6)))])}</text>')  # ~6 px a character
    return _svg(name, "".join(bars) + "".join(texts) + _axes(f"{max(values, default=0):,}"))


def _lines(name: str, x: list[float], series: dict[str, list[float | None]], dashed=lambda name: False) -> str:
    values = [v for ys in series.values() for v in ys if v is not None]
    if not values or not x:
        return _svg(name, _axes(""))
    low, high = min(values), max(values)
    span_y = (high - low) or 1.0
    x0, x1 = min(x), max(x)
    span_x = (x1 - x0) or 1.0
    paths, legend = [], []
    for k, (label, ys) in enumerate(series.items()):
        colour = COLOURS[(k // 2 if any(dashed(n) for n in series) else k) % len(COLOURS)]
        points = [(PAD + (WIDTH - 2 * PAD) * (xi - x0) / span_x, HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y - low) / span_y)
                  for xi, y in zip(x, ys) if y is not None]
        if not points:
            continue
        d = "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in points)
        dash = ' stroke-dasharray="5,3"' if dashed(label) else ""
        paths.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}><title>{escape(label)}</title></path>')
        if not dashed(label):
            legend.append(f'<text x="{WIDTH - PAD + 4}" y="{PAD + 12 * len(legend)}" font-size="10" fill="{colour}">'
                          f'{escape(label)[:18]}</text>')
    return _svg(name, "".join(paths) + "".join(legend) + _axes(f"{high:.3g}", f"{low:.3g}"), width=WIDTH + 120)


def _axes(top: str, bottom: str = "0") -> str:
    return (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<text x="2" y="{PAD + 4}" font-size="10">{escape(top)}</text>'
            f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{escape(bottom)}</text>')


def _svg(name: str, body: str, width: int = WIDTH) -> str:
    return (f'<svg class="plot" data-plot="{escape(name)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}">{body}</svg>')
