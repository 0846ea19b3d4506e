"""Curricula: domain mixtures and difficulty schedules streamed from Parquet into training.

``CurriculumStream`` (stream.py) yields ``TokenBatch``es (batch.py) from Parquet domains (source.py) under
a mixture schedule (mixture.py), picking domains with a low-discrepancy selector (selector.py), reading
documents in shuffled or difficulty order (order.py) and packing tokens into fixed windows (packing.py).
``pretokenize`` (Ray Data) and ``Perplexity`` (a difficulty score) live in their own modules, imported
on demand. See ../shared/DESIGN.md.
"""
from curricula.batch import FeedbackStream, TokenBatch, TokenStream
from curricula.mixture import (Constant, CurriculumConfigError, DoReMi, Mixture, Piecewise, Schedule, Temperature,
                               constant, cosine, piecewise, temperature_mixture)
from curricula.order import Difficulty
from curricula.source import Domain, split_by_source
from curricula.stream import CurriculumStream, DomainExhaustedWarning

__all__ = ["Constant", "CurriculumConfigError", "CurriculumStream", "Difficulty", "DoReMi", "Domain",
           "DomainExhaustedWarning", "FeedbackStream", "Mixture", "Piecewise", "Schedule", "Temperature",
           "TokenBatch", "TokenStream", "constant", "cosine", "piecewise", "split_by_source", "temperature_mixture"]
