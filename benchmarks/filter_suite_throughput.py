"""Throughput of the filter suite, per operator and all together, in documents/s per core.

Each operator runs single-process and single-threaded over Arrow batches of 4,096 rows (what one Ray
task does), on the bundled sample (9,005 real documents) and on a second corpus: a real one given with
``--input`` (a Parquet file or a folder of ``*.parquet``, e.g. the 105,138 distinct documents built by
``scripts/build_real_corpus.py``), or else ``--copies`` copies of the sample (ids made unique; exact
duplicates, which only exact/near dedup would notice). Times are CPU seconds of the process (per core,
and far less disturbed by a shared machine than wall time); each operator runs ``--repeats`` times and
the median counts. Run:

    .venv/bin/python benchmarks/filter_suite_throughput.py --input benchmarks/_work/real-100k/data
    .venv/bin/python benchmarks/filter_suite_throughput.py --copies 11
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from operators import REASON, Operator, RequireText  # noqa: E402
from operators.quality import clear_caches  # noqa: E402
from operators.registry import BY_NAME  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NEEDS_ARGUMENTS = {"fast_text_score", "decontaminate", "rebalance", "rebalance_sample", "exact_dedup", "min_hash_dedup"}
BATCH = 4096


def read(path: Path) -> pa.Table:
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    return pa.concat_tables([pq.read_table(f, columns=["id", "text", "source"]) for f in files]).combine_chunks()


def corpus(copies: int) -> pa.Table:
    sample = read(ROOT / "data" / "sample")
    parts = [sample.set_column(0, "id", pc.binary_join_element_wise(f"c{k}-", sample["id"], "")) for k in range(copies)]
    return pa.concat_tables(parts).combine_chunks()


def suite() -> list[Operator]:
    ops, seen = [], set()
    for name, cls in BY_NAME.items():
        if name in NEEDS_ARGUMENTS or cls is RequireText or cls in seen:
            continue
        seen.add(cls)
        op = cls()
        if op.stateful:
            op.setup()
        ops.append(op)
    return ops


def timed(op: Operator, table: pa.Table) -> tuple[float, pa.Table, int]:
    """CPU seconds to run ``op`` over ``table`` batch by batch; the output (rejects dropped) and rejects."""
    out, rejected = [], 0
    started = time.process_time()
    for batch in table.to_batches(BATCH):
        result = op(pa.Table.from_batches([batch]))
        if REASON in result.column_names:
            keep = pc.is_null(result[REASON])
            rejected += result.num_rows - pc.sum(keep).as_py()
            result = result.filter(keep).drop_columns([REASON, "_detail"])
        out.append(result)
    seconds = time.process_time() - started
    return seconds, pa.concat_tables(out, promote_options="permissive"), rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="a real corpus (Parquet file or folder) to measure besides the sample")
    parser.add_argument("--copies", type=int, default=11, help="without --input: the sample this many times")
    parser.add_argument("--repeats", type=int, default=3, help="runs per operator and of the chain; the median counts")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    ops = suite()
    second = (str(args.input), read(args.input)) if args.input else (f"sample x{args.copies}", corpus(args.copies))
    for label, table in (("sample", corpus(1)), second):
        megabytes = pc.sum(pc.binary_length(table["text"])).as_py() / 1e6
        print(f"\n{label}: {table.num_rows:,} documents, {megabytes:.1f} MB of text, batches of {BATCH}, one process, "
              f"CPU seconds, median of {args.repeats}; each operator's tokenization memo cleared before each run")
        print(f"{'operator':<22} {'CPU s':>8} {'docs/s':>10} {'MB/s':>8} {'rejected':>9}")
        wall = time.perf_counter()
        for op in ops:
            runs = []
            for _ in range(args.repeats):
                clear_caches()
                seconds, _, rejected = timed(op, table)
                runs.append(seconds)
            seconds = statistics.median(runs)
            print(f"{op.name:<22} {seconds:>8.2f} {table.num_rows / seconds:>10,.0f} {megabytes / seconds:>8.1f} "
                  f"{rejected:>9,}", flush=True)
        chains = []
        for _ in range(args.repeats):
            clear_caches()  # the chain shares one memo, as one worker process does
            chained, current, rejected = 0.0, table, 0
            for op in ops:
                seconds, current, dropped = timed(op, current)
                chained += seconds
                rejected += dropped
            chains.append(chained)
        chained = statistics.median(chains)
        print(f"{'all, chained':<22} {chained:>8.2f} {table.num_rows / chained:>10,.0f} {megabytes / chained:>8.1f} "
              f"{rejected:>9,}   ({current.num_rows:,} kept; {time.perf_counter() - wall:.0f} s wall in all)", flush=True)


if __name__ == "__main__":
    main()
