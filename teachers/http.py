"""The OpenAI-compatible HTTP engine: a running ``vllm serve`` / ``vllm.entrypoints.openai.api_server`` (or any
compatible server) answers ``/v1/completions`` (a prompt rendered here with the model's chat template) or,
without a local tokenizer, ``/v1/chat/completions``.

* bounded concurrency: at most ``Teacher.concurrency`` requests in flight (a thread pool);
* timeouts: ``Teacher.timeout_s`` per HTTP request;
* retries: on 429, 5xx, refused connections and timeouts, up to ``Teacher.max_retries`` more attempts with
  exponential backoff (``backoff_s * 2**attempt``, or the server's ``Retry-After`` when larger); then the
  prompt's ``Response.error`` says what happened (a reject with that reason, never a crashed batch);
* the API key comes from the environment variable ``Teacher.api_key_env`` (else ``OPENAI_API_KEY``); it is
  sent only in the Authorization header and scrubbed from every error message.

Standard library only (urllib): nothing else to install for a client.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from teachers.engines import Engine, Prompt, Response, Sample, Sampling, Teacher, context_error, load_tokenizer

RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIEngine(Engine):
    def __init__(self, teacher: Teacher) -> None:
        super().__init__(teacher)
        self.base = teacher.base_url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[:-3]
        self.tokenizer = load_tokenizer(teacher.tokenizer) if teacher.tokenizer else None
        self.attempts = 0

    def _key(self) -> str | None:
        return os.environ.get(self.teacher.api_key_env) or os.environ.get("OPENAI_API_KEY") or None

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def render(self, messages) -> Prompt:
        return super().render(messages) if self.tokenizer is not None else tuple(tuple(m) for m in messages)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, on_response=None) -> list[Response]:
        self.requests += len(prompts)

        def one(i: int) -> Response:
            response = self._one(prompts[i], sampling)
            if on_response is not None:
                on_response(i, response)
            return response

        with ThreadPoolExecutor(max_workers=min(self.teacher.concurrency, max(1, len(prompts)))) as pool:
            return list(pool.map(one, range(len(prompts))))

    def _body(self, prompt: Prompt, sampling: Sampling) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.teacher.model, "max_tokens": sampling.max_tokens,
                                "temperature": sampling.temperature, "top_p": sampling.top_p, "n": sampling.n,
                                "seed": sampling.seed}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.ignore_eos:
            body["ignore_eos"] = True
        if sampling.json_schema:  # vLLM's structured outputs; other servers ignore unknown fields or refuse them
            body["structured_outputs"] = {"json": json.loads(sampling.json_schema)}
        if isinstance(prompt, tuple):  # chat messages: the server applies its chat template
            body["messages"] = [{"role": r, "content": c} for r, c in prompt]
            if sampling.logprobs is not None:
                body.update(logprobs=True, top_logprobs=sampling.logprobs)
            return "/v1/chat/completions", body
        body["prompt"] = list(prompt) if isinstance(prompt, list) else prompt
        body["return_token_ids"] = True
        body["return_tokens_as_token_ids"] = True
        if sampling.logprobs is not None:
            body["logprobs"] = sampling.logprobs
        if sampling.prompt_logprobs is not None:
            body["prompt_logprobs"] = sampling.prompt_logprobs
        return "/v1/completions", body

    def _one(self, prompt: Prompt, sampling: Sampling) -> Response:
        if self.tokenizer is not None and not isinstance(prompt, tuple):
            n = len(prompt) if isinstance(prompt, list) else len(self.encode(prompt))
            error = context_error(n, sampling.max_tokens, self.teacher.max_model_len)
            if error:
                return Response.failed(error)
        path, body = self._body(prompt, sampling)
        last, delay = "no attempt", 0.0
        for attempt in range(self.teacher.max_retries + 1):
            if attempt:
                time.sleep(delay)
            delay = self.teacher.backoff_s * 2 ** attempt
            try:
                return self._parse(self._post(path, body), sampling)
            except urllib.error.HTTPError as exc:
                detail = self._scrub(exc.read(500).decode("utf-8", "replace").strip())
                last = f"HTTP {exc.code}: {detail[:300]}"
                if exc.code not in RETRY_STATUS:
                    return Response.failed(f"server refused the request: {last}")
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, min(float(retry_after), 60.0))
            except (TimeoutError, socket.timeout) as exc:
                last = f"timed out after {self.teacher.timeout_s:g} s ({type(exc).__name__})"
            except urllib.error.URLError as exc:
                reason = exc.reason
                last = (f"timed out after {self.teacher.timeout_s:g} s" if isinstance(reason, (TimeoutError, socket.timeout))
                        else f"cannot reach {self.base}: {self._scrub(str(reason))}")
            except (ConnectionError, OSError) as exc:
                last = f"cannot reach {self.base}: {type(exc).__name__}: {self._scrub(str(exc))[:200]}"
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                return Response.failed(f"malformed server response: {type(exc).__name__}: {self._scrub(str(exc))[:200]}")
        return Response.failed(f"{last} (after {self.teacher.max_retries + 1} attempts)")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode("utf-8"), headers=headers,
                                         method="POST")
        self.attempts += 1
        with urllib.request.urlopen(request, timeout=self.teacher.timeout_s) as reply:
            return json.loads(reply.read().decode("utf-8"))

    @staticmethod
    def _parse(data: dict[str, Any], sampling: Sampling) -> Response:
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        samples, prompt_ids, prompt_lp = [], None, None
        for choice in choices:
            if "message" in choice:  # chat
                text = choice["message"].get("content") or ""
                logprobs = None
                if sampling.logprobs is not None and choice.get("logprobs"):
                    logprobs = [[[_token_id(t["token"]), float(t["logprob"])] for t in pos.get("top_logprobs", [])]
                                for pos in choice["logprobs"].get("content") or []]
                samples.append(Sample(text=text, finish_reason=choice.get("finish_reason"), logprobs=logprobs))
                continue
            logprobs = None
            if sampling.logprobs is not None and choice.get("logprobs"):
                logprobs = [sorted(([_token_id(t), float(lp)] for t, lp in (pos or {}).items()), key=lambda x: -x[1])
                            [: sampling.logprobs] for pos in choice["logprobs"].get("top_logprobs") or []]
            samples.append(Sample(text=choice.get("text", ""), token_ids=list(choice.get("token_ids") or []),
                                  finish_reason=choice.get("finish_reason"), logprobs=logprobs))
            if prompt_ids is None and choice.get("prompt_token_ids") is not None:
                prompt_ids = list(choice["prompt_token_ids"])
            if prompt_lp is None and sampling.prompt_logprobs is not None and choice.get("prompt_logprobs") is not None:
                prompt_lp = [None if pos is None else
                             sorted(([int(t), float(v["logprob"])] for t, v in pos.items()), key=lambda x: -x[1])
                             [: sampling.prompt_logprobs] for pos in choice["prompt_logprobs"]]
        if not samples:
            raise ValueError("no choices in the response")
        return Response(samples=samples, prompt_token_ids=prompt_ids, prompt_logprobs=prompt_lp)


def _token_id(token: str) -> int:
    """vLLM with ``return_tokens_as_token_ids`` names tokens ``token_id:123``; other servers: -1 (unknown)."""
    if isinstance(token, str) and token.startswith("token_id:"):
        return int(token.split(":", 1)[1])
    return -1
