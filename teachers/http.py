"""The OpenAI-compatible HTTP engine: a running ``vllm serve`` / ``vllm.entrypoints.openai.api_server`` (or any
compatible server) answers ``/v1/completions`` (a prompt rendered here with the model's chat template) or,
without a local tokenizer, ``/v1/chat/completions``.

* bounded concurrency: at most ``Teacher.concurrency`` requests in flight (a thread pool);
* timeouts: ``Teacher.timeout_s`` per HTTP request;
* retries: on 429, 5xx, refused connections and timeouts, up to ``Teacher.max_retries`` more attempts with
  exponential backoff (``backoff_s * 2**attempt``, or the server's ``Retry-After`` when larger); then the
  prompt's ``Response.error`` says what happened (a reject with that reason, never a crashed batch);
* identity: the response cache (and every row's ``teacher_revision``) is keyed by the model the server says
  it serves (``GET /v1/models``: the entry whose id is ``Teacher.model``, else an error listing what it serves)
  and a fingerprint of that entry (vLLM reports the weights' path as ``root``), after ``Teacher.revision`` if
  given; never by the URL or the user's name alone: another model behind the same URL and name gets its own
  entries. A server that reports the same entry for other weights (same path, rewritten) cannot be told apart.

Which API key goes where (checked when the ``Teacher`` is built, before any connection):

1. ``Teacher.api_key_env="NAME"``: the key in ``$NAME`` is sent to ``Teacher.base_url``, and to nothing else.
2. ``api_key_env=None`` (the default): a loopback ``base_url`` (127.0.0.0/8, ::1, localhost) gets the key in
   ``$DISTILLERY_TEACHER_API_KEY`` (the variable ``distillery teachers serve`` reads); any other host gets no key.
   ``OPENAI_API_KEY`` or any other variable is never read unless named as in 1.
3. A key never travels over plain ``http://`` to a non-loopback host: naming ``api_key_env`` for such a URL is
   an error unless ``Teacher.allow_insecure_http=True``.
4. Redirects are never followed (a 3xx is the prompt's error, naming where it pointed), so no key is forwarded
   to another origin; proxies from the environment are not used for loopback URLs.

The key is sent only in the Authorization header and scrubbed from every error message.
Standard library only (urllib): nothing else to install for a client.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from teachers.engines import Engine, Prompt, Response, Sample, Sampling, Teacher, context_error, load_tokenizer

RETRY_STATUS = {429, 500, 502, 503, 504}
SERVE_KEY_ENV = "DISTILLERY_TEACHER_API_KEY"  # what `distillery teachers serve` reads; loopback URLs only
VOLATILE_MODEL_FIELDS = ("created", "permission")  # vLLM makes these fresh on every /v1/models request


class TeacherServerError(RuntimeError):
    """The server could not tell which model it serves (the message names the URL and the reason)."""


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_env(teacher: Teacher) -> str | None:
    """The environment variable whose key may be sent to ``teacher.base_url`` (rules 1-2 above), or None."""
    if teacher.api_key_env:
        return teacher.api_key_env
    return SERVE_KEY_ENV if is_loopback(urllib.parse.urlsplit(teacher.base_url or "").hostname) else None


def check_endpoint(teacher: Teacher) -> None:
    """``ValueError`` naming the URL and the parameter when ``base_url`` is unusable or would expose a key."""
    url = teacher.base_url or ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Teacher.base_url: {url!r} is not an http:// or https:// URL with a host")
    if (parts.scheme == "http" and teacher.api_key_env and not is_loopback(parts.hostname)
            and not teacher.allow_insecure_http):
        raise ValueError(f"Teacher.base_url: {url} is plain http to a non-loopback host, so the API key in "
                         f"${teacher.api_key_env} would travel unencrypted: use https://, or pass "
                         "allow_insecure_http=True to send it anyway")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx stays an ``HTTPError``: urllib would otherwise resend the Authorization header to the new origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913 - urllib's signature
        return None


def opener(url: str) -> urllib.request.OpenerDirector:
    """urllib without redirects; without the environment's proxies for a loopback URL."""
    loopback = is_loopback(urllib.parse.urlsplit(url).hostname)
    return urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({} if loopback else None))


class OpenAIEngine(Engine):
    def __init__(self, teacher: Teacher) -> None:
        super().__init__(teacher)
        check_endpoint(teacher)
        self.base = teacher.base_url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[:-3]
        self.key_env = key_env(teacher)
        self.opener = opener(self.base)
        self.tokenizer = load_tokenizer(teacher.tokenizer) if teacher.tokenizer else None
        self.attempts = 0
        self._served: dict[str, str] | None = None

    def _key(self) -> str | None:
        return (os.environ.get(self.key_env) or None) if self.key_env else None

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def identity(self) -> dict[str, str]:
        """The served model id and a fingerprint of what ``/v1/models`` reports for it (asked once)."""
        if self._served is None:
            entries, error = self._call("/v1/models", None, _model_entries)
            if error is not None:
                raise TeacherServerError(f"cannot tell which model {self.base} serves (GET /v1/models): {error}")
            entry = entries.get(self.teacher.model)
            if entry is None:
                served = ", ".join(repr(m) for m in entries) or "nothing"
                raise ValueError(f"Teacher.model: {self.teacher.model!r} is not served at {self.base} "
                                 f"(it serves {served})")
            stable = {k: v for k, v in entry.items() if k not in VOLATILE_MODEL_FIELDS}
            fingerprint = hashlib.blake2b(json.dumps(stable, sort_keys=True, default=str).encode(),
                                          digest_size=8).hexdigest()
            revision = self.teacher.revision  # as for a local folder: the user's revision, then the content's
            self._served = {"model": self.teacher.model,
                            "revision": f"{revision}+{fingerprint}" if revision else fingerprint}
        return dict(self._served)

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
        response, error = self._call(path, body, lambda reply: self._parse(reply, sampling))
        return response if error is None else Response.failed(error)

    def _call(self, path: str, body: dict[str, Any] | None, parse: Callable[[dict], Any]) -> tuple[Any, str | None]:
        """(parsed reply, None), or (None, why it failed) after the retries the failure allows."""
        last, delay = "no attempt", 0.0
        for attempt in range(self.teacher.max_retries + 1):
            if attempt:
                time.sleep(delay)
            delay = self.teacher.backoff_s * 2 ** attempt
            try:
                return parse(self._send(path, body)), None
            except urllib.error.HTTPError as exc:
                if 300 <= exc.code < 400:
                    where = self._scrub(str((exc.headers or {}).get("Location") or "nowhere"))[:200]
                    return None, (f"server redirected to {where} (HTTP {exc.code}): redirects are not followed, so "
                                  "that no API key reaches another host; set Teacher.base_url to the server's own "
                                  "address")
                detail = self._scrub(exc.read(500).decode("utf-8", "replace").strip())
                last = f"HTTP {exc.code}: {detail[:300]}"
                if exc.code in (401, 403) and self._key() is None:
                    last += f" (no API key was sent to {self.base}: name its variable with Teacher.api_key_env)"
                if exc.code not in RETRY_STATUS:
                    return None, f"server refused the request: {last}"
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
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                return None, f"malformed server response: {type(exc).__name__}: {self._scrub(str(exc))[:200]}"
        return None, f"{last} (after {self.teacher.max_retries + 1} attempts)"

    def _send(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One request: POST ``body`` as JSON, or GET when there is none."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers,
                                         method="POST" if body is not None else "GET")
        self.attempts += 1
        with self.opener.open(request, timeout=self.teacher.timeout_s) as reply:
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


def _model_entries(reply: Any) -> dict[str, dict]:
    """``/v1/models``'s entries by id (``ValueError`` when the reply is not that list)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("data"), list):
        raise ValueError("GET /v1/models did not return {'data': [...]}")
    return {e["id"]: e for e in reply["data"] if isinstance(e, dict) and isinstance(e.get("id"), str)}


def _token_id(token: str) -> int:
    """vLLM with ``return_tokens_as_token_ids`` names tokens ``token_id:123``; other servers: -1 (unknown)."""
    if isinstance(token, str) and token.startswith("token_id:"):
        return int(token.split(":", 1)[1])
    return -1
