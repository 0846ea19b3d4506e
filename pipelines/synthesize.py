"""Synthesize: SmolLM2 (vLLM, in Ray actors) writes training data from curated documents, and what it
writes is filtered like any other data (the flagship's second step).

    grounded QA      curated docs -> 2 question/answer pairs each -> length, toxicity, teacher-as-judge,
                     near-dup filters
    rephrasings      curated docs -> encyclopedic or Q&A rewrites (WRAP) -> the same filters
    instructions     the kept questions -> Evol-Instruct (harder instructions, answered) -> filters
    distillation     curated docs -> the teacher's top-k logprobs per token (students' distillation records)

Each is one pipeline (one Parquet output with ``_rejected/`` and a manifest). Every synthetic row keeps its
provenance (teacher, task, template version, sampling, seed, source ids, time); responses are cached, so a
rerun asks the teacher only for what is missing.

Run alone: ``distillery run pipelines/synthesize.py`` (grounded QA over ``out/curate``).
"""
from __future__ import annotations

from operators import HashSample, LengthFilter, MinHashDedup, Toxicity
from pipelines import Pipeline
from teachers.documents import GroundedQA, Rephrase
from teachers.distill import LogitDistill
from teachers.engines import Sampling, Teacher
from teachers.instruct import EvolInstruct
from teachers.judge import JudgeScore

SAMPLE_SEED = 1  # which curated documents the teacher sees (a different hash than the held-out split)


def smollm2_teacher(max_model_len: int = 1024) -> Teacher:
    from teachers.smollm2 import smollm2_dir

    # Each flagship pipeline asks for a few hundred samples at most: start-up dominates, so an eager engine
    # (~25 s to start, vs ~90 s compiled) with a 1 GiB KV cache; for large jobs use Teacher's defaults.
    return Teacher(model=str(smollm2_dir()), max_model_len=max_model_len, cpus_per_replica=1.0, enforce_eager=True,
                   kv_cache_gib=1)


def checked(pipe: Pipeline, teacher: Teacher, judge_threshold: int) -> Pipeline:
    """The filters every kind of synthetic text goes through."""
    return (pipe.filter(LengthFilter(min_chars=40, max_chars=20_000), Toxicity(max_score=0.5),
                        JudgeScore(teacher=teacher, threshold=judge_threshold))
            .dedup(MinHashDedup(threshold=0.7)))


def grounded_qa(curated: str, output: str, teacher: Teacher, fraction: float, judge_threshold: int = 3) -> Pipeline:
    pipe = (Pipeline("synthesize-qa").read_parquet(curated)
            .filter(HashSample(fraction, seed=SAMPLE_SEED))
            .generate(GroundedQA(teacher=teacher, max_doc_chars=1500, batch_size=64,
                                 sampling=Sampling(n=2, temperature=0.8, max_tokens=128, seed=0))))
    return checked(pipe, teacher, judge_threshold).write_parquet(output)


def rephrasings(curated: str, output: str, teacher: Teacher, fraction: float, judge_threshold: int = 3) -> Pipeline:
    pipe = (Pipeline("synthesize-rephrase").read_parquet(curated)
            .filter(HashSample(fraction, seed=SAMPLE_SEED))
            .generate(Rephrase(teacher=teacher, max_doc_chars=1200, batch_size=64,
                               sampling=Sampling(temperature=0.7, max_tokens=256, seed=0))))
    return checked(pipe, teacher, judge_threshold).write_parquet(output)


def instructions(questions: str, output: str, teacher: Teacher, judge_threshold: int = 3) -> Pipeline:
    pipe = (Pipeline("synthesize-instructions").read_parquet(questions)
            .generate(EvolInstruct(teacher=teacher, instruction_column="question", respond=True, batch_size=64,
                                   response_max_tokens=192, sampling=Sampling(temperature=0.7, max_tokens=96))))
    return checked(pipe, teacher, judge_threshold).write_parquet(output)


def distillation(curated: str, output: str, teacher: Teacher, fraction: float) -> Pipeline:
    return (Pipeline("synthesize-distill").read_parquet(curated)
            .filter(HashSample(fraction, seed=SAMPLE_SEED))
            .generate(LogitDistill(teacher=teacher, top_k=8, max_length=256, batch_size=64))
            .write_parquet(output))


pipeline = grounded_qa("out/curate", "out/synthesize-qa", smollm2_teacher(), fraction=0.02)

if __name__ == "__main__":
    pipeline.run()
