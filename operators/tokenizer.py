"""The one loader of the fast tokenizer (``tokenizers.Tokenizer``) and its document separator.

Curricula (streaming, pretokenising, perplexity), students (data, evaluation) and pipelines all load the same
Hugging Face ``tokenizer.json``; it lives here because ``operators`` is the one layer every other package may
import. ``read_tokenizer(source)`` reads a Hugging Face folder's (or a path's) ``tokenizer.json``, with errors
that name the path; ``load_tokenizer(source)`` also returns the document separator's id and token for packing.
The separator is ``eos_token=`` when given, else the folder's ``tokenizer_config.json`` ``eos_token`` (SmolLM2-Instruct: ``<|im_end|>``, id 2), else
``<|im_end|>``.

Chat templates are not the fast tokenizer's business: teachers render prompts with transformers'
``AutoTokenizer`` (``teachers.engines``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

DEFAULT_SEPARATOR = "<|im_end|>"


class TokenizerError(ValueError):
    """A tokenizer cannot be loaded, or its separator is not in its vocabulary; the message says which."""


def tokenizer_file(source: str | Path) -> Path:
    """``tokenizer.json`` of a folder (or the file itself); raises ``TokenizerError`` naming the path."""
    path = Path(source)
    path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise TokenizerError(f"tokenizer: no tokenizer.json at {source}")
    return path


def read_tokenizer(source: Tokenizer | str | Path) -> Tokenizer:
    """The fast tokenizer of a folder or ``tokenizer.json`` (a ``Tokenizer`` is returned as is)."""
    if isinstance(source, Tokenizer):
        return source
    path = tokenizer_file(source)
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises a bare Exception on a bad file
        raise TokenizerError(f"tokenizer: cannot read {path}: {exc}") from exc


def load_tokenizer(source: Tokenizer | str | Path, eos_token: str | None = None) -> tuple[Tokenizer, int, str]:
    """(tokenizer, separator id, separator token) from a ``Tokenizer``, a folder or a ``tokenizer.json``."""
    tokenizer = read_tokenizer(source)
    config: dict[str, Any] = {}
    if not isinstance(source, Tokenizer):
        cfg = tokenizer_file(source).parent / "tokenizer_config.json"
        if cfg.is_file():
            config = json.loads(cfg.read_text())
    token = eos_token or config.get("eos_token") or DEFAULT_SEPARATOR
    if isinstance(token, dict):
        token = token.get("content")
    eos_id = tokenizer.token_to_id(token)
    if eos_id is None:
        raise TokenizerError(f"eos_token: {token!r} is not in the tokenizer's vocabulary")
    return tokenizer, int(eos_id), token
