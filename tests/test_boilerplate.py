"""Line-level boilerplate removal: lines found in more than K documents go; counted across the dataset."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators import REASON, BoilerplateLines, ParameterError
from pipelines import Pipeline
from tests.conftest import sample_rows, write_docs

FOOTER = "This page was generated automatically by the documentation system."


def docs(n: int, footer_every: int = 1) -> list[dict]:
    rows = sample_rows(n)
    return [dict(r, text=f"{r['text'].strip()}\n{FOOTER}" if k % footer_every == 0 else r["text"])
            for k, r in enumerate(rows)]


def test_frequent_lines_are_removed_and_counted_in_one_batch():
    rows = docs(6) + [{"id": "zz-only", "text": f"{FOOTER}\n  {FOOTER}  ", "source": "x"},
                      {"id": "zz-short", "text": "ok\nok\nok", "source": "x"}]
    out = BoilerplateLines(max_documents=3)(pa.Table.from_pylist(rows))
    texts = dict(zip(out["id"].to_pylist(), out["text"].to_pylist()))
    assert all(FOOTER not in texts[r["id"]] for r in rows[:6])
    assert texts[rows[0]["id"]] == sample_rows(1)[0]["text"].strip()
    assert out["boilerplate_lines_removed"].to_pylist() == [1] * 6 + [2, 0]
    assert out[REASON].to_pylist() == [None] * 6 + ["only boilerplate lines", None]
    assert texts["zz-short"] == "ok\nok\nok"  # shorter than min_line_chars: never counted


def test_lines_below_the_document_count_stay():
    out = BoilerplateLines(max_documents=6)(pa.Table.from_pylist(docs(6)))
    assert sum(out["boilerplate_lines_removed"].to_pylist()) == 0


def test_bad_parameters_name_the_field():
    with pytest.raises(ParameterError, match=r"BoilerplateLines\.max_documents"):
        BoilerplateLines(max_documents=0)


@pytest.mark.usefixtures("ray_local")
def test_counted_across_blocks_not_per_batch(tmp_path):
    rows = docs(12, footer_every=4)  # the footer is in 3 documents, one per file
    data = write_docs(tmp_path / "in", rows, files=4)
    out = tmp_path / "out"
    manifest = (Pipeline("bp").read_parquet(str(data), num_blocks=4).dedup(BoilerplateLines(max_documents=2))
                .run(output=str(out)))
    assert all(FOOTER not in t for t in pq.read_table(out)["text"].to_pylist())
    assert manifest["stages"][1]["metrics"] == {"boilerplate_lines_removed": 3}
    assert manifest["stages"][1]["plan"]["boilerplate_lines"] >= 1
