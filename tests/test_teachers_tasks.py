"""Generation tasks, parsing, cache and filters with a scripted engine (fast). The real engine: test_teachers_vllm."""
from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from teachers.cache import cache_key
from teachers.diversity import RougeNovelty, diversity_report, rouge_l
from teachers.distill import LogitDistill
from teachers.documents import GroundedQA, Rephrase
from teachers.engines import Response, Sample, Sampling, context_error
from teachers.instruct import EvolInstruct, SelfInstruct
from teachers.judge import JudgeScore
from teachers.preference import PreferencePairs
from test_teachers_helpers import ScriptedEngine, stub_teacher

TEACHER = stub_teacher("http://127.0.0.1:9")  # never contacted: these tests attach a scripted engine


def table(rows):
    return pa.Table.from_pylist(rows)


def outcome(out: pa.Table) -> dict[str, str | None]:
    return dict(zip(out["id"].to_pylist(), out["_reason"].to_pylist()))


def qa_answer(prompt, sampling, k):
    if "Paris is the capital" in prompt:
        return '{"question": "What is the capital of France?", "answer": "Paris is the capital of France."}'
    if "bananas" in prompt:
        return "Sure! Bananas are yellow."
    if "volcano" in prompt:
        return '```json\n{"question": "What erupted?", "answer": "A dragon from Mars breathed fire."}\n```'
    return '{"question": "What is it?"}'


DOCS = [{"id": "d1", "text": "Paris is the capital of France and its largest city.", "source": "geo"},
        {"id": "d2", "text": "Some bananas grow in tropical places.", "source": "food"},
        {"id": "d3", "text": "The volcano erupted in 1980 and covered the valley in ash.", "source": "geo"},
        {"id": "d4", "text": "An unrelated note.", "source": "misc"}]


def test_grounded_qa_rows_rejects_and_provenance(tmp_path):
    op = GroundedQA(teacher=TEACHER, cache_dir=str(tmp_path / "cache")).attach(ScriptedEngine(TEACHER, qa_answer))
    out = op(table(DOCS))
    assert outcome(out) == {"grounded_qa:d1": None, "grounded_qa:d2": "malformed JSON output",
                            "grounded_qa:d3": "answer not grounded in the document",
                            "grounded_qa:d4": "JSON output lacks a valid 'answer'"}
    kept = out.to_pylist()[0]
    assert kept["question"] == "What is the capital of France?"
    assert kept["text"] == "Question: What is the capital of France?\nAnswer: Paris is the capital of France."
    assert kept["source_ids"] == ["d1"] and kept["source_text"] == DOCS[0]["text"] and kept["source"] == "geo"
    assert (kept["teacher"], kept["teacher_revision"], kept["task"], kept["template_version"], kept["seed"]) == \
        ("stub-teacher", "r1", "grounded_qa", "qa-1", 0)
    assert json.loads(kept["sampling"])["max_tokens"] == 256 and kept["generated_at"].endswith("+00:00")
    assert out.column("_detail").to_pylist()[2].startswith("0.")  # the grounding share is the detail
    json.dumps(op.config())  # the manifest records it


def test_cache_resumes_with_only_the_missing_rows(tmp_path):
    cache = str(tmp_path / "cache")
    first = ScriptedEngine(TEACHER, qa_answer)
    out1 = GroundedQA(teacher=TEACHER, cache_dir=cache).attach(first)(table(DOCS[:2]))
    assert first.requests == 2
    again = ScriptedEngine(TEACHER, qa_answer)  # a new process after a kill: a new engine, the same cache
    out2 = GroundedQA(teacher=TEACHER, cache_dir=cache).attach(again)(table(DOCS))
    assert again.requests == 2  # d3, d4 only
    assert out2.slice(0, 2).to_pylist() == out1.to_pylist()  # cached rows identical, generation time included
    reseeded = ScriptedEngine(TEACHER, qa_answer)
    GroundedQA(teacher=TEACHER, cache_dir=cache, sampling=Sampling(seed=1)).attach(reseeded)(table(DOCS))
    assert reseeded.requests == 4


def test_cache_key_changes_with_every_component():
    identity, sampling = {"model": "m", "revision": "r"}, Sampling().to_dict()
    base = cache_key(identity, "task", "v1", "prompt", sampling)
    assert base == cache_key(dict(identity), "task", "v1", "prompt", Sampling().to_dict())
    variants = [cache_key({"model": "m2", "revision": "r"}, "task", "v1", "prompt", sampling),
                cache_key({"model": "m", "revision": "r2"}, "task", "v1", "prompt", sampling),
                cache_key(identity, "task2", "v1", "prompt", sampling),
                cache_key(identity, "task", "v2", "prompt", sampling),
                cache_key(identity, "task", "v1", "prompt!", sampling),
                cache_key(identity, "task", "v1", "prompt", Sampling(seed=7).to_dict()),
                cache_key(identity, "task", "v1", "prompt", Sampling(temperature=0.5).to_dict())]
    assert base not in variants and len(set(variants)) == len(variants)


def test_failed_responses_are_rejects_and_not_cached(tmp_path):
    class TooLong(ScriptedEngine):
        def generate(self, prompts, sampling, on_response=None):
            self.requests += len(prompts)
            out = [Response.failed(context_error(900, 16, 512)) if "volcano" in p else
                   Response(samples=[Sample(qa_answer(p, sampling, 0), finish_reason="stop")]) for p in prompts]
            for i, r in enumerate(out):
                on_response(i, r)
            return out

    cache = str(tmp_path / "cache")
    out = GroundedQA(teacher=TEACHER, cache_dir=cache).attach(TooLong(TEACHER, qa_answer))(table(DOCS[:3]))
    assert outcome(out)["grounded_qa:d3"] == "prompt longer than the context"
    assert out["_detail"].to_pylist()[2] == "prompt longer than the context: 900 prompt tokens + 16 to generate > max_model_len 512"
    assert outcome(out)["grounded_qa:d1"] is None  # the rest of the batch went on
    rerun = TooLong(TEACHER, qa_answer)
    GroundedQA(teacher=TEACHER, cache_dir=cache).attach(rerun)(table(DOCS[:3]))
    assert rerun.requests == 1  # only the failed prompt is asked again


def test_rephrase_styles_are_stable_and_truncation_is_a_reject(tmp_path):
    def answer(prompt, sampling, k):
        return "Encyclopedic text." if "encyclopedia" in prompt else "Q: what? A: that."

    engine = ScriptedEngine(TEACHER, answer)
    op = Rephrase(teacher=TEACHER, cache_dir=None).attach(engine)
    out = op(table(DOCS))
    styles = out["style"].to_pylist()
    assert set(styles) == {"encyclopedic", "qa"}  # both styles occur on these 4 ids (hash of id and seed)
    assert styles == [op.style_of(d) for d in DOCS] == Rephrase(teacher=TEACHER, cache_dir=None).attach(engine)(
        table(DOCS[::-1]))["style"].to_pylist()[::-1]
    assert [t for t, s in zip(out["text"].to_pylist(), styles)] == \
        ["Encyclopedic text." if s == "encyclopedic" else "Q: what? A: that." for s in styles]

    class Cut(ScriptedEngine):
        def generate(self, prompts, sampling, on_response=None):
            return [Response(samples=[Sample("half a sente", finish_reason="length")]) for _ in prompts]

    cut = Rephrase(teacher=TEACHER, cache_dir=None).attach(Cut(TEACHER, answer))(table(DOCS[:1]))
    assert cut["_reason"].to_pylist() == ["output truncated at max_tokens"]


SEEDS = [{"id": f"s{i}", "text": t} for i, t in enumerate([
    "Write a short poem about the sea.", "Explain how photosynthesis works to a child.",
    "List three tips for saving money on groceries.", "Translate the sentence 'good morning' into French.",
    "Summarise the plot of Romeo and Juliet in two sentences."])]


def test_self_instruct_filters_as_in_the_paper():
    answers = {"s0": "Write a short poem about the ocean.",             # near copy of a seed
               "s1": "Draw a picture of a cat sitting on a mat.",         # needs more than text
               "s2": "Hi",                                                # too short
               "s3": "Describe the water cycle and name its four stages.",  # new
               "s4": "Describe the water cycle and name its four stages."}  # same as the row before: not novel

    def answer(prompt, sampling, k):
        first = re.search(r"Task 1: (.*)", prompt).group(1)
        seed_id = next(s["id"] for s in SEEDS if s["text"] == first)
        return json.dumps({"instruction": answers[seed_id]})

    engine = ScriptedEngine(TEACHER, answer)
    out = SelfInstruct(teacher=TEACHER, cache_dir=None, examples=3).attach(engine)(table(SEEDS))
    assert outcome(out) == {"self_instruct:s0": "too similar to an existing instruction (ROUGE-L >= 0.7)",
                            "self_instruct:s1": "instruction needs more than text (banned keyword)",
                            "self_instruct:s2": "instruction length outside 3-150 words",
                            "self_instruct:s3": None,
                            "self_instruct:s4": "too similar to an existing instruction (ROUGE-L >= 0.7)"}
    assert out["_detail"].to_pylist()[0].startswith("ROUGE-L 0.86 with: Write a short poem about the sea.")
    assert all(prompt.count("Task ") == 3 for prompt in engine.prompts)  # the row + 2 in-context examples


def test_evol_instruct_eliminates_failed_evolutions():
    def answer(prompt, sampling, k):
        if "#The Given Prompt#" not in prompt and "#Given Prompt#" not in prompt:  # the response round
            return "Sorry, I cannot do that." if "ten adjectives" in prompt else "Here is a full answer."
        given = prompt.split("Prompt#:\n")[1].split("\n")[0]
        return {"Write a short poem about the sea.": "#Rewritten Prompt#: Write a short poem about the sea in "
                "exactly ten lines, each with a colour.",
                "Explain how photosynthesis works to a child.": "As the rewritten prompt says: explain it.",
                "List three tips for saving money on groceries.": "List three tips for saving money on groceries.",
                "Translate the sentence 'good morning' into French.": "Translate it using ten adjectives and rhymes.",
                }.get(given, "")

    op = EvolInstruct(teacher=TEACHER, cache_dir=None, respond=True).attach(ScriptedEngine(TEACHER, answer))
    out = op(table(SEEDS))
    assert outcome(out) == {"evol_instruct:s0": None,
                            "evol_instruct:s1": "evolution copied words from the evolving prompt",
                            "evol_instruct:s2": "no information gain over the original instruction",
                            "evol_instruct:s3": "evolved instruction is hard to answer (the teacher refused)",
                            "evol_instruct:s4": "empty output"}
    kept = out.to_pylist()[0]
    assert kept["instruction"] == "Write a short poem about the sea in exactly ten lines, each with a colour."
    assert kept["parent_instruction"] == SEEDS[0]["text"] and kept["response"] == "Here is a full answer."
    assert kept["evolution"] == op.evolution_of(SEEDS[0])


def test_preference_pairs_chosen_rejected_and_rejects():
    prompts = [{"id": "p1", "text": "Name a prime number."}, {"id": "p2", "text": "Say hi."},
               {"id": "p3", "text": "Count to three."}]

    def answer(prompt, sampling, k):
        if "Which response" in prompt:
            if "Count to three" in prompt:
                return "B is better"  # not JSON
            return '{"better": "B"}' if "Response B:\nSeven" in prompt else '{"better": "A"}'
        if "Say hi" in prompt:
            return "hi"
        if "Count" in prompt:
            return ["one two three", "1, 2, 3"][k]
        return ["Four.", "Seven is prime."][k] if False else ["Four", "Seven"][k]

    op = PreferencePairs(teacher=TEACHER, cache_dir=None).attach(ScriptedEngine(TEACHER, answer))
    out = op(table(prompts))
    assert outcome(out) == {"preference_pairs:p1": None, "preference_pairs:p2": "the two samples are identical",
                            "preference_pairs:p3": "malformed JSON output"}
    kept = out.to_pylist()[0]
    assert (kept["prompt"], kept["chosen"], kept["rejected"], kept["verdict"]) == ("Name a prime number.", "Seven", "Four", "B")

    swapped = PreferencePairs(teacher=TEACHER, cache_dir=None, swap_check=True).attach(ScriptedEngine(
        TEACHER, lambda p, s, k: '{"better": "A"}' if "Which response" in p else ["x", "y"][k]))
    assert swapped(table(prompts[:1]))["_reason"].to_pylist() == ["judge inconsistent when the order is swapped"]


def test_judge_scores_threshold_and_malformed():
    rows = [{"id": "a", "text": "good"}, {"id": "b", "text": "bad"}, {"id": "c", "text": "odd"}]
    verdict = {"good": '{"score": 8}', "bad": '{"score": 3}', "odd": "eight"}
    op = JudgeScore(teacher=TEACHER, cache_dir=None, threshold=6).attach(ScriptedEngine(
        TEACHER, lambda p, s, k: verdict[re.search(r"Text:\n(\w+)", p).group(1)]))
    out = op(table(rows))
    assert out["id"].to_pylist() == ["a", "b", "c"] and out["text"].to_pylist() == ["good", "bad", "odd"]
    assert out["judge_score"].to_pylist() == [8, 3, None]
    assert out["_reason"].to_pylist() == [None, "judge score below 6", "malformed JSON output"]


def test_logit_distill_alignment_and_context_reject():
    class Scorer(ScriptedEngine):
        def encode(self, text):
            return [ord(c) for c in text]

        def generate(self, prompts, sampling, on_response=None):
            out = []
            for ids in prompts:
                if len(ids) > 6:
                    out.append(Response.failed(context_error(len(ids), 1, 7)))
                    continue
                k = sampling.prompt_logprobs
                plp = [None] + [[[1000 * t + j, -0.1 * (j + 1)] for j in range(k + 1)] for t in range(1, len(ids))]
                out.append(Response(samples=[Sample("x", [5], [[[9000 + j, -0.5 * (j + 1)] for j in range(k)]], "length")],
                                    prompt_token_ids=list(ids), prompt_logprobs=plp))
            return out

    op = LogitDistill(teacher=TEACHER, cache_dir=None, top_k=3, max_length=None).attach(Scorer(TEACHER, None))
    out = op(table([{"id": "a", "text": "abcd", "source": "web"}, {"id": "b", "text": "far too long"},
                    {"id": "c", "text": "z"}]))
    assert out["_reason"].to_pylist() == [None, "prompt longer than the context", "fewer than 2 tokens"]
    rec = out.to_pylist()[0]
    assert rec["input_ids"] == [97, 98, 99, 100] and rec["domain"] == "web" and rec["text"] == "abcd"
    assert rec["topk_ids"] == [[1000, 1001, 1002], [2000, 2001, 2002], [3000, 3001, 3002], [9000, 9001, 9002]]
    assert rec["topk_logprobs"][-1] == pytest.approx([-0.5, -1.0, -1.5])
    assert out.schema.field("topk_ids").type == pa.list_(pa.list_(pa.int32()))
    assert out.schema.field("topk_logprobs").type == pa.list_(pa.list_(pa.float32()))
    assert op.sampling.prompt_logprobs == 3 and op.sampling.max_tokens == 1


def test_rouge_novelty_diversity_and_resources():
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)
    assert rouge_l("", "x") == 0.0
    report = diversity_report(["a b c", "a b d"])
    assert report == {"texts": 2, "distinct_1": round(4 / 6, 4), "distinct_2": 0.75, "distinct_3": 1.0,
                      "rouge_l_sample": 2, "mean_pairwise_rouge_l": round(2 / 3, 4)}
    novelty = RougeNovelty(reference=("Write a poem about the sea.",))
    out = novelty(table([{"id": "1", "text": "Write a poem about the blue sea."}, {"id": "2", "text": "Bake bread."},
                         {"id": "3", "text": "Bake some bread."}]))
    assert out["_reason"].to_pylist() == ["too similar to an existing text (ROUGE-L >= 0.7)", None,
                                          "too similar to an existing text (ROUGE-L >= 0.7)"]
    gpu = stub_teacher("http://127.0.0.1:9", gpus_per_replica=1.0, replicas=2, cpus_per_replica=4.0)
    res = GroundedQA(teacher=gpu, batch_size=16).resources
    assert (res.num_gpus, res.concurrency, res.num_cpus, res.batch_size) == (1.0, 2, 4.0, 16)


def test_diversity_command(tmp_path):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    pq.write_table(table([{"id": "1", "text": "a b c"}, {"id": "2", "text": "a b d"}]), tmp_path / "x.parquet")
    cli = [sys.executable, "-m", "pipelines.cli"]
    done = subprocess.run([*cli, "teachers", "diversity", str(tmp_path), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mean_pairwise_rouge_l"] == round(2 / 3, 4)
    bad = subprocess.run([*cli, "teachers", "diversity", str(tmp_path), "--column", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no column 'nope'" in bad.stderr


def test_bad_parameters_name_the_field():
    from operators import ParameterError

    with pytest.raises(ParameterError, match="GroundedQA.teacher"):
        GroundedQA(teacher=None)
    with pytest.raises(ParameterError, match="LogitDistill.top_k"):
        LogitDistill(teacher=TEACHER, top_k=21)
    with pytest.raises(ValueError, match="Sampling.logprobs"):
        Sampling(logprobs=50)
    with pytest.raises(ValueError, match="Teacher.base_url"):
        stub_teacher(None)


def test_a_generation_task_must_answer_for_every_source_row(tmp_path):
    """Samples become rows with ``:K`` ids; a task that returns nothing for a row is an error naming the row."""
    op = GroundedQA(teacher=TEACHER, cache_dir=None, sampling=Sampling(n=2, temperature=0.5))
    out = op.attach(ScriptedEngine(TEACHER, qa_answer))(table(DOCS[:2]))
    assert out["id"].to_pylist() == ["grounded_qa:d1", "grounded_qa:d1:1", "grounded_qa:d2", "grounded_qa:d2:1"]
    assert out["_source"].to_pylist() == ["d1", "d1", "d2", "d2"]
    assert out["source"].to_pylist() == ["geo", "geo", "food", "food"]  # passthrough columns follow their source

    class Silent(GroundedQA):
        def run(self, rows):
            return [[] for _ in rows]

    with pytest.raises(RuntimeError, match="no result for row 'd1'"):
        Silent(teacher=TEACHER, cache_dir=None).attach(ScriptedEngine(TEACHER, qa_answer))(table(DOCS[:1]))
