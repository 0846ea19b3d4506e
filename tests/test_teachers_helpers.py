"""Helpers shared by the teachers tests (no tests here): a real HTTP server on loopback that speaks the
OpenAI completions protocol with scripted answers and faults, and a scripted in-process engine."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from teachers.documents import GroundedQA
from teachers.engines import Engine, Response, Sample, Sampling, Teacher


class StubServer:
    """``respond(body, n)`` -> (status, payload dict or text, delay seconds); n counts POST requests from 1.
    ``GET /v1/models`` lists ``models`` (what the HTTP engine keys its cache by); ``gets`` records each GET's
    (path, Authorization header)."""

    def __init__(self, respond: Callable[[dict, int], tuple[int, object, float]]) -> None:
        self.respond = respond
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.models: list[dict] = [{"id": "stub-teacher", "object": "model", "owned_by": "test", "root": "stub-weights",
                                    "created": time.time()}]
        self.gets: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    n = len(server.bodies)
                status, payload, delay = server.respond(body, n)
                if delay:
                    time.sleep(delay)
                data = (json.dumps(payload) if isinstance(payload, dict) else str(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def do_GET(self):  # noqa: N802
                with server.lock:
                    server.gets.append((self.path, self.headers.get("Authorization")))
                found = self.path == "/v1/models"
                data = json.dumps({"object": "list", "data": server.models} if found else {"error": "no"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.bodies)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(body: dict, *texts: str, finish: str = "stop") -> dict:
    """A reply to ``body`` in the protocol it used (chat or plain completions)."""
    if "messages" in body:
        return {"id": "x", "object": "chat.completion", "model": "stub",
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
                            for i, t in enumerate(texts)]}
    return {"id": "x", "object": "text_completion", "model": "stub",
            "choices": [{"index": i, "text": t, "finish_reason": finish} for i, t in enumerate(texts)]}


def prompt_text(body: dict) -> str:
    if "messages" in body:
        return "\n".join(m["content"] for m in body["messages"])
    return str(body.get("prompt"))


def stub_teacher(url: str, **kw) -> Teacher:
    """An openai-engine teacher for the stub server (chat rendered by the server: no local tokenizer)."""
    return Teacher(model="stub-teacher", engine="openai", base_url=url, revision="r1",
                   **{"max_retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, **kw})


class ScriptedEngine(Engine):
    """Answers from ``answer(prompt_text, sampling, k)`` (k: sample index); counts requests like a real engine."""

    def __init__(self, teacher: Teacher, answer: Callable[[str, Sampling, int], str], tokenizer=None) -> None:
        super().__init__(teacher)
        self.answer = answer
        self.tokenizer = tokenizer
        self.prompts: list = []

    def render(self, messages):
        if self.tokenizer is not None:
            return super().render(messages)
        return "\n".join(f"{role}: {content}" for role, content in messages)

    def generate(self, prompts, sampling, on_response=None):
        self.requests += len(prompts)
        self.prompts.extend(prompts)
        out = []
        for i, p in enumerate(prompts):
            r = Response(samples=[Sample(text=self.answer(p, sampling, k), finish_reason="stop")
                                  for k in range(sampling.n)])
            if on_response:
                on_response(i, r)
            out.append(r)
        return out


@dataclass(frozen=True)
class CrashOnceQA(GroundedQA):
    """Kills its own process (SIGKILL) on the first batch it ever sees: the Ray actor really dies."""

    marker: str = ""

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), 9)
        return super().__call__(batch)
