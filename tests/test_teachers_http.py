"""The OpenAI-compatible engine against a real HTTP server on loopback that answers, fails (500, 429, 400),
stalls or is down; and teacher stages run by the pipeline runner on Ray (rejects, accounting, the API key,
a crashed actor, resume after a kill)."""
from __future__ import annotations

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
