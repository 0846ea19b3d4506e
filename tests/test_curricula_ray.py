"""The Ray Data pass of curricula: distributed tokenisation on the shared embedded Ray, read back by the
stream (which then resumes exactly), and token counts for temperature sampling in tokens."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from curricula import CurriculumStream, Temperature, split_by_source
from curricula.pretokenize import pretokenize, token_sizes
from tests.conftest import sample_rows, write_docs

pytestmark = pytest.mark.usefixtures("ray_local")


def test_pretokenize_with_ray_data_then_stream_and_resume(smollm2_dir, tmp_path):
    rows = [r for i, r in enumerate(sample_rows(9005)) if i % 45 == 0]  # 201 documents, all five domains
    source = write_docs(tmp_path / "docs", rows, files=3)
    out = pretokenize(source, tmp_path / "tok", smollm2_dir, batch_size=32)
    tok = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))
    table = pq.read_table(out)
    assert table.num_rows == len(rows) and {"id", "text", "source", "input_ids", "num_tokens"} <= set(table.column_names)
    by_id = {r["id"]: r for r in table.to_pylist()}
    for r in rows:
        expected = tok.encode(r["text"], add_special_tokens=False).ids
        assert by_id[r["id"]]["input_ids"] == expected and by_id[r["id"]]["num_tokens"] == len(expected)
    sizes = token_sizes(out)
    assert sizes == {s: sum(len(tok.encode(r["text"], add_special_tokens=False).ids) for r in rows if r["source"] == s)
                     for s in {r["source"] for r in rows}}
    assert not list(tmp_path.glob(".tok.tmp-*"))  # written under a temporary name, then renamed

    def make():
        return CurriculumStream(split_by_source(out), Temperature(2.0, sizes=sizes), smollm2_dir, seq_len=32,
                                batch_size=4, seed=5)

    stream = make()
    reference = [stream.next_batch() for _ in range(10)]
    first = make()
    for _ in range(4):
        first.next_batch()
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    for a, b in zip([resumed.next_batch() for _ in range(6)], reference[4:]):
        assert a.domains == b.domains and np.array_equal(a.input_ids, b.input_ids)
