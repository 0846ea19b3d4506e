"""Difficulty curricula: pacing functions, competence-gated bucket order, anti-curriculum, and a stream
that reads real documents shortest-first."""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from curricula import CurriculumStream, Difficulty, Domain
from curricula.order import CurriculumOrder
from tests.conftest import sample_rows


def test_pacing_functions():
    lin = Difficulty(pacing="linear", start=0.2, full_at_tokens=1000)
    root = Difficulty(pacing="root", start=0.2, full_at_tokens=1000)
    step = Difficulty(pacing="step", start=0.2, full_at_tokens=1000, steps=4)
    assert [lin.competence(t) for t in (0, 500, 1000, 5000)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert root.competence(0) == pytest.approx(0.2)
    assert root.competence(500) == pytest.approx(math.sqrt(0.04 + 0.96 * 0.5))
    assert root.competence(500) > lin.competence(500) and root.competence(1000) == 1.0
    assert [step.competence(t) for t in (0, 249, 250, 999, 1000)] == pytest.approx([0.2, 0.2, 0.4, 0.8, 1.0])
    assert Difficulty(pacing="order").competence(10**9) == 0.0


def make_order(difficulty, n=1000, seed=0):
    scores = np.random.default_rng(42).random(n)
    refs = np.arange(n, dtype=np.int64) * 3  # positions need not be contiguous
    return CurriculumOrder(refs, scores, difficulty, seed, 0, None), dict(zip(refs.tolist(), scores.tolist()))


def quantile(score_of, positions):
    ranked = sorted(score_of.values())
    return max(np.searchsorted(ranked, score_of[int(p)], side="right") / len(ranked) for p in positions)


def test_competence_opens_easiest_buckets_first_and_anti_reverses():
    diff = Difficulty(pacing="linear", start=0.2, full_at_tokens=1000, buckets=5)
    order, score_of = make_order(diff)
    assert quantile(score_of, order.next(50, tokens=0)) <= 0.2  # only the easiest fifth is open
    assert quantile(score_of, order.next(50, tokens=500)) <= 0.6  # competence 0.6: three buckets
    later = order.next(400, tokens=1000)
    assert quantile(score_of, later) > 0.8  # everything open
    anti, score_of = make_order(Difficulty(pacing="linear", start=0.2, full_at_tokens=1000, buckets=5, anti=True))
    assert min(score_of[int(p)] for p in anti.next(50, tokens=0)) >= np.quantile(list(score_of.values()), 0.8) - 1e-9


def test_order_pacing_reads_in_score_order_once_per_epoch_and_resumes():
    order, score_of = make_order(Difficulty(pacing="order", buckets=10))
    first = np.concatenate([order.next(100, tokens=0) for _ in range(5)])
    state = json.loads(json.dumps(order.state_dict()))
    rest = np.concatenate([order.next(100, tokens=0) for _ in range(5)])
    seen = np.concatenate([first, rest])
    assert len(set(seen.tolist())) == 1000  # each document once in the epoch
    buckets = np.array([int(quantile(score_of, [p]) * 10 - 1e-9) for p in seen])
    assert (np.diff(buckets) >= 0).all() and buckets[0] == 0 and buckets[-1] == 9
    again, _ = make_order(Difficulty(pacing="order", buckets=10))
    again.load_state_dict(state)
    assert np.array_equal(np.concatenate([again.next(100, tokens=0) for _ in range(5)]), rest)
    assert order.next(5, tokens=0).size == 5 and order.epoch == 1  # then a new epoch


def test_used_up_open_buckets_open_the_next_one_early():
    order, score_of = make_order(Difficulty(pacing="linear", start=0.1, full_at_tokens=10**9, buckets=10))
    positions = order.next(150, tokens=0)  # competence stays 0.1 but only 100 documents are that easy
    assert len(set(positions.tolist())) == 150 and quantile(score_of, positions) <= 0.2


def test_stream_reads_real_documents_shortest_first(smollm2_dir, tmp_path):
    rows = [r for r in sample_rows(9005) if r["source"] == "fortunes"][:300]
    for r in rows:
        r["quality"] = float(len(r["text"]))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "f.parquet", row_group_size=100)
    tok = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))
    lengths = sorted(len(r["text"]) for r in rows)

    def first_docs(difficulty):
        stream = CurriculumStream([Domain("fortunes", str(tmp_path))], {"fortunes": 1}, tok, seq_len=64,
                                  batch_size=4, difficulty=difficulty, chunk_docs=10)
        batch = stream.next_batch()
        text = tok.decode(batch.input_ids[0].tolist(), skip_special_tokens=False)
        return text.split(stream.eos_token)  # complete documents of the first window, then a partial one

    shortest = {r["text"] for r in rows if len(r["text"]) <= lengths[29]}
    longest = [r["text"] for r in rows if len(r["text"]) >= lengths[-30]]
    easy = first_docs(Difficulty(column="length", pacing="order", buckets=10))
    assert len(easy) >= 3 and all(doc in shortest for doc in easy[:-1])
    assert first_docs(Difficulty(column="quality", pacing="order", buckets=10)) == easy  # same score, same order
    hard = first_docs(Difficulty(column="length", pacing="order", buckets=10, anti=True))
    assert len(hard) == 1 and any(doc.startswith(hard[0]) for doc in longest)  # one long document fills it
