"""Submitting a pipeline as a Ray job to a real Ray head on loopback (token auth on).

The head is the one ``.ci/run`` starts (``DISTILLERY_TEST_RAY_HEAD=http://127.0.0.1:8265``); run alone,
the test starts its own head in a new process group and stops only that group.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.conftest import REPO, sample_rows, write_docs

pytestmark = pytest.mark.slow
DASHBOARD = "http://127.0.0.1:8265"


def _head_answers(address: str) -> bool:
    from ray.job_submission import JobSubmissionClient

    try:
        JobSubmissionClient(address).list_jobs()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    address = os.environ.get("DISTILLERY_TEST_RAY_HEAD")
    if address:
        yield address
        return
    temp = tmp_path_factory.mktemp("head")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port=6390",
                             "--num-cpus=2", "--dashboard-host=127.0.0.1", "--dashboard-port=8265",
                             "--dashboard-agent-listen-port=52465",  # not the embedded Ray's default 52365
                             "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _head_answers(DASHBOARD):
        assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
        time.sleep(2)
    yield DASHBOARD
    os.killpg(head.pid, signal.SIGKILL)  # only the head we started: its own process group
    head.wait()


def test_submit_runs_the_pipeline_on_the_cluster(ray_head, tmp_path, capsys):
    rows = sample_rows(30) + [dict(sample_rows(1)[0], id="zz-dup")]
    data = write_docs(tmp_path / "in", rows, files=2)
    out = tmp_path / "job-out"
    jobs_dir = REPO / "tests" / "_jobs"
    jobs_dir.mkdir(exist_ok=True)
    pipeline = jobs_dir / f"job_{uuid.uuid4().hex[:8]}.py"
    pipeline.write_text(
        "from operators import ExactDedup, Normalize\nfrom pipelines import Pipeline\n"
        f"pipeline = Pipeline('job').read_parquet({str(data)!r}).map(Normalize()).dedup(ExactDedup())\n")
    try:
        code = main(["submit", str(pipeline), "--address", ray_head, "--output", str(out), "--wait"])
        captured = capsys.readouterr()
        printed = captured.out
        assert code == 0, f"{printed}\n{captured.err}"
        job_id = printed.split()[2]
        assert "31 rows in -> 30 kept" in printed  # the job's own log, printed by --wait
        assert pq.read_table(out).num_rows == 30
        assert (out / "_manifest.json").exists()

        assert main(["jobs", "status", job_id, "--address", ray_head]) == 0
        assert capsys.readouterr().out.strip() == "SUCCEEDED"
        assert main(["jobs", "logs", job_id, "--address", ray_head]) == 0
        assert "rejected" in capsys.readouterr().out
    finally:
        pipeline.unlink()


def test_unknown_job_and_wrong_token_give_one_line_errors(ray_head, capsys):
    assert main(["jobs", "status", "raysubmit_doesnotexist", "--address", ray_head]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: job raysubmit_doesnotexist") and "\n" not in err
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token")
    wrong = subprocess.run([sys.executable, "-m", "pipelines.cli", "jobs", "status", "x", "--address", ray_head],
                           capture_output=True, text=True, env=env, cwd=REPO)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "token" in wrong.stderr.lower(), wrong.stderr


def test_run_with_address_joins_the_running_cluster(ray_head, tmp_path):
    data = write_docs(tmp_path / "in", sample_rows(12), files=2)
    pipeline = tmp_path / "pipe.py"
    pipeline.write_text("from operators import Normalize\nfrom pipelines import Pipeline\n"
                        f"pipeline = Pipeline('joined').read_parquet({str(data)!r}).map(Normalize())\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(pipeline), "--output", str(out),
                           "--address", "127.0.0.1:6390"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["ray"]["address"] == "127.0.0.1:6390"
    assert manifest["output"]["rows"] == 12
