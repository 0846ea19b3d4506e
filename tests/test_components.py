"""Connected components by large-star / small-star rounds over hash partitions: the same components as
union-find on random graphs, long paths and stars, in one process and as Ray tasks."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from operators.components import components_in_rounds, unfinished, both_directions
from operators.minhash import components


def union_find_labels(first: list[str], second: list[str]) -> dict[str, str]:
    names = sorted({x for pair in zip(first, second) for x in pair if pair[0] != pair[1]})
    index = {name: k for k, name in enumerate(names)}
    edges = np.array([[index[a], index[b]] for a, b in zip(first, second) if a != b], dtype=np.int64).reshape(-1, 2)
    roots = components(len(names), edges)  # names are sorted: the smallest index is the smallest id
    return {name: names[roots[k]] for k, name in enumerate(names)}


def random_graphs():
    rng = random.Random(7)
    for trial in range(12):
        ids = [f"doc-{rng.randint(0, 10**6):07d}" for _ in range(rng.randint(3, 300))]
        first, second = [], []
        for _ in range(rng.randint(1, 400)):
            a, b = rng.choice(ids), rng.choice(ids)
            first.append(a)
            second.append(b)
        yield f"random-{trial}", first, second
    path = [f"p{k:04d}" for k in range(200)]
    rng.shuffle(path)  # a 200-node path whose ids are in no particular order along it
    yield "path", path[:-1], path[1:]
    yield "star", ["z"] * 50, [f"leaf{k:02d}" for k in range(50)]
    yield "two-cliques", [f"a{i}" for i in range(6) for j in range(6)] + [f"b{i}" for i in range(4) for j in range(4)], \
        [f"a{j}" for i in range(6) for j in range(6)] + [f"b{j}" for i in range(4) for j in range(4)]


@pytest.mark.parametrize("name,first,second", list(random_graphs()), ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_rounds_find_the_union_find_components(name, first, second, partitions):
    table, rounds = components_in_rounds(first, second, partitions=partitions)
    got = dict(zip(table["id"].to_pylist(), table["cluster"].to_pylist()))
    assert len(table) == len(got)  # one label per node
    assert got == union_find_labels(first, second)
    assert rounds < 40


def test_unfinished_counts_nodes_that_are_not_star_leaves_or_centres():
    path = both_directions(pa.array(["a", "b"]), pa.array(["b", "c"]))  # a - b - c: b has a smaller and a larger
    assert unfinished(path) == 1
    star = both_directions(pa.array(["a", "a"]), pa.array(["b", "c"]))
    assert unfinished(star) == 0
    two_smaller = both_directions(pa.array(["a", "b"]), pa.array(["c", "c"]))  # c links to a and b
    assert unfinished(two_smaller) == 1


def test_ray_rounds_match_union_find(ray_local):
    from pipelines.near_dedup import connected_components

    for name, first, second in list(random_graphs())[-4:]:
        edges = pa.table({"a": pa.array(first, pa.string()), "b": pa.array(second, pa.string())})
        labels, rounds = connected_components(edges, partitions=4)
        assert labels == union_find_labels(first, second), name
    assert connected_components(edges.slice(0, 0), partitions=4) == ({}, 0)
