"""The runner on a real embedded Ray with real Parquet files: outputs, rejects, accounting, dedup, resume."""
from __future__ import annotations

import json
import os
import re
import subprocess
import unicodedata
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import pytest

from operators import ExactDedup, LengthFilter, Normalize, Operator, Resources
from operators.fingerprint import fingerprint_files
from pipelines import AccountingError, Pipeline
from pipelines.manifest import check_accounting
from tests.conftest import reference_normalize, sample_rows, write_docs

pytestmark = pytest.mark.usefixtures("ray_local")


def reference_survivors(rows: list[dict]) -> set[str]:
    """An independent oracle for exact dedup: Python's unicodedata + re, smallest id per group."""
    groups: dict[str, str] = {}
    for row in rows:
        key = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", row["text"])).strip()
        groups[key] = min(groups.get(key, row["id"]), row["id"])
    return set(groups.values())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """300 real documents + 30 planted near-identical copies (whitespace, CRLF, full-width digits) +
    a null, an empty and a whitespace-only text, spread over 3 files."""
    rows = sample_rows(300)
    planted = []
    for k, row in enumerate(rows[:30]):
        variant = row["text"].replace(" ", "  ", 3).replace("\n", "\r\n") + "  "
        if k % 3 == 0:
            variant = variant.replace("1", "１")  # FULLWIDTH DIGIT ONE: NFKC folds it back
        planted.append({"id": f"zz-copy-{k:02d}", "text": variant, "source": row["source"]})
    broken = [{"id": "zz-null", "text": None, "source": "x"}, {"id": "zz-empty", "text": "", "source": "x"},
              {"id": "zz-space", "text": " \n\t ", "source": "x"}]
    all_rows = rows + planted + broken
    return write_docs(tmp_path_factory.mktemp("corpus") / "in", all_rows, files=3), all_rows


def rejected_table(output) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((output / "_rejected").rglob("*.parquet"))],
                            promote_options="default")


def test_pipeline_end_to_end_counts_rejects_and_manifest(corpus, tmp_path):
    path, rows = corpus
    valid = [r for r in rows if r["text"] and r["text"].strip()]
    out = tmp_path / "out"
    manifest = (Pipeline("e2e").read_parquet(str(path)).map(Normalize()).filter(LengthFilter(min_chars=40))
                .dedup(ExactDedup()).write_parquet(str(out)).run())

    kept = pq.read_table(out)
    long_enough = [r for r in valid if len(reference_normalize(r["text"])) >= 40]
    expected = reference_survivors(long_enough)
    assert set(kept["id"].to_pylist()) == expected
    assert all(f"zz-copy-{k:02d}" not in expected for k in range(30))  # every planted copy was caught
    assert kept.column_names == ["id", "text", "source"]

    stages = {s["name"]: s for s in manifest["stages"]}
    assert [s["name"] for s in manifest["stages"]] == ["read", "normalize", "length_filter", "exact_dedup"]
    assert stages["read"]["rows_in"] == len(rows) == 333
    assert stages["read"]["reject_reasons"] == {"text is null": 1, "text is empty": 2}
    assert stages["length_filter"]["rows_out"] == len(long_enough)
    assert stages["exact_dedup"]["rows_out"] == len(expected) == manifest["output"]["rows"]
    assert manifest["accounting"] == {"rows_in": 333, "rows_out": len(expected),
                                      "rows_rejected": 333 - len(expected), "balanced": True}
    assert manifest["status"] == "complete" and manifest["versions"]["ray"] and manifest["finished_at"]
    assert json.loads((out / "_manifest.json").read_text()) == manifest

    rejected = rejected_table(out)
    assert rejected.num_rows == 333 - len(expected)
    assert {"id", "text", "source", "stage", "reason", "detail"} <= set(rejected.column_names)
    by_id = {r["id"]: r for r in rejected.to_pylist()}
    assert by_id["zz-null"]["stage"] == "read" and by_id["zz-null"]["reason"] == "text is null"
    assert by_id["zz-copy-00"]["reason"] == "duplicate"
    assert by_id["zz-copy-00"]["detail"] == f"duplicate of {rows[0]['id']}"
    assert not list(out.glob(".staging-*")) and not list(out.rglob(".tmp-*"))


def test_exact_dedup_same_survivors_with_one_and_many_blocks(corpus, tmp_path):
    path, rows = corpus
    results = []
    for blocks in (1, 7):
        out = tmp_path / f"blocks-{blocks}"
        Pipeline("blocks").read_parquet(str(path), num_blocks=blocks).dedup(ExactDedup()).run(output=str(out))
        rejected = rejected_table(out)
        results.append((sorted(pq.read_table(out)["id"].to_pylist()),
                        sorted(zip(rejected["id"].to_pylist(), rejected["detail"].to_pylist(), strict=True))))
    assert results[0] == results[1]
    valid = [r for r in rows if r["text"] and r["text"].strip()]
    assert set(results[0][0]) == reference_survivors(valid)


@dataclass(frozen=True)
class DropsRows(Operator):
    """A broken operator that loses rows instead of annotating them."""

    def __call__(self, batch):
        return batch.slice(0, batch.num_rows // 2)


def test_an_operator_that_drops_rows_fails_the_run(corpus, tmp_path):
    path, _ = corpus
    with pytest.raises(Exception, match="operators must annotate rejects, not drop rows"):
        Pipeline("lossy").read_parquet(str(path)).map(DropsRows()).run(output=str(tmp_path / "out"))


def test_accounting_check_catches_a_lost_reject_file(corpus, tmp_path):
    path, _ = corpus
    out = tmp_path / "out"
    manifest = Pipeline("acct").read_parquet(str(path)).filter(LengthFilter(min_chars=200)).run(output=str(out))
    for f in (out / "_rejected" / "01-length_filter").glob("*.parquet"):
        f.unlink()
    with pytest.raises(AccountingError, match="length_filter.*rejected but 0 in its rejects files"):
        check_accounting(manifest["stages"], manifest["input"]["rows"], manifest["output"]["rows"], out)
    with pytest.raises(AccountingError, match="output files hold"):
        check_accounting(manifest["stages"], manifest["input"]["rows"], manifest["output"]["rows"] + 1, tmp_path / "missing")


def test_resume_skips_finished_stages_and_reruns_changed_ones(corpus, tmp_path):
    path, _ = corpus
    out = tmp_path / "out"

    def build(min_chars: int) -> Pipeline:
        return (Pipeline("resume").read_parquet(str(path)).map(Normalize()).dedup(ExactDedup())
                .filter(LengthFilter(min_chars=min_chars)))

    first = build(100).run(output=str(out))
    before = sorted(pq.read_table(out)["id"].to_pylist())

    again = build(100).run(output=str(out), resume=True)
    assert again["resumed"] and all(s["skipped"] for s in again["stages"])
    assert sorted(pq.read_table(out)["id"].to_pylist()) == before
    assert [s["rows_out"] for s in again["stages"]] == [s["rows_out"] for s in first["stages"]]

    changed = build(500).run(output=str(out), resume=True)
    assert [s["skipped"] for s in changed["stages"]] == [True, True, True, False]
    fresh = build(500).run(output=str(tmp_path / "fresh"))
    assert sorted(pq.read_table(out)["id"].to_pylist()) == sorted(pq.read_table(tmp_path / "fresh")["id"].to_pylist())
    assert changed["accounting"] == fresh["accounting"]
    assert changed["stages"][3]["rows_in"] == first["stages"][2]["rows_out"]


def test_embedded_ray_listens_on_loopback_only(ray_local):
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in listening.splitlines() if re.search(r"raylet|gcs_server", line)]
    assert ours, listening
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in ours}
    assert addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses


@dataclass(frozen=True)
class TagsWorker(Operator):
    """A stateful operator: ``setup`` stands in for loading a model once per actor."""

    stateful = True
    resources = Resources(num_cpus=0.5, batch_size=16, concurrency=2)
    column: str = "worker"

    def setup(self) -> None:
        object.__setattr__(self, "loaded", getattr(self, "loaded", 0) + 1)

    def __call__(self, batch):
        tag = f"{os.getpid()}:{self.loaded}"
        return batch.append_column(self.column, pa.array([tag] * batch.num_rows, pa.string()))


def test_stateful_operator_runs_in_an_actor_pool_and_loads_once_per_actor(corpus, tmp_path):
    path, rows = corpus
    out = tmp_path / "out"
    manifest = Pipeline("actors").read_parquet(str(path), num_blocks=6).map(TagsWorker()).run(output=str(out))
    tags = pq.read_table(out)["worker"].to_pylist()
    assert len(tags) == manifest["output"]["rows"] == 330
    assert {tag.split(":")[1] for tag in tags} == {"1"}   # setup ran once in each actor, not per batch
    assert 1 <= len({tag.split(":")[0] for tag in tags}) <= 2   # at most `concurrency` actors
    assert manifest["stages"][1]["batches"] >= 330 // 16


def test_read_parquet_glob_and_column_selection(tmp_path):
    rows = [dict(r, lang="en") for r in sample_rows(20)]
    data = write_docs(tmp_path / "in", rows, files=4)
    out = tmp_path / "out"
    manifest = (Pipeline("glob").read_parquet(str(data / "part-00[0-2].parquet"), columns=["id", "text"])
                .run(output=str(out)))
    kept = pq.read_table(out)
    assert kept.column_names == ["id", "text"]
    assert sorted(kept["id"].to_pylist()) == sorted(r["id"] for k, r in enumerate(rows) if k % 4 != 3)
    assert manifest["input"] == {"path": str(data / "part-00[0-2].parquet"), "files": 3, "rows": 15,
                                 "bytes": manifest["input"]["bytes"],
                                 "fingerprint": fingerprint_files(sorted(data.glob("part-00[0-2].parquet")))}
    # The run's secret never reaches what it writes.
    token = os.environ["RAY_AUTH_TOKEN"]
    assert all(token not in f.read_text(errors="ignore") for f in out.rglob("*.json"))


@dataclass(frozen=True)
class CountsCharacters(Operator):
    """Adds a per-row count whose total belongs in the manifest (as PII counts per type do)."""

    metrics = ("chars",)

    def __call__(self, batch):
        return batch.append_column("chars", pa.compute.utf8_length(batch["text"]))


def test_operator_metrics_are_summed_into_the_manifest(corpus, tmp_path):
    path, rows = corpus
    manifest = Pipeline("metrics").read_parquet(str(path), num_blocks=4).map(CountsCharacters()).run(
        output=str(tmp_path / "out"))
    assert manifest["stages"][1]["metrics"] == {"chars": sum(len(r["text"]) for r in rows if r["text"] and r["text"].strip())}


def test_actor_pools_leave_cpus_for_the_tasks_that_feed_them():
    from pipelines.dsl import Stage
    from pipelines.runner import actor_cpu_scale

    stages = [Stage(f"tag_{k}", TagsWorker()) for k in range(3)]  # 3 pools x 2 actors x 0.5 CPU = 3 CPUs
    assert actor_cpu_scale(stages, 2.0) == pytest.approx(1.0 / 3.0)  # scaled to leave 1 of 2 CPUs free
    assert actor_cpu_scale(stages, 16.0) == 1.0
    assert actor_cpu_scale([Stage("n", Normalize())], 2.0) == 1.0


def test_three_stateful_stages_run_on_two_cpus(corpus, tmp_path):
    path, _ = corpus
    pipe = Pipeline("pools").read_parquet(str(path), num_blocks=3)
    for k in range(3):
        pipe = pipe.map(TagsWorker(column=f"worker_{k}"))
    manifest = pipe.run(output=str(tmp_path / "out"))
    assert manifest["output"]["rows"] == 330 and manifest["ray"]["actor_cpu_scale"] < 1
