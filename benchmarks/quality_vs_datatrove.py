"""Heuristic quality filters: Distillery's against DataTrove's, same corpus, same run.

Runs DataTrove 0.10.1's ``GopherQualityFilter``, ``GopherRepetitionFilter``, ``C4QualityFilter`` and
``FineWebQualityFilter`` (in a subprocess, in their own venv, one document at a time as DataTrove does)
and Distillery's ``GopherQuality``, ``GopherRepetition``, ``C4Quality`` and ``FineWebQuality`` (batches
of 4,096 rows) on the same documents, then prints, per filter: the share of documents with the same
keep/reject decision, the systematic disagreements grouped by the rule that fired on each side (with a
count and an example id), how often C4's rewritten text is identical, and the throughput of each side;
last, the agreement of our word-based filters with plain ``str.split()`` words instead of spaCy's rules,
to show what the tokenizer is worth.

Both sides run single-process and single-threaded (``*_NUM_THREADS=1``, ``POLARS_MAX_THREADS=1``,
``pyarrow.set_cpu_count(1)``). Throughput is documents (and MB of UTF-8 text) per CPU-second of the
process, which a noisy shared machine disturbs far less than wall time; wall seconds are printed too.
Distillery's chunk-tokenization cache is cleared before each of its runs, so each starts cold; it runs
each filter ``--repeats`` times (default 3) and reports the median run, DataTrove runs once.

Setup, once (DataTrove, spaCy for its English word tokenizer — ``spacy.blank("en")`` needs no model
download — and pyarrow to read the corpus)::

    python3 -m venv benchmarks/_work/datatrove-venv
    benchmarks/_work/datatrove-venv/bin/pip install "datatrove[processing]==0.10.1" spacy pyarrow

Run::

    .venv/bin/python benchmarks/quality_vs_datatrove.py              # data/sample: 9,005 documents
    .venv/bin/python benchmarks/quality_vs_datatrove.py --copies 8   # the same replicated 8x

``--reuse-datatrove`` skips the (slow) DataTrove run and reads its decisions and timings from the last
run on the same corpus, under ``benchmarks/_work/datatrove-decisions-x{copies}/``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
VENV_PYTHON = WORK / "datatrove-venv" / "bin" / "python"
FILTERS = ("gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality")


# --- the DataTrove side (runs inside the DataTrove venv; imports nothing from Distillery) ---------------
def datatrove_worker(input_dir: str, out_dir: str, keep_text: bool) -> None:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.utils.text import split_into_sentences, split_into_words

    table = pq.read_table(input_dir, columns=["id", "text"])
    ids, texts = table["id"].to_pylist(), table["text"].to_pylist()
    split_into_words("Load spaCy before timing."), split_into_sentences("Load it. Twice.")
    filters = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
               "c4_quality": C4QualityFilter(), "fineweb_quality": FineWebQualityFilter()}
    timings = {}
    for name, step in filters.items():
        kept, reasons, out_text = [], [], []
        cpu, wall = time.process_time(), time.perf_counter()
        for doc_id, text in zip(ids, texts):
            doc = Document(text=text, id=doc_id)
            result = step.filter(doc)
            ok, reason = (result, None) if not isinstance(result, tuple) else result
            kept.append(bool(ok))
            reasons.append(None if ok else (reason or "rejected"))
            out_text.append(doc.text if ok and keep_text and name == "c4_quality" else None)
        timings[name] = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
        pq.write_table(pa.table({"id": ids, "kept": kept, "reason": reasons, "text": pa.array(out_text, pa.string())}),
                       Path(out_dir) / f"{name}.parquet")
    import datatrove
    import spacy
    timings["versions"] = {"datatrove": datatrove.__version__ if hasattr(datatrove, "__version__") else "0.10.1",
                           "spacy": spacy.__version__, "python": sys.version.split()[0]}
    (Path(out_dir) / "timings.json").write_text(json.dumps(timings, indent=1))


# --- the Distillery side -----------------------------------------------------------------------------
# Our reason -> the name DataTrove gives the same rule, to line the two up.
DATATROVE_NAMES = [
    (r"^gopher: fewer than \d+ words", "gopher_short_doc"), (r"^gopher: more than \d+ words", "gopher_long_doc"),
    (r"^gopher: mean word length below", "gopher_below_avg_threshold"),
    (r"^gopher: mean word length above", "gopher_above_avg_threshold"),
    (r"^gopher: '#' per word", "gopher_too_many_hashes"), (r"^gopher: ellipses per word", "gopher_too_many_ellipsis"),
    (r"^gopher: .* start with a bullet", "gopher_too_many_bullets"),
    (r"^gopher: .* end with an ellipsis", "gopher_too_many_end_ellipsis"),
    (r"^gopher: .* contain a letter", "gopher_below_alpha_threshold"),
    (r"^gopher: fewer than \d+ stop words", "gopher_enough_stop_words"),
    (r"^gopher repetition: text is empty", "empty"),
    (r"^gopher repetition: .* of paragraphs are duplicates", "dup_para_frac"),
    (r"^gopher repetition: .* in duplicate paragraphs", "dup_para_char_frac"),
    (r"^gopher repetition: .* of lines are duplicates", "dup_line_frac"),
    (r"^gopher repetition: .* in duplicate lines", "dup_line_char_frac"),
    (r"^gopher repetition: the top (\d+)-gram", r"top_\1_gram"),
    (r"^gopher repetition: repeated (\d+)-grams", r"duplicated_\1_n_grams"),
    (r"^c4: contains 'lorem ipsum'", "lorem_ipsum"), (r"^c4: contains a curly bracket", "curly_bracket"),
    (r"^c4: fewer than \d+ sentences", "too_few_sentences"),
    (r"^fineweb: text is empty", "empty"), (r"^fineweb: .* end with punctuation", "line_punct_ratio"),
    (r"^fineweb: .* lines are short", "short_line_ratio"), (r"^fineweb: .* duplicate lines", "char_dup_ratio"),
    (r"^fineweb: .* newlines per word", "list_ratio"),
]


def datatrove_name(reason: str | None) -> str | None:
    if reason is None:
        return None
    for pattern, name in DATATROVE_NAMES:
        m = re.match(pattern, reason)
        if m:
            return m.expand(name)
    return f"? {reason}"


def run_ours(table: pa.Table, batch_size: int = 4096, repeats: int = 1) -> tuple[dict, dict]:
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from operators.base import REASON
    from operators.c4_fineweb import C4Quality, FineWebQuality
    from operators.gopher import GopherQuality, GopherRepetition
    from operators.quality import clear_caches

    ops = {"gopher_quality": GopherQuality(), "gopher_repetition": GopherRepetition(), "c4_quality": C4Quality(),
           "fineweb_quality": FineWebQuality()}
    batches = [pa.Table.from_batches([b]) for b in table.select(["id", "text"]).to_batches(max_chunksize=batch_size)]
    ops["gopher_quality"](batches[0].slice(0, 10))  # import-time work (regex classes) outside the timing
    results, timings = {}, {}
    for name, op in ops.items():
        runs = []
        for _ in range(repeats):  # each run from a cold cache; the median run counts
            clear_caches()
            cpu, wall = time.process_time(), time.perf_counter()
            outs = [op(batch) for batch in batches]
            runs.append({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall})
        timings[name] = sorted(runs, key=lambda r: r["cpu_s"])[len(runs) // 2]
        out = pa.concat_tables(outs)
        results[name] = {"reason": out[REASON].to_pylist(), "text": out["text"].to_pylist()}
    return results, timings


def whitespace_what_if(table: pa.Table, batch_size: int = 4096) -> tuple[dict, dict]:
    """Our word-based filters with plain ``str.split()`` words instead of spaCy's rules: what the
    tokenizer choice is worth in agreement (and costs in time)."""
    import operators.quality as quality
    from operators.base import REASON
    from operators.c4_fineweb import FineWebQuality
    from operators.gopher import GopherQuality, GopherRepetition

    ops = {"gopher_quality": GopherQuality(), "gopher_repetition": GopherRepetition(), "fineweb_quality": FineWebQuality()}
    batches = [pa.Table.from_batches([b]) for b in table.select(["id", "text"]).to_batches(max_chunksize=batch_size)]
    original = quality.split_chunk
    quality.split_chunk = lambda chunk: (chunk,)
    results, timings = {}, {}
    try:
        for name, op in ops.items():
            quality.clear_caches()
            cpu = time.process_time()
            out = pa.concat_tables([op(batch) for batch in batches])
            timings[name] = {"cpu_s": time.process_time() - cpu}
            results[name] = out[REASON].to_pylist()
    finally:
        quality.split_chunk = original
        quality.clear_caches()
    return results, timings


def replicate(copies: int) -> Path:
    if copies == 1:
        return ROOT / "data" / "sample"
    target = WORK / f"quality-x{copies}"
    if not target.exists():
        base = pq.read_table(ROOT / "data" / "sample")
        target.mkdir(parents=True)
        for k in range(copies):
            ids = pa.array([f"c{k}-{i}" for i in base["id"].to_pylist()])
            pq.write_table(base.set_column(0, "id", ids), target / f"part-{k:03d}.parquet")
    return target


def report(table: pa.Table, theirs: dict, ours: dict, their_t: dict, our_t: dict, examples: int = 1) -> str:
    ids = table["id"].to_pylist()
    n, mb = table.num_rows, sum(len(t.encode()) for t in table["text"].to_pylist()) / 1e6
    lines = ["### Agreement (same keep/reject decision)", "",
             "| filter | documents | rejected by DataTrove | rejected by Distillery | same decision | agreement "
             "| same rule when both reject |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    disagreements = []
    c4_text = None
    for name in FILTERS:
        t_kept, t_reason = theirs[name]["kept"], theirs[name]["reason"]
        o_reason = ours[name]["reason"]
        o_kept = [r is None for r in o_reason]
        same = sum(a == b for a, b in zip(t_kept, o_kept))
        both = [(t, datatrove_name(o)) for t, o, tk, ok in zip(t_reason, o_reason, t_kept, o_kept) if not tk and not ok]
        same_rule = sum(t == o for t, o in both)
        lines.append(f"| {name} | {n:,} | {n - sum(t_kept):,} | {n - sum(o_kept):,} | {same:,} | {100 * same / n:.2f}% "
                     f"| {same_rule:,} of {len(both):,} |")
        groups: dict[tuple, list[str]] = defaultdict(list)
        for i, (tk, ok) in enumerate(zip(t_kept, o_kept)):
            if tk != ok:
                groups[(datatrove_name(o_reason[i]) or "kept", t_reason[i] or "kept")].append(ids[i])
        for (o, t), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            disagreements.append(f"| {name} | {o} | {t} | {len(members)} | {', '.join(members[:examples])} |")
        if name == "c4_quality" and theirs[name].get("text") is not None:
            pairs = [(a, b) for a, b, tk, ok in zip(theirs[name]["text"], ours[name]["text"], t_kept, o_kept)
                     if tk and ok]
            if pairs and pairs[0][0] is not None:
                c4_text = (sum(a == b for a, b in pairs), len(pairs))
    lines += ["", "### Disagreements, by the rule that fired on each side", "",
              "| filter | Distillery | DataTrove | documents | example id |", "|---|---|---|---:|---|"]
    lines += disagreements or ["| (none) | | | | |"]
    if c4_text:
        lines += ["", f"C4 text of documents both keep: {c4_text[0]:,} of {c4_text[1]:,} identical."]
    lines += ["", f"### Throughput ({n:,} documents, {mb:.1f} MB of text; per CPU-second, single-threaded)", "",
              "| filter | DataTrove CPU s | DataTrove docs/s | DataTrove MB/s | Distillery CPU s | Distillery docs/s "
              "| Distillery MB/s | speed-up | wall s (DataTrove / Distillery) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in FILTERS:
        tc, oc = their_t[name]["cpu_s"], our_t[name]["cpu_s"]
        lines.append(f"| {name} | {tc:.1f} | {n / tc:,.0f} | {mb / tc:.2f} | {oc:.2f} | {n / oc:,.0f} | {mb / oc:.1f} "
                     f"| {tc / oc:.1f}x | {their_t[name]['wall_s']:.1f} / {our_t[name]['wall_s']:.2f} |")
    return "\n".join(lines)


def what_if_report(table: pa.Table, theirs: dict, ours: dict, what_if: dict, what_if_t: dict, our_t: dict) -> str:
    n = table.num_rows
    lines = ["### What the tokenizer is worth: the same filters with `str.split()` words", "",
             "| filter | agreement, spaCy-rule words | agreement, `str.split()` words | CPU s, spaCy-rule / split |",
             "|---|---:|---:|---:|"]
    for name, reasons in what_if.items():
        t_kept = theirs[name]["kept"]
        same = sum(tk == (r is None) for tk, r in zip(t_kept, ours[name]["reason"]))
        same_ws = sum(tk == (r is None) for tk, r in zip(t_kept, reasons))
        lines.append(f"| {name} | {100 * same / n:.2f}% | {100 * same_ws / n:.2f}% "
                     f"| {our_t[name]['cpu_s']:.2f} / {what_if_t[name]['cpu_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=1, help="replicate data/sample this many times (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="Distillery runs per filter; the median counts")
    parser.add_argument("--reuse-datatrove", action="store_true",
                        help="reuse DataTrove's decisions and timings from an earlier run on the same corpus")
    parser.add_argument("--datatrove-worker", nargs=2, metavar=("INPUT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--keep-text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_worker:
        return datatrove_worker(*args.datatrove_worker, keep_text=args.keep_text)
    if not VENV_PYTHON.exists():
        sys.exit(f"no DataTrove venv at {VENV_PYTHON.parent.parent}; see this script's docstring for the setup")
    input_dir = replicate(args.copies)
    table = pq.read_table(input_dir, columns=["id", "text"])
    out = WORK / f"datatrove-decisions-x{args.copies}"
    out.mkdir(parents=True, exist_ok=True)
    command = [str(VENV_PYTHON), __file__, "--datatrove-worker", str(input_dir), str(out)] + \
        (["--keep-text"] if args.copies == 1 else [])
    if not (args.reuse_datatrove and (out / "timings.json").exists()):
        print(f"DataTrove on {table.num_rows:,} documents ...", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": ""})
    theirs = {name: pq.read_table(out / f"{name}.parquet").to_pydict() for name in FILTERS}
    their_t = json.loads((out / "timings.json").read_text())
    for name in FILTERS:
        assert theirs[name]["id"] == table["id"].to_pylist(), "DataTrove saw the documents in another order"
    print("Distillery ...", file=sys.stderr, flush=True)
    ours, our_t = run_ours(table, repeats=args.repeats)
    import numpy
    import polars
    print(f"Versions: DataTrove {their_t['versions']['datatrove']}, spaCy {their_t['versions']['spacy']}; "
          f"pyarrow {pa.__version__}, polars {polars.__version__}, numpy {numpy.__version__}; "
          f"Python {sys.version.split()[0]}\n")
    print(report(table, theirs, ours, their_t, our_t))
    what_if, what_if_t = whitespace_what_if(table)
    print()
    print(what_if_report(table, theirs, ours, what_if, what_if_t, our_t))


if __name__ == "__main__":
    main()
