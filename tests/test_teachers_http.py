"""The OpenAI-compatible engine against a real HTTP server on loopback that answers, fails (500, 429, 400),
stalls or is down; and teacher stages run by the pipeline runner on Ray (rejects, accounting, the API key,
a crashed actor, resume after a kill)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPO, write_docs
from teachers.engines import Sampling
from teachers.server import free_port
from test_teachers_helpers import StubServer, completion, prompt_text, stub_teacher

KEY = "sk-distillery-test-4f1c9a77e2"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("DISTILLERY_TEACHER_API_KEY", KEY)
    return KEY


def engine_for(server_url, **kw):
    return stub_teacher(server_url, **kw).build()


def test_retries_5xx_then_succeeds_with_the_key_in_the_header(api_key):
    server = StubServer(lambda body, n: (500, {"error": "busy"}, 0) if n <= 2 else (200, completion(body, "ok"), 0))
    try:
        engine = engine_for(server.url)
        [response] = engine.generate([(("user", "hi"),)], Sampling(max_tokens=4))
        assert response.error is None and response.samples[0].text == "ok"
        assert (server.count, engine.attempts, engine.requests) == (3, 3, 1)
        assert server.auth == [f"Bearer {KEY}"] * 3
        assert server.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]
    finally:
        server.stop()


def test_429_and_5xx_exhaust_retries_into_reasons_and_the_key_is_scrubbed(api_key):
    server = StubServer(lambda body, n: (429, {"error": "slow down"}, 0) if "a" in prompt_text(body)
                        else (503, f"overloaded, your key {KEY} is fine", 0))
    try:
        engine = engine_for(server.url, max_retries=2)
        r429, r503 = engine.generate([(("user", "a"),), (("user", "b"),)], Sampling(max_tokens=4))
        assert r429.error == 'HTTP 429: {"error": "slow down"} (after 3 attempts)'
        assert r503.error == "HTTP 503: overloaded, your key *** is fine (after 3 attempts)"
        assert server.count == 6
    finally:
        server.stop()


def test_400_is_not_retried():
    server = StubServer(lambda body, n: (400, {"error": "bad request"}, 0))
    try:
        [r] = engine_for(server.url).generate([(("user", "x"),)], Sampling(max_tokens=4))
        assert r.error == 'server refused the request: HTTP 400: {"error": "bad request"}' and server.count == 1
    finally:
        server.stop()


def test_server_down_and_timeouts_become_errors():
    port = free_port()  # nothing listens there
    [down] = engine_for(f"http://127.0.0.1:{port}", max_retries=1).generate([(("user", "x"),)], Sampling(max_tokens=4))
    assert down.error.startswith(f"cannot reach http://127.0.0.1:{port}: ") and down.error.endswith("(after 2 attempts)")
    server = StubServer(lambda body, n: (200, completion(body, "late"), 1.5))
    try:
        [slow] = engine_for(server.url, max_retries=1, timeout_s=0.3).generate([(("user", "x"),)], Sampling(max_tokens=4))
        assert slow.error.startswith("timed out after 0.3 s") and slow.error.endswith("(after 2 attempts)")
        assert server.count == 2
    finally:
        server.stop()


def test_concurrency_is_bounded():
    active, peak, lock = [0], [0], threading.Lock()

    def respond(body, n):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return 200, completion(body, prompt_text(body)), 0

    server = StubServer(respond)
    try:
        engine = engine_for(server.url, concurrency=2)
        out = engine.generate([(("user", str(i)),) for i in range(6)], Sampling(max_tokens=4))
        assert [r.samples[0].text for r in out] == [str(i) for i in range(6)]  # in prompt order
        assert peak[0] == 2
    finally:
        server.stop()


def _qa_server():
    """Answers grounded QA from the document's first words; documents saying 'explode' always get a 500."""
    def respond(body, n):
        text = prompt_text(body)
        if "explode" in text:
            return 500, {"error": "internal"}, 0
        doc = text.split("Document:\n", 1)[-1].split("\n\n")[0]
        words = doc.split()[:4]
        return 200, completion(body, json.dumps({"question": f"What about {words[0]}?", "answer": " ".join(words)})), 0
    return StubServer(respond)


QA_DOCS = [{"id": f"doc-{i}", "text": t, "source": "test"} for i, t in enumerate([
    "Lighthouses guide ships along dangerous coasts at night.", "Bees make honey from the nectar of flowers.",
    "This document will explode the server every time.", "Glaciers carve valleys over thousands of years.",
    "Copper conducts electricity and heat very well."])]


def _files_text(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_pipeline_rejects_failed_requests_accounts_rows_and_never_writes_the_key(tmp_path, ray_local, api_key):
    from pipelines import Pipeline
    from teachers.documents import GroundedQA
    from operators import LengthFilter

    server = _qa_server()
    try:
        docs = write_docs(tmp_path / "docs", QA_DOCS)
        teacher = stub_teacher(server.url, max_retries=1)
        manifest = (Pipeline("qa").read_parquet(str(docs))
                    .generate(GroundedQA(teacher=teacher, cache_dir=str(tmp_path / "cache"), batch_size=2))
                    .filter(LengthFilter(min_chars=40))
                    .write_parquet(str(tmp_path / "out")).run())
    finally:
        server.stop()
    qa = manifest["stages"][1]
    assert (qa["name"], qa["rows_in"], qa["rows_out"], qa["rows_rejected"]) == ("grounded_qa", 5, 4, 1)
    assert qa["reject_reasons"] == {"teacher server error": 1}
    rejected = pq.read_table(tmp_path / "out" / "_rejected").to_pylist()
    assert [(r["id"], r["source_ids"], r["reason"]) for r in rejected] == \
        [("grounded_qa:doc-2", ["doc-2"], "teacher server error")]
    assert rejected[0]["detail"] == 'HTTP 500: {"error": "internal"} (after 2 attempts)'
    kept = pq.read_table(tmp_path / "out").sort_by("id").to_pylist()
    assert [r["source_ids"] for r in kept] == [["doc-0"], ["doc-1"], ["doc-3"], ["doc-4"]]
    assert all(r["teacher"] == "stub-teacher" and r["task"] == "grounded_qa" for r in kept)
    assert KEY.encode() not in _files_text(tmp_path)  # outputs, rejects, manifest, cache
    assert "api_key_env" in json.dumps(qa["config"]) and KEY not in json.dumps(manifest)


def test_several_samples_per_document_become_rows_and_sources_balance(tmp_path, ray_local):
    """``sampling.n = 3``: each document gives three generated rows (kept or rejected with a reason); the stage
    accounts for source rows (4 with a kept pair + 1 with every output rejected = 5 in) and the next stage
    receives exactly the kept generated rows."""
    from operators import LengthFilter
    from pipelines import Pipeline
    from teachers.documents import GroundedQA

    def respond(body, n):
        text = prompt_text(body)
        if "explode" in text:
            return 500, {"error": "internal"}, 0
        words = text.split("Document:\n", 1)[-1].split("\n\n")[0].split()
        good = [json.dumps({"question": f"What about {w}?", "answer": " ".join(words[:k])})
                for w, k in ((words[0], 4), (words[1], 3))]
        return 200, completion(body, good[0], "not JSON at all", good[1]), 0

    server = StubServer(respond)
    try:
        docs = write_docs(tmp_path / "docs", QA_DOCS)
        teacher = stub_teacher(server.url, max_retries=0)
        manifest = (Pipeline("qa-n").read_parquet(str(docs))
                    .generate(GroundedQA(teacher=teacher, cache_dir=None, batch_size=2,
                                         sampling=Sampling(n=3, temperature=0.7, max_tokens=64)))
                    .filter(LengthFilter(min_chars=1))
                    .write_parquet(str(tmp_path / "out")).run())
    finally:
        server.stop()
    qa, length = manifest["stages"][1], manifest["stages"][2]
    assert (qa["kind"], qa["rows_in"], qa["sources_kept"], qa["sources_rejected"]) == ("generate", 5, 4, 1)
    assert (qa["rows_out"], qa["rows_rejected"]) == (8, 5)
    assert qa["reject_reasons"] == {"malformed JSON output": 4, "teacher server error": 1}
    assert length["rows_in"] == 8 and manifest["output"]["rows"] == 8
    kept = pq.read_table(tmp_path / "out").to_pylist()
    assert sorted(r["id"] for r in kept) == sorted(f"grounded_qa:doc-{i}{k}" for i in (0, 1, 3, 4) for k in ("", ":2"))
    assert all(r["source_ids"] == [r["id"].split(":")[1]] and "_source" not in r for r in kept)
    rejected = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "_rejected").to_pylist()}
    assert rejected["grounded_qa:doc-2"] == "teacher server error" and rejected["grounded_qa:doc-0:1"] == \
        "malformed JSON output"


def test_a_crashed_engine_actor_is_restarted_and_the_job_goes_on(tmp_path, ray_local):
    from pipelines import Pipeline

    from test_teachers_helpers import CrashOnceQA

    server = _qa_server()
    try:
        docs = write_docs(tmp_path / "docs", [d for d in QA_DOCS if "explode" not in d["text"]])
        marker = tmp_path / "crashed"
        manifest = (Pipeline("crash").read_parquet(str(docs))
                    .generate(CrashOnceQA(teacher=stub_teacher(server.url), cache_dir=None, marker=str(marker)))
                    .write_parquet(str(tmp_path / "out")).run())
    finally:
        server.stop()
    assert marker.exists()  # the actor really died once
    stage = manifest["stages"][1]
    assert (stage["rows_in"], stage["rows_out"], stage["rows_rejected"]) == (4, 4, 0)
    assert sorted(pq.read_table(tmp_path / "out")["id"].to_pylist()) == [f"grounded_qa:doc-{i}" for i in (0, 1, 3, 4)]


PIPELINE_FILE = '''
from pipelines import Pipeline
from teachers.documents import GroundedQA
from teachers.engines import Teacher

teacher = Teacher(model="stub-teacher", engine="openai", base_url="{url}", revision="r1", concurrency=1,
                  max_retries=0, timeout_s=600)
pipeline = (Pipeline("resume").read_parquet("{docs}")
            .generate(GroundedQA(teacher=teacher, cache_dir="{cache}", batch_size=100))
            .write_parquet("{out}"))
'''


@pytest.mark.slow
def test_rerun_after_a_kill_asks_only_for_the_missing_rows(tmp_path):
    """A real ``distillery run`` is killed (SIGKILL, whole process group) after 3 of 8 answers; the rerun sends
    exactly the 5 missing prompts to the server and the output holds all 8 rows."""
    docs = write_docs(tmp_path / "docs", [{"id": f"d{i}", "text": f"Fact number {i}: the sky is blue today {i}."}
                                          for i in range(8)])
    stall = threading.Event()

    def respond(body, n):
        if n > 3 and not stall.is_set():
            stall.set()
        if stall.is_set() and not resumed.is_set():
            time.sleep(120)  # hang: the run is killed while waiting for this answer
        doc = prompt_text(body).split("Document:\n", 1)[-1].split("\n\n")[0]
        return 200, completion(body, json.dumps({"question": "Which fact?", "answer": doc[:20]})), 0

    resumed = threading.Event()
    server = StubServer(respond)
    script = tmp_path / "pipe.py"
    script.write_text(PIPELINE_FILE.format(url=server.url, docs=docs, cache=tmp_path / "cache", out=tmp_path / "out"))
    command = [str(REPO / ".venv" / "bin" / "distillery"), "run", str(script), "--num-cpus", "2"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        first = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while server.count < 4 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
        assert server.count == 4, "the first run did not reach the 4th request"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        cached = len(list((tmp_path / "cache").rglob("*.json")))
        assert cached == 3
        resumed.set()
        before = server.count
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert server.count - before == 5
    finally:
        resumed.set()
        server.stop()
    assert sorted(pq.read_table(tmp_path / "out")["id"].to_pylist()) == [f"grounded_qa:d{i}" for i in range(8)]


def test_rephrasings_that_copy_their_seed_are_removed_against_the_seeds_index(tmp_path, ray_local):
    """Dedup against seeds reuses MinHashDedup's cross-run index: a 'rephrasing' that copies its source document is
    a near-duplicate of a seed and is rejected naming it; real rewrites are kept."""
    from conftest import sample_rows
    from operators import MinHashDedup
    from pipelines import Pipeline
    from teachers.documents import Rephrase

    rows = [r for r in sample_rows(400) if len(r["text"].split()) >= 100][:6]
    seeds = write_docs(tmp_path / "seeds", rows)
    Pipeline("seeds").read_parquet(str(seeds)).dedup(MinHashDedup()).run(output=str(tmp_path / "seeds-out"))
    copies = {rows[0]["id"], rows[1]["id"]}

    def respond(body, n):
        doc = prompt_text(body).split("Text:\n", 1)[1]
        source = next(r for r in rows if r["text"] == doc)
        if source["id"] in copies:
            return 200, completion(body, doc), 0  # a lazy 'rephrasing': the source itself
        words = doc.split()
        return 200, completion(body, " ".join(words[::-1])), 0  # a different text (no shared 5-grams)

    server = StubServer(respond)
    try:
        manifest = (Pipeline("rephrase").read_parquet(str(seeds))
                    .generate(Rephrase(teacher=stub_teacher(server.url), cache_dir=None, max_doc_chars=100_000))
                    .dedup(MinHashDedup(reference=(str(tmp_path / "seeds-out"),)))
                    .write_parquet(str(tmp_path / "out")).run())
    finally:
        server.stop()
    assert manifest["stages"][2]["plan"]["duplicates_of_reference"] == 2
    kept = sorted(pq.read_table(tmp_path / "out")["id"].to_pylist())
    assert kept == sorted(f"rephrase:{r['id']}" for r in rows[2:])
    details = dict(zip(*pq.read_table(tmp_path / "out" / "_rejected").select(["id", "detail"]).to_pydict().values()))
    assert details == {f"rephrase:{i}": f"near-duplicate of {i} in {tmp_path / 'seeds-out'}" for i in copies}


# -- secrets: which key goes where (teachers.http's docstring states the rules) --------------------------------

OTHER_KEY = "sk-openai-env-only-77d0e5"


def test_a_key_only_in_openai_api_key_is_never_sent_unless_its_variable_is_named(monkeypatch):
    monkeypatch.delenv("DISTILLERY_TEACHER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)
    server = StubServer(lambda body, n: (200, completion(body, "ok"), 0))
    try:
        [plain] = engine_for(server.url).generate([(("user", "hi"),)], Sampling(max_tokens=4))
        named = engine_for(server.url, api_key_env="OPENAI_API_KEY")
        [sent] = named.generate([(("user", "hi"),)], Sampling(max_tokens=4))
        assert plain.error is None and sent.error is None
        assert server.auth == [None, f"Bearer {OTHER_KEY}"]  # only once the user named the variable
    finally:
        server.stop()


@pytest.mark.parametrize("url, named, expected", [
    ("http://127.0.0.1:8000", None, "DISTILLERY_TEACHER_API_KEY"),
    ("http://127.0.0.2:8000/v1", None, "DISTILLERY_TEACHER_API_KEY"),
    ("http://localhost:8000", None, "DISTILLERY_TEACHER_API_KEY"),
    ("http://[::1]:8000", None, "DISTILLERY_TEACHER_API_KEY"),
    ("https://teacher.invalid", None, None),            # the serve variable stays on this machine
    ("http://10.0.0.1:8000", None, None),               # no key: plain http is allowed
    ("https://teacher.invalid", "MY_TEACHER_KEY", "MY_TEACHER_KEY"),
])
def test_the_key_variable_for_each_url(monkeypatch, url, named, expected):
    from teachers.http import key_env

    monkeypatch.setenv("DISTILLERY_TEACHER_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-mine")
    teacher = stub_teacher(url, api_key_env=named)
    assert key_env(teacher) == expected
    assert teacher.build()._key() == {None: None, "MY_TEACHER_KEY": "sk-mine", "DISTILLERY_TEACHER_API_KEY": KEY}[expected]


@pytest.fixture
def no_connections(monkeypatch):
    """A tripwire, not a mock of a fault: any socket connection attempted during the test is recorded and
    refused, so a test proves its error came before a request (nothing may connect to a non-loopback host)."""
    import socket

    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_a_key_over_plain_http_to_another_host_is_refused_before_any_connection(monkeypatch, no_connections):
    from teachers.engines import Teacher

    monkeypatch.setenv("MY_TEACHER_KEY", "sk-mine")
    with pytest.raises(ValueError) as refused:
        Teacher(model="m", engine="openai", base_url="http://10.0.0.1:8000", api_key_env="MY_TEACHER_KEY")
    assert str(refused.value) == (
        "Teacher.base_url: http://10.0.0.1:8000 is plain http to a non-loopback host, so the API key in "
        "$MY_TEACHER_KEY would travel unencrypted: use https://, or pass allow_insecure_http=True to send it anyway")
    with pytest.raises(ValueError, match=r"^Teacher.base_url: 'ftp://10.0.0.1' is not an http:// or https:// URL"):
        Teacher(model="m", engine="openai", base_url="ftp://10.0.0.1")
    allowed = Teacher(model="m", engine="openai", base_url="http://10.0.0.1:8000", api_key_env="MY_TEACHER_KEY",
                      allow_insecure_http=True)
    assert allowed.build()._key() == "sk-mine"  # the user said so explicitly; building connects to nothing
    assert no_connections == []


class Redirector:
    """A loopback server that answers every request with ``code`` and Location: ``target`` + the path; it
    records the Authorization header of each request it gets."""

    def __init__(self, code: int, target: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self):
                if self.headers.get("Content-Length"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                outer.auth.append(self.headers.get("Authorization"))
                self.send_response(code)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("code", [302, 307])
def test_a_redirect_to_another_origin_never_carries_the_key(api_key, code):
    from teachers.http import TeacherServerError

    other = StubServer(lambda body, n: (200, completion(body, "stolen"), 0))  # another port: another origin
    redirector = Redirector(code, other.url)
    try:
        engine = engine_for(redirector.url)
        [response] = engine.generate([(("user", "hi"),)], Sampling(max_tokens=4))
        assert response.error == (
            f"server redirected to {other.url}/v1/chat/completions (HTTP {code}): redirects are not followed, so "
            "that no API key reaches another host; set Teacher.base_url to the server's own address")
        with pytest.raises(TeacherServerError) as failed:
            engine.identity()
        assert str(failed.value).startswith(f"cannot tell which model {redirector.url} serves (GET /v1/models): "
                                            f"server redirected to {other.url}/v1/models (HTTP {code})")
        assert redirector.auth == [f"Bearer {KEY}"] * 2  # the configured host got the key; nothing followed
        assert other.auth == [] and other.gets == []
    finally:
        redirector.stop()
        other.stop()


def _distillery(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "distillery"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_teachers_serve_refuses_to_start_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISTILLERY_TEACHER_API_KEY"}
    env["OPENAI_API_KEY"] = OTHER_KEY  # never a substitute
    log = tmp_path / "server.log"
    done = _distillery("teachers", "serve", "--log", str(log), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("error: no API key for the teacher server: set $DISTILLERY_TEACHER_API_KEY to the key "
                           "clients must send, or pass --no-auth (no_auth=True) to serve without one\n")
    empty = _distillery("teachers", "serve", "--api-key-env", "MY_SERVE_KEY", "--log", str(log),
                        env={**env, "MY_SERVE_KEY": ""})
    assert empty.returncode == 2 and empty.stderr.startswith("error: no API key for the teacher server: set "
                                                             "$MY_SERVE_KEY to the key clients must send")
    assert not log.exists()  # vLLM was never started (it logs there from its first line)


def test_serve_binds_loopback_without_auth_unless_told_otherwise(monkeypatch):
    from pipelines.cli import _parser
    from teachers.server import server_command, server_key

    monkeypatch.delenv("DISTILLERY_TEACHER_API_KEY", raising=False)
    args = _parser().parse_args(["teachers", "serve", "--no-auth"])
    assert server_key(args.api_key_env, args.no_auth) is None
    command = server_command("m", args.host, args.port, args.served_name, args.max_model_len, "float32", 4)
    assert command[command.index("--host") + 1] == "127.0.0.1" and "--api-key" not in command
    told = _parser().parse_args(["teachers", "serve", "--no-auth", "--host", "0.0.0.0"])
    assert told.host == "0.0.0.0"


# -- the cache is keyed by the served model, not the URL or the name --------------------------------------------

QA_FACTS = [{"id": f"f{i}", "text": t, "source": "test"} for i, t in enumerate([
    "Lighthouses guide ships along dangerous coasts at night.", "Bees make honey from the nectar of flowers."])]


def _model_server():
    """Answers grounded QA naming the weights it currently serves (its /v1/models entry's root)."""
    server = StubServer(lambda body, n: (200, completion(body, json.dumps({
        "question": f"What does {next(m['root'] for m in server.models if m['id'] == body['model'])} say?",
        "answer": " ".join(prompt_text(body).split("Document:\n", 1)[-1].split()[:4])})), 0))
    return server


def _ask(teacher, cache):
    import pyarrow as pa

    from teachers.documents import GroundedQA

    out = GroundedQA(teacher=teacher, cache_dir=str(cache))(pa.Table.from_pylist(QA_FACTS))
    return [r["question"] for r in out.to_pylist()], out["teacher_revision"].to_pylist()


def test_another_model_behind_the_same_url_and_name_never_gets_cached_answers(tmp_path, api_key):
    server = _model_server()
    try:
        teacher = stub_teacher(server.url)  # name "stub-teacher", revision "r1": the same config every time
        server.models = [{"id": "stub-teacher", "object": "model", "root": "/models/A", "created": 1}]
        a_questions, a_revisions = _ask(teacher, tmp_path / "cache")
        assert a_questions == ["What does /models/A say?"] * 2 and server.count == 2
        server.models = [{"id": "stub-teacher", "object": "model", "root": "/models/B", "created": 2}]
        b_questions, b_revisions = _ask(teacher, tmp_path / "cache")
        assert b_questions == ["What does /models/B say?"] * 2 and server.count == 4  # nothing of A reused
        assert a_revisions[0] != b_revisions[0] and all(r.startswith("r1+") for r in a_revisions + b_revisions)
        server.models = [{"id": "stub-teacher", "object": "model", "root": "/models/A", "created": 3}]
        assert _ask(teacher, tmp_path / "cache") == (a_questions, a_revisions) and server.count == 4  # A's cache
        assert [auth for _, auth in server.gets] == [f"Bearer {KEY}"] * 3
    finally:
        server.stop()


def test_a_model_id_the_server_does_not_serve_is_an_error_naming_what_it_serves(tmp_path, api_key):
    server = _model_server()
    try:
        server.models = [{"id": "model-a", "object": "model", "root": "/models/A"},
                         {"id": "model-b", "object": "model", "root": "/models/B"}]
        a, _ = _ask(dataclasses.replace(stub_teacher(server.url), model="model-a"), tmp_path / "cache")
        b, _ = _ask(dataclasses.replace(stub_teacher(server.url), model="model-b"), tmp_path / "cache")
        assert (a, b, server.count) == (["What does /models/A say?"] * 2, ["What does /models/B say?"] * 2, 4)
        with pytest.raises(ValueError) as missing:
            _ask(stub_teacher(server.url), tmp_path / "cache")
        assert str(missing.value) == (f"Teacher.model: 'stub-teacher' is not served at {server.url} "
                                      "(it serves 'model-a', 'model-b')")
        assert server.count == 4
    finally:
        server.stop()
