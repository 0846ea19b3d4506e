"""Start and stop a local OpenAI-compatible vLLM server (``python -m vllm.entrypoints.openai.api_server``).

``start_server`` binds 127.0.0.1 unless given another ``host``, applies the CPU defaults (fp32, eager, a 1 GiB
KV cache), takes the API key from the environment variable it is told (default ``DISTILLERY_TEACHER_API_KEY``;
the key never appears on the command line, so not in ``ps`` either: vLLM reads ``VLLM_API_KEY``) and refuses to
start without one unless ``no_auth=True`` (``ServerConfigError``, before anything is spawned), logs to a file,
and waits until ``/v1/models`` answers (about 60 s for SmolLM2 on 2 cores). ``VLLMServer.stop`` terminates the
process group it started, and only that.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from teachers.engines import CPU_DTYPE, CPU_KV_CACHE_GIB, resolve_dtype
from teachers.http import SERVE_KEY_ENV, opener


class ServerError(RuntimeError):
    """The server did not come up; the message names its log file and last lines."""


class ServerConfigError(ValueError):
    """The server was asked to start in a way it refuses (no API key without ``no_auth``)."""


def server_key(api_key_env: str | None = SERVE_KEY_ENV, no_auth: bool = False) -> str | None:
    """The key clients must send (None with ``no_auth``); ``ServerConfigError`` naming the variable when unset."""
    if no_auth:
        return None
    key = os.environ.get(api_key_env) if api_key_env else None
    if not key:
        raise ServerConfigError(f"no API key for the teacher server: set ${api_key_env or SERVE_KEY_ENV} to the key "
                                "clients must send, or pass --no-auth (no_auth=True) to serve without one")
    return key


def server_command(model: str | Path, host: str, port: int, served_name: str, max_model_len: int, dtype: str,
                   max_num_seqs: int) -> list[str]:
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", served_name, "--host", host, "--port", str(port), "--dtype", dtype,
            "--max-model-len", str(max_model_len), "--enforce-eager", "--max-num-seqs", str(max_num_seqs),
            "--max-logprobs", "20"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VLLMServer:
    process: subprocess.Popen
    url: str
    served_name: str
    log: Path

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(model: str | Path, log: str | Path, port: int | None = None, served_name: str = "teacher",
                 api_key_env: str | None = SERVE_KEY_ENV, max_model_len: int = 2048,
                 dtype: str = CPU_DTYPE, max_num_seqs: int = 64, startup_timeout: float = 600.0,
                 host: str = "127.0.0.1", no_auth: bool = False) -> VLLMServer:
    key = server_key(api_key_env, no_auth)
    port = port or free_port()
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    env.pop("VLLM_API_KEY", None)
    if key:
        env["VLLM_API_KEY"] = key
    command = server_command(model, host, port, served_name, max_model_len, resolve_dtype(dtype), max_num_seqs)
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # where this process asks if it is up
    server = VLLMServer(process, f"http://{f'[{local}]' if ':' in local else local}:{port}", served_name, log)
    probe = opener(server.url)  # no redirects, no proxy for loopback
    deadline = time.monotonic() + startup_timeout
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"vLLM server exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            request = urllib.request.Request(f"{server.url}/v1/models", headers=headers)
            with probe.open(request, timeout=5) as reply:
                if served_name in json.dumps(json.loads(reply.read())):
                    return server
        except OSError:
            pass
        time.sleep(2)
    server.stop()
    raise ServerError(f"vLLM server not ready after {startup_timeout:.0f} s; see {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""
