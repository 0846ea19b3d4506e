"""CurriculumStream on real Parquet (the bundled sample) with SmolLM2's real tokenizer: exact packing,
resumption, determinism, disjoint shards, repeat caps, adherence and configuration errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from curricula import (CurriculumConfigError, CurriculumStream, Difficulty, Domain, DomainExhaustedWarning, DoReMi,
                       Temperature, constant, piecewise, split_by_source)
from tests.conftest import SAMPLE, sample_rows, write_docs


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The first 80 real documents of each of the sample's five domains (360 in all: licenses has 20; exact duplicate texts left out), in
    3 files of 2 row groups each."""
    rows, per_source, texts = [], {}, set()
    for row in sample_rows(9005):
        if per_source.setdefault(row["source"], 0) < 80 and row["text"] not in texts:
            texts.add(row["text"])
            per_source[row["source"]] += 1
            rows.append(row)
    directory = tmp_path_factory.mktemp("small")
    for k in range(3):
        pq.write_table(pa.Table.from_pylist(rows[k::3]), directory / f"part-{k}.parquet", row_group_size=60)
    return directory, rows


def take(stream, n):
    out = []
    for batch in stream:
        out.append(batch)
        if len(out) == n:
            break
    return out


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.domains == y.domains
        assert np.array_equal(x.input_ids, y.input_ids) and np.array_equal(x.labels, y.labels)
        assert (x.document_ids is None) == (y.document_ids is None)
        if x.document_ids is not None:
            assert np.array_equal(x.document_ids, y.document_ids)


def reconstruct(batches, domain):
    """The token stream of one domain rebuilt from its windows (consecutive windows overlap by one token)."""
    windows = [np.concatenate([b.input_ids[i], b.labels[i, -1:]]) for b in batches
               for i, d in enumerate(b.domains) if d == domain]
    stream = list(windows[0])
    for w in windows[1:]:
        assert w[0] == stream[-1]
        stream.extend(w[1:])
    return stream


def split_docs(tokens, eos):
    """Complete documents (token tuples) of a stream: what lies between separators (the first is dropped:
    it may start mid-document only after a resume, never here, but the last is cut)."""
    docs, cur = [], []
    for t in tokens:
        if t == eos:
            docs.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    return docs


def make(domains, tokenizer, **kw):
    kw.setdefault("seq_len", 32)
    kw.setdefault("batch_size", 4)
    kw.setdefault("chunk_docs", 8)
    return CurriculumStream(domains, kw.pop("schedule", {d.name: 1.0 for d in domains}), tokenizer, **kw)


def test_packing_is_exact_documents_separated_by_eos_one_domain_per_sequence(small, tokenizer):
    directory, rows = small
    domains = split_by_source(directory)
    stream = make(domains, tokenizer, document_ids=True, seq_len=48)
    assert stream.eos_token == "<|im_end|>" and stream.eos_id == 2
    batches = take(stream, 30)
    encoded = {}
    for r in rows:
        encoded.setdefault(r["source"], set()).add(tuple(tokenizer.encode(r["text"], add_special_tokens=False).ids))
    for b in batches:
        assert b.input_ids.dtype == np.int64 and b.input_ids.shape == (4, 48)
        assert np.array_equal(b.labels[:, :-1], b.input_ids[:, 1:])
        # document ids start at 0 and step up right after each separator
        steps = np.diff(b.document_ids, axis=1)
        assert (b.document_ids[:, 0] == 0).all() and np.array_equal(steps == 1, b.input_ids[:, :-1] == 2)
    complete = 0
    for domain in {d for b in batches for d in b.domains}:
        tokens = reconstruct(batches, domain)
        docs = split_docs(tokens, stream.eos_id)
        assert all(doc in encoded[domain] for doc in docs)  # whole real documents of that domain
        assert len(set(docs)) == len(docs)  # no repeats within an epoch
        tail = tuple(tokens[sum(len(d) + 1 for d in docs):])  # the document still being read
        assert any(doc[:len(tail)] == tail for doc in encoded[domain])
        complete += len(docs)
    assert complete >= 20


def test_resume_after_k_batches_yields_exactly_the_following_batches(tokenizer):
    domains = split_by_source(SAMPLE)
    config = dict(schedule=DoReMi(reference_losses={"docs": 2.0}), seq_len=64, batch_size=4, seed=3,
                  document_ids=True, difficulty={"fortunes": Difficulty(column="length", full_at_tokens=20_000)},
                  chunk_docs=16)
    losses = lambda step: {d.name: 2.0 + 0.1 * ((step * 7 + i) % 5) for i, d in enumerate(domains)}  # noqa: E731

    def run(stream, start, n):
        out = []
        for step in range(start, start + n):
            out.append(stream.next_batch())
            stream.report_losses(losses(step), step)
        return out

    whole = make(domains, tokenizer, **config)
    reference = run(whole, 0, 14)
    first = make(domains, tokenizer, **config)
    run(first, 0, 6)
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON: checkpoint-friendly
    resumed = make(domains, tokenizer, **config)
    resumed.load_state_dict(state)
    assert_same(run(resumed, 6, 8), reference[6:])
    assert not np.allclose(whole.current_weights(), 0.2)  # DoReMi moved the weights


def test_same_seed_same_batches_other_seed_other_batches(small, tokenizer):
    domains = split_by_source(small[0])
    a, b, c = (take(make(domains, tokenizer, seed=s), 5) for s in (1, 1, 2))
    assert_same(a, b)
    assert not all(np.array_equal(x.input_ids, y.input_ids) for x, y in zip(a, c))


def test_shards_are_disjoint_and_cover_the_domain(small, tokenizer):
    directory, rows = small
    domain = [Domain("all", str(directory))]
    seen = []
    for rank in range(3):
        stream = make(domain, tokenizer, rank=rank, world_size=3, max_epochs=1, seq_len=64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DomainExhaustedWarning)
            batches = list(stream)
        seen.append(split_docs(reconstruct(batches, "all"), stream.eos_id))
    encoded = [tuple(tokenizer.encode(r["text"], add_special_tokens=False).ids) for r in rows if r["text"]]
    sets = [set(s) for s in seen]
    assert all(len(s) == len(docs) for s, docs in zip(sets, seen))  # once each within a shard
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    union = sets[0] | sets[1] | sets[2]
    assert union <= set(encoded) and len(union) >= len(set(encoded)) - 3 * 10  # only batch tails are cut


def test_repeat_cap_warns_and_spreads_the_weight(small, tokenizer):
    directory, rows = small
    one = [r for r in rows if r["source"] == "fortunes"][:5]
    tiny = write_docs(directory.parent / "tiny", [{**r, "source": "tiny"} for r in one])
    domains = [Domain("tiny", str(tiny)), Domain("rest", str(directory))]
    stream = make(domains, tokenizer, schedule={"tiny": 0.5, "rest": 0.5}, max_epochs={"tiny": 2})
    with pytest.warns(DomainExhaustedWarning, match=r"domain 'tiny' ran out after 10 documents"):
        batches = take(stream, 40)
    names = [d for b in batches for d in b.domains]
    last_tiny = max(i for i, d in enumerate(names) if d == "tiny")
    assert last_tiny < len(names) - 20 and set(names[last_tiny + 1:]) == {"rest"}
    tokens = reconstruct(batches, "tiny")
    docs = split_docs(tokens, stream.eos_id)
    assert len(set(docs)) == 5 and all(docs.count(d) <= 2 for d in docs)  # two epochs, then nothing more
    total = 2 * sum(len(tokenizer.encode(r["text"], add_special_tokens=False).ids) + 1 for r in one)
    assert total - 33 < len(tokens) <= total  # only the last window's remainder (< seq_len + 1) is dropped


def test_stream_adherence_and_log_for_scheduled_and_temperature_mixtures(tokenizer, tmp_path):
    domains = split_by_source(SAMPLE)
    schedules = {"piecewise": piecewise([(0, {"docs": 1, "fortunes": 1}),
                                         (40_000, {"dictionary": 2, "manpages": 1, "licenses": 1})]),
                 "temperature": Temperature(2.0)}
    for name, schedule in schedules.items():
        stream = make(domains, tokenizer, schedule=schedule, seq_len=16, batch_size=50, log_every=500,
                      log_path=tmp_path / f"{name}.jsonl", chunk_docs=32)
        picked, planned = [], []
        for batch in take(stream, 50):
            planned.extend([list(batch.meta["weights"].values())] * len(batch.domains))  # approximate per batch
            picked.extend(stream.names.index(d) for d in batch.domains)
        exact = np.array([schedule.weights(i * 16) for i in range(len(picked))])
        onehot = np.eye(len(domains))[picked]
        cum = lambda x: np.vstack([np.zeros(len(domains)), np.cumsum(x, axis=0)])  # noqa: E731
        err = np.abs((cum(onehot)[1000:] - cum(onehot)[:-1000]) - (cum(exact)[1000:] - cum(exact)[:-1000])) / 1000
        assert err.max() <= 0.02, name
        records = [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert [r["sequences"] for r in records] == [500 * k for k in range(1, 6)]
        assert all(r["max_abs_error"] <= 0.02 for r in records)
    assert stream.sizes["licenses"] == 20 and schedule.sizes == stream.sizes  # temperature over documents


def test_pretokenized_column_gives_the_same_batches(small, tokenizer, tmp_path):
    directory, _ = small
    out = tmp_path / "tok"
    out.mkdir()
    for f in sorted(directory.glob("*.parquet")):
        table = pq.read_table(f)
        ids = [tokenizer.encode(t, add_special_tokens=False).ids for t in table.column("text").to_pylist()]
        pq.write_table(table.append_column("input_ids", pa.array(ids, pa.list_(pa.int32()))), out / f.name,
                       row_group_size=60)
    a = take(make(split_by_source(directory), tokenizer), 8)
    b = take(make(split_by_source(out), tokenizer), 8)
    assert_same(a, b)


def test_configuration_errors_name_the_field(small, tokenizer, tmp_path):
    directory, _ = small
    domains = split_by_source(directory)
    (tmp_path / "empty").mkdir()
    cases = [
        (dict(seq_len=1), r"^seq_len: must be an integer >= 2, got 1$"),
        (dict(schedule={d.name: 0 for d in domains}), r"^Mixture.weights: must sum to a positive total"),
        (dict(schedule={"poetry": 1.0}), r"^schedule.mixture.weights\['poetry'\]: unknown domain"),
        (dict(max_epochs={"poetry": 1}), r"^max_epochs\['poetry'\]: unknown domain"),
        (dict(rank=3, world_size=2), r"^rank: must be in \[0, world_size=2\)"),
        (dict(difficulty=Difficulty(column="quality")), r"^domains\['\w+'\].difficulty.column: .* no column 'quality'"),
    ]
    for kw, message in cases:
        with pytest.raises(CurriculumConfigError, match=message):
            make(domains, tokenizer, **kw)
    with pytest.raises(CurriculumConfigError, match=r"^domains\['poetry'\].source: empty source, no documents in .* "
                                                    r"with source == 'poetry'$"):
        make([Domain("poetry", str(directory), source="poetry")], tokenizer)
    with pytest.raises(CurriculumConfigError, match=r"^domains\['web'\].path: empty source, no Parquet files"):
        make([Domain("web", str(tmp_path / "empty"))], tokenizer)
    with pytest.raises(CurriculumConfigError, match=r"^difficulty.pacing: must be one of linear, root, step, order"):
        Difficulty(pacing="exponential")
    assert constant({"a": 1}).mixture.weights == {"a": 1}
