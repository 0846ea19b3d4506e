"""Decontamination: n-gram overlap with eval sets written as Parquet, in filter and flag modes."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from operators.base import DETAIL, REASON, ParameterError
from operators.decontaminate import Decontaminate

QUESTION = ("Which of the following best describes the primary function of mitochondria in eukaryotic cells "
            "during aerobic respiration?")  # 18 words
ANSWER = "Sodium chloride dissolves in water because the polar molecules surround and separate each ion quickly."


def eval_set(path: Path, texts: list[str], column: str = "text") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: texts}), path)
    return str(path)


def docs(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def span(text: str, start: int, n: int) -> str:
    return " ".join(text.split()[start:start + n])


def test_thirteen_word_span_is_caught_despite_case_and_punctuation(tmp_path):
    op = Decontaminate(eval_sets=(eval_set(tmp_path / "mmlu.parquet", [QUESTION, "unrelated short line"]),))
    thirteen = span(QUESTION, 2, 13)  # "the following best describes ... in eukaryotic cells during"
    shouted = ("NOTES — The FOLLOWING, best-describes the primary function; of MITOCHONDRIA in "
               "Eukaryotic cells...DURING")
    out = op(docs([f"Intro text. {thirteen} and more.", shouted, "A clean document about cooking pasta."]))
    assert out[REASON].to_pylist() == ["contaminated: mmlu", "contaminated: mmlu", None]
    assert out[DETAIL].to_pylist()[0] == thirteen.lower()
    assert out[DETAIL].to_pylist()[1] == ("the following best describes the primary function of mitochondria in "
                                          "eukaryotic cells during")


def test_twelve_word_overlap_is_not_caught(tmp_path):
    op = Decontaminate(eval_sets=(eval_set(tmp_path / "mmlu.parquet", [QUESTION]),))
    twelve = span(QUESTION, 0, 12)
    out = op(docs([f"Prefix words {twelve} suffix words here.", span(QUESTION, 0, 13)]))
    assert out[REASON].to_pylist() == [None, "contaminated: mmlu"]


def test_counts_per_eval_set_with_two_sets(tmp_path):
    first = eval_set(tmp_path / "mmlu.parquet", [QUESTION])
    second = eval_set(tmp_path / "gsm8k" / "part-0.parquet", [ANSWER])  # a directory: named "gsm8k"
    texts = [f"doc {i}: {QUESTION}" for i in range(3)] + [f"{ANSWER} ({i})" for i in range(2)] + \
            [f"{QUESTION} {ANSWER}", "clean", None]
    out = Decontaminate(eval_sets=(first, str(tmp_path / "gsm8k")))(docs(texts))
    counts = {r["values"]: r["counts"] for r in pc.value_counts(out[REASON].drop_null()).to_pylist()}
    assert counts == {"contaminated: mmlu": 4, "contaminated: gsm8k": 2}  # both-sets doc: first set named
    assert out[REASON].to_pylist()[5:] == ["contaminated: mmlu", None, None]

    flagged = Decontaminate(eval_sets=(first, str(tmp_path / "gsm8k")), mode="flag")(docs(texts))
    assert flagged.column_names == ["id", "text", "contaminated", "contamination_sets", REASON, DETAIL]
    assert flagged["contaminated"].to_pylist() == [True] * 6 + [False, False]
    assert flagged["contamination_sets"].to_pylist() == ["mmlu"] * 3 + ["gsm8k"] * 2 + ["mmlu,gsm8k", None, None]
    assert flagged[REASON].null_count == flagged.num_rows  # flag mode keeps every row
    assert Decontaminate.metrics == ("contaminated",)  # summed into the manifest by the runner


def test_short_texts_follow_the_datatrove_rule(tmp_path):
    # Fewer than n words: no n-grams, so neither a short eval item nor a short document can match.
    op = Decontaminate(eval_sets=(eval_set(tmp_path / "tiny.parquet", ["What is two plus two?", QUESTION]),))
    out = op(docs(["What is two plus two?", span(QUESTION, 0, 5)]))
    assert out[REASON].to_pylist() == [None, None]
    assert Decontaminate(eval_sets=op.eval_sets, ngram=3)(docs(["so what is two plus"]))[REASON].to_pylist() == \
        ["contaminated: tiny"]


def test_hundred_thousand_line_eval_set_and_a_thousand_documents(tmp_path):
    rng = np.random.default_rng(0)
    vocabulary = np.array([f"w{i}" for i in range(20_000)])
    lines = [" ".join(row) for row in vocabulary[rng.integers(0, len(vocabulary), (100_000, 20))]]
    op = Decontaminate(eval_sets=(eval_set(tmp_path / "big.parquet", lines),))
    op.setup()
    assert len(op.index()["big"]) == 100_000 * 8  # 8 distinct 13-grams per 20-word line
    texts = [" ".join(vocabulary[rng.integers(0, len(vocabulary), 200)]) for _ in range(1_000)]
    planted = range(0, 1_000, 10)
    for i in planted:  # a 13-word span of a random eval line in the middle of every tenth document
        texts[i] = f"{texts[i][:300]} {span(lines[int(rng.integers(len(lines)))], 3, 13)} {texts[i][300:]}"
    out = op(docs(texts))
    assert np.flatnonzero(out[REASON].is_valid().to_numpy(zero_copy_only=False)).tolist() == list(planted)


def test_index_loads_lazily_once_and_is_not_pickled(tmp_path):
    op = Decontaminate(eval_sets=(eval_set(tmp_path / "mmlu.parquet", [QUESTION]),))
    assert op(docs([QUESTION]))[REASON].to_pylist() == ["contaminated: mmlu"]  # no setup() call needed
    index = op.index()
    assert op.index() is index
    copy = pickle.loads(pickle.dumps(op))
    assert copy == op and "_index" not in copy.__dict__
    assert copy(docs([QUESTION]))[REASON].to_pylist() == ["contaminated: mmlu"]
    assert Decontaminate.stateful


def test_eval_text_column_is_configurable(tmp_path):
    path = eval_set(tmp_path / "arc.parquet", [QUESTION], column="question")
    out = Decontaminate(eval_sets=(path,), text_column_eval="question")(docs([QUESTION]))
    assert out[REASON].to_pylist() == ["contaminated: arc"]


def test_missing_eval_set_names_the_field_and_path(tmp_path):
    missing = tmp_path / "nowhere" / "hellaswag.parquet"
    with pytest.raises(ParameterError, match=rf"Decontaminate\.eval_sets: .*{missing}"):
        Decontaminate(eval_sets=(str(missing),))


@pytest.mark.parametrize("kwargs, field", [
    ({"eval_sets": ()}, "eval_sets"), ({"ngram": 0}, "ngram"), ({"ngram": 13.0}, "ngram"),
    ({"mode": "drop"}, "mode"), ({"text_column_eval": "question"}, "text_column_eval"),
])
def test_parameter_errors_name_the_field(tmp_path, kwargs, field):
    path = eval_set(tmp_path / "mmlu.parquet", [QUESTION])
    with pytest.raises(ParameterError, match=rf"Decontaminate\.{field}:"):
        Decontaminate(**{"eval_sets": (path,), **kwargs})


def test_duplicate_eval_set_names_are_rejected(tmp_path):
    a = eval_set(tmp_path / "a" / "mmlu.parquet", [QUESTION])
    b = eval_set(tmp_path / "b" / "mmlu.parquet", [ANSWER])
    with pytest.raises(ParameterError, match=r"Decontaminate\.eval_sets: .*distinct"):
        Decontaminate(eval_sets=(a, b))
