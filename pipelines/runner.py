"""The runner: turns a ``Pipeline`` into a Ray Data plan, executes it, and writes the run's outputs.

    OUTPUT/*.parquet                  kept rows (staged under .staging-RUN/, moved in at the end)
    OUTPUT/_rejected/NN-stage/        rejected rows with all their columns + stage, reason, detail
    OUTPUT/_checkpoints/NN-stage/     the output of a global stage that is not last (resume point)
    OUTPUT/_manifest.json             written last: per-stage counts, configs, hashes; versions; times

``--resume`` reuses a stage's saved output only when its hash matches: the input files' content and every
config up to it, with the content of the files those stages read (pipelines/manifest.py ``chain_hashes``).
Folders of stages that are not part of this run (another pipeline shape) are removed before it starts.

Map and filter stages stream through ``map_batches`` on Arrow batches (stateful operators in actor
pools). A dedup stage is the one place the data is materialised: rows get a key, a narrow
(key, id[, score]) table is grouped to choose the kept id per key, and the rows are joined back to it.
"""
from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from curricula.ray_session import RayOptions, ray_session
from operators.fileio import staged_folder, write_json_atomic
from operators.fingerprint import fingerprint_files
from pipelines.dsl import Pipeline, Stage
from pipelines.errors import AccountingError, DistilleryError
from pipelines.execute import GENERATE_COUNTS, Ledger, StageTask, empty_totals
from pipelines.ids import check_output_ids, id_writer
from pipelines.io import parquet_rows, validate_inputs
from pipelines.manifest import (MANIFEST, chain_hashes, check_accounting, content_fingerprints, library_versions, now,
                                read_json, read_manifest)
from pipelines.near_dedup import frequent_lines, near_dedup_plan

CHECKPOINTS, CLUSTERS, REJECTED, SUCCESS = "_checkpoints", "_clusters", "_rejected", "_SUCCESS.json"
LSH_INDEX = "_lsh_index"
INPUT_STAGING = ".staging-input-"  # a near-dedup stage's input on disk (removed when the run ends; _clear too)


def stage_config(stage: Stage) -> dict[str, Any]:
    return {"name": stage.name, "kind": stage.kind, **stage.op.config()}


def stage_dirname(index: int, stage: Stage) -> str:
    return f"{index:02d}-{stage.name}"


def check_output_location(output: Path, input_files: list[str]) -> None:
    """Refuse to overwrite a directory Distillery did not write, or to write inside the input."""
    resolved = output.resolve()
    for f in input_files:
        if resolved == Path(f).resolve().parent or resolved in Path(f).resolve().parents:
            raise DistilleryError(f"{output}: the output directory contains input file {f}; choose another output")
    if output.exists() and not output.is_dir():
        raise DistilleryError(f"{output}: exists and is not a directory")
    ours = (MANIFEST, REJECTED, CLUSTERS, CHECKPOINTS, LSH_INDEX)
    if output.exists() and any(output.iterdir()) and not (any((output / name).exists() for name in ours)
                                                          or any(output.glob(".staging-*"))):
        raise DistilleryError(f"{output}: exists and is not a Distillery output; choose a new or empty directory")


def actor_cpu_scale(stages: list[Stage], cluster_cpus: float) -> float:
    """Factor for the CPUs that stateful stages' actors reserve, so that together they leave at least one
    CPU (or half the cluster) to the read, map and write tasks; otherwise the pools hold every CPU and the
    tasks feeding them never start (seen here: three 0.5-CPU pools on a 2-CPU Ray hung)."""
    demand = sum(s.op.resources.num_cpus * (s.op.resources.concurrency or 1) for s in stages if s.op.stateful)
    budget = max(cluster_cpus - 1, cluster_cpus / 2)
    return min(1.0, budget / demand) if demand else 1.0


def _apply_stage(ds, index: int, stage: Stage, out: Path, ledger, num_partitions: int, cpu_scale: float = 1.0):
    import ray

    op, res = stage.op, stage.op.resources
    task_args = dict(index=index, name=stage.name, op=op, ledger=ledger,
                     rejected_dir=str(out / REJECTED / stage_dirname(index, stage)) if stage.kind != "map" else None)
    if stage.kind == "dedup":
        task_args.update(annotate_only=True, clusters_dir=str(out / CLUSTERS / stage_dirname(index, stage)))
    if stage.kind == "line_dedup":
        ds, frequent, stats = frequent_lines(ds, op, num_partitions)
        ray.get(ledger.describe.remote(index, stats))
        return ds.map_batches(StageTask(**task_args, context=ray.put(frequent)), batch_format="pyarrow",
                              batch_size=res.batch_size)
    if stage.kind == "dedup" and not op.keys_are_global:
        joined, stats = near_dedup_plan(ds, op, num_partitions, out / f"{INPUT_STAGING}{stage_dirname(index, stage)}",
                                        index_dir=out / LSH_INDEX / stage_dirname(index, stage))
        ray.get(ledger.describe.remote(index, stats))
        return joined.map_batches(StageTask(**task_args), batch_format="pyarrow", batch_size=res.batch_size)
    if stage.kind == "dedup":
        def add_key(batch):
            return batch.append_column("_dedup_key", op.keys(batch))

        def choose(group):
            return op.choose(group).rename_columns(["_dedup_key", "keep_id"])

        keyed = ds.map_batches(add_key, batch_format="pyarrow", batch_size=res.batch_size).materialize()
        if keyed.count() == 0:  # every row was rejected upstream: nothing to group (Ray's groupby needs a schema)
            return keyed
        narrow_columns = ["_dedup_key", "id", *([op.score_column] if op.score_column else [])]
        narrow = keyed.select_columns(narrow_columns).rename_columns({"_dedup_key": "key"})
        winners = narrow.groupby("key", num_partitions=num_partitions).map_groups(choose, batch_format="pyarrow")
        joined = keyed.join(winners, join_type="inner", num_partitions=num_partitions, on=("_dedup_key",))
        return joined.map_batches(StageTask(**task_args), batch_format="pyarrow", batch_size=res.batch_size)
    if op.stateful:
        return ds.map_batches(StageTask, fn_constructor_kwargs=task_args, batch_format="pyarrow",
                              batch_size=res.batch_size, num_cpus=res.num_cpus * cpu_scale, num_gpus=res.num_gpus,
                              concurrency=res.concurrency or 1)
    return ds.map_batches(StageTask(**task_args), batch_format="pyarrow", batch_size=res.batch_size,
                          num_cpus=res.num_cpus)


def _latest_checkpoint(output: Path, stages: list[Stage], hashes: list[str]) -> tuple[int, dict] | None:
    """The last stage whose checkpoint was completed with today's config hash, and its saved record."""
    for index in range(len(stages) - 1, -1, -1):
        success = read_json(output / CHECKPOINTS / stage_dirname(index, stages[index]) / SUCCESS)
        if success and success.get("config_hash") == hashes[index]:
            return index, success
    return None


def _stage_records(stages: list[Stage], hashes: list[str], totals: dict[int, dict], start: int,
                   previous: list[dict]) -> list[dict]:
    records = list(previous[:start])
    for index in range(start, len(stages)):
        stage = stages[index]
        counts = totals.get(index, empty_totals())
        records.append({"index": index, "name": stage.name, "kind": stage.kind, "config": stage.op.config(),
                        "config_hash": hashes[index], "skipped": False,
                        "rejected_dir": stage_dirname(index, stage) if stage.kind != "map" else None,
                        "clusters_dir": stage_dirname(index, stage) if stage.kind == "dedup" else None,
                        **{k: counts[k] for k in ("rows_in", "rows_out", "rows_rejected", "bytes_in", "bytes_out")},
                        **({k: counts.get(k, 0) for k in GENERATE_COUNTS} if stage.kind == "generate" else {}),
                        "seconds": round(counts["seconds"], 3), "batches": counts["batches"],
                        "reject_reasons": dict(sorted(counts["reasons"].items())),
                        "metrics": dict(sorted(counts["metrics"].items())),
                        **({"plan": counts["plan"]} if "plan" in counts else {})})
    return records


def run_pipeline(pipeline: Pipeline, output: str | None = None, address: str | None = None, resume: bool = False,
                 num_cpus: int | None = None, verbose: bool = False, num_partitions: int | None = None) -> dict[str, Any]:
    """Run ``pipeline`` and return its manifest. See the module docstring for what is written where."""
    if pipeline.source is None:
        raise DistilleryError(f"pipeline {pipeline.name!r}: call read_parquet(...) before running it")
    target = output or pipeline.output
    if not target:
        raise DistilleryError(f"pipeline {pipeline.name!r}: no output; call write_parquet(...) or pass --output")
    out = Path(target)
    started_at, started = now(), time.perf_counter()
    source = pipeline.source
    inputs = validate_inputs(source.path, list(source.columns) if source.columns else None)
    check_output_location(out, inputs.files)
    # Shuffle partitions for global stages: about one per 128 MB of input, between 2 and 64.
    num_partitions = num_partitions or max(2, min(64, inputs.bytes // (128 * 1024**2)))
    stages = pipeline.planned_stages()
    # Keyed by content, not paths: the input files' bytes (not their path, size or mtime) and each stage's
    # config with the content of the files it reads (eval sets, references, models).
    input_fingerprint = fingerprint_files(inputs.files)
    hashes = chain_hashes({"columns": source.config()["columns"]}, input_fingerprint,
                          [{**stage_config(s), "content": content_fingerprints(s.op)} for s in stages])
    previous_manifest = read_manifest(out) if resume else None

    if (previous_manifest and previous_manifest.get("status") == "complete"
            and [s["config_hash"] for s in previous_manifest["stages"]] == hashes):
        records = [{**s, "skipped": True} for s in previous_manifest["stages"]]
        _clear(out, stages, len(stages))  # nothing reruns; only what belongs to no stage of this run goes
        return _finish(out, pipeline, inputs, records, started_at, started, previous_manifest["ray"], resumed=True,
                       input_fingerprint=input_fingerprint)

    checkpoint = _latest_checkpoint(out, stages, hashes) if resume else None
    start = checkpoint[0] + 1 if checkpoint else 0
    previous = [{**s, "skipped": True} for s in checkpoint[1]["stages"]] if checkpoint else []
    _clear(out, stages, start)
    staging = out / f".staging-{uuid.uuid4().hex[:12]}"

    import ray
    import ray.data

    with ray_session(address, RayOptions(num_cpus=num_cpus, verbose=verbose)) as where:
        ledger = ray.remote(Ledger).options(num_cpus=0).remote()
        cpu_scale = actor_cpu_scale(stages[start:], ray.cluster_resources().get("CPU", 1.0))
        if checkpoint:
            ds = ray.data.read_parquet(str(out / CHECKPOINTS / stage_dirname(checkpoint[0], stages[checkpoint[0]])))
        else:
            ds = ray.data.read_parquet(inputs.files, override_num_blocks=source.num_blocks)
            if source.columns:
                ds = ds.select_columns(list(source.columns))
        for index in range(start, len(stages)):
            ds = _apply_stage(ds, index, stages[index], out, ledger, num_partitions, cpu_scale)
            if stages[index].kind == "dedup" and index < len(stages) - 1:
                ds = _write_checkpoint(ds, out, stages, hashes, index, ledger, start, previous)
        ds.write_parquet(str(staging), compression="zstd")
        check_output_ids(staging, stage_dirname(blame := id_writer(stages, start, len(stages) - 1), stages[blame]))
        for staged_input in out.glob(f"{INPUT_STAGING}*"):  # the near-dedup stages' inputs, read until here
            shutil.rmtree(staged_input, ignore_errors=True)
        totals = ray.get(ledger.totals.remote())
        ray.kill(ledger)
    records = _stage_records(stages, hashes, totals, start, previous)
    _commit(staging, out)
    ray_info = {"address": where, "actor_cpu_scale": round(cpu_scale, 3)}
    return _finish(out, pipeline, inputs, records, started_at, started, ray_info, resumed=bool(checkpoint),
                   input_fingerprint=input_fingerprint)


def _write_checkpoint(ds, out: Path, stages: list[Stage], hashes: list[str], index: int, ledger, start: int,
                      previous: list[dict]):
    import ray
    import ray.data

    final = out / CHECKPOINTS / stage_dirname(index, stages[index])
    with staged_folder(final) as staging:
        ds.write_parquet(str(staging), compression="zstd")
        check_output_ids(staging, stage_dirname(blame := id_writer(stages, start, index), stages[blame]))
        records = _stage_records(stages[: index + 1], hashes, ray.get(ledger.totals.remote()), start, previous)
        write_json_atomic({"config_hash": hashes[index], "stages": records, "finished_at": now()}, staging / SUCCESS)
    return ray.data.read_parquet(str(final))


def _clear(out: Path, stages: list[Stage], start: int) -> None:
    """Keep only the rejects, clusters, indexes and checkpoints of the stages being reused (``stages[:start]``):
    those of the stages about to run go, and so does every ``NN-name`` folder that is no stage of this run
    (a previous run of another pipeline shape), so inspect, report and ``reference=`` never read them. When
    anything reruns, the previous manifest is replaced first by one saying the folder is incomplete (it still
    marks the folder as a Distillery output, and is never reused)."""
    if not out.exists():
        return
    keep = {stage_dirname(index, stages[index]) for index in range(start)}
    if start < len(stages) and (out / MANIFEST).exists():
        write_json_atomic({"status": "incomplete", "started_at": now(), "stages": [],
                           "note": "a run started here has not finished"}, out / MANIFEST)
    for parent in (REJECTED, CLUSTERS, CHECKPOINTS, LSH_INDEX):
        for stage_dir in (out / parent).iterdir() if (out / parent).is_dir() else ():
            if stage_dir.name not in keep:
                shutil.rmtree(stage_dir) if stage_dir.is_dir() else stage_dir.unlink()
    for leftover in out.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _commit(staging: Path, out: Path) -> None:
    """Replace the previous output's data files with the staged ones (the manifest follows last)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    for new in sorted(staging.glob("*.parquet")) if staging.exists() else []:
        new.rename(out / new.name)
    shutil.rmtree(staging, ignore_errors=True)


def _finish(out: Path, pipeline: Pipeline, inputs, records: list[dict], started_at: str, started: float,
            ray_info: dict, resumed: bool, input_fingerprint: str | None = None) -> dict[str, Any]:
    files, rows, size = parquet_rows(out)
    manifest = {
        "pipeline": pipeline.name, "status": "complete", "resumed": resumed,
        "started_at": started_at, "finished_at": now(), "seconds": round(time.perf_counter() - started, 3),
        "input": {"path": pipeline.source.path, "files": len(inputs.files), "rows": inputs.rows, "bytes": inputs.bytes,
                  "fingerprint": input_fingerprint},
        "output": {"path": str(out), "files": files, "rows": rows, "bytes": size},
        "accounting": None, "stages": records, "ray": ray_info, "versions": library_versions(),
    }
    try:
        manifest["accounting"] = check_accounting(records, inputs.rows, rows, out)
    except AccountingError as exc:  # keep the evidence: a manifest that says what did not balance
        manifest.update(status="failed", error=str(exc))
        write_json_atomic(manifest, out / MANIFEST)
        raise
    write_json_atomic(manifest, out / MANIFEST)
    return manifest
