"""Gopher (MassiveText) heuristic quality filters: ``GopherQuality`` and ``GopherRepetition``.

Rules and default thresholds are those of Rae et al. 2021 ("Scaling Language Models: Methods, Analysis &
Insights from Training Gopher", appendix A) with DataTrove's definitions (``GopherQualityFilter``,
``GopherRepetitionFilter``): the same word splitting (spaCy English, re-implemented in
``operators.quality``), the same line and paragraph splitting, the same rule order. A rejected row's
reason names the first rule it failed (e.g. ``gopher: fewer than 50 words``) and its detail the measured
value (``37 words``).

Word statistics are computed for a whole batch at once with NumPy over ``quality.Words``; line and
paragraph statistics with polars expressions. The n-gram rules work per document: top n-gram counts by a
stable NumPy sort of 64-bit n-gram keys, and the repeated n-gram scan, sequential by definition, in Python
over just the n-grams with an earlier occurrence. For n above the smallest size, both look only at the
positions whose smaller n-gram repeats (an n-gram occurs no more often than its first m words), and a
document whose smaller n-grams are all distinct skips them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from operators.base import Filter, check
from operators.quality import (INLINE_SPACE, LINE_BREAKS, PARAGRAPH, SPACE_CHARS, Lazy, Words, duplicates,
                                first_failing, optional_number, pct, share, text_series)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


@dataclass(frozen=True)
class GopherQuality(Filter):
    """Gopher's quality rules: word count, mean word length, '#'/ellipsis per word, bullet and ellipsis
    lines, words with a letter, stop words. ``None`` turns a rule off (DataTrove also takes 0 for off;
    here 0 is a threshold).

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
            optional_number(self, field, integer=True)
        for field in ("min_avg_word_length", "max_avg_word_length", "max_symbol_word_ratio"):
            optional_number(self, field)
        for field in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio"):
            optional_number(self, field, high=1)
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            lo, hi = getattr(self, low), getattr(self, high)
            check(lo is None or hi is None or hi >= lo, self, high, f"must be >= {low} ({lo}), got {hi}")
        check(isinstance(self.stop_words, tuple) and all(isinstance(w, str) and w for w in self.stop_words),
              self, "stop_words", f"must be a tuple of non-empty strings, got {self.stop_words!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        words = Words(batch[self.text_column])
        n = batch.num_rows
        n_words = words.counts
        plain = ~words.symbol[words.ids]
        n_plain = words.per_doc(plain)
        plain_chars = words.per_doc(np.where(plain, words.length[words.ids], 0))
        with np.errstate(divide="ignore", invalid="ignore"):  # a / b as DataTrove divides, to the last bit
            mean_len = plain_chars / n_plain
        alpha = words.per_doc(words.alpha[words.ids])
        stop_ids = words.ids_of(set(self.stop_words))
        stops = sum((words.per_doc(words.ids == s) > 0).astype(np.int64) for s in stop_ids) \
            if len(stop_ids) else np.zeros(n, np.int64)

        text = text_series(batch[self.text_column])
        lines_text = text.str.replace_all(LINE_BREAKS, "\n")
        frame = pl.DataFrame({"t": lines_text}).select(
            hashes=pl.col("t").str.count_matches("#", literal=True),
            ellipses=pl.col("t").str.count_matches("...", literal=True)
            + pl.col("t").str.count_matches("…", literal=True),
            lines=pl.col("t").str.count_matches("\n", literal=True)
            + (pl.col("t").str.len_bytes() > 0).cast(pl.UInt32) - pl.col("t").str.ends_with("\n").cast(pl.UInt32),
            bullets=pl.col("t").str.count_matches(rf"(?m)^(?:{INLINE_SPACE})*[•-]"),
            end_ellipsis=pl.col("t").str.count_matches(rf"(?m)(?:\.\.\.|…)(?:{INLINE_SPACE})*$"),
        )
        hashes, ellipses, lines, bullets, end_ellipsis = (frame[c].to_numpy().astype(np.int64) for c in frame.columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            hash_ratio, ellipsis_ratio = hashes / n_words, ellipses / n_words
            bullet_ratio, end_ratio, alpha_ratio = bullets / lines, end_ellipsis / lines, alpha / n_words

        rules = []

        def rule(value, mask_fn, reason, detail_fn):
            if value is not None:
                rules.append((np.asarray(mask_fn(value), bool), reason, Lazy(detail_fn)))

        rule(self.min_doc_words, lambda v: n_plain < v, f"gopher: fewer than {self.min_doc_words} words",
             lambda i: f"{n_plain[i]} words")
        rule(self.max_doc_words, lambda v: n_plain > v, f"gopher: more than {self.max_doc_words} words",
             lambda i: f"{n_plain[i]} words")
        rule(self.min_avg_word_length, lambda v: mean_len < v,
             f"gopher: mean word length below {self.min_avg_word_length}", lambda i: f"{mean_len[i]:.2f} characters")
        rule(self.max_avg_word_length, lambda v: mean_len > v,
             f"gopher: mean word length above {self.max_avg_word_length}", lambda i: f"{mean_len[i]:.2f} characters")
        rule(self.max_symbol_word_ratio, lambda v: hash_ratio > v,
             f"gopher: '#' per word above {self.max_symbol_word_ratio}",
             lambda i: f"{hashes[i]} '#' in {n_words[i]} words ({hash_ratio[i]:.3f})")
        rule(self.max_symbol_word_ratio, lambda v: ellipsis_ratio > v,
             f"gopher: ellipses per word above {self.max_symbol_word_ratio}",
             lambda i: f"{ellipses[i]} ellipses in {n_words[i]} words ({ellipsis_ratio[i]:.3f})")
        rule(self.max_bullet_lines_ratio, lambda v: bullet_ratio > v,
             f"gopher: more than {share(self.max_bullet_lines_ratio or 0)} of lines start with a bullet",
             lambda i: f"{bullets[i]} of {lines[i]} lines ({pct(bullet_ratio[i])})")
        rule(self.max_ellipsis_lines_ratio, lambda v: end_ratio > v,
             f"gopher: more than {share(self.max_ellipsis_lines_ratio or 0)} of lines end with an ellipsis",
             lambda i: f"{end_ellipsis[i]} of {lines[i]} lines ({pct(end_ratio[i])})")
        rule(self.min_alpha_words_ratio, lambda v: alpha_ratio < v,
             f"gopher: fewer than {share(self.min_alpha_words_ratio or 0)} of words contain a letter",
             lambda i: f"{alpha[i]} of {n_words[i]} words ({pct(alpha_ratio[i])})")
        rule(self.min_stop_words, lambda v: stops < v, f"gopher: fewer than {self.min_stop_words} stop words",
             lambda i: f"{stops[i]} of {len(set(self.stop_words))} stop words")
        return first_failing(n, rules)


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
        self.hashes = _token_hashes(words.ids)
        self.cum_chars = np.concatenate([[0], np.cumsum(words.length[words.ids])])
        self._keys = {1: self.hashes}

    def keys(self, n: int) -> np.ndarray:
        if n not in self._keys:
            prev = self.keys(n - 1)
            key, m = np.empty_like(prev), len(prev) - (n - 1)
            with np.errstate(over="ignore"):
                np.multiply(prev[:m], np.uint64(0x100000001B3), out=key[:m])
                key[:m] += self.hashes[n - 1:]
            key[m:] = prev[m:]
            self._keys[n] = key
        return self._keys[n]

    def chars(self, n: int) -> np.ndarray:
        """Characters of the n-gram at each position with its tokens concatenated (no separators)."""
        return self.cum_chars[n:] - self.cum_chars[:len(self.cum_chars) - n]


def _positions(keys: np.ndarray, within: np.ndarray | None) -> np.ndarray:
    """The positions to look at: all of them, or those of ``within`` (sorted) that have an n-gram."""
    return np.arange(len(keys)) if within is None else within[within < len(keys)]


def _top_ngram(keys: np.ndarray, within: np.ndarray | None) -> tuple[int, int, np.ndarray]:
    """(position of first occurrence, count) of the most frequent n-gram, ties going to the one seen first
    as with DataTrove's ``Counter.most_common(1)``, and the positions of the n-grams that occur twice or
    more. ``within`` (or None for all) holds every position whose n-gram can occur twice: those of a
    smaller size's repeats, since an n-gram occurs no more often than its first m words. When no n-gram
    repeats, the top one is the first, once."""
    pos = _positions(keys, within)
    pos_keys = keys[pos]
    order = np.argsort(pos_keys, kind="stable")  # equal keys stay in position order
    k = pos_keys[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    counts = np.diff(np.append(starts, len(k)))
    top = int(counts.max()) if len(counts) else 1
    if top < 2:
        return 0, 1, pos[:0]
    first = pos[order[starts]][counts == top].min()
    return int(first), top, np.sort(pos[order[np.repeat(counts >= 2, counts)]])


def _repeated_chars(keys: np.ndarray, chars: np.ndarray, n: int, length: int, frac: float,
                    within: np.ndarray | None = None) -> tuple[int | None, np.ndarray | None]:
    """DataTrove's ``find_all_duplicate``: scan the n-grams left to right; one seen before adds its
    characters and the scan jumps past it (the n-grams it jumps over are never remembered), any other
    is remembered. Returns None when no n-gram occurs twice (then no longer one does either), and stops
    early once the total's share of ``length`` exceeds ``frac`` (it only grows). Also returns the
    positions of the n-grams that occur twice or more (``within`` for a larger n, as in ``_top_ngram``).

    Only the n-grams with an earlier occurrence can repeat, so the scan visits just those: one is a
    repeat if some earlier occurrence of it was remembered, i.e. not jumped over."""
    pos = _positions(keys, within)
    k = keys[pos]
    order = np.argsort(k, kind="stable")
    same = k[order[1:]] == k[order[:-1]]
    if not same.any():
        return None, None
    later, earlier = pos[order[1:][same]], pos[order[:-1][same]]  # an occurrence, the one just before
    by_position = np.argsort(later)
    candidates = later[by_position]
    previous_of = dict(zip(candidates.tolist(), earlier[by_position].tolist()))  # others: -1
    jumped: set[int] = set()
    repeated, resume = 0, 0
    for i, chars_i in zip(candidates.tolist(), chars[candidates].tolist()):
        if i < resume:
            continue
        j = previous_of[i]
        while j >= 0 and j in jumped:
            j = previous_of.get(j, -1)
        if j >= 0:
            repeated += chars_i
            if repeated / length > frac:
                break
            jumped.update(range(i + 1, i + n))
            resume = i + n
    return repeated, np.union1d(later, earlier)


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
            optional_number(self, field, high=1)
        for field in ("top_n_grams", "dup_n_grams"):
            value = getattr(self, field)
            ok = isinstance(value, tuple) and all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], int) and p[0] >= 1
                and isinstance(p[1], (int, float)) and 0 <= p[1] <= 1 for p in value)
            check(ok, self, field, f"must be a tuple of (n >= 1, fraction in [0, 1]) pairs, got {value!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        n = batch.num_rows
        text = text_series(batch[self.text_column])
        length = text.str.len_chars().to_numpy().astype(np.int64)
        paras = text.str.strip_chars(SPACE_CHARS).str.extract_all(PARAGRAPH).to_arrow()
        n_para, dup_para, dup_para_chars = duplicates(paras, n)
        n_para = np.maximum(n_para, 1)  # an empty text is one empty paragraph
        lines = text.str.extract_all(r"[^\n]+").to_arrow()
        n_line, dup_line, dup_line_chars = duplicates(lines, n)
        leading, trailing = text.str.starts_with("\n").to_numpy(), text.str.ends_with("\n").to_numpy()
        n_line += leading + trailing  # re.split(r"\n+") yields an empty first / last piece there
        dup_line += leading & trailing
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty text: 0 / 0, rejected as empty first
            para_share, line_share = dup_para_chars / length, dup_line_chars / length
            para_frac, line_frac = dup_para / n_para, dup_line / n_line
        rules = [(length == 0, "gopher repetition: text is empty", [""] * n)]

        def rule(value, mask, reason, detail_fn):
            if value is not None:
                rules.append((mask, reason, Lazy(detail_fn)))

        rule(self.dup_para_frac, para_frac > (self.dup_para_frac or 0),
             f"gopher repetition: more than {share(self.dup_para_frac or 0)} of paragraphs are duplicates",
             lambda i: f"{dup_para[i]} of {n_para[i]} paragraphs")
        rule(self.dup_para_char_frac, para_share > (self.dup_para_char_frac or 0),
             f"gopher repetition: more than {share(self.dup_para_char_frac or 0)} of characters in duplicate "
             "paragraphs",
             lambda i: f"{dup_para_chars[i]} of {length[i]} characters ({pct(para_share[i])})")
        rule(self.dup_line_frac, line_frac > (self.dup_line_frac or 0),
             f"gopher repetition: more than {share(self.dup_line_frac or 0)} of lines are duplicates",
             lambda i: f"{dup_line[i]} of {n_line[i]} lines")
        rule(self.dup_line_char_frac, line_share > (self.dup_line_char_frac or 0),
             f"gopher repetition: more than {share(self.dup_line_char_frac or 0)} of characters in duplicate lines",
             lambda i: f"{dup_line_chars[i]} of {length[i]} characters ({pct(line_share[i])})")
        open_rows = np.ones(n, bool)
        for mask, _, _ in rules:
            open_rows &= ~mask
        if self.top_n_grams or self.dup_n_grams:
            self._ngram_rules(batch, open_rows, length, rules)
        return first_failing(n, rules)

    def _ngram_rules(self, batch: pa.Table, open_rows: np.ndarray, length: np.ndarray, rules: list) -> None:
        n = batch.num_rows
        words = Words(batch[self.text_column])
        grams = _NGrams(words)
        vocab = words.vocab
        # count_n(g) <= count_m(g's first m words) for m < n: a smaller size's top count bounds a larger
        # size's, so with the longest n-gram's characters it can clear a document without counting.
        # A bound of 1 (all m-grams distinct) means all n-grams are distinct too: then the top n-gram is
        # the first one, once (the tie goes to the first seen), and no n-gram repeats.
        bound, bound_size, largest_done = np.zeros(n, np.int64), np.zeros(n, np.int64), None
        within: dict[int, tuple[int, np.ndarray]] = {}  # document -> (size, positions of its repeats)

        def within_of(d: int, size: int) -> np.ndarray | None:
            found = within.get(d)
            return found[1] if found is not None and found[0] <= size else None

        starts = words.offsets[:-1]
        for size, frac in self.top_n_grams:
            keys, chars = grams.keys(size), grams.chars(size) + (size - 1)  # n-grams joined by spaces
            todo = open_rows & (words.counts >= size)
            if largest_done is not None and largest_done < size and len(chars):
                longest = np.zeros(n, np.int64)
                nonempty = np.flatnonzero(words.counts > 0)
                longest[nonempty] = np.maximum.reduceat(chars, np.minimum(starts[nonempty], len(chars) - 1))
                todo &= bound * longest / np.maximum(length, 1) > frac
            failed, details = np.zeros(n, bool), {}
            distinct = todo & (bound == 1) & (bound_size > 0) & (bound_size <= size)
            first = np.flatnonzero(distinct)
            first_chars = chars[words.offsets[first]] if len(first) else np.zeros(0, np.int64)
            for d in first[first_chars / length[first] > frac].tolist():
                start, top_chars = words.offsets[d], int(chars[words.offsets[d]])
                failed[d] = True
                gram = " ".join(vocab[int(t)].as_py() for t in words.ids[start:start + size])
                details[d] = f"{gram!r} x1: {top_chars} of {length[d]} characters ({pct(top_chars / length[d])})"
            bound_size[todo] = size
            for d in np.flatnonzero(todo & ~distinct):
                start = words.offsets[d]
                position, count, repeats = _top_ngram(keys[start:words.offsets[d + 1] - size + 1] >> np.uint64(4),
                                                      within_of(d, size))
                within[d] = (size, repeats)
                bound[d] = count
                top_chars = int(chars[start + position]) * count
                if top_chars / length[d] > frac:
                    failed[d] = True
                    gram = " ".join(vocab[int(t)].as_py() for t in words.ids[start + position:start + position + size])
                    details[d] = (f"{gram!r} x{count}: {top_chars} of {length[d]} characters "
                                  f"({pct(top_chars / length[d])})")
            largest_done = size if largest_done is None else max(largest_done, size)
            rules.append((failed, f"gopher repetition: the top {size}-gram covers more than {share(frac)} of "
                          "characters", details))
            open_rows &= ~failed
        clean_from = np.full(n, np.iinfo(np.int64).max)  # no n-gram of this size or more repeats
        for size, frac in self.dup_n_grams:
            keys, chars = grams.keys(size), grams.chars(size)
            failed, details = np.zeros(n, bool), {}
            distinct = (bound == 1) & (bound_size > 0) & (bound_size <= size)  # no n-gram of this size repeats
            for d in np.flatnonzero(open_rows & (words.counts >= size) & (clean_from > size) & ~distinct):
                start, stop = words.offsets[d], words.offsets[d + 1] - size + 1
                repeated, repeats = _repeated_chars(keys[start:stop], chars[start:stop], size, int(length[d]), frac,
                                                    within_of(d, size))
                if repeats is not None:
                    within[d] = (size, repeats)
                if repeated is None:
                    clean_from[d] = size
                elif repeated / length[d] > frac:
                    failed[d] = True
                    details[d] = f"at least {repeated} of {length[d]} characters ({pct(repeated / length[d])}+)"
            rules.append((failed, f"gopher repetition: repeated {size}-grams cover more than {share(frac)} of "
                          "characters", details))
            open_rows &= ~failed
