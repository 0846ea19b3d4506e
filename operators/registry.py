"""Operators by name, for the command line (``distillery filter --ops gopher_quality,c4``).

The name of an operator is its class name in snake case (``LengthFilter`` -> ``length_filter``).
"""
from __future__ import annotations

import json
from typing import Any

from operators.base import Operator, ParameterError, snake_case
from operators.bias import BiasMeasure, CounterfactualSwap, Rebalance, RebalanceSample
from operators.boilerplate import BoilerplateLines
from operators.c4_fineweb import C4Quality, FineWebQuality
from operators.classifier import FastTextScore
from operators.decontaminate import Decontaminate
from operators.dedup import ExactDedup
from operators.gopher import GopherQuality, GopherRepetition
from operators.langid import LanguageID
from operators.minhash import MinHashDedup
from operators.pii import RedactPII
from operators.sample import HashSample
from operators.text import LengthFilter, Normalize, RequireText
from operators.toxicity import Toxicity

CLASSES: tuple[type[Operator], ...] = (Normalize, RequireText, LengthFilter, ExactDedup, MinHashDedup, RedactPII,
                                       Decontaminate, BoilerplateLines, LanguageID, FastTextScore, Toxicity,
                                       BiasMeasure, CounterfactualSwap, Rebalance, RebalanceSample, GopherQuality,
                                       GopherRepetition, C4Quality, FineWebQuality, HashSample)
BY_NAME: dict[str, type[Operator]] = {snake_case(cls.__name__): cls for cls in CLASSES}
# Short names the quality literature uses (``--ops gopher_quality,gopher_repetition,c4,fineweb``).
BY_NAME.update(c4=C4Quality, fineweb=FineWebQuality, fineweb_quality=FineWebQuality)


def parse_ops(text: str) -> list[str]:
    """``"normalize, length_filter"`` -> ``["normalize", "length_filter"]``.

    An empty list, an empty item (``"a,,b"``, a trailing comma) or an unknown name is an error that names
    the bad part and lists the known names: an operator list is never silently shortened."""
    known = f"known: {', '.join(sorted(BY_NAME))}"
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ParameterError(f"--ops {text!r}: no operator names; give a comma-separated list, e.g. "
                             f"normalize,length_filter ({known})")
    for position, name in enumerate(items, start=1):
        if not name:
            raise ParameterError(f"--ops {text!r}: item {position} of {len(items)} is empty ({known})")
        if name not in BY_NAME:
            raise ParameterError(f"--ops: unknown operator {name!r}; {known}")
    return items


def parse_settings(settings: list[str]) -> dict[str, dict[str, Any]]:
    """``["length_filter.min_chars=100", ...]`` -> ``{"length_filter": {"min_chars": 100}}``.

    Values are read as JSON (numbers, true/false, null, lists) and otherwise kept as strings."""
    parsed: dict[str, dict[str, Any]] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not name or not field:
            raise ParameterError(f"--set {item!r}: expected OPERATOR.PARAMETER=VALUE, e.g. length_filter.min_chars=100")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parsed.setdefault(name, {})[field] = tuple(value) if isinstance(value, list) else value
    return parsed


def build(names: list[str], settings: dict[str, dict[str, Any]] | None = None) -> list[Operator]:
    """Construct the named operators with their settings; unknown names and parameters are errors."""
    settings = settings or {}
    for name in settings:
        if name not in names:
            raise ParameterError(f"--set {name}.*: {name!r} is not among --ops ({', '.join(names)})")
    ops = []
    for name in names:
        if name not in BY_NAME:
            raise ParameterError(f"--ops: unknown operator {name!r}; known: {', '.join(sorted(BY_NAME))}")
        cls = BY_NAME[name]
        try:
            ops.append(cls(**settings.get(name, {})))
        except TypeError as exc:  # an unknown keyword
            raise ParameterError(f"{cls.__name__}: {exc}") from exc
    return ops
