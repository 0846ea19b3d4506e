"""The distributed plans of the global text operators on Ray Data: near-duplicate removal (``MinHashDedup``)
and, at the end, line-level boilerplate counting (``BoilerplateLines``).

    1. sketch    every document -> one (band, bucket, id) row per LSH band (compiled, whole batches)
    2. bucket    hash-grouped by (band, bucket) across the cluster; buckets with >1 member -> candidate pairs
    3. verify    each candidate document's profile (sorted distinct shingle hashes, or its signature) is
                 computed once where its row lies and broadcast; tasks compute each pair's exact Jaccard
                 (or signature agreement) in one compiled pass
    4. cluster   connected components over verified edges only (never raw bucket co-membership, which
                 chains unrelated documents that share boilerplate), by large-star / small-star rounds of
                 Ray tasks over hash partitions of the edges (``operators.components``); the keep rule
                 picks one document per cluster
    5. annotate  every row gets its cluster decision (a broadcast lookup); the runner's StageTask rejects
                 the others

No step holds all signatures or all edges in one place: buckets and edges are hash-partitioned. The driver
gathers the distinct candidate pairs, the candidates' profiles and the final (id, cluster) labels: memory
proportional to candidates, not to documents. The stage's input is staged once as Parquet on disk and read
by steps 1, 3 and 5.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from operators.boilerplate import BoilerplateLines
from operators import components
from operators.minhash import MinHashDedup, pairs_from_buckets, reference_index
from pipelines.io import list_parquet_files, small_strings


def _collect(ds) -> pa.Table:
    import ray

    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


VERIFY_CHUNK_PAIRS = 16_384  # a verify task holds its chunk's profiles: this bounds its memory
REFERENCE_MARK = "\x00"  # ids of reference documents are "\x00K\x00ID": they sort first and never clash


def _reference_ids(k: int):
    def mark(batch: pa.Table) -> pa.Table:
        ids = pa.compute.binary_join_element_wise(f"{REFERENCE_MARK}{k}{REFERENCE_MARK}", batch["id"].cast(pa.string()), "")
        return batch.set_column(batch.schema.get_field_index("id"), "id", ids)
    return mark


def _readable(encoded: str, op: MinHashDedup) -> str:
    """``\x00K\x00ID`` -> ``ID in REFERENCE_PATH``."""
    _, k, doc_id = encoded.split(REFERENCE_MARK, 2)
    return f"{doc_id} in {op.reference[int(k)]}"


def near_dedup_plan(ds, op: MinHashDedup, num_partitions: int, input_dir: Path,
                    index_dir=None) -> tuple[Any, dict[str, Any]]:
    """Return (rows joined with ``keep_id`` and ``cluster`` columns, statistics for the manifest).

    The rows are read three times (sketch, verification, final join) and upstream stages must run once, so
    they are first written to ``input_dir`` as Parquet (on disk: at 1M documents the object store would
    otherwise hold, and spill, the whole corpus); the caller removes it when the run is done."""
    import ray.data
    from ray.data.aggregate import Unique

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    ds = _stage_input(ds, input_dir)
    seconds["read"] = time.perf_counter() - started
    if ds.count() == 0:  # every row was rejected upstream: nothing to compare
        return ds, {"candidate_pairs": 0, "verified_pairs": 0, "clusters": 0, "duplicates": 0}

    started = time.perf_counter()
    buckets = ds.map_batches(op.bucket_rows, batch_format="pyarrow", batch_size=op.resources.batch_size).materialize()
    everything = buckets
    for k, path in enumerate(op.reference):
        earlier = ray.data.read_parquet(str(reference_index(path) / "buckets")).map_batches(_reference_ids(k),
                                                                                       batch_format="pyarrow")
        everything = everything.union(earlier)
    # Unique, not AsList: a document has one row per band, so a bucket's ids are unique anyway, and Ray 2.60
    # aggregates AsList (or Count beside it) row by row in Python: 675 s vs 10 s on 1.6M bucket rows.
    grouped = everything.groupby(["band", "bucket"], num_partitions=num_partitions).aggregate(
        Unique("id", alias_name="ids"))

    def to_pairs(batch: pa.Table) -> pa.Table:
        shared = batch.filter(pa.compute.greater(pa.compute.list_value_length(batch["ids"]), 1))
        first, second = pairs_from_buckets(shared["ids"].to_pylist())
        return pa.table({"a": pa.array(first, pa.string()), "b": pa.array(second, pa.string())})

    pairs = _collect(grouped.map_batches(to_pairs, batch_format="pyarrow"))
    if not pairs.num_columns:
        pairs = pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.string())})
    pairs = pairs.group_by(["a", "b"]).aggregate([])  # a pair found in several bands is checked once
    candidates = pairs.num_rows
    seconds["sketch_and_bucket"] = time.perf_counter() - started

    started = time.perf_counter()
    edges = _verify(ds, op, pairs, num_partitions)
    seconds["verify"] = time.perf_counter() - started

    started = time.perf_counter()
    labels, rounds = connected_components(edges, num_partitions)
    seconds["components"] = time.perf_counter() - started
    started = time.perf_counter()
    decisions, of_reference = _decisions(ds, op, labels, num_partitions)
    seconds["cluster"] = time.perf_counter() - started
    if index_dir is not None:
        started = time.perf_counter()
        _write_index(buckets, decisions, op, index_dir)
        seconds["index"] = time.perf_counter() - started

    sizes = Counter(Counter(labels.values()).values())
    stats = {"candidate_pairs": candidates, "duplicates_of_reference": of_reference,
             "verified_pairs": edges.num_rows, "component_rounds": rounds, "clusters": sum(sizes.values()),
             "duplicates": len(labels) - sum(sizes.values()),
             "cluster_sizes": {str(size): count for size, count in sorted(sizes.items())},
             "bands": op.band_layout()[0], "rows": op.band_layout()[1],
             "seconds": {phase: round(value, 3) for phase, value in seconds.items()}}
    # Whole blocks (batch_size=None): each call builds a hash table of the decisions' ids.
    return ds.map_batches(_attach(ray.put(decisions)), batch_format="pyarrow", batch_size=None), stats


def _stage_input(ds, input_dir: Path):
    import shutil

    import ray.data

    shutil.rmtree(input_dir, ignore_errors=True)
    ds.write_parquet(str(input_dir))
    files = sorted(input_dir.glob("*.parquet")) if input_dir.exists() else []
    return ray.data.read_parquet([str(f) for f in files]) if files else ray.data.from_items([])


def _attach(decisions_ref):
    """Each row with its cluster's ``keep_id`` and ``cluster`` (null: a cluster of one). The decisions cover
    only documents in clusters of two or more, so they are broadcast to the tasks instead of shuffling every
    text through a join."""
    import ray

    def attach(batch: pa.Table) -> pa.Table:
        decisions = ray.get(decisions_ref)
        found = pa.compute.index_in(batch["id"].cast(pa.string()), value_set=decisions["id"])
        return batch.append_column("keep_id", decisions["keep_id"].take(found)).append_column(
            "cluster", decisions["cluster"].take(found))
    return attach


def _verify(ds, op: MinHashDedup, pairs: pa.Table, num_partitions: int) -> pa.Table:
    """The pairs whose similarity reaches the threshold. Candidate documents are few next to the corpus, so each
    one's profile (sorted distinct shingle hashes, or signature) is computed once where its row lies, gathered
    into the object store and shared with the verification tasks (a broadcast join): no text is shuffled and
    no document is shingled twice, however many pairs it is in."""
    import ray
    import ray.data

    if not pairs.num_rows:
        return pairs
    wanted = pa.compute.unique(pa.concat_arrays([pairs["a"].combine_chunks(), pairs["b"].combine_chunks()]))

    def candidate_profiles(batch: pa.Table) -> pa.Table:
        batch = batch.filter(pa.compute.is_in(batch["id"].cast(pa.string()), value_set=wanted))
        return pa.table({"id": batch["id"].cast(pa.string()), "profile": op.profiles(batch[op.text_column])})

    sources = [ds]
    for k, path in enumerate(op.reference):
        files = [str(f) for f in list_parquet_files(path)]
        sources.append(ray.data.read_parquet(files).select_columns(["id", op.text_column]).map_batches(
            _reference_ids(k), batch_format="pyarrow"))
    # batch_size=None: whole blocks, so the hash table of the wanted ids is built once per block
    gathered = [_collect(source.map_batches(candidate_profiles, batch_format="pyarrow", batch_size=None))
                for source in sources]
    profiles = pa.concat_tables([t for t in gathered if t.num_columns] or [
        pa.table({"id": pa.array([], pa.string()), "profile": pa.array([], pa.large_list(pa.uint64()))})])
    profiles_ref = ray.put(profiles)
    del profiles

    def verify(batch: pa.Table) -> pa.Table:
        table = ray.get(profiles_ref)
        found_a = pa.compute.index_in(batch["a"], value_set=table["id"])
        found_b = pa.compute.index_in(batch["b"], value_set=table["id"])
        # A reference document missing from its output (a later stage rejected it) cannot be compared.
        present = pa.compute.and_(pa.compute.is_valid(found_a), pa.compute.is_valid(found_b))
        batch, found_a, found_b = batch.filter(present), found_a.filter(present), found_b.filter(present)
        a, b = found_a.to_numpy(zero_copy_only=False), found_b.to_numpy(zero_copy_only=False)
        documents = np.unique(np.concatenate([a, b]))
        similarity = pa.array(op.profile_similarities(table["profile"].take(pa.array(documents)),
                                                      np.searchsorted(documents, a), np.searchsorted(documents, b)),
                              pa.float64())
        keep = pa.compute.greater_equal(similarity, op.threshold)
        return pa.table({"a": batch["a"], "b": batch["b"], "similarity": similarity}).filter(keep)

    # At least 4 tasks per partition when there are enough pairs, and at most VERIFY_CHUNK_PAIRS pairs a task.
    chunks = max(1, min(num_partitions * 4, pairs.num_rows // 256), -(-pairs.num_rows // VERIFY_CHUNK_PAIRS))
    pairs = pairs.sort_by([("a", "ascending"), ("b", "ascending")])  # fewer distinct profiles a chunk takes
    edges = _collect(ray.data.from_arrow(pairs).repartition(chunks).map_batches(verify, batch_format="pyarrow",
                                                                                batch_size=None))
    return edges if edges.num_columns else pairs.slice(0, 0)


def connected_components(edges: pa.Table, partitions: int, max_rounds: int = 200) -> tuple[dict[str, str], int]:
    """id -> cluster (the smallest id of its component) for every document of an edge, and the rounds used.

    Large-star and small-star rounds alternate (``operators.components``); each round is one Ray task per
    hash partition of the edges, which sends each output edge straight to its next partition (object refs,
    no driver in between). The driver only sums each round's count of unfinished nodes.
    """
    import ray

    if not edges.num_rows:
        return {}, 0
    step = ray.remote(_component_round).options(num_returns=partitions + 1)
    finish = ray.remote(_component_labels)
    pieces = max(1, min(partitions, edges.num_rows // 1024))
    rows = -(-edges.num_rows // pieces)
    outs = [step.remote("start", partitions, edges.slice(k * rows, rows)) for k in range(pieces)]
    for rounds in range(max_rounds + 1):
        inputs = [[out[k] for out in outs] for k in range(partitions)]
        kind = "large" if rounds % 2 == 0 else "small"
        outs = [step.remote(kind, partitions, *chunks) for chunks in inputs]
        if sum(ray.get([out[partitions] for out in outs])) == 0:  # the inputs of this round are finished stars
            table = pa.concat_tables(ray.get([finish.remote(*chunks) for chunks in inputs]))
            return dict(zip(table["id"].to_pylist(), table["cluster"].to_pylist())), rounds
    raise RuntimeError(f"connected components did not finish in {max_rounds} rounds ({edges.num_rows} edges)")


def _component_round(kind: str, partitions: int, *chunks: pa.Table):
    """One partition's round: (its output edges split by next partition..., unfinished nodes of its input)."""
    if kind == "start":  # a slice of verified pairs (a, b): make them undirected, route them
        table = chunks[0]
        return (*components.split(components.both_directions(table["a"], table["b"]), partitions), 1)
    edges = pa.concat_tables(chunks)
    output = components.large_star(edges) if kind == "large" else components.small_star(edges)
    return (*components.split(output, partitions), components.unfinished(edges))


def _component_labels(*chunks: pa.Table) -> pa.Table:
    return components.labels(pa.concat_tables(chunks))


def frequent_lines(ds, op: BoilerplateLines, num_partitions: int) -> tuple[Any, frozenset[str], dict[str, Any]]:
    """(the materialised rows, keys of the lines found in more than ``op.max_documents`` documents, stats),
    counted across the dataset (hash-grouped by line key; only the frequent keys come back to the driver).
    The rows are materialised because they are read twice: upstream stages must run once."""
    started = time.perf_counter()
    ds = ds.materialize()
    if ds.count() == 0:
        return ds, frozenset(), {"boilerplate_lines": 0}
    counts = ds.map_batches(op.line_keys, batch_format="pyarrow").groupby("key", num_partitions=num_partitions).count()

    def frequent_only(batch: pa.Table) -> pa.Table:
        return batch.filter(pa.compute.greater(batch["count()"], op.max_documents))

    frequent = _collect(counts.map_batches(frequent_only, batch_format="pyarrow"))
    keys = frozenset(frequent["key"].to_pylist()) if frequent.num_columns else frozenset()
    return ds, keys, {"boilerplate_lines": len(keys), "seconds": {"count_lines": round(time.perf_counter() - started, 3)}}


def _decisions(ds, op: MinHashDedup, labels: dict[str, str], num_partitions: int) -> pa.Table:
    """(id, keep_id, cluster) for every document in a cluster of two or more, by the keep rule."""
    import ray.data

    ids = pa.array(list(labels), pa.string())
    narrow = pa.table({"key": pa.array(list(labels.values()), pa.string()), "id": ids})
    if op.score_column and len(ids):
        scores = _collect(ds.select_columns(["id", op.score_column]).join(
            ray.data.from_arrow(pa.table({"id": ids})), join_type="inner", num_partitions=num_partitions, on=("id",)))
        narrow = narrow.join(small_strings(scores), "id")  # Ray's join gives large strings
    if not len(ids):
        return pa.table({"id": ids, "keep_id": ids, "cluster": ids}), 0
    winners = _published_first(op.choose(narrow), narrow) if op.reference else op.choose(narrow)
    decided = narrow.select(["key", "id"]).join(winners, "key")
    keep_ids = decided["keep_id"].to_pylist()
    clusters = decided["key"].to_pylist()
    of_reference = sum(1 for i, k in zip(decided["id"].to_pylist(), keep_ids)
                       if k.startswith(REFERENCE_MARK) and not i.startswith(REFERENCE_MARK))
    if op.reference:  # a cluster with a reference document keeps that one (already in an earlier dump)
        keep_ids = [_readable(k, op) if k.startswith(REFERENCE_MARK) else k for k in keep_ids]
        clusters = [_readable(c, op) if c.startswith(REFERENCE_MARK) else c for c in clusters]
    table = pa.table({"id": decided["id"], "keep_id": pa.array(keep_ids, pa.string()),
                      "cluster": pa.array(clusters, pa.string())})
    return table.filter(pa.compute.invert(pa.compute.starts_with(table["id"], REFERENCE_MARK))), of_reference


def _published_first(winners: pa.Table, narrow: pa.Table) -> pa.Table:
    """A cluster holding a reference document keeps that one (the smallest, if several), whatever the scores:
    it is already published in an earlier dump, so the new copies go. Reference rows carry no score (the
    score column is read from this stage's input only), so the keep rule alone would let them lose."""
    marked = narrow.filter(pa.compute.starts_with(narrow["id"], REFERENCE_MARK)).select(["key", "id"])
    if not marked.num_rows:
        return winners
    published = marked.sort_by([("key", "ascending"), ("id", "ascending")]).group_by(
        "key", use_threads=False).aggregate([("id", "first")])
    published = pa.table({"key": published["key"], "keep_id": published["id_first"]})
    others = winners.filter(pa.compute.invert(pa.compute.is_in(winners["key"], value_set=published["key"])))
    return pa.concat_tables([others, published.cast(others.schema)])


def _write_index(buckets, decisions: pa.Table, op: MinHashDedup, index_dir) -> None:
    """Persist the LSH buckets of the documents this stage keeps, for later cross-dump runs."""
    import json
    import shutil

    rejected = decisions.filter(pa.compute.not_equal(decisions["id"], decisions["keep_id"]))["id"]

    def kept_only(batch: pa.Table) -> pa.Table:
        return batch.filter(pa.compute.invert(pa.compute.is_in(batch["id"].cast(pa.string()), value_set=rejected)))

    shutil.rmtree(index_dir, ignore_errors=True)
    buckets.map_batches(kept_only, batch_format="pyarrow").write_parquet(str(index_dir / "buckets"), compression="zstd")
    (index_dir / "params.json").write_text(json.dumps(op.index_params(), indent=2) + "\n")
