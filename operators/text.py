"""Text operators of the foundation: Unicode/whitespace normalisation, text presence and length filters.

All are vectorised with ``pyarrow.compute`` over whole batches (no per-document Python loop).
"""
from __future__ import annotations

from dataclasses import dataclass
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Filter, Operator, check, merge_reasons, reject_where

UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def normalize_text(text: pa.Array, form: str | None = "NFKC", collapse_all_whitespace: bool = False,
                   lowercase: bool = False) -> pa.Array:
    """Normalise a string array: Unicode ``form``, then whitespace.

    By default line structure is kept (CRLF -> LF, runs of spaces/tabs -> one space, trailing spaces
    dropped, 3+ newlines -> 2, ends trimmed). ``collapse_all_whitespace`` turns every whitespace run,
    newlines included, into one space (the form used for duplicate keys).
    """
    if form:
        text = pc.utf8_normalize(text, form)
    if collapse_all_whitespace:
        text = pc.replace_substring_regex(text, r"\s+", " ")
    else:
        text = pc.replace_substring_regex(text, r"\r\n?", "\n")
        text = pc.replace_substring_regex(text, r"[^\S\n]+", " ")
        text = pc.replace_substring_regex(text, r" ?\n ?", "\n")
        text = pc.replace_substring_regex(text, r"\n{3,}", "\n\n")
    text = pc.utf8_trim_whitespace(text)
    return pc.utf8_lower(text) if lowercase else text


@dataclass(frozen=True)
class Normalize(Operator):
    """Rewrite ``text`` in place: Unicode normal form (NFKC by default) and tidy whitespace."""

    form: str | None = "NFKC"
    lowercase: bool = False

    def __post_init__(self) -> None:
        check(self.form is None or self.form in UNICODE_FORMS, self, "form",
              f"must be one of {UNICODE_FORMS} or None, got {self.form!r}")

    def __call__(self, batch: pa.Table) -> pa.Table:
        index = batch.schema.get_field_index(self.text_column)
        text = normalize_text(batch[self.text_column], self.form, lowercase=self.lowercase)
        return batch.set_column(index, self.text_column, text)


def invalid_utf8(text: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a string is not valid UTF-8 (Parquet does not check; Arrow's text kernels then fail)."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    masks = []
    for chunk in chunks:
        try:
            chunk.validate(full=True)
            masks.append(pa.array([False] * len(chunk), pa.bool_()))
        except pa.ArrowInvalid:  # rare: find the bad rows one by one
            values = chunk.cast(pa.binary()).to_pylist()
            masks.append(pa.array([v is not None and not _decodes(v) for v in values], pa.bool_()))
    return pa.concat_arrays(masks) if masks else pa.array([], pa.bool_())


def _decodes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@dataclass(frozen=True)
class RequireText(Filter):
    """Reject rows whose text is null, only whitespace or not valid UTF-8 (the runner applies it to every
    input, so later operators only see valid text)."""

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        text = batch[self.text_column]
        broken = invalid_utf8(text)
        safe = pc.if_else(broken, pa.scalar("x", pa.string()), text.cast(pa.string()))
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(safe)), 0)
        return merge_reasons(reject_where(pc.is_null(text), "text is null"),
                             reject_where(broken, "text is not valid UTF-8",
                                          pa.array(["invalid bytes replaced by U+FFFD"] * len(broken))),
                             reject_where(empty, "text is empty"))

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = super().__call__(batch)
        broken = invalid_utf8(batch[self.text_column])
        if not pc.any(broken).as_py():
            return out
        # Rejected rows are written out: repair their bytes so every reader can open the rejects file.
        values = batch[self.text_column].cast(pa.binary()).to_pylist()
        repaired = pa.array([v.decode("utf-8", errors="replace") if v is not None else None for v in values],
                            pa.string())
        return out.set_column(out.schema.get_field_index(self.text_column), self.text_column, repaired)


@dataclass(frozen=True)
class LengthFilter(Filter):
    """Keep documents whose length in characters and words lies within the given bounds."""

    min_chars: int = 0
    max_chars: int | None = None
    min_words: int = 0
    max_words: int | None = None

    def __post_init__(self) -> None:
        for field in ("min_chars", "min_words"):
            value = getattr(self, field)
            check(isinstance(value, int) and value >= 0, self, field, f"must be an integer >= 0, got {value!r}")
        for low, high in (("min_chars", "max_chars"), ("min_words", "max_words")):
            value = getattr(self, high)
            check(value is None or (isinstance(value, int) and value >= getattr(self, low)), self, high,
                  f"must be None or an integer >= {low} ({getattr(self, low)}), got {value!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        text = batch[self.text_column]
        chars = pc.utf8_length(text)
        rules = [reject_where(pc.less(chars, self.min_chars), f"shorter than {self.min_chars} characters",
                              pc.binary_join_element_wise(chars.cast(pa.string()), " characters", ""))]
        if self.max_chars is not None:
            rules.append(reject_where(pc.greater(chars, self.max_chars), f"longer than {self.max_chars} characters",
                                      pc.binary_join_element_wise(chars.cast(pa.string()), " characters", "")))
        if self.min_words or self.max_words is not None:
            words = pc.count_substring_regex(text, r"\S+")
            words_detail = pc.binary_join_element_wise(words.cast(pa.string()), " words", "")
            rules.append(reject_where(pc.less(words, self.min_words), f"fewer than {self.min_words} words", words_detail))
            if self.max_words is not None:
                rules.append(reject_where(pc.greater(words, self.max_words), f"more than {self.max_words} words",
                                          words_detail))
        return merge_reasons(*rules)
