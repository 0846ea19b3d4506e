"""The base of every teacher stage: an operator that holds an engine, asks it through the response cache, and
turns answers into rows or rejects with reasons.

* ``TeacherOp``       — a stateful ``Filter``: ``setup`` builds the engine once per Ray actor (the runner's
                        actor-pool path; replicas, CPUs and GPUs per replica come from ``Teacher``). ``ask``
                        renders nothing itself: it takes rendered prompts, looks each up in the cache and sends
                        only the missing ones to the engine.
* ``GenerationTask``  — a ``TeacherOp`` whose output rows are synthetic: a new ``id`` (``generated_id``:
                        ``TASK:SOURCE_ID``, then ``TASK:SOURCE_ID:K`` for a source's K-th further item, with
                        ``%`` and ``:`` inside the parts escaped so that no two items share an id), the generated
                        ``text``, the source's text in ``source_text`` and the provenance columns (teacher,
                        revision, task, template version, sampling, seed, source ids, time). A ``generate``
                        stage: each source row gives one or more rows (``run`` returns a result or a list of
                        results per row, e.g. one per sample when ``sampling.n > 1``), each kept or rejected with
                        a reason; the ``_source`` column tells the runner which source row each came from.
* ``Reject``          — raised by a task's parsing code; becomes the row's ``_reason`` / ``_detail``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Sequence

import pyarrow as pa

from operators.base import DETAIL, REASON, SOURCE, Filter, Resources, check
from teachers.cache import ResponseCache, cache_key, default_cache_dir
from teachers.engines import Engine, Messages, Prompt, Response, Sample, Sampling, Teacher


class Reject(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail[:500]


PROVENANCE = {"teacher": pa.string(), "teacher_revision": pa.string(), "task": pa.string(),
              "template_version": pa.string(), "sampling": pa.string(), "seed": pa.int64(),
              "source_ids": pa.list_(pa.string()), "generated_at": pa.string()}

_ERROR_REASONS = (("prompt longer than the context", "prompt longer than the context"),
                  ("timed out", "teacher timed out"), ("cannot reach", "teacher unreachable"),
                  ("server refused", "teacher refused the request"), ("HTTP", "teacher server error"),
                  ("malformed server response", "malformed server response"))


def error_reason(error: str) -> str:
    for marker, reason in _ERROR_REASONS:
        if marker in error:
            return reason
    return "engine error"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def first_sample(response: Response) -> Sample:
    """The response's first sample, or a ``Reject`` naming why the teacher gave none."""
    if response.error is not None:
        raise Reject(error_reason(response.error), response.error)
    if not response.samples:
        raise Reject("engine error", "no samples")
    return response.samples[0]


def each_sample(response: Response, stamp: str, parse) -> list[dict[str, Any] | Reject]:
    """One result per sample of ``response`` (``sampling.n`` of them): ``parse(sample)``'s dict with the time it
    was generated, or the ``Reject`` it raised; a response with no samples is one ``Reject``."""
    try:
        first_sample(response)
    except Reject as reject:
        return [reject]
    results: list[dict[str, Any] | Reject] = []
    for sample in response.samples:
        try:
            results.append({**parse(sample), "generated_at": stamp})
        except Reject as reject:
            results.append(reject)
    return results


def plain_text(sample: Sample, allow_truncated: bool = False) -> str:
    text = sample.text.strip()
    if not text:
        raise Reject("empty output")
    if sample.finish_reason == "length" and not allow_truncated:
        raise Reject("output truncated at max_tokens", text[-200:])
    return text


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_json(sample: Sample, fields: dict[str, type]) -> dict[str, Any]:
    """The JSON object in ``sample`` with ``fields`` present, of the right type, and (strings) not blank."""
    text = sample.text.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    try:
        if start < 0 or end < start:
            raise ValueError("no JSON object")
        value = json.loads(text[start:end + 1])
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        reason = "malformed JSON output (truncated at max_tokens)" if sample.finish_reason == "length" else \
            "malformed JSON output"
        raise Reject(reason, sample.text[:300]) from None
    for name, kind in fields.items():
        item = value.get(name)
        if isinstance(item, bool) or not isinstance(item, kind):
            raise Reject(f"JSON output lacks a valid {name!r}", sample.text[:300])
        if isinstance(item, str):
            if not item.strip():
                raise Reject(f"JSON output has an empty {name!r}", sample.text[:300])
            value[name] = item.strip()
    return value


def object_schema(properties: dict[str, dict], max_chars: int = 600) -> str:
    """A JSON schema (as text) for constrained decoding: an object with these required properties."""
    props = {name: ({"type": "string", "maxLength": max_chars} if spec == {} else spec)
             for name, spec in properties.items()}
    return json.dumps({"type": "object", "properties": props, "required": list(props),
                       "additionalProperties": False}, sort_keys=True)


@dataclass(frozen=True)
class TeacherOp(Filter):
    teacher: Teacher = None  # type: ignore[assignment]  (required: checked in __post_init__)
    sampling: Sampling = Sampling()
    cache_dir: str | None = field(default_factory=default_cache_dir)  # None or "": no cache
    batch_size: int = 32

    stateful: ClassVar[bool] = True
    task: ClassVar[str] = "teacher"
    template_version: ClassVar[str] = "1"

    def __post_init__(self) -> None:
        check(isinstance(self.teacher, Teacher), self, "teacher", f"must be a Teacher, got {self.teacher!r}")
        check(isinstance(self.sampling, Sampling), self, "sampling", f"must be a Sampling, got {self.sampling!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1, self, "batch_size",
              f"must be an integer >= 1, got {self.batch_size!r}")

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        t = self.teacher
        return Resources(num_cpus=t.cpus_per_replica, num_gpus=t.gpus_per_replica, batch_size=self.batch_size,
                         concurrency=t.replicas)

    # -- engine and cache -------------------------------------------------------------------------------
    def setup(self) -> None:
        if getattr(self, "_engine", None) is None:
            self.attach(self.teacher.build())

    def attach(self, engine: Engine) -> TeacherOp:
        """Use an already built engine (tests share one across operators); returns self."""
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_identity", engine.identity())
        object.__setattr__(self, "_cache", ResponseCache(self.cache_dir) if self.cache_dir else None)
        return self

    @property
    def engine(self) -> Engine:
        engine = getattr(self, "_engine", None)
        if engine is None:
            self.setup()
        return self._engine

    def render(self, messages: Messages) -> Prompt:
        return self.engine.render(messages)

    def ask(self, prompts: Sequence[Prompt], sampling: Sampling | None = None, part: str = "") -> list[tuple[Response, str]]:
        """(response, generated_at) per prompt: from the cache when present, else from the engine (then cached)."""
        sampling = sampling or self.sampling
        engine, cache = self.engine, self._cache
        keys = [cache_key(self._identity, self.task + part, self.template_version, p, sampling.to_dict())
                for p in prompts]
        found: list[tuple[Response, str] | None] = [cache.get(k) if cache else None for k in keys]
        missing = [i for i, hit in enumerate(found) if hit is None]
        if missing:
            def keep(j: int, response: Response) -> None:  # as each answer arrives: a kill keeps what came
                stamp = now()
                found[missing[j]] = (response, stamp)
                if cache:
                    cache.put(keys[missing[j]], response, stamp)

            answers = engine.generate([prompts[i] for i in missing], sampling, on_response=keep)
            for j, response in enumerate(answers):
                if found[missing[j]] is None:
                    keep(j, response)
        return found  # type: ignore[return-value]

    # -- rows ---------------------------------------------------------------------------------------------
    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | Reject]:  # pragma: no cover - abstract
        raise NotImplementedError

    columns: ClassVar[dict[str, pa.DataType]] = {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        results = self.run(rows) if rows else []
        return self.assemble(batch, rows, results)

    def assemble(self, batch: pa.Table, rows: list[dict], results: list) -> pa.Table:
        """Annotating operators (judges): the batch plus ``columns`` and the reject annotation."""
        out = batch
        for name, kind in self.columns.items():
            values = [None if isinstance(r, Reject) else r.get(name) for r in results]
            if name in out.column_names:
                out = out.drop_columns([name])
            out = out.append_column(name, pa.array(values, kind))
        return _annotate(out, results)


def _annotate(table: pa.Table, results: list) -> pa.Table:
    reasons = [r.reason if isinstance(r, Reject) else None for r in results]
    details = [r.detail if isinstance(r, Reject) else None for r in results]
    return table.append_column(REASON, pa.array(reasons, pa.string())).append_column(DETAIL, pa.array(details, pa.string()))


@dataclass(frozen=True)
class GenerationTask(TeacherOp):
    """A teacher stage whose rows are synthetic; see the module docstring for the columns it writes."""

    kind: ClassVar[str] = "generate"

    def provenance(self, row: dict[str, Any], generated_at: str | None) -> dict[str, Any]:
        identity = getattr(self, "_identity", None) or self.teacher.identity()
        return {"teacher": identity["model"], "teacher_revision": identity["revision"], "task": self.task,
                "template_version": self.template_version,
                "sampling": json.dumps(self.sampling.to_dict(), sort_keys=True), "seed": self.sampling.seed,
                "source_ids": [str(row["id"])], "generated_at": generated_at}

    def assemble(self, batch: pa.Table, rows: list[dict], results: list) -> pa.Table:
        """Flatten each source row's results into output rows (see the module docstring for the columns)."""
        items = [(i, k, r) for i, result in enumerate(results)
                 for k, r in enumerate(result if isinstance(result, list) else [result])]
        missing = sorted(set(range(len(rows))) - {i for i, _, _ in items})
        if missing:
            raise RuntimeError(f"{type(self).__name__}.run gave no result for row {rows[missing[0]]['id']!r}; "
                               "every source row needs a kept item or a Reject")
        order = pa.array([i for i, _, _ in items], pa.int64())
        outputs = [r for _, _, r in items]
        reserved = {"id", "text", "source_text", SOURCE, *self.columns, *PROVENANCE}
        data: dict[str, pa.Array] = {
            "id": pa.array([generated_id(self.task, rows[i]["id"], k) for i, k, _ in items], pa.string()),
            "text": pa.array([None if isinstance(r, Reject) else r["text"] for r in outputs], pa.string())}
        for name in batch.column_names:
            if name not in reserved:
                data[name] = batch[name].take(order)
        data["source_text"] = (batch["text"].cast(pa.string()).take(order) if "text" in batch.column_names
                               else pa.nulls(len(items), pa.string()))
        for name, kind in self.columns.items():
            data[name] = pa.array([None if isinstance(r, Reject) else r.get(name) for r in outputs], kind)
        if not hasattr(self, "_identity"):
            object.__setattr__(self, "_identity", self.teacher.identity())
        prov = [self.provenance(rows[i], None if isinstance(r, Reject) else r.get("generated_at")) for i, _, r in items]
        for name, kind in PROVENANCE.items():
            data[name] = pa.array([p[name] for p in prov], kind)
        data[SOURCE] = pa.array([str(rows[i]["id"]) for i, _, _ in items], pa.string())
        return _annotate(pa.table(data), outputs)


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def generated_id(task: str, source_id: Any, k: int = 0) -> str:
    """``TASK:SOURCE_ID`` for a source row's first item, ``TASK:SOURCE_ID:K`` for its K-th further one. With ``%``
    and ``:`` escaped inside the parts, the id splits back into (task, source id, K) one way only: task ``t``,
    source ``a``, item 1 (``t:a:1``) and source ``a:1``, item 0 (``t:a%3A1``) differ."""
    return f"{_escape(task)}:{_escape(str(source_id))}" + (f":{k}" if k else "")


def pick(key: str, seed: int, n: int) -> int:
    """A deterministic choice in 0..n-1 from a row key and a seed (independent of batch layout)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big") % n
