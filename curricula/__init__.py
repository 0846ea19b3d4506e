"""Curricula: domain mixtures and difficulty schedules streamed from Parquet into training.

``CurriculumStream`` (stream.py) yields ``TokenBatch``es (batch.py) from Parquet domains (source.py) under
a mixture schedule (mixture.py), picking domains with a low-discrepancy selector (selector.py), reading
documents in shuffled or difficulty order (order.py) and packing tokens into fixed windows (packing.py).
``config.py`` builds a stream from a YAML/dict spec (``distillery curricula preview``); ``pretokenize``
(Ray Data) and ``Perplexity`` (a difficulty score) live in their own modules. Names below are imported on
first use, so ``import curricula`` (and the CLI) stays light. See ../shared/DESIGN.md.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "TokenBatch": "batch", "TokenStream": "batch", "FeedbackStream": "batch",
    "CurriculumConfigError": "errors",
    "Constant": "mixture", "DoReMi": "mixture", "Mixture": "mixture", "Piecewise": "mixture", "Schedule": "mixture",
    "Temperature": "mixture", "constant": "mixture", "cosine": "mixture", "piecewise": "mixture",
    "temperature_mixture": "mixture",
    "Difficulty": "order", "Domain": "source", "split_by_source": "source",
    "CurriculumStream": "stream", "DomainExhaustedWarning": "stream",
    "stream_from_spec": "config", "load_spec": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'curricula' has no attribute {name!r}")
    return getattr(importlib.import_module(f"curricula.{_EXPORTS[name]}"), name)
