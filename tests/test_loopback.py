"""The embedded Ray listens on loopback only, on every CLI path that starts one: ``dedup``, ``filter``, a run
whose stage fails, and ``students train --workers N``, each as a subprocess in a user's environment that
used to make Ray listen on every interface (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1``, ``RAY_ADDRESS`` empty).

While each command runs, every process of its tree (the CLI, GCS, raylet, dashboard agent, workers) is
collected and every listening TCP socket those processes own (``ss -ltnpH``) must be on 127.0.0.1 or ::1.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import sample_rows, write_docs

pytestmark = pytest.mark.slow
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"}
# What made the embedded Ray listen on every interface before (the user's own environment may hold it).
HOSTILE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_ADDRESS": ""}


def _tree(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {pid} | {child.pid for child in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _listening(pids: set[int]) -> dict[str, set[str]]:
    """{local address: owning process names} of the listening TCP sockets owned by any of ``pids``."""
    found: dict[str, set[str]] = {}
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        owners = re.findall(r'\("([^"]*)",pid=(\d+),', line)
        names = {name for name, pid in owners if int(pid) in pids}
        if names:
            found.setdefault(line.split()[3], set()).update(names)
    return found


def _run_watching_sockets(args: list[str], cwd: Path, timeout_s: float = 600) -> tuple[int, str, dict]:
    """Run ``distillery ARGS`` and poll its process tree's listening sockets until it exits."""
    env = {**os.environ, **HOSTILE_ENV}
    err = cwd / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            for address, names in _listening(_tree(proc.pid)).items():
                seen.setdefault(address, set()).update(names)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # only the process group this test started
            proc.wait()
    return proc.returncode, err.read_text(), seen


def _off_loopback(seen: dict[str, set[str]], stderr: str) -> dict[str, set[str]]:
    """The sockets of ``seen`` that are not on loopback, after checking Ray's own were seen at all."""
    names = set().union(*seen.values()) if seen else set()
    assert {"gcs_server", "raylet"} <= names, f"no Ray sockets seen (test would pass vacuously): {seen}\n{stderr}"
    return {address: owners for address, owners in seen.items() if address.rsplit(":", 1)[0] not in LOOPBACK_HOSTS}


def _assert_loopback_only(seen: dict[str, set[str]], stderr: str) -> None:
    outside = _off_loopback(seen, stderr)
    assert not outside, f"listening off loopback: {outside}"


@pytest.fixture
def docs(tmp_path) -> Path:
    rows = sample_rows(20)
    return write_docs(tmp_path / "in", rows + [dict(rows[0], id="zz-copy")], files=2)


def test_dedup_listens_on_loopback_only(docs, tmp_path):
    code, stderr, seen = _run_watching_sockets(["dedup", str(docs), "-o", str(tmp_path / "out")], tmp_path)
    assert code == 0, stderr
    _assert_loopback_only(seen, stderr)


def test_filter_listens_on_loopback_only(docs, tmp_path):
    code, stderr, seen = _run_watching_sockets(["filter", str(docs), "-o", str(tmp_path / "out"),
                                                "--ops", "normalize,length_filter"], tmp_path)
    assert code == 0, stderr
    _assert_loopback_only(seen, stderr)


def test_a_failing_run_listens_on_loopback_only(docs, tmp_path):
    pipeline = tmp_path / "broken.py"
    pipeline.write_text(
        "from dataclasses import dataclass\nfrom operators.base import Filter\nfrom pipelines import Pipeline\n\n"
        "@dataclass(frozen=True)\nclass Broken(Filter):\n    def reasons(self, batch):\n"
        "        raise RuntimeError('this stage always fails')\n\n"
        f"pipeline = Pipeline('broken').read_parquet({str(docs)!r}).filter(Broken())\n")
    code, stderr, seen = _run_watching_sockets(["--debug", "run", str(pipeline), "-o", str(tmp_path / "out")], tmp_path)
    assert code == 1 and "this stage always fails" in stderr, stderr
    _assert_loopback_only(seen, stderr)


def test_students_train_with_workers_listens_on_loopback_only(tmp_path):
    from students.data import write_token_parquet

    documents = [[(7 * d + t) % 60 + 1 for t in range(40)] for d in range(16)]
    data = write_token_parquet(tmp_path / "tokens.parquet", documents, ["web"] * 16)
    code, stderr, seen = _run_watching_sockets(
        ["students", "train", "--data", str(data), "-o", str(tmp_path / "run"), "--workers", "2", "--steps", "2",
         "--batch-size", "2", "--seq-len", "16", "--set", "model.vocab_size=64", "--set", "model.d_model=32",
         "--set", "model.n_layers=1", "--set", "model.n_heads=2", "--set", "model.n_kv_heads=2",
         "--set", "train.warmup_steps=1"], tmp_path)
    assert code == 0, stderr
    assert (tmp_path / "run" / "worker-1.json").exists()  # two DDP workers really ran
    # Every socket of Ray's (GCS, raylet, agents, workers) and of torch's process group is on loopback: the
    # group meets through a file (torch's TCP store would bind every interface) and gloo uses ``lo``.
    _assert_loopback_only(seen, stderr)
