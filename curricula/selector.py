"""Which domain the next sequence comes from: a deterministic low-discrepancy choice, and the log of planned
versus realised proportions.

``DomainSelector`` is smooth weighted round-robin (the "largest accumulated deficit" rule): every pick adds
the current target weights to each domain's credit, picks the domain with the largest credit and takes 1
from it. Credits stay bounded, so over any run of n sequences each domain's count differs from the sum of
its target weights by a small constant (about the number of domains), whatever the schedule does: far
inside +-2% over 1,000 sequences, unlike i.i.d. sampling (whose standard deviation at p=0.5 is 1.6%).
The seed only sets the initial credits (a different but equally balanced interleaving).

``AdherenceLog`` records, every ``every`` sequences, the mean planned weights and the realised shares of
that window (and writes them as JSON lines when given a path) so a report can plot planned vs realised.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class DomainSelector:
    def __init__(self, num_domains: int, seed: int = 0):
        rng = np.random.default_rng([int(seed), 0x5E1EC7])
        self.credits = rng.random(num_domains) / max(num_domains, 1)
        self.alive = np.ones(num_domains, dtype=bool)

    def targets(self, weights: np.ndarray) -> np.ndarray:
        """The weights restricted to live domains and renormalised (zeros if none is left)."""
        w = np.where(self.alive, weights, 0.0)
        total = w.sum()
        if total <= 0:  # every weighted domain is exhausted: spread over what is left
            w = self.alive.astype(float)
            total = w.sum()
        return w / total if total > 0 else w

    def propose(self, weights: np.ndarray) -> tuple[int, np.ndarray]:
        """The domain to pick under ``weights`` and the credits after the pick (commit only if used)."""
        w = self.targets(weights)
        credits = self.credits + w
        masked = np.where(self.alive & (w > 0), credits, -np.inf)
        choice = int(np.argmax(masked))
        credits[choice] -= 1.0
        return choice, credits

    def commit(self, credits: np.ndarray) -> None:
        self.credits = credits

    def retire(self, domain: int) -> None:
        self.alive[domain] = False
        self.credits[domain] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"credits": self.credits.tolist(), "alive": self.alive.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.credits = np.array(state["credits"], dtype=float)
        self.alive = np.array(state["alive"], dtype=bool)


class AdherenceLog:
    """Planned vs realised domain shares per window of ``every`` sequences."""

    def __init__(self, domains: Sequence[str], every: int = 1000, path: str | Path | None = None):
        self.domains = list(domains)
        self.every = int(every)
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        self._planned = np.zeros(len(domains))
        self._counts = np.zeros(len(domains), dtype=np.int64)
        self._n = 0
        self._total = 0

    def add(self, planned: np.ndarray, domain: int, tokens: int) -> None:
        self._planned += planned
        self._counts[domain] += 1
        self._n += 1
        self._total += 1
        if self._n >= self.every:
            self.flush(tokens)

    def flush(self, tokens: int) -> None:
        if self._n == 0:
            return
        record = {"sequences": self._total, "tokens": int(tokens), "window": self._n,
                  "planned": {d: round(float(p), 6) for d, p in zip(self.domains, self._planned / self._n)},
                  "realised": {d: round(float(c) / self._n, 6) for d, c in zip(self.domains, self._counts)}}
        record["max_abs_error"] = round(max(abs(record["planned"][d] - record["realised"][d]) for d in self.domains), 6)
        self.records.append(record)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        self._planned[:] = 0
        self._counts[:] = 0
        self._n = 0

    def state_dict(self) -> dict[str, Any]:
        return {"planned": self._planned.tolist(), "counts": self._counts.tolist(), "n": self._n, "total": self._total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._planned = np.array(state["planned"], dtype=float)
        self._counts = np.array(state["counts"], dtype=np.int64)
        self._n = int(state["n"])
        self._total = int(state["total"])
