"""C4 and FineWeb heuristic quality filters: ``C4Quality`` and ``FineWebQuality``.

Rules, defaults and rule order are DataTrove's ``C4QualityFilter`` (Raffel et al. 2020, as in the TFDS
``c4_utils`` reference code) and ``FineWebQualityFilter`` (Penedo et al. 2024). A rejected row's reason
names the first rule it failed and its detail the measured value.

``C4Quality`` is a ``Filter`` that also rewrites ``text``, because C4 is both: it drops lines (no
terminal punctuation, too few words, "javascript", cookie/terms-of-use notices, over-long words,
Wikipedia-style citations removed) and then judges the document by what is left (at least five
sentences; no "lorem ipsum" and no "{" in a kept line). DataTrove does both in one step too: the
decision depends on the rewritten lines, so a separate map would have to carry them to a filter anyway.
Kept rows get the rewritten text; rejected rows keep their original text so the rejects show what was
judged. ``reasons()`` alone gives the decisions without the text.

Line statistics are polars expressions over all lines of a batch; Python runs only where a rule needs
it: sentence counts (spaCy's Sentencizer rules, ``operators.quality``) for documents with fewer kept
lines than ``min_num_sentences`` (every kept line holds at least one sentence), word counts for the
documents whose newlines per whitespace-separated chunk already exceed FineWeb's ``new_line_ratio``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DETAIL, REASON, Filter, check
from operators.quality import (LINE_BREAKS, SPACE_CHARS, Lazy, Words,
                               count_sentences, duplicates, first_failing, optional_number, pct, share,
                               split_sentences, text_series)
from operators.spacy_rules import TERMINAL_PUNCTUATION, WHITESPACE

POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
CITATION = r"\[\d*]|\[edit]|\[citation needed]"


def _literal_class(chars) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in chars)


@dataclass(frozen=True)
class C4Quality(Filter):
    """C4's line cleaning and document rules; ``None`` (or ``False``) turns a rule off.

    ``split_paragraph=False`` applies the line rules to spaCy sentences instead of lines (then every kept
    sentence counts as one). ``bad_words``: reject documents whose kept text contains one of these words
    (lower-case, whole words, as DataTrove's ``C4BadWordsFilter`` matches them); empty by default since
    C4's list is downloaded from outside.
    """

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int | None = 5
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    bad_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("split_paragraph", "remove_citations", "filter_no_terminal_punct", "filter_lorem_ipsum",
                      "filter_javascript", "filter_curly_bracket", "filter_policy"):
            value = getattr(self, field)
            check(isinstance(value, bool), self, field, f"must be True or False, got {value!r}")
        for field in ("min_num_sentences", "min_words_per_line", "max_word_length"):
            optional_number(self, field, integer=True)
        check(isinstance(self.bad_words, tuple) and all(isinstance(w, str) and w.strip() for w in self.bad_words),
              self, "bad_words", f"must be a tuple of non-empty strings, got {self.bad_words!r}")

    @cached_property
    def _bad_words_re(self) -> re.Pattern | None:
        if not self.bad_words:
            return None
        words = "|".join(re.escape(w.lower()) for w in self.bad_words)
        return re.compile(rf"(?:\W|^)({words})(?:\W|$)")

    def __call__(self, batch: pa.Table) -> pa.Table:
        reason, detail, text = self._clean(batch)
        index = batch.schema.get_field_index(self.text_column)
        kept_text = pc.if_else(pc.is_null(reason), text, batch[self.text_column].combine_chunks().cast(pa.string()))
        batch = batch.set_column(index, batch.schema.field(index).with_type(pa.string()), kept_text)
        return batch.append_column(REASON, reason).append_column(DETAIL, detail)

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        return self._clean(batch)[:2]

    def _lines(self, text: pl.Series) -> pl.DataFrame:
        """(doc, line) for every line (or sentence), in order."""
        if self.split_paragraph:
            pieces = text.str.replace_all(LINE_BREAKS, "\n").str.split("\n").to_arrow()
        else:
            pieces = pa.array([split_sentences(t) for t in text.to_list()], pa.list_(pa.large_string()))
        return pl.from_arrow(pa.table({"doc": pc.list_parent_indices(pieces), "line": pc.list_flatten(pieces)}))

    def _clean(self, batch: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
        n = batch.num_rows
        text = text_series(batch[self.text_column])
        lines = self._lines(text)
        line = pl.col("line").str.strip_chars(SPACE_CHARS)
        lines = lines.with_columns(
            line=line.str.replace_all(CITATION, "") if self.remove_citations else line,
            words=line.str.count_matches(rf"[^{WHITESPACE}]+"),
            long_word=pl.lit(False) if self.max_word_length is None else line.str.len_chars() > self.max_word_length,
        )
        if self.max_word_length is not None and lines["long_word"].any():  # a word, not the line, must be long
            long_rows = np.flatnonzero(lines["long_word"].to_numpy())
            raw = self._lines(text)["line"].gather(long_rows).to_list()
            truly = np.zeros(len(lines), bool)
            truly[long_rows] = [any(len(w) > self.max_word_length for w in r.split()) for r in raw]
            lines = lines.with_columns(long_word=pl.Series(truly))
        line, lower = pl.col("line"), pl.col("line").str.to_lowercase()
        passes = ~pl.col("long_word")
        if self.filter_no_terminal_punct:
            passes &= line.str.contains(r"[.?!\"']$") & ~line.str.ends_with("...")
        if self.min_words_per_line is not None:
            passes &= pl.col("words") >= self.min_words_per_line
        lorem = lower.str.contains("lorem ipsum", literal=True) if self.filter_lorem_ipsum else pl.lit(False)
        javascript = lower.str.contains("javascript", literal=True) if self.filter_javascript else pl.lit(False)
        curly = line.str.contains("{", literal=True) if self.filter_curly_bracket else pl.lit(False)
        policy = lower.str.contains_any(list(POLICY_SUBSTRINGS)) if self.filter_policy else pl.lit(False)
        lines = lines.with_row_index("row").with_columns(
            fatal=pl.when(passes & lorem).then(1).when(passes & ~javascript & curly).then(2).otherwise(0),
            kept=passes & ~lorem & ~javascript & ~curly & ~policy,
        )
        lines = lines.with_columns(number=(pl.col("row") - pl.col("row").min().over("doc")).cast(pl.Int64))

        fatal = lines.filter(pl.col("fatal") > 0).group_by("doc").agg(pl.all().sort_by("row").first())
        fatal_kind, fatal_line = np.zeros(n, np.int64), np.zeros(n, np.int64)
        fatal_kind[fatal["doc"].to_numpy()] = fatal["fatal"].to_numpy()
        fatal_line[fatal["doc"].to_numpy()] = fatal["number"].to_numpy()

        kept = lines.filter(pl.col("kept"))
        kept_doc = kept["doc"].to_numpy()
        kept_lines = np.bincount(kept_doc, minlength=n)
        # A lower bound: every non-empty kept line holds a sentence (and counts as one without split_paragraph).
        sentences = kept_lines if not self.split_paragraph else \
            np.bincount(kept_doc, weights=kept["line"].str.len_bytes().to_numpy() > 0, minlength=n).astype(np.int64)
        needs_count = np.zeros(n, bool)
        if self.min_num_sentences is not None:
            needs_count = (fatal_kind == 0) & (sentences < self.min_num_sentences) & self.split_paragraph
            if needs_count.any():
                rows = np.flatnonzero(needs_count[kept_doc])
                counted = np.zeros(n, np.int64)
                for d, t in zip(kept_doc[rows], kept["line"].gather(rows).to_list()):
                    counted[d] += count_sentences(t) if self.split_paragraph else 1
                sentences = np.where(needs_count, counted, sentences)
        joined = kept.group_by("doc").agg(pl.col("line").str.join("\n" if self.split_paragraph else " "))
        out = np.full(n, "", dtype=object)
        out[joined["doc"].to_numpy()] = joined["line"].str.strip_chars(SPACE_CHARS).to_list()

        rules = [
            (fatal_kind == 1, "c4: contains 'lorem ipsum'", Lazy(lambda i: f"line {fatal_line[i] + 1}")),
            (fatal_kind == 2, "c4: contains a curly bracket", Lazy(lambda i: f"line {fatal_line[i] + 1}")),
        ]
        if self.min_num_sentences is not None:
            unit = "lines" if self.split_paragraph else "sentences"
            rules.append((sentences < self.min_num_sentences, f"c4: fewer than {self.min_num_sentences} sentences",
                          Lazy(lambda i: f"{sentences[i]} sentences in {kept_lines[i]} kept {unit}")))
        if self._bad_words_re is not None:
            found = [self._bad_words_re.search(t.lower()) for t in out]
            rules.append((np.array([m is not None for m in found], bool), "c4: contains a bad word",
                          Lazy(lambda i: repr(found[i].group(1)))))
        reason, detail = first_failing(n, rules)
        return reason, detail, pa.array(out.tolist(), pa.string())


@dataclass(frozen=True)
class FineWebQuality(Filter):
    """FineWeb's rules over the non-blank lines: enough lines end in punctuation (``stop_chars``, the
    Unicode sentence terminators by default), not too many short lines, few characters in duplicate
    lines, not too many newlines per word. ``line_punct_exclude_zero`` keeps documents where no line
    ends in punctuation (DataTrove's exclusion for languages written without it)."""

    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    stop_chars: tuple[str, ...] | None = None
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3

    def __post_init__(self) -> None:
        for field in ("line_punct_thr", "short_line_thr", "char_duplicates_ratio"):
            value = getattr(self, field)
            check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1, self, field,
                  f"must be a number in [0, 1], got {value!r}")
        ratio = self.new_line_ratio
        check(isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and ratio >= 0, self, "new_line_ratio",
              f"must be a number >= 0, got {ratio!r}")
        check(isinstance(self.short_line_length, int) and not isinstance(self.short_line_length, bool)
              and self.short_line_length >= 0, self, "short_line_length",
              f"must be an integer >= 0, got {self.short_line_length!r}")
        check(isinstance(self.line_punct_exclude_zero, bool), self, "line_punct_exclude_zero",
              f"must be True or False, got {self.line_punct_exclude_zero!r}")
        check(self.stop_chars is None or (isinstance(self.stop_chars, tuple) and self.stop_chars
                                          and all(isinstance(c, str) and c for c in self.stop_chars)),
              self, "stop_chars", f"must be None or a tuple of non-empty strings, got {self.stop_chars!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        n = batch.num_rows
        column = batch[self.text_column]
        text = text_series(column)
        pieces = text.str.split("\n").to_arrow()
        lines = pl.from_arrow(pa.table({"line": pc.list_flatten(pieces), "doc": pc.list_parent_indices(pieces)}))
        lines = lines.filter(pl.col("line").str.strip_chars(SPACE_CHARS) != "")
        if self.stop_chars is None:
            ends = rf"[{_literal_class(sorted(TERMINAL_PUNCTUATION))}]$"
        else:
            ends = "(?:" + "|".join(_literal_class(s) for s in self.stop_chars) + ")$"
        stats = lines.select("doc", punct=pl.col("line").str.contains(ends),
                             short=pl.col("line").str.len_chars() <= self.short_line_length)
        doc = stats["doc"].to_numpy()
        n_lines = np.bincount(doc, minlength=n)
        punct = np.bincount(doc, weights=stats["punct"].to_numpy(), minlength=n).astype(np.int64)
        short = np.bincount(doc, weights=stats["short"].to_numpy(), minlength=n).astype(np.int64)
        _, _, dup_chars = duplicates(pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(n_lines)]), pa.int32()), lines["line"].to_arrow()), n)
        frame = pl.DataFrame({"t": text}).select(
            newlines=pl.col("t").str.count_matches("\n", literal=True),
            chars=pl.col("t").str.len_chars() - pl.col("t").str.count_matches("\n", literal=True),
            chunks=pl.col("t").str.count_matches(rf"[^{WHITESPACE}]+"))
        newlines, chars, chunks = (frame[c].to_numpy().astype(np.int64) for c in frame.columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            punct_ratio, short_ratio, dup_ratio = punct / n_lines, short / n_lines, dup_chars / chars
            words = chunks.astype(np.float64)  # at most the word count: each chunk is one or more words
            maybe_list = (n_lines > 0) & (newlines / words > self.new_line_ratio)
        if maybe_list.any():
            rows = np.flatnonzero(maybe_list)
            words[rows] = Words(column.take(pa.array(rows))).counts
        with np.errstate(divide="ignore", invalid="ignore"):
            list_ratio = newlines / words
        punct_fail = punct_ratio < self.line_punct_thr
        if self.line_punct_exclude_zero:
            punct_fail &= punct > 0
        return first_failing(n, [
            (n_lines == 0, "fineweb: text is empty", [""] * n),
            (punct_fail, f"fineweb: fewer than {share(self.line_punct_thr)} of lines end with punctuation",
             Lazy(lambda i: f"{punct[i]} of {n_lines[i]} lines ({pct(punct_ratio[i])})")),
            (short_ratio > self.short_line_thr,
             f"fineweb: more than {share(self.short_line_thr)} of lines are short "
             f"(<= {self.short_line_length} characters)",
             Lazy(lambda i: f"{short[i]} of {n_lines[i]} lines ({pct(short_ratio[i])})")),
            (dup_ratio > self.char_duplicates_ratio,
             f"fineweb: more than {share(self.char_duplicates_ratio)} of characters in duplicate lines",
             Lazy(lambda i: f"{dup_chars[i]} of {chars[i]} characters ({pct(dup_ratio[i])})")),
            (maybe_list & (list_ratio > self.new_line_ratio),
             f"fineweb: more than {self.new_line_ratio:g} newlines per word",
             Lazy(lambda i: f"{newlines[i]} newlines, {int(words[i])} words ({list_ratio[i]:.2f})")),
        ])
