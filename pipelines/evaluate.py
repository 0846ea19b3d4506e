"""Evaluate: every student on the same clean held-out split (the flagship's last step).

Perplexity overall and per domain (``students.evaluate``) on the same evenly spaced held-out windows for every
student (up to ``WINDOWS_PER_DOMAIN`` per domain, so no domain's size dominates and evaluation stays quick),
one row per student in ``eval.json`` (the
report's evaluation table), and for the experiment the mean and standard deviation over seeds of each
(student, stream) arm.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np

from curricula.batch import TokenBatch
from curricula.packing import pack_windows
from students.data import END_OF_TEXT, read_documents
from students.evaluate import evaluate_model, load_run

WINDOWS_PER_DOMAIN = 96  # evenly spaced over each domain's held-out tokens: the same windows for every student


def heldout_batches(heldout: str, tokenizer_dir: str, seq_len: int, batch_size: int = 8,
                    per_domain: int = WINDOWS_PER_DOMAIN) -> list[TokenBatch]:
    """Held-out windows of ``seq_len`` + 1 tokens: up to ``per_domain`` per domain, evenly spaced."""
    windows, doc_ids, domains = pack_windows(*read_documents(heldout, tokenizer_dir), seq_len, END_OF_TEXT)
    chosen: list[int] = []
    for domain in sorted(set(domains)):
        rows = [i for i, d in enumerate(domains) if d == domain]
        picks = np.linspace(0, len(rows) - 1, min(per_domain, len(rows))).round().astype(int)
        chosen += [rows[i] for i in sorted(set(picks.tolist()))]
    return [TokenBatch(input_ids=windows[rows, :-1], labels=windows[rows, 1:], domains=[domains[r] for r in rows],
                       document_ids=doc_ids[rows, :-1])
            for rows in (chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size))]


def evaluate_students(runs: list[Path], heldout: str, out_file: Path, seq_len: int, tokenizer_dir: str,
                      batch_size: int = 8) -> list[dict]:
    batches = heldout_batches(heldout, tokenizer_dir, seq_len, batch_size)
    rows = []
    for run in runs:
        row = evaluate_model(load_run(run), batches, name=run.name)
        rows.append({key: row[key] for key in ("name", "params", "active_params", "loss", "perplexity", "tokens",
                                               "domains")})
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(rows, indent=1))
    return rows


def arm_of(name: str) -> str:
    """``dense-curated-seed3`` -> ``dense-curated``."""
    return re.sub(r"-seed\d+$", "", name)


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per arm: overall perplexity and per domain."""
    arms: dict[str, list[dict]] = {}
    for row in rows:
        arms.setdefault(arm_of(row["name"]), []).append(row)
    summary = []
    for arm, members in arms.items():
        entry = {"arm": arm, "seeds": len(members), **_stats([m["perplexity"] for m in members])}
        domains = sorted({d for m in members for d in m["domains"]})
        entry["domains"] = {d: _stats([m["domains"][d]["perplexity"] for m in members if d in m["domains"]])
                            for d in domains}
        summary.append(entry)
    return summary


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summary_table(summary: list[dict]) -> str:
    """Markdown: one arm per row, perplexity mean +- std overall and per domain."""
    domains = sorted({d for s in summary for d in s["domains"]})
    head = "| arm | seeds | perplexity | " + " | ".join(domains) + " |"
    lines = [head, "|" + "---|" * (3 + len(domains))]
    for s in summary:
        cells = [f"{s['domains'][d]['mean']:.1f} ± {s['domains'][d]['std']:.1f}" if d in s["domains"] else "-"
                 for d in domains]
        lines.append(f"| {s['arm']} | {s['seeds']} | {s['mean']:.1f} ± {s['std']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
