"""Submitting pipelines to a Ray cluster as Ray jobs, and following them (status, logs, stop).

A pipeline file inside this repository runs with the repository as the job's working directory. A file
anywhere else runs with its own folder as the working directory (so modules beside it import as they do
locally) and this project's packages uploaded beside it (``py_modules``). Either way only code travels: data,
outputs, virtual environments and Parquet files are excluded. The entrypoint is
``python -m pipelines.cli run FILE``. Paths the job reads and writes are seen from the cluster, so use
absolute paths on shared storage. With token auth on (``RAY_AUTH_MODE=token``), Ray's SDK sends ``RAY_AUTH_TOKEN`` from the environment; it is never logged.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path

from pipelines.errors import DistilleryError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = [".git", ".venv", "venv", "data", "out", "benchmarks/_work", "**/__pycache__", "*.parquet",
            "*.egg-info", ".pytest_cache"]
PACKAGES = ("operators", "pipelines", "teachers", "curricula", "students")  # what a job outside the repo gets
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
AGENT_WAIT_S = 120


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    if not address.startswith(("http://", "https://")):
        raise DistilleryError(f"--address {address!r}: give the dashboard's HTTP address, e.g. http://HEAD:8265")
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # the SDK raises ConnectionError/RuntimeError with long messages
        raise DistilleryError(f"cannot reach the Ray job server at {address}: {str(exc).splitlines()[0]}") from exc


def submit(pipeline_file: str, address: str, output: str | None = None, resume: bool = False,
           settings: list[str] = ()) -> str:
    """Submit a pipeline file (in this project or anywhere else) as a Ray job; return the job id.
    ``settings`` (``NAME=VALUE``) are passed to a workflow file's ``distillery run --set``."""
    file = Path(pipeline_file).resolve()
    if not file.is_file():
        raise DistilleryError(f"{pipeline_file}: no such pipeline file")
    runtime_env = job_runtime_env(file)
    command = ["python", "-m", "pipelines.cli", "run", str(file.relative_to(runtime_env["working_dir"]))]
    if output:
        command += ["--output", output]
    if resume:
        command.append("--resume")
    for item in settings:
        command += ["--set", item]
    client = _client(address)
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(entrypoint=shlex.join(command),
                                     runtime_env=runtime_env)
        except (RuntimeError, ValueError) as exc:  # ValueError: e.g. a working directory over Ray's size limit
            # A head that has just started answers before its job agent is up ("No available agent to
            # submit job, please try again later"): wait for it rather than fail.
            if "try again later" not in str(exc) or time.monotonic() > deadline:
                raise DistilleryError(f"job submission to {address} failed: {str(exc).splitlines()[0]}") from exc
            time.sleep(2)


def job_runtime_env(file: Path) -> dict:
    """The job's runtime environment for pipeline file ``file`` (resolved): see the module docstring."""
    if PROJECT_ROOT in file.parents:
        return {"working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES}
    return {"working_dir": str(file.parent), "excludes": EXCLUDES,
            "py_modules": [str(PROJECT_ROOT / name) for name in PACKAGES]}


def _ask(address: str, job_id: str, method: str):
    try:
        return getattr(_client(address), method)(job_id)
    except RuntimeError as exc:  # e.g. "Job X does not exist"
        raise DistilleryError(f"job {job_id}: {str(exc).splitlines()[0]}") from exc


def status(address: str, job_id: str) -> str:
    return str(_ask(address, job_id, "get_job_status").value)


def logs(address: str, job_id: str) -> str:
    return _ask(address, job_id, "get_job_logs")


def stop(address: str, job_id: str) -> bool:
    return _ask(address, job_id, "stop_job")


def wait(address: str, job_id: str, timeout_s: float = 3600, poll_s: float = 2.0) -> str:
    """Poll until the job ends; return its final status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = status(address, job_id)
        if state in TERMINAL:
            return state
        time.sleep(poll_s)
    raise DistilleryError(f"job {job_id}: still running after {timeout_s:.0f} s")
