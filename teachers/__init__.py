"""Teachers: models that generate synthetic data, and the filters for what they write.

    engines.py     Teacher (config), Sampling, Engine; VLLMEngine (vllm.LLM in process)
    http.py        OpenAIEngine (OpenAI-compatible HTTP: retries, timeouts, bounded concurrency, key from env)
    server.py      start/stop a local vLLM OpenAI server (``distillery teachers serve``)
    cache.py       the response cache (resume: a rerun asks only for the missing prompts)
    task.py        TeacherOp / GenerationTask: operators holding an engine; rejects; provenance columns
    documents.py   GroundedQA, Rephrase          instruct.py   SelfInstruct, EvolInstruct
    preference.py  PreferencePairs               distill.py    LogitDistill (top-k logprob records)
    judge.py       JudgeScore (1-10 rubric)      diversity.py  ROUGE-L, RougeNovelty, distinct-n, diversity report
    smollm2.py     SmolLM2-135M-Instruct as a Hugging Face folder (the offline teacher)

Nothing is imported here: ``from teachers.documents import GroundedQA``. Keep numba-using modules
(``operators``) out of any ``__main__`` that builds a VLLMEngine (see teachers.engines).
"""
