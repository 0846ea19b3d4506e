"""Shared text statistics for the heuristic quality filters (``operators.gopher``, ``operators.c4_fineweb``).

The published filters, as DataTrove implements them, count *words* with spaCy's English tokenizer and
*sentences* with spaCy's rule-based sentencizer. Calling spaCy costs ~1 s per MB of text, so this module
re-implements exactly those two rule sets in plain Python ``re``:

* ``split_chunk`` / ``split_words`` follow spaCy 3.8's English tokenizer (``spacy.blank("en")``):
  split on whitespace, then per chunk peel prefixes and suffixes, apply the tokenizer exceptions
  (contractions, abbreviations, emoticons, generated as spaCy generates them), keep URLs whole and
  split infixes. The affix rules are spaCy's, its long character classes rebuilt from ``unicodedata``.
* ``Words`` tokenizes whole Arrow batches: each distinct whitespace chunk is tokenized once (and
  memoized for the life of the process), and the batch becomes flat NumPy arrays of token ids with
  per-document offsets, so the filters compute word statistics with array operations.
* ``count_sentences`` and ``split_sentences`` follow spaCy's ``Sentencizer``.

On ``data/sample`` (9,005 documents, 3.4 M words) the words and the sentence counts equal spaCy's
exactly. Known gaps: exceptions that spaCy merges across two whitespace chunks (``") :"`` becoming one
``"):"`` token) stay split; letters of cased scripts spaCy does not list (Armenian, Georgian, ...) count
as letters in the affix rules. Helpers the filters share close the module.
"""
from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from itertools import chain

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import check

from operators.spacy_rules import PUNCTUATION_SET, SENTENCE_PUNCT, WHITESPACE, split_chunk

# --- batches of documents as arrays of token ids -------------------------------------------------------
#: chunk -> its tokens. It lives as long as the worker process, so a pipeline tokenizes each distinct
#: chunk once; it is cleared between batches once it holds ``MAX_CHUNKS`` chunks.
_chunk_tokens: dict[str, tuple[str, ...]] = {}
MAX_CHUNKS = 1_000_000
_CHUNK = rf"[^{WHITESPACE}]+"
_SYMBOL_WORD = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(PUNCTUATION_SET)) + "]+$"


def clear_caches() -> None:
    """Forget every tokenized chunk (benchmarks use it to time a cold start)."""
    _chunk_tokens.clear()
    _sentence_memo.clear()


def tokens_of(chunks: list[str]) -> list[tuple[str, ...]]:
    """The tokens of each whitespace-free chunk (memoized)."""
    if len(_chunk_tokens) > MAX_CHUNKS:
        _chunk_tokens.clear()
    out = list(map(_chunk_tokens.get, chunks))
    for i in [i for i, tokens in enumerate(out) if tokens is None]:
        out[i] = _chunk_tokens[chunks[i]] = split_chunk(chunks[i])
    return out


class Words:
    """The spaCy-English words of a batch of documents, as flat arrays.

    ``ids`` holds the token ids of all documents end to end, document ``d`` owning
    ``ids[offsets[d]:offsets[d + 1]]``; an id indexes ``vocab``, the batch's distinct tokens, and the
    per-token properties below. Each distinct chunk of the batch is tokenized once (``tokens_of``),
    everything else is Arrow and NumPy.
    """

    def __init__(self, text: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        chunk_lists = pl.from_arrow(text.cast(pa.large_string()), rechunk=False).str.extract_all(_CHUNK).to_arrow()
        chunks_per_doc = pc.fill_null(pc.list_value_length(chunk_lists), 0).to_numpy(zero_copy_only=False)
        chunks = pc.dictionary_encode(pc.list_flatten(chunk_lists))
        occurrence = chunks.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        per_chunk = tokens_of(chunks.dictionary.to_pylist())
        tokens = pc.dictionary_encode(pa.array(list(chain.from_iterable(per_chunk)), pa.large_string()))
        self.vocab: pa.Array = tokens.dictionary
        chunk_flat = tokens.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        chunk_len = np.fromiter(map(len, per_chunk), np.int64, len(per_chunk))
        chunk_start = np.concatenate([[0], np.cumsum(chunk_len)])
        occ_len = chunk_len[occurrence]  # tokens of each chunk occurrence, gathered end to end
        occ_end = np.cumsum(occ_len)
        total = int(occ_end[-1]) if len(occ_end) else 0
        self.ids = chunk_flat[np.repeat(chunk_start[occurrence] - (occ_end - occ_len), occ_len) + np.arange(total)]
        self.offsets = np.concatenate([[0], occ_end])[np.concatenate([[0], np.cumsum(chunks_per_doc)])]
        self.counts = np.diff(self.offsets)

    @cached_property
    def length(self) -> np.ndarray:
        """Characters of each vocabulary token."""
        return pc.utf8_length(self.vocab).to_numpy().astype(np.int64)

    @cached_property
    def alpha(self) -> np.ndarray:
        """Whether a vocabulary token has a letter (``any(c.isalpha() for c in token)``)."""
        return pc.match_substring_regex(self.vocab, r"\pL").to_numpy(zero_copy_only=False)

    @cached_property
    def symbol(self) -> np.ndarray:
        """Whether a vocabulary token is only punctuation (DataTrove's ``PUNCTUATION_SET``)."""
        return pc.match_substring_regex(self.vocab, _SYMBOL_WORD).to_numpy(zero_copy_only=False)

    def ids_of(self, words) -> np.ndarray:
        """Vocabulary ids of those ``words`` that occur in the batch."""
        index = pc.index_in(pa.array(list(words), pa.large_string()), value_set=self.vocab)
        index = index.to_numpy(zero_copy_only=False)
        return index[~np.isnan(index)].astype(np.int64) if index.dtype.kind == "f" else index.astype(np.int64)

    def per_doc(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-token array over each document."""
        cum = np.concatenate([[0], np.cumsum(values)])
        return cum[self.offsets[1:]] - cum[self.offsets[:-1]]


def split_words(text: str) -> list[str]:
    """The words DataTrove's ``split_into_words(text, "en")`` returns (spaCy English tokens, no spaces)."""
    return [token for tokens in tokens_of(text.split()) for token in tokens]


# --- sentences (spaCy's Sentencizer over the tokens) ---------------------------------------------------
_sentence_memo: dict[str, tuple[int, bool | None, bool]] = {}
_SPACES = re.compile(r"(\s+)")


def _tokens(chunk: str) -> tuple[str, ...]:
    tokens = _chunk_tokens.get(chunk)
    return tokens if tokens is not None else split_chunk(chunk)


def _is_punct(token: str) -> bool:
    """spaCy's ``is_punct``: every character is Unicode punctuation."""
    return all(unicodedata.category(c).startswith("P") for c in token)


def _chunk_sentence_state(chunk: str) -> tuple[int, bool | None, bool]:
    """The Sentencizer over one chunk's tokens, from "no sentence end seen": (boundaries found, state
    after the chunk or None if no token changes it, whether its first non-punctuation-or-ending token
    is a plain one, which closes a sentence an earlier chunk ended)."""
    memo = _sentence_memo.get(chunk)
    if memo is None:
        fires, state, first_plain = 0, None, None
        for token in _tokens(chunk):
            if token in SENTENCE_PUNCT:
                state = True
                first_plain = False if first_plain is None else first_plain
            elif not _is_punct(token):
                if state:
                    fires += 1
                state = False
                first_plain = True if first_plain is None else first_plain
        if len(_sentence_memo) > MAX_CHUNKS:
            _sentence_memo.clear()
        memo = _sentence_memo[chunk] = (fires, state, bool(first_plain))
    return memo


def count_sentences(text: str) -> int:
    """Sentences spaCy's ``Sentencizer`` finds in ``text`` (DataTrove's ``len(split_into_sentences(text))``).

    A sentence ends after a token in ``SENTENCE_PUNCT`` once a token that is not punctuation follows.
    Whitespace other than one space between chunks is a token of its own for spaCy, so it counts too."""
    parts = _SPACES.split(text)
    seen_period, sentences = False, 0
    for k, part in enumerate(parts):
        if not part:
            continue
        if k % 2:  # a whitespace run: a token unless it is the single space separating two chunks
            if k == 1 and not parts[0] or part[0] != " " or len(part) > 1:
                sentences += sentences == 0
                if seen_period:
                    sentences += 1
                seen_period = False
            continue
        fires, state, first_plain = _chunk_sentence_state(part)
        sentences += sentences == 0
        sentences += fires + (seen_period and first_plain)
        if state is not None:
            seen_period = state
    return sentences


def split_sentences(text: str) -> list[str]:
    """DataTrove's ``split_into_sentences(text, "en")``: ``text`` cut after the last token of each sentence
    spaCy's ``Sentencizer`` finds, the last piece running to the end (no character is lost)."""
    ends: list[int] = []
    seen_period, last_end, offset = False, None, 0
    parts = _SPACES.split(text)
    for k, part in enumerate(parts):
        if k % 2:  # whitespace: a token of its own unless it is the single space separating two chunks
            token = part if k == 1 and not parts[0] else part[1:] if part[0] == " " else part
            tokens = [token] if token else []
            position = offset + len(part) - len(token)
        else:
            tokens, position = _tokens(part) if part else (), offset
        for token in tokens:
            if token in SENTENCE_PUNCT:
                seen_period = True
            elif not _is_punct(token):
                if seen_period:
                    ends.append(last_end)
                seen_period = False
            position += len(token)
            last_end = position
        offset += len(part)
    if last_end is not None:
        ends.append(last_end)
    return [text[a:b] for a, b in zip([0] + ends[:-1], ends[:-1] + [len(text)])]


# --- helpers shared by the filters -------------------------------------------------------------------
# ``str.splitlines`` boundaries other than "\n", and the whitespace ``str.strip`` removes within a line.
LINE_BREAKS = r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
INLINE_SPACE = r"[^\S\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]|\x1f"


def optional_number(op: object, field: str, low: float = 0, high: float | None = None, integer: bool = False) -> None:
    """Check that ``op.field`` is None (the rule is off) or a number (an integer) within [low, high]."""
    value = getattr(op, field)
    kind = "an integer" if integer else "a number"
    ok = value is None or (isinstance(value, int) if integer else isinstance(value, (int, float))) \
        and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    bound = f">= {low}" + (f" and <= {high}" if high is not None else "")
    check(ok, op, field, f"must be None (rule off) or {kind} {bound}, got {value!r}")


def text_series(text: pa.ChunkedArray | pa.Array) -> pl.Series:
    """A text column as a polars Series, null read as empty."""
    return pl.Series("text", text.cast(pa.large_string())).fill_null("")


def first_failing(n: int, rules: list[tuple[np.ndarray, str, list[str] | np.ndarray]]) -> tuple[pa.Array, pa.Array]:
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


class Lazy:
    """``details[i]`` computed on demand, so only rejected rows pay for their formatted detail."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __getitem__(self, i: int) -> str:
        return self.fn(i)


def pct(x: float) -> str:
    """A measured share: ``0.4567`` -> ``45.7%``."""
    return f"{100 * x:.1f}%"


def share(x: float) -> str:
    """A threshold: ``0.3`` -> ``30%``."""
    return f"{round(100 * x, 6):g}%"


PARAGRAPH = r"[^\n]+(?:\n[^\n]+)*"  # the pieces ``re.split(r"\n{2,}", text.strip())`` returns
SPACE_CHARS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what ``str.strip()`` removes


def duplicates(pieces: pa.ListArray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: pieces, pieces equal to an earlier piece, and their characters (DataTrove's
    ``find_duplicates``)."""
    flat = pl.from_arrow(pa.table({"doc": pc.list_parent_indices(pieces), "piece": pc.list_flatten(pieces)}))
    flat = flat.select("doc", dup=~pl.struct("doc", "piece").is_first_distinct(), chars=pl.col("piece").str.len_chars())
    doc, dup, chars = flat["doc"].to_numpy(), flat["dup"].to_numpy(), flat["chars"].to_numpy()
    counts = np.bincount(doc, minlength=n)
    return counts, np.bincount(doc, weights=dup, minlength=n).astype(np.int64), \
        np.bincount(doc, weights=np.where(dup, chars, 0), minlength=n).astype(np.int64)


