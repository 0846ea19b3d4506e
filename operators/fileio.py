"""Atomic writes: the one place that writes a file or folder under a temporary name and renames it into place.

A killed process never leaves a half file (or half folder) under the final name: readers see the previous
complete version or the new complete one. The temporary name sits beside the target (same filesystem, so
``os.replace`` is one atomic rename), starts with ``.`` (readers that skip hidden files never pick it up)
and is removed on any error.

* ``atomic_path(path)``          — a temporary path to write by any means (``pq.write_table``, a model's
  ``save_model``); renamed to ``path`` when the block succeeds.
* ``write_bytes_atomic``, ``write_text_atomic``, ``write_json_atomic`` — the common cases.
* ``staged_folder(final)``       — a temporary folder to fill; replaces ``final`` as a whole.

The lowest layer: standard library only, so every package (operators, teachers, curricula, students,
pipelines, scripts) may import it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    return path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (parents created); renamed onto ``path`` when the block succeeds,
    removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json_atomic(data: Any, path: str | os.PathLike, indent: int | None = 2) -> None:
    """``data`` as JSON (values JSON cannot hold are written as ``str``), then a newline. The argument order
    follows ``json.dump(obj, fp)``."""
    write_text_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")


@contextmanager
def staged_folder(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``final`` to fill; on success it replaces ``final`` (an old folder there is
    moved aside first, then deleted), on any error it is removed, so a killed run never leaves a half folder
    under the final name."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    old = None
    try:
        yield staging
        if final.exists() or final.is_symlink():
            old = _temporary(final)
            os.replace(final, old)
        os.replace(staging, final)
    except BaseException:
        if old is not None and not final.exists():
            os.replace(old, final)  # the new folder could not be moved in: put the previous one back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
