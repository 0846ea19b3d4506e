"""Train a fastText text classifier from labelled Parquet (``distillery classifier train``).

``train_classifier`` reads a text and a label column with polars, holds out a deterministic validation
split, trains ``fasttext.train_supervised`` (word bigrams by default, as DCLM's quality classifier) and
saves the model atomically. It writes ``OUTPUT.report.json`` beside the model: rows and labels seen, the
parameters, and per-label precision/recall/F1 on the held-out rows, computed here from the model's
predictions (fastText's own ``test`` is recorded too, as a cross-check). ``operators.FastTextScore``
scores a corpus with the saved model.

The split is by a seeded hash of each document's text, so it does not depend on file order and exact
duplicates never straddle train and validation. Text is flattened to one line with the same function
the scoring operators use (``operators.classifier.fasttext_lines``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from operators.classifier import LABEL_PREFIX, fasttext_lines, strip_label
from operators.fileio import atomic_path, write_json_atomic
from pipelines.errors import DistilleryError
from pipelines.io import list_parquet_files


def _read(input: str, text_column: str, label_column: str) -> tuple[list[Path], pl.DataFrame]:
    """The two columns from every Parquet file under ``input``, with errors that name file and column."""
    files = list_parquet_files(input)
    for path in files:
        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # a corrupt or non-Parquet file
            raise DistilleryError(f"{path}: cannot read Parquet schema ({exc})") from exc
        for role, column in (("text_column", text_column), ("label_column", label_column)):
            if column not in schema.names:
                raise DistilleryError(f"{path}: no column {column!r} ({role}); columns: {', '.join(schema.names)}")
        kind = schema.field(text_column).type
        if str(kind) not in ("string", "large_string", "string_view"):
            raise DistilleryError(f"{path}: text column {text_column!r} must hold strings, not {kind}")
    frame = pl.read_parquet([str(p) for p in files], columns=[text_column, label_column])
    return files, frame


def _labels(frame: pl.DataFrame, label_column: str, input: str) -> list[str | None]:
    """Labels as bare strings (ints/bools cast); whitespace inside a label is an error."""
    labels = frame[label_column].cast(pl.String).to_list()
    cleaned: list[str | None] = []
    for label in labels:
        label = strip_label(label.strip()) if label is not None else None
        if label and any(c.isspace() for c in label):
            raise DistilleryError(f"{input}: label column {label_column!r} holds {label!r}: fastText labels "
                                  f"cannot contain whitespace (use e.g. {label.replace(' ', '_')!r})")
        cleaned.append(label or None)
    return cleaned


def in_validation(line: str, seed: int, valid_fraction: float) -> bool:
    """Deterministic split: a seeded hash of the text, so duplicates land on the same side."""
    digest = hashlib.blake2b(f"{seed}\0{line}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < valid_fraction


def evaluate(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-label precision/recall/F1/support from two label lists."""
    labels = sorted(set(truth) | set(predicted))
    per_label = {}
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted) if t == label and p == label)
        support = sum(1 for t in truth if t == label)
        predicted_n = sum(1 for p in predicted if p == label)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": support, "predicted": predicted_n, "true_positives": tp}
    correct = sum(1 for t, p in zip(truth, predicted) if t == p)
    supported = [m["f1"] for m in per_label.values() if m["support"]]
    return {"rows": len(truth), "accuracy": round(correct / len(truth), 4) if truth else None,
            "macro_f1": round(sum(supported) / len(supported), 4) if supported else None, "per_label": per_label}


def _write_lines(path: Path, labels: list[str], lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for label, line in zip(labels, lines):
            out.write(f"{LABEL_PREFIX}{label} {line}\n")


def train_classifier(input: str, output: str, text_column: str = "text", label_column: str = "label",
                     valid_fraction: float = 0.1, seed: int = 0, epoch: int = 5, lr: float = 0.1,
                     wordNgrams: int = 2, dim: int = 64, minCount: int = 1, minn: int = 0, maxn: int = 0,
                     bucket: int = 1_000_000,
                     loss: str = "softmax", thread: int | None = None, balance: bool = False) -> dict[str, Any]:
    """Train a fastText classifier on ``input`` (Parquet file, directory or glob), save it to ``output``
    and return the report (also written to ``output + ".report.json"``).

    ``thread=None`` uses every core; fastText's result then varies slightly between runs (``thread=1`` is
    reproducible for a given seed). The model's size is about ``(vocabulary + bucket) * dim * 4`` bytes.
    ``balance`` repeats the training rows of rarer labels (whole copies, after the split) until each
    label has about as many rows as the most common one; validation rows are never repeated.
    """
    started = time.perf_counter()
    if not 0.0 <= valid_fraction < 1.0:
        raise DistilleryError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    for name, value in (("epoch", epoch), ("wordNgrams", wordNgrams), ("dim", dim), ("minCount", minCount),
                        ("bucket", bucket), ("minn", minn), ("maxn", maxn)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name in ("bucket", "minn", "maxn") else 1):
            raise DistilleryError(f"{name} must be a {'non-negative' if name in ('bucket', 'minn', 'maxn') else 'positive'} "
                                  f"integer, got {value!r}")
    if maxn and not 0 < minn <= maxn:
        raise DistilleryError(f"character n-grams need 0 < minn <= maxn, got minn={minn}, maxn={maxn}")
    if not lr > 0:
        raise DistilleryError(f"lr must be > 0, got {lr!r}")
    files, frame = _read(input, text_column, label_column)
    if frame.height == 0:
        raise DistilleryError(f"{input}: no rows to train on")
    lines = fasttext_lines(frame[text_column].to_arrow())
    labels = _labels(frame, label_column, input)
    rows = [(label, line) for label, line in zip(labels, lines) if label is not None and line is not None]
    if not rows:
        raise DistilleryError(f"{input}: no row has both a non-empty {text_column!r} and a {label_column!r}")
    distinct = sorted({label for label, _ in rows})
    if len(distinct) < 2:
        raise DistilleryError(f"{input}: label column {label_column!r} has {len(distinct)} distinct label(s) "
                              f"({', '.join(distinct)}); a classifier needs at least 2")

    held_out = [in_validation(line, seed, valid_fraction) for _, line in rows]
    valid = [row for row, out in zip(rows, held_out) if out]
    train = [row for row, out in zip(rows, held_out) if not out]
    if len({lab for lab, _ in train}) < 2:
        raise DistilleryError(f"{input}: the training split holds fewer than 2 labels; lower valid_fraction "
                              f"or add rows")
    counts = {lab: sum(1 for x, _ in train if x == lab) for lab in distinct}
    if balance:
        most = max(counts.values())
        train = [row for row in train for _ in range(max(1, round(most / counts[row[0]])) if counts[row[0]] else 1)]
    order = np.random.default_rng(seed).permutation(len(train))  # fastText reads its file in order
    train = [train[i] for i in order]

    params = {"epoch": epoch, "lr": lr, "wordNgrams": wordNgrams, "dim": dim, "minCount": minCount,
              "minn": minn, "maxn": maxn, "bucket": bucket, "loss": loss, "thread": thread or os.cpu_count() or 1, "seed": seed}
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    import fasttext

    with tempfile.TemporaryDirectory(prefix="distillery-fasttext-") as tmp:
        train_file, valid_file = Path(tmp) / "train.txt", Path(tmp) / "valid.txt"
        _write_lines(train_file, [lab for lab, _ in train], [line for _, line in train])
        model = fasttext.train_supervised(input=str(train_file), verbose=0, **params)
        metrics = fasttext_test = None
        if valid:
            _write_lines(valid_file, [lab for lab, _ in valid], [line for _, line in valid])
            predicted = [strip_label(p[0]) for p in model.predict([line for _, line in valid], k=1)[0]]
            metrics = evaluate([lab for lab, _ in valid], predicted)
            n, precision, recall = model.test(str(valid_file), k=1)
            fasttext_test = {"rows": n, "precision_at_1": round(precision, 4), "recall_at_1": round(recall, 4)}
        with atomic_path(target) as partial:
            model.save_model(str(partial))

    report = {
        "model": str(target), "report": f"{target}.report.json", "input": input, "files": len(files),
        "text_column": text_column, "label_column": label_column, "valid_fraction": valid_fraction,
        "rows": {"read": frame.height, "skipped_empty_text_or_label": frame.height - len(rows),
                 "train": sum(counts.values()), "valid": len(valid)},
        "labels": {lab: {"train": counts[lab], "valid": sum(1 for x, _ in valid if x == lab),
                         **({"train_balanced": sum(1 for x, _ in train if x == lab)} if balance else {})}
                   for lab in distinct},
        "params": params, "balance": balance, "validation": metrics, "fasttext_test": fasttext_test,
        "model_bytes": target.stat().st_size, "seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(report, Path(report["report"]))
    return report


def format_report(report: dict[str, Any]) -> str:
    """A few lines for the terminal: where the model went and its held-out scores per label."""
    rows = report["rows"]
    out = [f"model {report['model']} ({report['model_bytes'] / 1e6:.1f} MB) from {rows['train']:,} training rows, "
           f"{rows['valid']:,} held out, {rows['skipped_empty_text_or_label']:,} skipped, {report['seconds']} s"]
    metrics = report["validation"]
    if metrics:
        out.append(f"held-out accuracy {metrics['accuracy']}, macro F1 {metrics['macro_f1']}")
        for label, m in metrics["per_label"].items():
            out.append(f"  {label:<16} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
                       f"f1 {m['f1']:.3f}  support {m['support']}")
    out.append(f"report {report['report']}")
    return "\n".join(out)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``distillery classifier train`` (the CLI calls ``run_train`` with the parsed result)."""
    parser.add_argument("--input", required=True, help="labelled Parquet: a file, a directory or a glob")
    parser.add_argument("-o", "--output", required=True,
                        help="where to save the fastText model (.bin); the report goes to OUTPUT.report.json")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--valid-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--word-ngrams", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--minn", type=int, default=0, help="shortest character n-gram (0: none)")
    parser.add_argument("--maxn", type=int, default=0, help="longest character n-gram (0: none)")
    parser.add_argument("--bucket", type=int, default=1_000_000)
    parser.add_argument("--loss", default="softmax", choices=["softmax", "hs", "ova", "ns"])
    parser.add_argument("--thread", type=int, help="training threads (default: all cores; 1 is reproducible)")
    parser.add_argument("--balance", action="store_true", help="repeat rarer labels' training rows to even counts")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")


def run_train(args: argparse.Namespace) -> int:
    """Train from parsed ``add_train_arguments`` arguments and print the report; returns the exit status."""
    import json

    report = train_classifier(args.input, args.output, text_column=args.text_column, label_column=args.label_column,
                              valid_fraction=args.valid_fraction, seed=args.seed, epoch=args.epoch, lr=args.lr,
                              wordNgrams=args.word_ngrams, dim=args.dim, minCount=args.min_count,
                              minn=args.minn, maxn=args.maxn,
                              bucket=args.bucket, loss=args.loss, thread=args.thread,
                              balance=args.balance)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
