"""The foundation operators on single Arrow batches (no Ray)."""
from __future__ import annotations

import pyarrow as pa
import pytest

from operators import DETAIL, REASON, ExactDedup, LengthFilter, Normalize, ParameterError, RequireText


def table(texts: list[str | None], ids: list[str] | None = None) -> pa.Table:
    return pa.table({"id": ids or [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def test_normalize_nfkc_and_whitespace_keeps_paragraphs():
    out = Normalize()(table(["ﬁle  Ｆｕｌｌ\twidth \r\nnext\n\n\n\nlast  "]))
    assert out["text"].to_pylist() == ["file Full width\nnext\n\nlast"]
    assert out.column_names == ["id", "text"]


def test_normalize_rejects_unknown_form_naming_the_field():
    with pytest.raises(ParameterError, match=r"Normalize\.form"):
        Normalize(form="NFX")


def test_require_text_names_null_and_empty():
    out = RequireText()(table([None, "  \n ", "ok"]))
    assert out[REASON].to_pylist() == ["text is null", "text is empty", None]


def test_length_filter_reasons_and_details():
    out = LengthFilter(min_chars=5, max_chars=20, min_words=2)(table(["tiny", "two words", "one-long-word", "x" * 30]))
    assert out[REASON].to_pylist() == ["shorter than 5 characters", None, "fewer than 2 words",
                                       "longer than 20 characters"]
    assert out[DETAIL].to_pylist() == ["4 characters", None, "1 words", "30 characters"]


@pytest.mark.parametrize("kwargs, field", [({"min_chars": -1}, "min_chars"), ({"min_chars": 10, "max_chars": 5}, "max_chars"),
                                           ({"min_words": 1.5}, "min_words")])
def test_length_filter_validates_parameters(kwargs, field):
    with pytest.raises(ParameterError, match=rf"LengthFilter\.{field}:"):
        LengthFilter(**kwargs)


def test_exact_dedup_keeps_smallest_id_across_unicode_and_whitespace_variants():
    texts = ["Hello  world", "hello world", "Ｈｅｌｌｏ world", "Hello\nworld ", "different"]
    out = ExactDedup()(table(texts, ids=["c", "z", "b", "a", "m"]))
    # NFKC makes the full-width variant equal; case is kept unless lowercase=True.
    assert out[REASON].to_pylist() == ["duplicate", None, "duplicate", None, None]
    assert out[DETAIL].to_pylist() == ["duplicate of a", None, "duplicate of a", None, None]
    lowered = ExactDedup(lowercase=True)(table(texts, ids=["c", "z", "b", "a", "m"]))
    assert lowered[REASON].to_pylist() == ["duplicate", "duplicate", "duplicate", None, None]


def test_exact_dedup_score_column_keeps_highest_score_then_smallest_id():
    batch = pa.table({"id": ["a", "b", "c", "d"], "text": ["same"] * 4, "quality": [0.1, 0.9, 0.9, 0.5]})
    out = ExactDedup(score_column="quality")(batch)
    assert out[REASON].to_pylist() == ["duplicate", None, "duplicate", "duplicate"]
    assert set(out[DETAIL].drop_null().to_pylist()) == {"duplicate of b"}


def test_operator_config_is_its_identity():
    assert LengthFilter(min_chars=3).config() == {"operator": "LengthFilter", "min_chars": 3, "max_chars": None,
                                                  "min_words": 0, "max_words": None}
    assert LengthFilter(min_chars=3).name == "length_filter"


def test_require_text_rejects_invalid_utf8_and_repairs_it_for_the_rejects_file():
    data = b"fine\xff\xfebroken"
    offsets = pa.array([0, 4, len(data)], pa.int32()).buffers()[1]
    text = pa.StringArray.from_buffers(2, offsets, pa.py_buffer(data))  # what a Parquet file can hold
    out = RequireText()(pa.table({"id": ["a", "b"], "text": text}))
    assert out[REASON].to_pylist() == [None, "text is not valid UTF-8"]
    assert out["text"].to_pylist() == ["fine", "\ufffd\ufffdbroken"]
