"""Runner overhead: documents/s of a no-op Distillery pipeline vs plain pyarrow, side by side.

Distillery runs ``Pipeline("noop").read_parquet(INPUT).write_parquet(OUT)``; the runner adds its
implicit ``read`` stage (rejects null/empty text, reports each batch to the ledger actor), which is
part of the framework cost being measured. The baseline reads each input file with
``pyarrow.parquet.read_table`` and writes it back with ``pq.write_table(..., compression="zstd")``.

Distillery is measured "cold" (Ray not initialised: the run starts and shuts down its own Ray) and
"warm" (Ray already initialised by this script, so the run reuses it). The warm phase also runs plain
Ray Data (``read_parquet(files).write_parquet(out)``), which separates Ray Data's own cost from what
Distillery adds on top of it. Competitors are interleaved
(pyarrow, distillery, pyarrow, distillery, ...) and the median of ``--repeats`` runs is reported.
The input is ``data/sample`` replicated ``--copies`` times (unique ids) under ``benchmarks/_work/``.

Run from the repository root:

    .venv/bin/python benchmarks/runner_overhead.py [--copies 8] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curricula.ray_session import LOOPBACK, configure_local_environment  # noqa: E402

configure_local_environment()  # before anything imports ray: loopback binding, token auth

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipelines import Pipeline  # noqa: E402
from pipelines.runner import run_pipeline  # noqa: E402

SAMPLE = ROOT / "data" / "sample"
WORK = ROOT / "benchmarks" / "_work"
NUM_CPUS = 2


def make_input(copies: int) -> tuple[Path, int, int]:
    """Replicate the sample files ``copies`` times with ids prefixed ``c{k}-``; return (dir, rows, bytes)."""
    target = WORK / f"input-x{copies}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rows = 0
    for source in sorted(SAMPLE.glob("*.parquet")):
        table = pq.read_table(source)
        for k in range(copies):
            ids = pc.binary_join_element_wise(pa.scalar(f"c{k}"), table["id"], "-")
            copy = table.set_column(table.schema.get_field_index("id"), "id", ids)
            pq.write_table(copy, target / f"c{k:03d}-{source.name}", compression="zstd")
            rows += copy.num_rows
    size = sum(f.stat().st_size for f in target.glob("*.parquet"))
    return target, rows, size


def run_pyarrow(input_dir: Path, out: Path) -> int:
    """Read each file with pyarrow and write it back (zstd); return the rows written."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = 0
    for path in sorted(input_dir.glob("*.parquet")):
        table = pq.read_table(path)
        pq.write_table(table, out / path.name, compression="zstd")
        rows += table.num_rows
    return rows


def run_distillery(input_dir: Path, out: Path, stage_seconds: list[float]) -> int:
    """Run the no-op pipeline; return the rows written (from the manifest) and log the read stage's time."""
    shutil.rmtree(out, ignore_errors=True)
    manifest = run_pipeline(Pipeline("noop").read_parquet(str(input_dir)).write_parquet(str(out)), num_cpus=NUM_CPUS)
    assert manifest["input"]["rows"] == manifest["output"]["rows"], "no-op pipeline dropped rows"
    stage_seconds.append(sum(s["seconds"] for s in manifest["stages"]))
    return int(manifest["output"]["rows"])


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = fn()
    return time.perf_counter() - started, rows


def run_ray_data(files: list[str], out: Path) -> int:
    """Plain Ray Data read + write (no Distillery stage, ledger or manifest): the floor under Distillery."""
    import ray.data

    shutil.rmtree(out, ignore_errors=True)
    ray.data.read_parquet(files).write_parquet(str(out))
    return sum(pq.read_metadata(f).num_rows for f in out.glob("*.parquet"))


def interleave(repeats: int, competitors: dict[str, Callable[[], int]], times: dict[str, list[float]],
               rows_seen: dict[str, set[int]]) -> None:
    """Run the competitors one after another, ``repeats`` rounds, appending wall seconds and row counts."""
    for i in range(repeats):
        for name, fn in competitors.items():
            seconds, rows = timed(fn)
            times.setdefault(name, []).append(seconds)
            rows_seen.setdefault(name, set()).add(rows)
            print(f"  run {i + 1}/{repeats} {name:<18} {seconds:7.2f} s  {rows} rows", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="replicas of data/sample (default 8, ~72k docs)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per competitor; the median is reported")
    args = parser.parse_args()

    import ray
    import ray.data

    print(f"ray {ray.__version__}, pyarrow {pa.__version__}, python {sys.version.split()[0]}, "
          f"cpus {os.cpu_count()} (Ray capped at {NUM_CPUS}), "
          f"load average {os.getloadavg()[0]:.1f}")
    input_dir, rows, size = make_input(args.copies)
    print(f"input: {input_dir.relative_to(ROOT)}: {len(list(input_dir.glob('*.parquet')))} files, "
          f"{rows} docs, {size / 1e6:.1f} MB (zstd Parquet)")

    times: dict[str, list[float]] = {}
    rows_seen: dict[str, set[int]] = {}
    stage_seconds: dict[str, list[float]] = {"distillery (cold)": [], "distillery (warm)": []}
    pa_out, ds_out = WORK / "out-pyarrow", WORK / "out-distillery"

    print("cold: each Distillery run starts and shuts down its own Ray")
    assert not ray.is_initialized()
    interleave(args.repeats, {
        "pyarrow": lambda: run_pyarrow(input_dir, pa_out),
        "distillery (cold)": lambda: run_distillery(input_dir, ds_out, stage_seconds["distillery (cold)"]),
    }, times, rows_seen)

    print("warm: Ray initialised once by the benchmark and reused")
    started = time.perf_counter()
    ray.init(num_cpus=NUM_CPUS, include_dashboard=False, _node_ip_address=LOOPBACK, logging_level="WARNING",
             log_to_driver=False)
    print(f"  ray.init: {time.perf_counter() - started:.2f} s")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        files = [str(f) for f in sorted(input_dir.glob("*.parquet"))]
        interleave(args.repeats, {
            "pyarrow": lambda: run_pyarrow(input_dir, pa_out),
            "ray data (plain)": lambda: run_ray_data(files, WORK / "out-ray-data"),
            "distillery (warm)": lambda: run_distillery(input_dir, ds_out, stage_seconds["distillery (warm)"]),
        }, times, rows_seen)
    finally:
        ray.shutdown()

    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    counts = set().union(*rows_seen.values())
    if counts != {rows}:
        raise SystemExit(f"row counts differ: {rows_seen} (input {rows})")
    print(f"\nrow counts agree: {rows} docs in, {rows} docs out for every run")

    base = statistics.median(times["pyarrow"])
    print(f"\nmedian of {args.repeats} runs (pyarrow: median of all {len(times['pyarrow'])} interleaved runs); "
          f"MB/s = input Parquet MB / wall s\n")
    print("| competitor | median s | min s | docs/s | MB/s | ratio (docs/s ÷ pyarrow) | stage task s (sum) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("pyarrow", "ray data (plain)", "distillery (cold)", "distillery (warm)"):
        median = statistics.median(times[name])
        stage = f"{statistics.median(stage_seconds[name]):.2f}" if name in stage_seconds else "-"
        print(f"| {name} | {median:.2f} | {min(times[name]):.2f} | {rows / median:,.0f} | "
              f"{size / 1e6 / median:.1f} | {base / median:.2f} | {stage} |")


if __name__ == "__main__":
    main()
