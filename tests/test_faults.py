"""Faults that can be produced for real: a Ray worker process killed (SIGKILL) in the middle of a stage.

The kill is real; to give the test a window to deliver it, the operator under test sleeps in its sketch
step (a test device, not a mock: the MinHash code that runs is the real one).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from operators import MinHashDedup
from pipelines import Pipeline
from tests.conftest import sample_rows, write_docs
from tests.test_minhash import edit_words

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


@dataclass(frozen=True)
class SlowMinHash(MinHashDedup):
    def bucket_rows(self, batch):
        time.sleep(1.5)
        return super().bucket_rows(batch)


def kill_first_worker_running(marker: str, killed: list[int], deadline_s: float = 60) -> None:
    """SIGKILL the first Ray worker whose process title names ``marker`` (Ray titles workers by task)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not killed:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            except OSError:
                continue
            if title.startswith("ray::") and marker in title:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return
        time.sleep(0.05)


def test_a_worker_killed_during_signatures_does_not_change_the_result(tmp_path):
    rows = [r for r in sample_rows(300) if len(r["text"].split()) >= 60][:24]
    rows += [{"id": f"zz-near-{k}", "text": edit_words(r["text"], 0.01, k), "source": r["source"]}
             for k, r in enumerate(rows[:6])]
    data = write_docs(tmp_path / "in", rows, files=4)

    def run(name: str):
        out = tmp_path / name
        manifest = Pipeline("faults").read_parquet(str(data), num_blocks=4).dedup(SlowMinHash()).run(output=str(out))
        return manifest, sorted(pq.read_table(out)["id"].to_pylist()), pq.read_table(out / "_clusters").sort_by("id")

    calm_manifest, calm_kept, calm_clusters = run("calm")
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker_running, args=("bucket_rows", killed), daemon=True)
    killer.start()
    manifest, kept, clusters = run("disturbed")
    killer.join()
    assert killed, "no worker was killed: the test did not exercise the fault"
    assert kept == calm_kept
    assert calm_manifest["stages"][1]["rows_rejected"] >= 5  # the planted near-duplicates were found
    assert clusters.equals(calm_clusters)
    assert manifest["accounting"] == calm_manifest["accounting"]
