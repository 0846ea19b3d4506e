"""Gopher (MassiveText) heuristic quality filters: ``GopherQuality`` and ``GopherRepetition``.

Rules and default thresholds are those of Rae et al. 2021 ("Scaling Language Models: Methods, Analysis &
Insights from Training Gopher", appendix A) with DataTrove's definitions (``GopherQualityFilter``,
``GopherRepetitionFilter``): the same word splitting (spaCy English, re-implemented in
``operators.quality``), the same line and paragraph splitting, the same rule order. A rejected row's
reason names the first rule it failed (e.g. ``gopher: fewer than 50 words``) and its detail the measured
value (``37 words``).

Word statistics are computed for a whole batch at once with NumPy over ``quality.Words``; line and
paragraph statistics with polars expressions. Only the n-gram repetition scan, which is sequential by
definition, runs per document in Python, and only for documents that repeat an n-gram at all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Filter, check
from operators.quality import LEXICON, WHITESPACE, Words

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# ``str.splitlines`` boundaries other than "\n", and the whitespace ``str.strip`` removes within a line.
_LINE_BREAKS = r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
_INLINE_SPACE = r"[^\S\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]|\x1f"


def _optional(op: object, field: str, low: float = 0, high: float | None = None, integer: bool = False) -> None:
    value = getattr(op, field)
    kind = "an integer" if integer else "a number"
    ok = value is None or (isinstance(value, int) if integer else isinstance(value, (int, float))) \
        and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    bound = f">= {low}" + (f" and <= {high}" if high is not None else "")
    check(ok, op, field, f"must be None (rule off) or {kind} {bound}, got {value!r}")


def _text_frame(text: pa.ChunkedArray | pa.Array) -> pl.Series:
    return pl.Series("text", text.cast(pa.large_string())).fill_null("")


def _reasons(n: int, rules: list[tuple[np.ndarray, str, list[str] | np.ndarray]]) -> tuple[pa.Array, pa.Array]:
    """First failing rule per row: ``rules`` is [(mask, reason, details)] in order of precedence."""
    reason: list[str | None] = [None] * n
    detail: list[str | None] = [None] * n
    open_rows = np.ones(n, bool)
    for mask, text, details in rules:
        hit = np.flatnonzero(mask & open_rows)
        for i in hit:
            reason[i], detail[i] = text, details[i]
        open_rows[hit] = False
    return pa.array(reason, pa.string()), pa.array(detail, pa.string())


class _Lazy:
    """``details[i]`` computed on demand, so only rejected rows pay for their formatted detail."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __getitem__(self, i: int) -> str:
        return self.fn(i)


def _pct(x: float) -> str:
    """A measured share: ``0.4567`` -> ``45.7%``."""
    return f"{100 * x:.1f}%"


def share(x: float) -> str:
    """A threshold: ``0.3`` -> ``30%``."""
    return f"{round(100 * x, 6):g}%"


@dataclass(frozen=True)
class GopherQuality(Filter):
    """Gopher's quality rules: word count, mean word length, '#'/ellipsis per word, bullet and ellipsis
    lines, words with a letter, stop words. ``None`` turns a rule off.

    ``min_alpha_words_ratio`` is DataTrove's ``max_non_alpha_words_ratio`` (a minimum despite its name).
    Words are spaCy English tokens (punctuation marks are words); the word count and the mean word
    length ignore words made only of punctuation, as DataTrove does.
    """

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = STOP_WORDS

    def __post_init__(self) -> None:
        for field in ("min_doc_words", "max_doc_words", "min_stop_words"):
            _optional(self, field, integer=True)
        for field in ("min_avg_word_length", "max_avg_word_length", "max_symbol_word_ratio"):
            _optional(self, field)
        for field in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio"):
            _optional(self, field, high=1)
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            lo, hi = getattr(self, low), getattr(self, high)
            check(lo is None or hi is None or hi >= lo, self, high, f"must be >= {low} ({lo}), got {hi}")
        check(isinstance(self.stop_words, tuple) and all(isinstance(w, str) and w for w in self.stop_words),
              self, "stop_words", f"must be a tuple of non-empty strings, got {self.stop_words!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        words = Words(batch[self.text_column])
        lex = LEXICON
        n = batch.num_rows
        n_words = words.counts
        plain = ~lex.symbol[words.ids]
        n_plain = words.per_doc(plain)
        plain_chars = words.per_doc(np.where(plain, lex.length[words.ids], 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_len = plain_chars / n_plain
            per_word = 1 / n_words
        alpha = words.per_doc(lex.alpha[words.ids])
        stop_ids = lex.lookup(set(self.stop_words))
        stops = sum((words.per_doc(words.ids == s) > 0).astype(np.int64) for s in stop_ids) \
            if len(stop_ids) else np.zeros(n, np.int64)

        text = _text_frame(batch[self.text_column])
        lines_text = text.str.replace_all(_LINE_BREAKS, "\n")
        frame = pl.DataFrame({"t": lines_text}).select(
            hashes=pl.col("t").str.count_matches("#", literal=True),
            ellipses=pl.col("t").str.count_matches("...", literal=True) + pl.col("t").str.count_matches("…", literal=True),
            lines=pl.col("t").str.count_matches("\n", literal=True)
            + (pl.col("t").str.len_bytes() > 0).cast(pl.UInt32) - pl.col("t").str.ends_with("\n").cast(pl.UInt32),
            bullets=pl.col("t").str.count_matches(rf"(?m)^(?:{_INLINE_SPACE})*[•-]"),
            end_ellipsis=pl.col("t").str.count_matches(rf"(?m)(?:\.\.\.|…)(?:{_INLINE_SPACE})*$"),
        )
        hashes, ellipses, lines, bullets, end_ellipsis = (frame[c].to_numpy().astype(np.int64) for c in frame.columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            hash_ratio, ellipsis_ratio = hashes * per_word, ellipses * per_word
            bullet_ratio, end_ratio, alpha_ratio = bullets / lines, end_ellipsis / lines, alpha * per_word

        rules = []

        def rule(value, mask_fn, reason, detail_fn):
            if value is not None:
                rules.append((np.asarray(mask_fn(value), bool), reason, _Lazy(detail_fn)))

        rule(self.min_doc_words, lambda v: n_plain < v, f"gopher: fewer than {self.min_doc_words} words",
             lambda i: f"{n_plain[i]} words")
        rule(self.max_doc_words, lambda v: n_plain > v, f"gopher: more than {self.max_doc_words} words",
             lambda i: f"{n_plain[i]} words")
        rule(self.min_avg_word_length, lambda v: mean_len < v,
             f"gopher: mean word length below {self.min_avg_word_length}", lambda i: f"{mean_len[i]:.2f} characters")
        rule(self.max_avg_word_length, lambda v: mean_len > v,
             f"gopher: mean word length above {self.max_avg_word_length}", lambda i: f"{mean_len[i]:.2f} characters")
        rule(self.max_symbol_word_ratio, lambda v: hash_ratio > v, f"gopher: '#' per word above {self.max_symbol_word_ratio}",
             lambda i: f"{hashes[i]} '#' in {n_words[i]} words ({hash_ratio[i]:.3f})")
        rule(self.max_symbol_word_ratio, lambda v: ellipsis_ratio > v,
             f"gopher: ellipses per word above {self.max_symbol_word_ratio}",
             lambda i: f"{ellipses[i]} ellipses in {n_words[i]} words ({ellipsis_ratio[i]:.3f})")
        rule(self.max_bullet_lines_ratio, lambda v: bullet_ratio > v,
             f"gopher: more than {share(self.max_bullet_lines_ratio or 0)} of lines start with a bullet",
             lambda i: f"{bullets[i]} of {lines[i]} lines ({_pct(bullet_ratio[i])})")
        rule(self.max_ellipsis_lines_ratio, lambda v: end_ratio > v,
             f"gopher: more than {share(self.max_ellipsis_lines_ratio or 0)} of lines end with an ellipsis",
             lambda i: f"{end_ellipsis[i]} of {lines[i]} lines ({_pct(end_ratio[i])})")
        rule(self.min_alpha_words_ratio, lambda v: alpha_ratio < v,
             f"gopher: fewer than {share(self.min_alpha_words_ratio or 0)} of words contain a letter",
             lambda i: f"{alpha[i]} of {n_words[i]} words ({_pct(alpha_ratio[i])})")
        rule(self.min_stop_words, lambda v: stops < v, f"gopher: fewer than {self.min_stop_words} stop words",
             lambda i: f"{stops[i]} of {len(set(self.stop_words))} stop words")
        return _reasons(n, rules)


_PARAGRAPH = r"[^\n]+(?:\n[^\n]+)*"  # the pieces ``re.split(r"\n{2,}", text.strip())`` returns
_SPACE_CHARS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what ``str.strip()`` removes


def _duplicates(pieces: pa.ListArray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: pieces, pieces equal to an earlier piece, and their characters (DataTrove's
    ``find_duplicates``)."""
    flat = pl.from_arrow(pa.table({"doc": pc.list_parent_indices(pieces), "piece": pc.list_flatten(pieces)}))
    flat = flat.select("doc", dup=~pl.struct("doc", "piece").is_first_distinct(), chars=pl.col("piece").str.len_chars())
    doc, dup, chars = flat["doc"].to_numpy(), flat["dup"].to_numpy(), flat["chars"].to_numpy()
    counts = np.bincount(doc, minlength=n)
    return counts, np.bincount(doc, weights=dup, minlength=n).astype(np.int64), \
        np.bincount(doc, weights=np.where(dup, chars, 0), minlength=n).astype(np.int64)


def _token_hashes(ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash per token id (splitmix64), so that n-gram keys are sums of well-mixed values."""
    x = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _NGrams:
    """n-gram keys and character lengths at every token position of a batch (positions whose n-gram would
    run past the document's end are still computed; callers slice per document)."""

    def __init__(self, words: Words) -> None:
        self.words = words
        self.hashes = _token_hashes(words.ids)
        self.cum_chars = np.concatenate([[0], np.cumsum(LEXICON.length[words.ids])])
        self._keys = {1: self.hashes}

    def keys(self, n: int) -> np.ndarray:
        if n not in self._keys:
            prev = self.keys(n - 1)
            key = prev.copy()
            with np.errstate(over="ignore"):
                key[:len(key) - (n - 1)] = prev[:len(key) - (n - 1)] * np.uint64(0x100000001B3) + self.hashes[n - 1:]
            self._keys[n] = key
        return self._keys[n]

    def chars(self, n: int) -> np.ndarray:
        """Characters of the n-gram at each position with its tokens concatenated (no separators)."""
        return self.cum_chars[n:] - self.cum_chars[:len(self.cum_chars) - n]


def _top_ngram(keys: list[int]) -> tuple[int, int]:
    """(position of first occurrence, count) of the most frequent n-gram; ties go to the earliest, as
    ``Counter.most_common(1)`` does."""
    key, count = Counter(keys).most_common(1)[0]
    return keys.index(key), count


def _repeated_chars(keys: list[int], chars: list[int], n: int, limit: float) -> int | None:
    """DataTrove's ``find_all_duplicate``: scan left to right; an n-gram seen before adds its characters
    and the scan jumps past it, otherwise it is remembered. Stops once the total exceeds ``limit``.
    None: no n-gram occurs twice (then no longer one does either)."""
    if len(set(keys)) == len(keys):
        return None
    seen: set[int] = set()
    first_repeat = 0
    for first_repeat, k in enumerate(keys):  # up to the first repeat every n-gram is new
        if k in seen:
            break
        seen.add(k)
    repeated, i, end = 0, first_repeat, len(keys)
    while i < end:
        k = keys[i]
        if k in seen:
            repeated += chars[i]
            if repeated > limit:
                break
            i += n
        else:
            seen.add(k)
            i += 1
    return repeated


@dataclass(frozen=True)
class GopherRepetition(Filter):
    """Gopher's repetition rules: duplicate lines and paragraphs (by count and by characters), the most
    frequent 2/3/4-gram's share of characters, and the share of characters in repeated 5..10-grams.

    Paragraphs are the pieces between runs of two or more newlines, lines the pieces between runs of
    newlines, words spaCy English tokens; n-gram characters are measured as DataTrove does (top n-grams
    joined with spaces, repeated n-grams without). Shares are of ``len(text)``. ``None`` turns a rule off.
    n-grams are compared by their tokens (64-bit hashes of token ids), where DataTrove compares the
    concatenated strings: it also counts ``"ab","c"`` and ``"a","bc"`` as one repeated n-gram.
    """

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))

    def __post_init__(self) -> None:
        for field in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac"):
            _optional(self, field, high=1)
        for field in ("top_n_grams", "dup_n_grams"):
            value = getattr(self, field)
            ok = isinstance(value, tuple) and all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], int) and p[0] >= 1
                and isinstance(p[1], (int, float)) and 0 <= p[1] <= 1 for p in value)
            check(ok, self, field, f"must be a tuple of (n >= 1, fraction in [0, 1]) pairs, got {value!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        n = batch.num_rows
        text = _text_frame(batch[self.text_column])
        length = text.str.len_chars().to_numpy().astype(np.int64)
        paras = text.str.strip_chars(_SPACE_CHARS).str.extract_all(_PARAGRAPH).to_arrow()
        n_para, dup_para, dup_para_chars = _duplicates(paras, n)
        n_para = np.maximum(n_para, 1)  # an empty text is one empty paragraph
        lines = text.str.extract_all(r"[^\n]+").to_arrow()
        n_line, dup_line, dup_line_chars = _duplicates(lines, n)
        leading, trailing = text.str.starts_with("\n").to_numpy(), text.str.ends_with("\n").to_numpy()
        n_line += leading + trailing  # re.split(r"\n+") yields an empty first / last piece there
        dup_line += leading & trailing
        with np.errstate(divide="ignore", invalid="ignore"):
            char_share = 1 / length
        rules = [(length == 0, "gopher repetition: text is empty", [""] * n)]

        def rule(value, mask, reason, detail_fn):
            if value is not None:
                rules.append((mask, reason, _Lazy(detail_fn)))

        rule(self.dup_para_frac, dup_para / n_para > (self.dup_para_frac or 0),
             f"gopher repetition: more than {share(self.dup_para_frac or 0)} of paragraphs are duplicates",
             lambda i: f"{dup_para[i]} of {n_para[i]} paragraphs")
        rule(self.dup_para_char_frac, dup_para_chars * char_share > (self.dup_para_char_frac or 0),
             f"gopher repetition: more than {share(self.dup_para_char_frac or 0)} of characters in duplicate paragraphs",
             lambda i: f"{dup_para_chars[i]} of {length[i]} characters ({_pct(dup_para_chars[i] * char_share[i])})")
        rule(self.dup_line_frac, dup_line / n_line > (self.dup_line_frac or 0),
             f"gopher repetition: more than {share(self.dup_line_frac or 0)} of lines are duplicates",
             lambda i: f"{dup_line[i]} of {n_line[i]} lines")
        rule(self.dup_line_char_frac, dup_line_chars * char_share > (self.dup_line_char_frac or 0),
             f"gopher repetition: more than {share(self.dup_line_char_frac or 0)} of characters in duplicate lines",
             lambda i: f"{dup_line_chars[i]} of {length[i]} characters ({_pct(dup_line_chars[i] * char_share[i])})")
        open_rows = np.ones(n, bool)
        for mask, _, _ in rules:
            open_rows &= ~mask
        if self.top_n_grams or self.dup_n_grams:
            self._ngram_rules(batch, open_rows, length, rules)
        return _reasons(n, rules)

    def _ngram_rules(self, batch: pa.Table, open_rows: np.ndarray, length: np.ndarray, rules: list) -> None:
        n = batch.num_rows
        words = Words(batch[self.text_column])
        grams = _NGrams(words)
        tokens = LEXICON.tokens
        for size, frac in self.top_n_grams:
            keys = grams.keys(size)
            failed, details = np.zeros(n, bool), {}
            for d in np.flatnonzero(open_rows & (words.counts >= size)):
                start = words.offsets[d]
                position, count = _top_ngram(keys[start:words.offsets[d + 1] - size + 1].tolist())
                first = start + position
                chars = int(grams.cum_chars[first + size] - grams.cum_chars[first]) + size - 1  # joined by spaces
                if chars * count > frac * length[d]:
                    failed[d] = True
                    gram = " ".join(tokens[t] for t in words.ids[start + position:start + position + size])
                    details[d] = f"{gram!r} x{count}: {chars * count} of {length[d]} characters " \
                                 f"({_pct(chars * count / length[d])})"
            rules.append((failed, f"gopher repetition: the top {size}-gram covers more than {share(frac)} of characters",
                          details))
            open_rows &= ~failed
        clean_from = np.full(n, np.iinfo(np.int64).max)  # no n-gram of this size or more repeats
        for size, frac in self.dup_n_grams:
            keys, chars = grams.keys(size), grams.chars(size)
            failed, details = np.zeros(n, bool), {}
            for d in np.flatnonzero(open_rows & (words.counts >= size) & (clean_from > size)):
                start, stop = words.offsets[d], words.offsets[d + 1] - size + 1
                repeated = _repeated_chars(keys[start:stop].tolist(), chars[start:stop].tolist(), size,
                                           frac * length[d])
                if repeated is None:
                    clean_from[d] = size
                elif repeated > frac * length[d]:
                    failed[d] = True
                    details[d] = f"over {repeated} of {length[d]} characters ({_pct(repeated / length[d])}+)"
            rules.append((failed, f"gopher repetition: repeated {size}-grams cover more than {share(frac)} of characters",
                          details))
            open_rows &= ~failed
