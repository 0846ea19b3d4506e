"""The order in which one domain's documents are read: shuffled epochs, or a difficulty curriculum.

``ShuffledOrder``: each epoch visits the row groups in a seeded random order and the documents of each row
group in a seeded random order, so reads stay sequential per row group (streaming-friendly).

``CurriculumOrder`` (competence-based curriculum, Platanios et al., 2019): documents are ranked by a score
column (ascending = easy first; ``anti=True`` reverses it for the anti-curriculum ablation) and cut into
``buckets`` equal rank buckets, each shuffled per epoch. At training progress t (global tokens) the
competence c(t) opens the easiest ceil(c * buckets) buckets; the next document comes from an open bucket
chosen with probability proportional to its remaining documents (uniform over the open pool, without
replacement). If the open buckets are used up before the pacing opens more, the next bucket opens early,
so data never stalls. Pacing with c0 = ``start`` and T = ``full_at_tokens``:

  linear  c = min(1, c0 + (1 - c0) t / T)
  root    c = min(1, sqrt(c0^2 + (1 - c0^2) t / T))
  step    c = min(1, c0 + (1 - c0) floor(steps t / T) / steps)
  order   c = 0: buckets open strictly one after another (sorted order, shuffled within a bucket)

Both orders stop after ``max_epochs`` passes (fractions allowed) by raising ``Exhausted``. Everything
derives from (seed, domain, epoch) plus a saved cursor, so ``state_dict`` restores the exact position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from curricula.mixture import CurriculumConfigError

PACINGS = ("linear", "root", "step", "order")


class Exhausted(Exception):
    """The domain reached its repeat cap."""


@dataclass(frozen=True)
class Difficulty:
    """A difficulty curriculum over ``column`` (a numeric column, or ``length`` = characters of text)."""

    column: str = "length"
    pacing: str = "linear"
    start: float = 0.1
    full_at_tokens: int = 1_000_000
    buckets: int = 10
    steps: int = 4
    anti: bool = False

    def __post_init__(self) -> None:
        f = "difficulty"
        if self.pacing not in PACINGS:
            raise CurriculumConfigError(f"{f}.pacing: must be one of {', '.join(PACINGS)}, got {self.pacing!r}")
        if not 0 < self.start <= 1:
            raise CurriculumConfigError(f"{f}.start: must be in (0, 1], got {self.start}")
        if self.full_at_tokens <= 0:
            raise CurriculumConfigError(f"{f}.full_at_tokens: must be > 0, got {self.full_at_tokens}")
        if self.buckets < 1:
            raise CurriculumConfigError(f"{f}.buckets: must be >= 1, got {self.buckets}")
        if self.steps < 1:
            raise CurriculumConfigError(f"{f}.steps: must be >= 1, got {self.steps}")

    def competence(self, tokens: int) -> float:
        t = min(max(tokens, 0) / self.full_at_tokens, 1.0)
        c0 = self.start
        if self.pacing == "linear":
            return min(1.0, c0 + (1 - c0) * t)
        if self.pacing == "root":
            return min(1.0, math.sqrt(c0 * c0 + (1 - c0 * c0) * t))
        if self.pacing == "step":
            return min(1.0, c0 + (1 - c0) * math.floor(self.steps * t) / self.steps)
        return 0.0


def _rng(seed: int, domain: int, epoch: int, tag: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(domain), int(epoch), int(tag)])


class _Order:
    def __init__(self, refs: np.ndarray, seed: int, domain: int, max_epochs: float | None):
        self.refs, self.seed, self.domain = refs, seed, domain
        self.limit = None if max_epochs is None else int(math.ceil(max_epochs * len(refs)))
        self.drawn = 0
        self.epoch = 0

    def _room(self, k: int) -> int:
        if self.limit is None:
            return k
        if self.drawn >= self.limit:
            raise Exhausted
        return min(k, self.limit - self.drawn)


class ShuffledOrder(_Order):
    def __init__(self, refs: np.ndarray, row_group_of: np.ndarray, seed: int, domain: int,
                 max_epochs: float | None):
        super().__init__(refs, seed, domain, max_epochs)
        self.row_group_of = row_group_of
        self.pos = 0
        self._epoch_order = self._make(0)

    def _make(self, epoch: int) -> np.ndarray:
        rng = _rng(self.seed, self.domain, epoch, 1)
        groups = np.unique(self.row_group_of)
        rank = np.empty(groups.max() + 1, dtype=np.int64)
        rank[groups] = rng.permutation(len(groups))
        # sort by (row group's random rank, random key within the row group)
        order = np.lexsort((rng.random(len(self.refs)), rank[self.row_group_of]))
        return self.refs[order]

    def next(self, k: int, tokens: int) -> np.ndarray:
        k = self._room(k)
        if self.pos >= len(self._epoch_order):
            self.epoch += 1
            self.pos = 0
            self._epoch_order = self._make(self.epoch)
        out = self._epoch_order[self.pos:self.pos + k]
        self.pos += len(out)
        self.drawn += len(out)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos, self.drawn = int(state["epoch"]), int(state["pos"]), int(state["drawn"])
        self._epoch_order = self._make(self.epoch)


class CurriculumOrder(_Order):
    def __init__(self, refs: np.ndarray, scores: np.ndarray, difficulty: Difficulty, seed: int, domain: int,
                 max_epochs: float | None):
        super().__init__(refs, seed, domain, max_epochs)
        self.difficulty = difficulty
        key = np.where(np.isnan(scores), np.inf, scores)  # unscored documents count as hardest
        if difficulty.anti:
            key = -np.where(np.isnan(scores), -np.inf, scores)
        ranked = refs[np.argsort(key, kind="stable")]
        self.bucket_refs = [b for b in np.array_split(ranked, min(difficulty.buckets, len(refs))) if len(b)]
        self.pointers = [0] * len(self.bucket_refs)
        self.rng = _rng(seed, domain, 0, 2)
        self._shuffled = self._make(0)

    def _make(self, epoch: int) -> list[np.ndarray]:
        return [_rng(self.seed, self.domain, epoch, 100 + i).permutation(b) for i, b in enumerate(self.bucket_refs)]

    def next(self, k: int, tokens: int) -> np.ndarray:
        k = self._room(k)
        nb = len(self.bucket_refs)
        remaining = np.array([len(b) - p for b, p in zip(self.bucket_refs, self.pointers)], dtype=float)
        if remaining.sum() == 0:
            self.epoch += 1
            self.pointers = [0] * nb
            self._shuffled = self._make(self.epoch)
            remaining = np.array([len(b) for b in self.bucket_refs], dtype=float)
        opened = max(1, math.ceil(self.difficulty.competence(tokens) * nb - 1e-9))
        out = []
        for _ in range(k):
            pool = remaining[:opened].copy()
            if pool.sum() == 0:  # the open buckets are used up: open the next non-empty one early
                nxt = int(np.nonzero(remaining > 0)[0][0]) if remaining.sum() > 0 else None
                if nxt is None:
                    break
                opened = nxt + 1
                pool = remaining[:opened].copy()
            b = int(self.rng.choice(opened, p=pool / pool.sum()))
            out.append(self._shuffled[b][self.pointers[b]])
            self.pointers[b] += 1
            remaining[b] -= 1
        self.drawn += len(out)
        return np.array(out, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pointers": list(self.pointers), "drawn": self.drawn,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.drawn = int(state["epoch"]), int(state["drawn"])
        self.pointers = [int(p) for p in state["pointers"]]
        self.rng.bit_generator.state = state["rng"]
        self._shuffled = self._make(self.epoch)
