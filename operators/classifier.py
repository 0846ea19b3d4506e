"""fastText classifiers as filters: score every document with a supervised fastText model.

``FastTextScore`` puts the probability of one label (e.g. ``hq`` of a DCLM-style quality model) into a
column and rejects documents outside ``[min_score, max_score]``. The helpers here are shared with
``operators.langid`` and ``operators.toxicity``:

* ``fasttext_lines`` turns a text column into the single-line strings fastText's ``predict`` needs (every
  whitespace run, newlines included, becomes one space). ``pipelines.classifier_train`` writes training
  files with the same function, so a model sees the same text at training and at scoring time.
* ``FastTextFilter`` is the stateful base: the model loads once per worker in ``setup`` (or lazily on the
  first batch), is never pickled, and ``__call__`` adds the score columns before the rules run.

Rows whose text is null or blank get null scores and are kept: the runner's ``RequireText`` rejects them
before any model stage.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DETAIL, REASON, Filter, Resources, check, merge_reasons, reject_where

LABEL_PREFIX = "__label__"


def strip_label(label: str) -> str:
    """``"__label__hq"`` -> ``"hq"``; plain labels pass unchanged."""
    return label[len(LABEL_PREFIX):] if label.startswith(LABEL_PREFIX) else label


def fasttext_lines(text: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """One line per document for fastText: whitespace runs (fastText's separators ``\\s``, ``\\v``, ``\\0``)
    become one space and the ends are trimmed. Null or blank text gives ``None``."""
    flat = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"[\s\x0b\x00]+", " "))
    return [line or None for line in flat.to_pylist()]


def set_column(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Add ``name`` to the batch, replacing a column of that name (a rerun of the same scorer)."""
    index = batch.schema.get_field_index(name)
    return batch.set_column(index, name, values) if index >= 0 else batch.append_column(name, values)


def format_score(score: float | None, digits: int = 2) -> str | None:
    return None if score is None else f"{score:.{digits}f}"


def check_model_file(op: object, field: str, path: str | None) -> None:
    """``ParameterError`` naming ``op.field`` and the path unless ``path`` is None or an existing file."""
    if path is None:
        return
    check(isinstance(path, str) and bool(path), op, field, f"must be a path to a fastText model, got {path!r}")
    check(os.path.isfile(os.path.expanduser(path)), op, field, f"no such model file: {path!r}")


def check_probability(op: object, field: str, value: Any, optional: bool = True) -> None:
    if optional and value is None:
        return
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0, op, field,
          f"must be a number in [0, 1]{' or None' if optional else ''}, got {value!r}")


def load_fasttext(path: str) -> Any:
    """Load a fastText model (``.bin`` or quantised ``.ftz``)."""
    import fasttext  # imported here: workers that never score do not pay for it

    return fasttext.load_model(os.path.expanduser(path))


def label_probabilities(model: Any, lines: list[str | None], label: str) -> list[float | None]:
    """P(``label``) per line from one batched ``predict`` call (null lines stay null)."""
    wanted = LABEL_PREFIX + label
    index = [i for i, line in enumerate(lines) if line is not None]
    scores: list[float | None] = [None] * len(lines)
    if index:
        labels, probs = model.predict([lines[i] for i in index], k=-1)
        for i, row_labels, row_probs in zip(index, labels, probs):
            probability = 0.0  # a label fastText ranks below k=-1's cut-off has probability ~0
            for name, p in zip(row_labels, row_probs):
                if name == wanted:
                    probability = float(p)
                    break
            scores[i] = min(1.0, max(0.0, probability))  # softmax output can exceed 1 by rounding
    return scores


@dataclass(frozen=True)
class FastTextFilter(Filter):
    """Base of the fastText filters: a model loaded once per worker; scores added as columns, then rules."""

    stateful: ClassVar[bool] = True
    # 0.5: measured on a 2-core local Ray, actor pools that reserve all CPUs starve the read tasks and the
    # run hangs (two fastText stages at 1 CPU each did); fastText predict uses one core whatever we reserve.
    resources: ClassVar[Resources] = Resources(num_cpus=0.5, batch_size=1024)

    def model_file(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self) -> None:
        object.__setattr__(self, "_model", load_fasttext(self.model_file()))
        self.check_model(self.__dict__["_model"])

    def check_model(self, model: Any) -> None:
        """Validate parameters that need the loaded model (e.g. that a label exists)."""

    @property
    def model(self) -> Any:
        if "_model" not in self.__dict__:
            self.setup()
        return self.__dict__["_model"]

    def __getstate__(self) -> dict[str, Any]:
        # Ray ships the operator to its actors; each loads its own model in ``setup``.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def score(self, batch: pa.Table) -> pa.Table:  # pragma: no cover - abstract
        """The batch with this filter's score columns added."""
        raise NotImplementedError

    def rules(self, scored: pa.Table) -> tuple[pa.Array, pa.Array]:  # pragma: no cover - abstract
        """(reason, detail) from a scored batch."""
        raise NotImplementedError

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        return self.rules(self.score(batch))

    def __call__(self, batch: pa.Table) -> pa.Table:
        scored = self.score(batch)
        reason, detail = self.rules(scored)
        return scored.append_column(REASON, reason).append_column(DETAIL, detail)


def bound_rules(scores: pa.Array, column: str, min_score: float | None, max_score: float | None,
                details: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Reject scores below ``min_score`` or above ``max_score`` (null scores are kept)."""
    rules = []
    if min_score is not None:
        rules.append(reject_where(pc.less(scores, min_score), f"{column} below {min_score:g}", details))
    if max_score is not None:
        rules.append(reject_where(pc.greater(scores, max_score), f"{column} above {max_score:g}", details))
    if not rules:  # scoring only: every row is kept
        return reject_where(pa.array([False] * len(scores), pa.bool_()), "unused")
    return merge_reasons(*rules)


@dataclass(frozen=True)
class FastTextScore(FastTextFilter):
    """Score documents with any supervised fastText model: P(``label``) into ``column``.

    ``column`` defaults to ``{label}_score``. With ``min_score``/``max_score`` set, documents outside the
    range are rejected with reason ``{column} below X`` / ``{column} above X`` and the score as detail.
    To keep the top k% instead of a fixed threshold, score the corpus first (no bounds), read the
    quantile with ``distillery inspect``, then filter with ``min_score`` at that quantile.
    """

    model_path: str
    label: str
    column: str | None = None
    min_score: float | None = None
    max_score: float | None = None

    def __post_init__(self) -> None:
        check(isinstance(self.model_path, str) and bool(self.model_path), self, "model_path",
              f"must be a path to a fastText supervised model, got {self.model_path!r}")
        check_model_file(self, "model_path", self.model_path)
        check(isinstance(self.label, str) and bool(strip_label(self.label)) and not any(c.isspace() for c in self.label),
              self, "label", f"must be a label of the model without whitespace (e.g. 'hq'), got {self.label!r}")
        object.__setattr__(self, "label", strip_label(self.label))
        check(self.column is None or (isinstance(self.column, str) and bool(self.column)), self, "column",
              f"must be a column name or None, got {self.column!r}")
        check_probability(self, "min_score", self.min_score)
        check_probability(self, "max_score", self.max_score)
        if self.min_score is not None and self.max_score is not None:
            check(self.min_score <= self.max_score, self, "max_score",
                  f"must be >= min_score ({self.min_score}), got {self.max_score}")

    @property
    def score_column(self) -> str:
        return self.column or f"{self.label}_score"

    def model_file(self) -> str:
        return self.model_path

    def check_model(self, model: Any) -> None:
        labels = [strip_label(name) for name in model.get_labels()]
        check(self.label in labels, self, "label",
              f"{self.label!r} is not a label of {self.model_path} (its labels: {', '.join(labels)})")

    def score(self, batch: pa.Table) -> pa.Table:
        scores = label_probabilities(self.model, fasttext_lines(batch[self.text_column]), self.label)
        return set_column(batch, self.score_column, pa.array(scores, pa.float64()))

    def rules(self, scored: pa.Table) -> tuple[pa.Array, pa.Array]:
        scores = scored[self.score_column].combine_chunks()
        details = pa.array([format_score(s, 4) for s in scores.to_pylist()], pa.string())
        return bound_rules(scores, self.score_column, self.min_score, self.max_score, details)


def top_fraction_threshold(scores: list[float], keep_fraction: float) -> float:
    """The score at which keeping ``score >= threshold`` keeps about ``keep_fraction`` of ``scores``
    (DCLM keeps the top 10%): use it as ``FastTextScore(min_score=...)`` on a second pass."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
    ordered = sorted((s for s in scores if s is not None and not math.isnan(s)), reverse=True)
    if not ordered:
        raise ValueError("no scores to take a threshold from")
    return ordered[max(0, math.ceil(keep_fraction * len(ordered)) - 1)]
