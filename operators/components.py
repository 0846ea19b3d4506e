"""Connected components of a graph over string ids, in rounds that run on hash partitions of the edges:
the alternating large-star / small-star algorithm (Kiveris et al., "Connected Components in MapReduce and
Beyond", SoCC 2014). Pure pyarrow, one partition per call: ``pipelines.near_dedup`` runs the rounds as
Ray tasks, and the tests run them in a loop.

Edges are stored in both directions (u, v) and (v, u) and partitioned by ``u``, so one partition holds the
whole neighbourhood of each of its nodes. With m(u) the smallest of u and its neighbours:

    large-star  for each u: link every neighbour v > u to m(u)
    small-star  for each u: link u and every neighbour v < u to m(u restricted to {u} and those neighbours)

Both keep the components. The graph is finished when it is a set of stars around each component's
smallest id: no node has both a smaller and a larger neighbour, and none has two smaller neighbours
(``unfinished`` counts the nodes that break this). Each node's label is then its only smaller neighbour,
or itself: the smallest id of its component.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators import minhash_kernels as kernels

EDGES = pa.schema([("u", pa.string()), ("v", pa.string())])


def both_directions(first: pa.Array, second: pa.Array) -> pa.Table:
    """The undirected edge list (u, v) + (v, u), without self-loops or repeats."""
    u = pa.concat_arrays([pa.array(first, pa.string()), pa.array(second, pa.string())])
    v = pa.concat_arrays([pa.array(second, pa.string()), pa.array(first, pa.string())])
    return _distinct(pa.table({"u": u, "v": v}))


def _distinct(edges: pa.Table) -> pa.Table:
    edges = edges.filter(pc.not_equal(edges["u"], edges["v"]))
    return edges.group_by(["u", "v"]).aggregate([]).select(["u", "v"]).cast(EDGES)


def partition_of(ids: pa.Array, partitions: int) -> np.ndarray:
    """The partition (0 .. partitions-1) of each id: a 64-bit FNV-1a hash of its UTF-8 bytes, so every
    process agrees without sharing state."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = ids.cast(pa.large_string())
    _, offsets, data = ids.buffers()
    offs = np.frombuffer(offsets, dtype=np.int64)[ids.offset: ids.offset + len(ids) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return (kernels.string_hashes(offs, raw) % np.uint64(partitions)).astype(np.int64)


def split(edges: pa.Table, partitions: int) -> list[pa.Table]:
    """Route each edge to the partition of its ``u``."""
    if not edges.num_rows:
        return [edges.cast(EDGES)] * partitions
    part = partition_of(edges["u"], partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    ordered = edges.take(pa.array(order))
    return [ordered.slice(bounds[k], bounds[k + 1] - bounds[k]).cast(EDGES) for k in range(partitions)]


def _with_min(edges: pa.Table) -> pa.Table:
    """Each edge with m(u): the smaller of u and its smallest neighbour in ``edges``."""
    smallest = edges.group_by("u").aggregate([("v", "min")])
    m = pc.min_element_wise(smallest["u"], smallest["v_min"])
    return edges.join(pa.table({"u": smallest["u"], "m": m}), "u")


def large_star(edges: pa.Table) -> pa.Table:
    """One partition's large-star output (both directions, distinct)."""
    if not edges.num_rows:
        return edges.cast(EDGES)
    linked = _with_min(edges)
    linked = linked.filter(pc.greater(linked["v"], linked["u"]))
    return both_directions(linked["v"], linked["m"])


def small_star(edges: pa.Table) -> pa.Table:
    """One partition's small-star output (both directions, distinct)."""
    if not edges.num_rows:
        return edges.cast(EDGES)
    smaller = edges.filter(pc.less(edges["v"], edges["u"]))  # every edge once, at its larger end
    if not smaller.num_rows:
        return smaller.cast(EDGES)
    linked = _with_min(smaller)
    nodes = pa.concat_arrays([linked["v"].combine_chunks(), linked["u"].combine_chunks()])
    targets = pa.concat_arrays([linked["m"].combine_chunks(), linked["m"].combine_chunks()])
    return both_directions(nodes, targets)


def unfinished(edges: pa.Table) -> int:
    """Nodes of this partition that keep the graph from being stars around each component's minimum."""
    if not edges.num_rows:
        return 0
    flags = pa.table({"u": edges["u"], "smaller": pc.cast(pc.less(edges["v"], edges["u"]), pa.int64()),
                      "larger": pc.cast(pc.greater(edges["v"], edges["u"]), pa.int64())})
    counts = flags.group_by("u").aggregate([("smaller", "sum"), ("larger", "sum")])
    both = pc.and_(pc.greater(counts["smaller_sum"], 0), pc.greater(counts["larger_sum"], 0))
    return int(pc.sum(pc.or_(both, pc.greater(counts["smaller_sum"], 1)).cast(pa.int64())).as_py() or 0)


def labels(edges: pa.Table) -> pa.Table:
    """(id, cluster) for every node of a finished partition: its smaller neighbour, else itself."""
    smaller = edges.filter(pc.less(edges["v"], edges["u"]))
    roots = pc.unique(edges.filter(pc.invert(pc.is_in(edges["u"], value_set=smaller["u"])))["u"])
    return pa.table({"id": pa.concat_arrays([smaller["u"].combine_chunks(), roots]),
                     "cluster": pa.concat_arrays([smaller["v"].combine_chunks(), roots])})


def components_in_rounds(first: list[str], second: list[str], partitions: int = 4,
                         max_rounds: int = 100) -> tuple[pa.Table, int]:
    """The whole algorithm in one process, partition by partition (the reference the Ray plan follows):
    ((id, cluster) for every node of an edge, rounds used)."""
    parts = split(both_directions(pa.array(first, pa.string()), pa.array(second, pa.string())), partitions)
    for rounds in range(max_rounds):
        if sum(unfinished(p) for p in parts) == 0:
            return pa.concat_tables([labels(p) for p in parts]), rounds
        step = large_star if rounds % 2 == 0 else small_star
        parts = [pa.concat_tables(chunks) for chunks in zip(*(split(step(p), partitions) for p in parts))]
    raise RuntimeError(f"connected components did not finish in {max_rounds} rounds")
