"""The response cache: what a teacher answered, keyed by everything that determines the answer.

The key is a hash of the model and its revision, the task, the prompt template version, the rendered prompt,
the sampling parameters and the seed (part of the sampling parameters). For a local model folder the revision
is a fingerprint of the folder's bytes (``Teacher.resolved_revision``), never its name or file sizes; any
further identity fields an engine reports (the in-process engine's resolved dtype, an HTTP server's served model
id and its fingerprint) are part of the key too. One JSON file per response, written
atomically (temporary name, then rename) under ``ROOT/ab/abcdef....json``: a killed run leaves whole entries
only, several actors (or machines on shared storage) may write at once, and a rerun asks the engine only for
the prompts whose entry is missing. Failed responses are not cached (a later run retries them).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from operators.fileio import write_json_atomic
from teachers.engines import Response


def default_cache_dir() -> str:
    return os.environ.get("DISTILLERY_TEACHER_CACHE") or str(Path.home() / ".cache" / "distillery" / "responses")


def cache_key(identity: dict[str, str], task: str, template_version: str, prompt: Any,
              sampling: dict[str, Any]) -> str:
    extra = {k: v for k, v in identity.items() if k not in ("model", "revision")}
    material = json.dumps({"model": identity["model"], "revision": identity["revision"], "task": task,
                           "template_version": template_version, "prompt": prompt, "sampling": sampling,
                           **({"identity": extra} if extra else {})},
                          sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[Response, str] | None:
        """The cached response and the time it was generated, or None."""
        try:
            data = json.loads(self._path(key).read_text("utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return Response.from_json(data["response"]), data["generated_at"]

    def put(self, key: str, response: Response, generated_at: str) -> None:
        if response.error is not None:
            return
        write_json_atomic({"generated_at": generated_at, "response": response.to_json()}, self._path(key), indent=None)
