"""Throughput of the filter suite, per operator and all together, in documents/s per core.

Each operator runs single-process over Arrow batches of 4,096 rows (what one Ray task does), on the
bundled sample (9,005 real documents) and on a larger copy of it (``--copies``, ids made unique; the
copies are exact duplicates, which only exact/near dedup would notice). Run:

    .venv/bin/python benchmarks/filter_suite_throughput.py [--copies 11]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from operators import REASON, Operator, RequireText
from operators.registry import BY_NAME

ROOT = Path(__file__).resolve().parents[1]
NEEDS_ARGUMENTS = {"fast_text_score", "decontaminate", "rebalance", "rebalance_sample", "exact_dedup", "min_hash_dedup"}
BATCH = 4096


def corpus(copies: int) -> pa.Table:
    sample = pq.read_table(ROOT / "data" / "sample")
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
    """Seconds to run ``op`` over ``table`` batch by batch; the output (rejects dropped) and rejects."""
    out, rejected = [], 0
    started = time.perf_counter()
    for batch in table.to_batches(BATCH):
        result = op(pa.Table.from_batches([batch]))
        if REASON in result.column_names:
            keep = pc.is_null(result[REASON])
            rejected += result.num_rows - pc.sum(keep).as_py()
            result = result.filter(keep).drop_columns([REASON, "_detail"])
        out.append(result)
    seconds = time.perf_counter() - started
    return seconds, pa.concat_tables(out, promote_options="permissive"), rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=11, help="size of the large corpus, in copies of the sample")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ops = suite()
    for label, table in (("sample", corpus(1)), (f"sample x{args.copies}", corpus(args.copies))):
        megabytes = pc.sum(pc.binary_length(table["text"])).as_py() / 1e6
        print(f"\n{label}: {table.num_rows:,} documents, {megabytes:.1f} MB of text, batches of {BATCH}, one process")
        print(f"{'operator':<22} {'docs/s':>10} {'MB/s':>8} {'rejected':>9}")
        total = 0.0
        for op in ops:
            seconds, _, rejected = timed(op, table)
            total += seconds
            print(f"{op.name:<22} {table.num_rows / seconds:>10,.0f} {megabytes / seconds:>8.1f} {rejected:>9,}")
        chained, current, rejected = 0.0, table, 0
        for op in ops:
            seconds, current, dropped = timed(op, current)
            chained += seconds
            rejected += dropped
        print(f"{'all, chained':<22} {table.num_rows / chained:>10,.0f} {megabytes / chained:>8.1f} {rejected:>9,}"
              f"   ({current.num_rows:,} kept)")


if __name__ == "__main__":
    main()
