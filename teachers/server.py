"""Start and stop a local OpenAI-compatible vLLM server (``python -m vllm.entrypoints.openai.api_server``).

``start_server`` binds 127.0.0.1 only, applies the CPU defaults (fp32, eager, a 1 GiB KV cache), takes the API
key from the environment variable it is told (the key never appears on the command line, so not in ``ps``
either: vLLM reads ``VLLM_API_KEY``), logs to a file, and waits until ``/v1/models`` answers (about 60 s for
SmolLM2 on 2 cores). ``VLLMServer.stop`` terminates the process group it started, and only that.
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

from teachers.engines import CPU_DTYPE, CPU_KV_CACHE_GIB


class ServerError(RuntimeError):
    """The server did not come up; the message names its log file and last lines."""


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
                 api_key_env: str | None = "DISTILLERY_TEACHER_API_KEY", max_model_len: int = 2048,
                 dtype: str = CPU_DTYPE, max_num_seqs: int = 64, startup_timeout: float = 600.0) -> VLLMServer:
    port = port or free_port()
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    key = os.environ.get(api_key_env) if api_key_env else None
    env.pop("VLLM_API_KEY", None)
    if key:
        env["VLLM_API_KEY"] = key
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype,
               "--max-model-len", str(max_model_len), "--enforce-eager", "--max-num-seqs", str(max_num_seqs),
               "--max-logprobs", "20"]
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = VLLMServer(process, f"http://127.0.0.1:{port}", served_name, log)
    deadline = time.monotonic() + startup_timeout
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"vLLM server exited with {process.returncode}; see {log}:\n{_tail(log)}")
        try:
            request = urllib.request.Request(f"{server.url}/v1/models", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as reply:
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
