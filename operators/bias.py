"""Debiasing: measure demographic term counts, swap gendered terms (counterfactual augmentation), rebalance.

* ``BiasMeasure``       — adds one struct column ``bias_counts`` of int32 counts: fields ``<group>_<category>``
  (gender_female, religion_muslim, ...) and ``cooc_<group>_<category>__<attribute>``: mentions of the category
  with an attribute word (family, career, competence, warmth, ...) in the same sentence or within ±``window``
  tokens. It is the operator's metric: the runner sums each field into the manifest as
  ``bias_counts.<field>``. Counting is RE2 (``pyarrow.compute``): one pass per group finds the rows that
  mention it, then one pass per category over those rows.
* ``CounterfactualSwap`` — he<->she, his<->her, man<->woman, ... keeping capitalisation. ``her`` becomes
  ``his`` (possessive) or ``him`` (object) and ``his`` becomes ``her`` or ``hers`` by the rule in
  ``bias_lexicons.resolve_her`` / ``resolve_his``. ``mode="augment"`` adds ``text_counterfactual`` (null where nothing
  was swapped); operators keep row counts, so ``counterfactual_rows`` builds the extra ``ID#cda`` rows.
* ``Rebalance`` / ``RebalanceSample`` — two passes, since weights need corpus totals: a first run measures;
  ``pipelines.bias_report.multipliers_from_manifest`` turns its totals and a target share into per-category
  multipliers (``rebalance_weights``); the second run adds ``sample_weight`` (the document's count-weighted
  mean multiplier, 1.0 without mentions) or keeps each document with probability ``weight / max(multipliers)``
  (a hash of seed and id decides). ``fit_multipliers`` is exact when documents mix categories.

Lexicons, their sources and limits: ``operators/bias_lexicons.py`` and ``docs/bias_lexicons.md``.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators import bias_lexicons as lx
from operators.base import Filter, Operator, check, reject_where

SENTENCE = r"[.!?]+[\"')\]]*(?:\s+|$)|\n\s*\n"  # sentence ends, and blank lines
ABBREVIATION = r"\b(mrs?|ms|dr|prof|st|jr|sr|vs|etc|e\.g|i\.e|no)\."


BIAS_COLUMN = "bias_counts"  # BiasMeasure's one output column: a struct of int32 counts, one field per term set


def count_fields(lexicons: Mapping[str, Any]) -> list[str]:
    return [f"{g}_{c}" for g, cats in lexicons.items() for c in cats]


def cooc_fields(lexicons: Mapping[str, Any], attributes: Mapping[str, Any], groups: tuple[str, ...]) -> list[str]:
    return [f"cooc_{g}_{c}__{a}" for g in groups for c in lexicons[g] for a in attributes]


def bias_counts(batch: pa.Table, fields: list[str], reader: str) -> dict[str, np.ndarray]:
    """The named fields of ``batch``'s ``bias_counts`` column (nulls as 0); a clear error naming ``reader``
    and the missing fields when BiasMeasure did not write them."""
    have = batch.schema.field(BIAS_COLUMN).type if BIAS_COLUMN in batch.column_names else None
    names = [f.name for f in have] if have is not None and pa.types.is_struct(have) else []
    missing = [f for f in fields if f not in names]
    if missing:
        raise ValueError(f"{reader}: {BIAS_COLUMN} fields {missing} missing; run BiasMeasure before it")
    return {f: np.asarray(pc.fill_null(pc.struct_field(batch[BIAS_COLUMN], f), 0)) for f in fields}


def _counts(text: pa.Array, terms: Any) -> np.ndarray:
    """Matches of ``terms`` per string: positive matches minus negative (``-term``) matches."""
    pos, neg = lx.split_terms(terms)
    n = np.asarray(pc.fill_null(pc.count_substring_regex(text, lx.term_regex(pos)), 0), np.int64)
    if neg:
        n -= np.asarray(pc.fill_null(pc.count_substring_regex(text, lx.term_regex(neg)), 0), np.int64)
    return n


def _group_counts(text: pa.Array, categories: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``_counts`` per category, run only on the rows where one pass finds any of the group's terms."""
    positive = [t for terms in categories.values() for t in lx.split_terms(terms)[0]]
    rows = np.flatnonzero(np.asarray(pc.fill_null(pc.match_substring_regex(text, lx.term_regex(positive)), False)))
    found = {c: np.zeros(len(text), np.int64) for c in categories}
    if len(rows):
        subset = text.take(pa.array(rows, pa.int64()))
        for c, terms in categories.items():
            found[c][rows] = _counts(subset, terms)
    return found


def _spans(pattern: re.Pattern, text: str, negative: re.Pattern | None) -> list[tuple[int, int]]:
    """(start, last character) of positive matches not inside a negative match (``_counts`` in Python)."""
    spans = [m.span() for m in negative.finditer(text)] if negative else []
    return [(m.start(), m.end() - 1) for m in pattern.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


@dataclass(frozen=True)
class BiasMeasure(Operator):
    """Count demographic terms per document and their co-occurrence with stereotyped attribute words."""

    metrics: ClassVar[tuple[str, ...]] = (BIAS_COLUMN,)  # a struct: the runner sums each field

    lexicons: Any = None    # group -> category -> terms, a JSON file path, or None for bias_lexicons.LEXICONS
    attributes: Any = None  # attribute -> terms, a JSON path, None for bias_lexicons.ATTRIBUTES, {} for none
    groups: tuple[str, ...] | None = None     # measure only these groups (None: all)
    cooc_groups: tuple[str, ...] | None = None  # groups counted with attributes (None: gender if measured)
    window: str | int = "sentence"            # "sentence" or N: an attribute word within N tokens of the term
    exclude: tuple[str, ...] = lx.EXCLUDE     # regexes masked before matching (technical senses)

    def __post_init__(self) -> None:
        lexicons, attributes = self._load("lexicons", lx.LEXICONS), self._load("attributes", lx.ATTRIBUTES)
        check(not (problems := lx.lexicon_problems(lexicons)), self, "lexicons", "; ".join(problems))
        check(not (problems := lx.attribute_problems(attributes)), self, "attributes", "; ".join(problems))
        for field, allowed in (("groups", tuple(lexicons)), ("cooc_groups", self.groups or tuple(lexicons))):
            value = getattr(self, field)
            check(value is None or (isinstance(value, (tuple, list)) and set(value) <= set(allowed)), self, field,
                  f"must be a tuple of groups among {tuple(allowed)}, got {value!r}")
            object.__setattr__(self, field, tuple(value) if value is not None else None)
        check(self.window == "sentence" or (type(self.window) is int and self.window >= 1), self, "window",
              f"must be 'sentence' or an integer >= 1 (tokens either side), got {self.window!r}")
        check(not (problems := lx.regex_problems(self.exclude)), self, "exclude", "; ".join(problems))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        chosen = {g: lexicons[g] for g in (self.groups or lexicons)}
        attributes = dict(attributes or {})
        object.__setattr__(self, "_cooc_groups", self.cooc_groups if self.cooc_groups is not None else
                           tuple(g for g in ("gender",) if g in chosen))
        object.__setattr__(self, "_lexicons", chosen)
        object.__setattr__(self, "_attributes", attributes)

    def _load(self, field: str, default: Any) -> Any:
        value = getattr(self, field)
        try:
            return default if value is None else lx.load_json(value) if isinstance(value, (str, Path)) else value
        except (OSError, ValueError) as exc:
            check(False, self, field, f"cannot read {value!r}: {exc}")

    def count_fields(self) -> list[str]:
        return count_fields(self._lexicons)

    def cooc_fields(self) -> list[str]:
        return cooc_fields(self._lexicons, self._attributes, self._cooc_groups if self._attributes else ())

    def fields(self) -> list[str]:
        """The fields of ``bias_counts``, in order: term counts, then co-occurrence counts."""
        return self.count_fields() + self.cooc_fields()

    def config(self) -> dict[str, Any]:
        """Parameters plus a digest of the word lists in effect (a changed file or default reruns the stage)."""
        used = json.dumps([self._lexicons, self._attributes, self.exclude], sort_keys=True, default=list)
        return {**super().config(), "lexicon_digest": hashlib.sha256(used.encode()).hexdigest()[:16]}

    def lower(self, text: pa.Array) -> pa.Array:
        """The text the terms are matched in: excluded spans masked with a space, then lower-cased."""
        if self.exclude:
            text = pc.replace_substring_regex(text, "|".join(f"(?:{p})" for p in self.exclude), " ")
        return pc.utf8_lower(text)

    def __call__(self, batch: pa.Table) -> pa.Table:
        low = self.lower(batch[self.text_column].combine_chunks())
        counts = {f"{g}_{c}": n for g, cats in self._lexicons.items() for c, n in _group_counts(low, cats).items()}
        cooc = {name: np.zeros(len(low), np.int64) for name in self.cooc_fields()}
        if cooc:  # rows with a term of a co-occurrence group and an attribute word
            rows = np.flatnonzero(np.sum([counts[f"{g}_{c}"] for g in self._cooc_groups
                                          for c in self._lexicons[g]], 0) > 0)
            attrs = _group_counts(low.take(pa.array(rows, pa.int64())), self._attributes)
            rows = rows[np.sum(list(attrs.values()), axis=0) > 0]
            if len(rows):
                found = (self._sentence_cooc if self.window == "sentence" else self._window_cooc)(low.take(rows))
                for name, values in found.items():
                    cooc[name][rows] = values
        fields = {**counts, **cooc}
        struct = pa.StructArray.from_arrays([pa.array(v, pa.int32()) for v in fields.values()], names=list(fields))
        batch = batch.drop_columns([BIAS_COLUMN]) if BIAS_COLUMN in batch.column_names else batch
        return batch.append_column(BIAS_COLUMN, struct)

    def _sentence_cooc(self, low: pa.Array) -> dict[str, np.ndarray]:
        """Per document: mentions of each category in sentences that also hold an attribute word."""
        sentences = pc.split_pattern_regex(pc.replace_substring_regex(low, ABBREVIATION, r"\1"), SENTENCE)
        flat, parent = pc.list_flatten(sentences), np.asarray(pc.list_parent_indices(sentences))
        has = {a: _counts(flat, terms) > 0 for a, terms in self._attributes.items()}
        found = {}
        for g in self._cooc_groups:
            for c, terms in self._lexicons[g].items():
                n = _counts(flat, terms)
                for a, present in has.items():
                    found[f"cooc_{g}_{c}__{a}"] = np.bincount(parent, n * present, len(low)).astype(np.int64)
        return found

    def _window_cooc(self, low: pa.Array) -> dict[str, np.ndarray]:
        """Per document: mentions of each category with an attribute word within ±window word tokens."""
        def compiled(terms: Any) -> tuple[re.Pattern, re.Pattern | None]:
            pos, neg = lx.split_terms(terms)
            return re.compile(lx.term_regex(pos), re.A), re.compile(lx.term_regex(neg), re.A) if neg else None
        cats = {(g, c): compiled(t) for g in self._cooc_groups for c, t in self._lexicons[g].items()}
        attrs = {a: compiled(t) for a, t in self._attributes.items()}
        found = {f"cooc_{g}_{c}__{a}": np.zeros(len(low), np.int64) for (g, c) in cats for a in attrs}
        word, n = re.compile(r"\w+", re.A), self.window
        for row, text in enumerate(low.to_pylist()):
            starts = [m.start() for m in word.finditer(text)]  # token i starts at starts[i]
            near = {a: sorted(bisect.bisect_right(starts, s) - 1 for s, _ in _spans(p, text, q))
                    for a, (p, q) in attrs.items()}
            for (g, c), (p, q) in cats.items():
                for s, e in _spans(p, text, q):  # the term covers tokens first..last
                    first, last = bisect.bisect_right(starts, s) - 1, bisect.bisect_right(starts, e) - 1
                    for a, at in near.items():
                        i = bisect.bisect_left(at, first - n)
                        found[f"cooc_{g}_{c}__{a}"][row] += i < len(at) and at[i] <= last + n
        return found


# -- counterfactual data augmentation ------------------------------------------------------------------------
@dataclass(frozen=True)
class CounterfactualSwap(Operator):
    """Gender-swap ``text``: add ``text_counterfactual`` (augment) or rewrite ``text`` (replace); count swaps."""

    metrics: ClassVar[tuple[str, ...]] = ("cda_swaps",)
    output_column: ClassVar[str] = "text_counterfactual"

    pairs: tuple[tuple[str, str], ...] = lx.GENDER_PAIRS  # (male, female) word pairs, lower-case
    names: bool = False  # also swap the capitalised first names in bias_lexicons.NAME_PAIRS
    mode: str = "augment"  # "augment": add text_counterfactual (null: nothing swapped); "replace": rewrite text
    exclude: tuple[str, ...] = lx.EXCLUDE  # regions never swapped (man pages, emails, ...)

    def __post_init__(self) -> None:
        ok = isinstance(self.pairs, (tuple, list)) and len(self.pairs) > 0 and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(w, str) and w.isalpha() and w.islower()
                                                                 for w in p) for p in self.pairs)
        check(ok, self, "pairs", f"must be a non-empty tuple of (male, female) lower-case word pairs, "
                                 f"got {self.pairs!r}")
        sides = ({p[0] for p in self.pairs}, {p[1] for p in self.pairs})
        check(not sides[0] & sides[1], self, "pairs", f"words on both sides: {sorted(sides[0] & sides[1])}")
        check(isinstance(self.names, bool), self, "names", f"must be a bool, got {self.names!r}")
        check(self.mode in ("augment", "replace"), self, "mode", f"must be 'augment' or 'replace', got {self.mode!r}")
        check(not (problems := lx.regex_problems(self.exclude)), self, "exclude", "; ".join(problems))
        object.__setattr__(self, "pairs", tuple(tuple(p) for p in self.pairs))
        object.__setattr__(self, "exclude", tuple(self.exclude))

    def __call__(self, batch: pa.Table) -> pa.Table:
        text = batch[self.text_column].combine_chunks()
        words = "|".join(w for p in self.pairs + (lx.NAME_PAIRS if self.names else ()) for w in p)
        rows = np.flatnonzero(np.asarray(pc.fill_null(pc.match_substring_regex(
            text, rf"\b(?:{words})\b", ignore_case=True), False)))
        swapped: list[str | None] = [None] * len(text)
        swaps = np.zeros(len(text), np.int32)
        values = text.take(pa.array(rows, pa.int64())).to_pylist()
        for row, value, spans in zip(rows, values, lx.excluded_spans(values, self.exclude)):
            new, swaps[row] = lx.swap_gender(value, self.pairs, self.names, self.exclude, spans)
            swapped[row] = new if swaps[row] else None
        new_text = pa.array(swapped, text.type)
        batch = batch.drop_columns([c for c in (self.output_column, "cda_swaps") if c in batch.column_names])
        if self.mode == "replace":
            index = batch.schema.get_field_index(self.text_column)
            batch = batch.set_column(index, self.text_column, pc.coalesce(new_text, text))
        else:
            batch = batch.append_column(self.output_column, new_text)
        return batch.append_column("cda_swaps", pa.array(swaps, pa.int32()))


def _suffix(ids: pa.ChunkedArray, suffix: str) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(ids, pa.scalar(suffix, ids.type), pa.scalar("", ids.type))


def counterfactual_rows(table: pa.Table, with_originals: bool = False) -> pa.Table:
    """The extra rows of counterfactual augmentation (for use outside the runner): each row with a
    counterfactual becomes ``id#cda`` with ``text`` swapped and ``cda_of`` naming its source id."""
    if CounterfactualSwap.output_column not in table.column_names:
        table = CounterfactualSwap()(table)
    name = CounterfactualSwap.output_column
    new = table.filter(pc.is_valid(table[name]))
    new = (new.set_column(new.schema.get_field_index("text"), "text", new[name])
           .set_column(new.schema.get_field_index("id"), "id", _suffix(new["id"], "#cda"))
           .drop_columns([name]).append_column("cda_of", new["id"]))  # new["id"]: the source ids
    if not with_originals:
        return new
    base = table.drop_columns([name])
    return pa.concat_tables([base.append_column("cda_of", pa.nulls(base.num_rows, new["cda_of"].type)), new])


# -- rebalancing ----------------------------------------------------------------------------------------------
def _check_target(categories: list[str], target: Mapping[str, float] | None) -> Mapping[str, float]:
    """The target shares (None: equal shares), checked against the categories."""
    if target is None:
        return {c: 1 / len(categories) for c in categories}
    if sorted(target) != sorted(categories):
        raise ValueError(f"target must give a share for exactly the categories {sorted(categories)}, "
                         f"got {sorted(target)}")
    if any(not isinstance(v, (int, float)) or v < 0 for v in target.values()) or abs(sum(target.values()) - 1) > 1e-6:
        raise ValueError(f"target shares must be >= 0 and sum to 1, got {dict(target)}")
    return target


def _scale(multipliers: dict[str, float], max_weight: float | None) -> dict[str, float]:
    top = max(multipliers.values())
    factor = max_weight / top if max_weight is not None and top > max_weight else 1.0
    return {c: m * factor for c, m in multipliers.items()}


def rebalance_weights(totals: Mapping[str, float], target: Mapping[str, float] | None = None,
                      max_weight: float | None = 10.0) -> dict[str, float]:
    """Per-category multipliers m with m_c * T_c / sum_k(m_k * T_k) == target_c, and sum_k(m_k * T_k) ==
    sum_k(T_k) (mass kept), all scaled down together if the largest exceeds ``max_weight`` (shares stay).

    Exact for documents that mention one category; ``fit_multipliers`` is exact for mixed ones."""
    target = _check_target(list(totals), target)
    whole = float(sum(totals.values()))
    missing = [c for c in totals if totals[c] <= 0 and target[c] > 0]
    if whole <= 0 or missing:
        raise ValueError(f"no mentions of {missing or list(totals)}: no weights reach the target")
    return _scale({c: (target[c] * whole / totals[c] if target[c] else 0.0) for c in totals}, max_weight)


def document_weights(counts: Mapping[str, np.ndarray], multipliers: Mapping[str, float]) -> np.ndarray:
    """Per document: the count-weighted mean of the category multipliers; 1.0 without mentions."""
    n = np.stack([np.asarray(counts[c], np.float64) for c in multipliers])
    m = np.array(list(multipliers.values()), np.float64)
    total = n.sum(axis=0)
    return np.where(total > 0, (m @ n) / np.maximum(total, 1), 1.0)


def fit_multipliers(counts: Mapping[str, np.ndarray], target: Mapping[str, float] | None = None,
                    max_weight: float | None = 10.0) -> dict[str, float]:
    """Multipliers whose ``document_weights`` give exactly the target share even when documents mix
    categories: the weighted count of c is (A m)_c with A_ck = sum_d n_dc n_dk / N_d, so solve A m = t."""
    target = _check_target(list(counts), target)
    n = np.stack([np.asarray(counts[c], np.float64) for c in counts])
    total = n.sum(axis=0)
    keep = total > 0
    a = (n[:, keep] / total[keep]) @ n[:, keep].T
    t = np.array([target[c] for c in counts])
    m = np.linalg.lstsq(a, t, rcond=None)[0]
    if np.any(m < -1e-12) or not np.allclose(a @ m, t, atol=1e-9):
        raise ValueError("target not reachable with per-document weights: documents mix the categories too much")
    m = np.clip(m, 0, None) * n.sum() / (a @ np.clip(m, 0, None)).sum()
    return _scale(dict(zip(counts, m.tolist())), max_weight)


@dataclass(frozen=True)
class Rebalance(Operator):
    """Add ``sample_weight``: the document's count-weighted mean multiplier over ``group``'s categories."""

    group: str = "gender"
    multipliers: Any = None  # category -> multiplier (rebalance_weights, bias_report.multipliers_from_manifest)

    def __post_init__(self) -> None:
        check(isinstance(self.group, str) and bool(self.group), self, "group",
              f"must be a group name, got {self.group!r}")
        check(isinstance(self.multipliers, Mapping) and len(self.multipliers) > 0 and all(
            isinstance(v, (int, float)) and v >= 0 for v in self.multipliers.values()) and max(
            self.multipliers.values()) > 0, self, "multipliers",
            f"must map categories to numbers >= 0, not all 0 (see rebalance_weights), got {self.multipliers!r}")

    def counts(self, batch: pa.Table) -> dict[str, np.ndarray]:
        """Per category of ``group``: its BiasMeasure count per document."""
        found = bias_counts(batch, [f"{self.group}_{c}" for c in self.multipliers], type(self).__name__)
        return {c: found[f"{self.group}_{c}"] for c in self.multipliers}

    def weights(self, batch: pa.Table) -> np.ndarray:
        return document_weights(self.counts(batch), self.multipliers)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = batch.drop_columns(["sample_weight"]) if "sample_weight" in batch.column_names else batch
        return batch.append_column("sample_weight", pa.array(self.weights(batch), pa.float64()))


@dataclass(frozen=True)
class RebalanceSample(Filter, Rebalance):
    """Keep a document with probability ``sample_weight / max(multipliers)`` (1 without mentions), decided by
    a hash of ``seed`` and ``id``: over-represented categories are thinned down to the target share."""

    seed: int = 0

    def __post_init__(self) -> None:
        Rebalance.__post_init__(self)
        check(type(self.seed) is int, self, "seed", f"must be an integer, got {self.seed!r}")

    def keep_probability(self, batch: pa.Table) -> np.ndarray:
        counts = self.counts(batch)
        weights, mentions = document_weights(counts, self.multipliers), np.sum(list(counts.values()), 0)
        return np.where(mentions > 0, np.minimum(1.0, weights / max(self.multipliers.values())), 1.0)

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        p = self.keep_probability(batch)
        draws = np.array([int.from_bytes(hashlib.blake2b(f"{self.seed}\x1f{i}".encode(), digest_size=8).digest(),
                                         "big") / 2.0**64 for i in batch["id"].to_pylist()])
        detail = pa.array([f"keep probability {x:.3f}" for x in p], pa.string())
        return reject_where(pa.array(draws >= p), "rebalanced out", detail)
