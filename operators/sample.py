"""``HashSample``: keep a deterministic fraction of rows, chosen by a hash of each row's id and a seed.

The same (id, seed) always lands on the same side, whatever the batching or the cluster, so
``HashSample(0.1)`` and ``HashSample(0.1, complement=True)`` split a corpus into disjoint parts (a held-out
split and its training pool) that stay disjoint across reruns. Rows left out are rejects with the reason
(nothing is dropped silently).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from operators.base import Filter, check, reject_where


def hash_unit(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class HashSample(Filter):
    fraction: float = 0.1
    seed: int = 0
    complement: bool = False  # keep the other 1 - fraction instead

    def __post_init__(self) -> None:
        check(isinstance(self.fraction, (int, float)) and 0 < self.fraction < 1, self, "fraction",
              f"must be in (0, 1), got {self.fraction!r}")
        check(type(self.seed) is int, self, "seed", f"must be an integer, got {self.seed!r}")

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        inside = [hash_unit(str(i), self.seed) < self.fraction for i in batch["id"].to_pylist()]
        left_out = pa.array([i == self.complement for i in inside])
        part = f"the {1 - self.fraction:.0%} complement" if not self.complement else f"the {self.fraction:.0%} sample"
        return reject_where(left_out, f"in {part} (HashSample seed {self.seed})")
