"""MinHash near-duplicate core: datasketch equality, LSH parameters, known duplicates and non-duplicates."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from operators import REASON, GopherQuality, ParameterError
from operators.minhash import (MinHashDedup, datasketch_signatures, optimal_bands, prepare_text, shingle_hashes,
                               shingle_strings)
from pipelines import Pipeline
from tests.conftest import SAMPLE, sample_rows, write_docs


def edit_words(text: str, fraction: float, seed: int) -> str:
    """Replace ``fraction`` of the words with another word: 1-3% edits keep 5-gram Jaccard near 0.8-0.95."""
    rng = random.Random(seed)
    words = text.split()
    for k in rng.sample(range(len(words)), max(1, int(len(words) * fraction))):
        words[k] = "edited" + str(k)
    return " ".join(words)


@pytest.mark.parametrize("chars, ngram", [(False, 5), (False, 1), (True, 7)])
def test_datasketch_mode_equals_datasketch_minhash_value_for_value(chars, ngram):
    texts = [r["text"] for r in sample_rows(6)] + ["short", ""]
    prepared = prepare_text(pa.array(texts))
    ours = datasketch_signatures(prepared, ngram, chars, num_perm=96, seed=42)
    for k, doc in enumerate(prepared.to_pylist()):
        reference = MinHash(num_perm=96, seed=42)
        for shingle in shingle_strings(doc, ngram, chars):
            reference.update(shingle)
        assert np.array_equal(reference.hashvalues.astype(np.uint32), ours[k]), k


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_optimal_bands_match_datasketch(threshold):
    assert optimal_bands(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_shingles_of_short_empty_and_spaced_documents():
    prepared = prepare_text(pa.array(["One,  two\nthree!", "one two three", "", None, "a b c d e f"]))
    assert prepared.to_pylist()[:2] == ["one two three", "one two three"]
    hashes, offsets = shingle_hashes(prepared, 5)
    assert np.diff(offsets).tolist() == [1, 1, 0, 0, 2]  # fewer than n words: one shingle; empty: none
    assert hashes[0] == hashes[1]


def test_known_near_duplicates_found_and_distinct_documents_kept():
    rows = [r for r in sample_rows(400) if len(r["text"].split()) >= 150][:40]
    planted = [{"id": f"zz-near-{k:02d}", "text": edit_words(r["text"], 0.01, k), "source": r["source"]}
               for k, r in enumerate(rows[:20])]
    for k, p in enumerate(planted):  # brute-force ground truth: every plant is truly above the threshold
        a, b = (set(shingle_strings(prepare_text(pa.array([t])).to_pylist()[0], 5, False)) for t in (rows[k]["text"], p["text"]))
        assert len(a & b) / len(a | b) >= 0.85
    empties = [{"id": f"zz-empty-{k}", "text": "", "source": "x"} for k in range(3)]
    batch = pa.Table.from_pylist(rows + planted + empties)
    out = MinHashDedup(threshold=0.8)(batch)
    rejected = {r["id"]: r["_detail"] for r in out.to_pylist() if r[REASON]}
    assert set(rejected) == {p["id"] for p in planted}  # every planted copy found, nothing else removed
    assert rejected["zz-near-03"] == f"near-duplicate of {rows[3]['id']}"


def test_clusters_do_not_depend_on_row_order():
    rows = [r for r in sample_rows(300) if len(r["text"].split()) >= 100][:30]
    rows += [{"id": f"zz-{k}", "text": edit_words(r["text"], 0.01, k), "source": "x"} for k, r in enumerate(rows[:10])]
    op = MinHashDedup()
    first = op.clusters(pa.Table.from_pylist(rows)).sort_by("id")
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert op.clusters(pa.Table.from_pylist(shuffled)).sort_by("id").equals(first)
    assert first.filter(pa.compute.invert(first["kept"])).num_rows == 10


def test_a_ten_megabyte_document_works():
    words = [f"w{k % 50_000}" for k in range(1_600_000)]
    big = " ".join(words)
    assert len(big) > 10_000_000
    out = MinHashDedup()(pa.table({"id": ["big", "copy"], "text": [big, big]}))
    assert out[REASON].to_pylist() == [None, "near-duplicate"]


@pytest.mark.parametrize("kwargs, field", [({"threshold": 1.5}, "threshold"), ({"threshold": 0}, "threshold"),
                                           ({"ngram": 0}, "ngram"), ({"bands": 20, "rows": 10}, "bands"),
                                           ({"bands": 4}, "bands"), ({"num_perm": 1}, "num_perm")])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ParameterError, match=rf"MinHashDedup\.{field}:"):
        MinHashDedup(**kwargs)


@pytest.mark.usefixtures("ray_local")
def test_minhash_dedup_in_a_pipeline_is_the_same_whatever_the_blocks_files_and_order(tmp_path):
    rows = [r for r in sample_rows(200) if len(r["text"].split()) >= 80][:25]
    rows += [{"id": f"zz-near-{k}", "text": edit_words(r["text"], 0.01, k), "source": r["source"]}
             for k, r in enumerate(rows[:8])]
    shuffled = rows[::-1]
    random.Random(5).shuffle(shuffled)
    inputs = {1: write_docs(tmp_path / "in-1", rows, files=1), 5: write_docs(tmp_path / "in-5", shuffled, files=3)}
    kept = []
    for blocks, data in inputs.items():  # other block counts, files and row order: the same result
        out = tmp_path / f"out-{blocks}"
        manifest = Pipeline("near").read_parquet(str(data), num_blocks=blocks).dedup(MinHashDedup()).run(output=str(out))
        assert manifest["stages"][1]["reject_reasons"] == {"near-duplicate": 8}
        kept.append(sorted(pq.read_table(out)["id"].to_pylist()))
        clusters = pq.read_table(out / "_clusters" / "01-min_hash_dedup").sort_by("id").to_pylist()
        assert len(clusters) == len(rows)  # one row per document that entered the stage
        assert sorted(c["id"] for c in clusters if c["kept"]) == kept[-1]
        by_id = {c["id"]: c for c in clusters}
        assert by_id["zz-near-0"]["cluster"] == min("zz-near-0", rows[0]["id"]) and not by_id["zz-near-0"]["kept"]
        assert manifest["stages"][1]["plan"]["clusters"] == 8 and manifest["stages"][1]["plan"]["duplicates"] == 8
    assert kept[0] == kept[1] and not any(i.startswith("zz-near") for i in kept[0])
    assert not list(out.glob(".staging*"))  # the stage's input, staged on disk, is gone with the run


@pytest.mark.usefixtures("ray_local")
def test_minhash_dedup_after_a_stage_that_rejects_every_row(tmp_path):
    data = write_docs(tmp_path / "in", [r for r in sample_rows(40)], files=2)
    out = tmp_path / "out"
    manifest = (Pipeline("none-left").read_parquet(str(data)).filter(GopherQuality(min_doc_words=100_000 - 1))
                .dedup(MinHashDedup()).run(output=str(out)))
    gopher, dedup = manifest["stages"][1:]
    assert gopher["rows_in"] == 40 and gopher["rows_rejected"] == 40  # each row counted once: upstream ran once
    assert dedup["rows_in"] == dedup["rows_out"] == 0 and manifest["output"]["rows"] == 0
    assert manifest["accounting"] is not None and not list(out.glob(".staging*"))


def test_dedup_command_names_bad_parameters(capsys):
    from pipelines.cli import main

    for argv, field in ((["--threshold", "1.2"], "threshold"), (["--ngram", "0"], "ngram"),
                        (["--bands", "30", "--rows", "10"], "bands")):
        assert main(["dedup", str(SAMPLE), "--output", "/tmp/never-written", *argv]) == 2
        assert f"MinHashDedup.{field}:" in capsys.readouterr().err


@pytest.mark.usefixtures("ray_local")
def test_cross_dump_dedup_against_an_earlier_runs_index(tmp_path):
    rows = [r for r in sample_rows(400) if len(r["text"].split()) >= 100][:24]
    first = write_docs(tmp_path / "dump1", rows[:16], files=2)
    later = rows[16:] + [{"id": f"new-{k}", "text": edit_words(r["text"], 0.01, k), "source": "x"}
                         for k, r in enumerate(rows[:4])]
    second = write_docs(tmp_path / "dump2", later, files=2)
    Pipeline("dump1").read_parquet(str(first)).dedup(MinHashDedup()).run(output=str(tmp_path / "out1"))
    assert (tmp_path / "out1" / "_lsh_index" / "01-min_hash_dedup" / "params.json").exists()

    manifest = (Pipeline("dump2").read_parquet(str(second))
                .dedup(MinHashDedup(reference=(str(tmp_path / "out1"),))).run(output=str(tmp_path / "out2")))
    assert sorted(pq.read_table(tmp_path / "out2")["id"].to_pylist()) == sorted(r["id"] for r in rows[16:])
    assert manifest["stages"][1]["plan"]["duplicates_of_reference"] == 4
    details = dict(zip(*pq.read_table(tmp_path / "out2" / "_rejected").select(["id", "detail"]).to_pydict().values()))
    assert details["new-2"] == f"near-duplicate of {rows[2]['id']} in {tmp_path / 'out1'}"

    with pytest.raises(ParameterError, match=r"MinHashDedup\.reference: .* was indexed with"):
        MinHashDedup(num_perm=64, reference=(str(tmp_path / "out1"),))
    with pytest.raises(ParameterError, match=r"MinHashDedup\.reference: .* holds no MinHash index"):
        MinHashDedup(reference=(str(first),))


@pytest.mark.parametrize("strip_punctuation", [True, False])
@pytest.mark.parametrize("lowercase", [True, False])
def test_fast_word_path_gives_the_shingles_of_the_full_preparation(strip_punctuation, lowercase):
    """``sketch`` leaves whitespace and ASCII punctuation to the compiled word splitter; the shingles must be
    those of the full preparation (NFKC, lower, punctuation -> space, whitespace runs -> one space)."""
    texts = [r["text"] for r in sample_rows(600)] + [
        "a \x0b", "a\x0bb  c\u2028d", "\u00a0x  y\t\tz\r\n", "", None, " \u3000 ", "Hello, World!! again--now",
        "naïve café—déjà vu (résumé)", "___", "a_b c-d e.f", "ÀB,C d", "‘quote’ \"dq\" x", "ﬁ ① ｆｕｌｌ"]
    table = pa.table({"id": [str(k) for k in range(len(texts))], "text": pa.array(texts, pa.string())})
    op = MinHashDedup(strip_punctuation=strip_punctuation, lowercase=lowercase)
    expected, expected_offsets = shingle_hashes(prepare_text(table["text"], lowercase, strip_punctuation), 5)
    hashes, offsets, _ = op.sketch(table)
    assert np.array_equal(offsets, expected_offsets) and np.array_equal(hashes, expected)


def test_pair_similarities_equal_python_set_jaccard():
    from operators.minhash import pair_similarities

    texts = [r["text"] for r in sample_rows(300)] + ["", "one two three four five", "one two three four five"]
    op = MinHashDedup()
    hashes, offsets, _ = op.sketch(pa.table({"id": [str(k) for k in range(len(texts))], "text": texts}))
    rng = np.random.default_rng(3)
    first, second = rng.integers(0, len(texts), 500), rng.integers(0, len(texts), 500)
    first, second = np.append(first, [300, 301, 300]), np.append(second, [300, 302, 301])  # empty, equal texts
    sets = [set(hashes[offsets[d]:offsets[d + 1]].tolist()) for d in range(len(texts))]
    expected = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] | sets[j] else 0.0 for i, j in zip(first, second)]
    assert np.allclose(pair_similarities(hashes, offsets, first, second), expected, rtol=0, atol=1e-12)
    assert pair_similarities(hashes, offsets, np.array([301]), np.array([302]))[0] == 1.0
    via_texts = op.similarities(pa.array(texts), first, second)
    assert np.allclose(via_texts, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("verify", [True, False])
def test_profiles_taken_out_of_order_give_the_same_similarities(verify):
    """The plan gathers one profile per candidate document and takes them in any order (sliced list arrays):
    exact Jaccard, or without verification the signatures' agreement, must not change."""
    texts = [r["text"] for r in sample_rows(120)] + ["", "one two three four five six"]
    op = MinHashDedup(verify=verify)
    rng = np.random.default_rng(5)
    first, second = rng.integers(0, len(texts), 300), rng.integers(0, len(texts), 300)
    direct = op.similarities(pa.array(texts), first, second)
    if not verify:
        sigs = op.sketch(pa.table({"id": [str(k) for k in range(len(texts))], "text": texts}))[2]
        assert np.array_equal(direct, (sigs[first] == sigs[second]).mean(axis=1))
    order = rng.permutation(len(texts))  # profiles[order] then indices into that order
    taken = op.profiles(pa.array(texts)).take(pa.array(order))
    where = np.argsort(order)
    assert np.array_equal(op.profile_similarities(taken, where[first], where[second]), direct)
    inside = (where[first] >= 7) & (where[second] >= 7)  # a slice that does not start at the values' start
    assert np.array_equal(op.profile_similarities(taken.slice(7), where[first][inside] - 7, where[second][inside] - 7),
                          direct[inside])
