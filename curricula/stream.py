"""``CurriculumStream``: domain mixtures and difficulty curricula streamed from Parquet into training.

Decision on reading (resumability first): each worker reads its domains with pyarrow, row group by row
group, in an order derived only from (seed, domain, epoch) and a saved cursor, so a stream restored from
``state_dict`` yields exactly the batches the uninterrupted stream would have (Ray Data's streaming
executor does not promise a reproducible row order, which exact resumption needs). Ray Data does the
distributed, order-free work: ``curricula.pretokenize`` tokenises a corpus on the cluster
(``ray.data.read_parquet(...).map_batches(...)``) and writes ``input_ids`` / ``num_tokens`` columns,
which this stream then reads instead of tokenising ``text`` itself (and which give domain sizes in tokens).

Per sequence: the schedule gives target weights at the current global token count (sequences yielded x
``seq_len`` x ``world_size``), the low-discrepancy ``DomainSelector`` picks the domain, and that domain's
``Packer`` cuts the next ``seq_len + 1`` window of its token stream, fetching and tokenising the next chunk
of documents (``ShuffledOrder`` or ``CurriculumOrder``) when it runs short. A domain that reaches
``max_epochs`` is retired with a ``DomainExhaustedWarning`` and its weight spread over the others; the
stream ends when no domain is left (a last partial batch is dropped).

Sharding across Ray Train workers: pass ``rank`` / ``world_size`` (e.g. from ``ray.train.get_context()``);
each worker keeps a disjoint contiguous block of every domain and runs the same selector, so every worker
follows the same mixture. With ``DoReMi``, report losses averaged over all workers so weights stay equal.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from tokenizers import Tokenizer

from curricula.batch import TokenBatch
from curricula.mixture import CurriculumConfigError, DoReMi, Mixture, Schedule, Temperature, as_schedule
from curricula.order import CurriculumOrder, Difficulty, Exhausted, ShuffledOrder
from curricula.packing import Packer, text_encoder, token_passthrough
from curricula.selector import AdherenceLog, DomainSelector
from curricula.source import Domain, DomainIndex
from operators.tokenizer import load_tokenizer

STATE_VERSION = 1


class DomainExhaustedWarning(UserWarning):
    """A domain reached its repeat cap (``max_epochs``); its weight goes to the other domains."""


class CurriculumStream:
    """An iterable of ``TokenBatch`` (a ``FeedbackStream``): see the module docstring."""

    def __init__(self, domains: Sequence[Domain], schedule: Schedule | Mixture | Mapping[str, float],
                 tokenizer: Tokenizer | str | Path, *, seq_len: int = 256, batch_size: int = 8, seed: int = 0,
                 difficulty: Difficulty | Mapping[str, Difficulty] | None = None,
                 max_epochs: float | Mapping[str, float] | None = None, rank: int = 0, world_size: int = 1,
                 document_ids: bool = False, eos_token: str | None = None, chunk_docs: int = 64,
                 log_every: int = 1000, log_path: str | Path | None = None):
        _check(isinstance(seq_len, int) and seq_len >= 2, "seq_len", f"must be an integer >= 2, got {seq_len!r}")
        _check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", f"must be >= 1, got {batch_size!r}")
        _check(isinstance(world_size, int) and world_size >= 1, "world_size", f"must be >= 1, got {world_size!r}")
        _check(isinstance(rank, int) and 0 <= rank < world_size, "rank",
               f"must be in [0, world_size={world_size}), got {rank!r}")
        _check(chunk_docs >= 1, "chunk_docs", f"must be >= 1, got {chunk_docs}")
        _check(len(domains) > 0, "domains", "must name at least one domain")
        names = [d.name for d in domains]
        dupes = sorted({n for n in names if names.count(n) > 1})
        _check(not dupes, "domains", f"duplicate domain name {dupes[0]!r}" if dupes else "")
        self.names = names
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, int(seed)
        self.rank, self.world_size, self.document_ids = rank, world_size, document_ids
        self.chunk_docs = chunk_docs
        per_domain_difficulty = self._per_domain(difficulty, "difficulty")
        epochs = self._per_domain(max_epochs, "max_epochs")
        for name, e in epochs.items():
            _check(e is None or e > 0, f"max_epochs[{name!r}]", f"must be > 0, got {e}")

        self.tokenizer, self.eos_id, self.eos_token = load_tokenizer(tokenizer, eos_token)
        self.indexes, self.orders, self.packers = [], [], []
        for i, d in enumerate(domains):
            diff = per_domain_difficulty.get(d.name)
            index = DomainIndex(d, f"domains[{d.name!r}]", score_column=diff.column if diff else None)
            self.indexes.append(index)
        self.sizes = {d.name: len(ix) for d, ix in zip(domains, self.indexes)}  # documents, before sharding
        self.schedule = as_schedule(schedule)
        if isinstance(self.schedule, Temperature):
            self.schedule.with_sizes(self.sizes)
        self.schedule.bind(self.names)
        for i, (d, index) in enumerate(zip(domains, self.indexes)):
            index.shard(rank, world_size)
            diff = per_domain_difficulty.get(d.name)
            if diff is not None:
                order = CurriculumOrder(index.refs, index.scores, diff, self.seed, i, epochs.get(d.name))
            else:
                order = ShuffledOrder(index.refs, index.row_group_of(index.refs), self.seed, i, epochs.get(d.name))
            self.orders.append(order)
            encode = token_passthrough if index.pretokenized else text_encoder(self.tokenizer)
            self.packers.append(Packer(encode, self.eos_id, seq_len + 1))
        self.selector = DomainSelector(len(domains), self.seed)
        self.log = AdherenceLog(self.names, every=log_every, path=log_path)
        self.sequences = 0  # sequences yielded by this worker
        self.batches = 0

    def _per_domain(self, value: Any, field_name: str) -> dict[str, Any]:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(self.names))
            _check(not unknown, f"{field_name}[{unknown[0]!r}]" if unknown else field_name,
                   f"unknown domain (domains: {', '.join(self.names)})")
            return dict(value)
        return {n: value for n in self.names}

    # ------------------------------------------------------------------ iteration
    @property
    def tokens(self) -> int:
        """Global training tokens so far (all workers): what schedules and pacing are measured in."""
        return self.sequences * self.seq_len * self.world_size

    def __iter__(self) -> Iterator[TokenBatch]:
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            yield batch

    def next_batch(self) -> TokenBatch | None:
        rows, docs, domains = [], [], []
        for _ in range(self.batch_size):
            picked = self._next_sequence()
            if picked is None:
                self.log.flush(self.tokens)
                return None
            d, window, doc_ids = picked
            rows.append(window)
            docs.append(doc_ids)
            domains.append(self.names[d])
        windows = np.stack(rows)
        self.batches += 1
        return TokenBatch(input_ids=windows[:, :-1].copy(), labels=windows[:, 1:].copy(), domains=domains,
                          document_ids=np.stack(docs)[:, :-1].copy() if self.document_ids else None,
                          meta={"batch": self.batches, "tokens": self.tokens, "rank": self.rank,
                                "weights": dict(zip(self.names, self.current_weights().round(6).tolist()))})

    def current_weights(self) -> np.ndarray:
        return self.selector.targets(self.schedule.weights(self.tokens))

    def _next_sequence(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        while self.selector.alive.any():
            planned = self.current_weights()
            d, credits = self.selector.propose(self.schedule.weights(self.tokens))
            if self._fill(d):
                self.selector.commit(credits)
                window, doc_ids = self.packers[d].take()
                self.sequences += 1
                self.log.add(planned, d, self.tokens)
                return d, window, doc_ids
            self.selector.retire(d)
            warnings.warn(f"domain {self.names[d]!r} ran out after {self.orders[d].drawn} documents (max_epochs); "
                          f"its weight is spread over the remaining domains", DomainExhaustedWarning, stacklevel=3)
        return None

    def _fill(self, d: int) -> bool:
        packer, order, index = self.packers[d], self.orders[d], self.indexes[d]
        while not packer.ready():
            try:
                positions = order.next(self.chunk_docs, self.tokens)
            except Exhausted:
                return False
            packer.push(index.fetch(positions))
        return True

    # ------------------------------------------------------------------ feedback and state
    def report_losses(self, losses: dict[str, float], step: int) -> None:
        """Per-domain mean losses from the trainer; only ``DoReMi`` schedules use them."""
        if isinstance(self.schedule, DoReMi):
            self.schedule.report_losses(losses, step)

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "domains": list(self.names), "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "seq_len": self.seq_len, "sequences": self.sequences,
                "batches": self.batches, "selector": self.selector.state_dict(),
                "schedule": self.schedule.state_dict(), "log": self.log.state_dict(),
                "orders": [o.state_dict() for o in self.orders], "packers": [p.state_dict() for p in self.packers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("domains", "seed", "rank", "world_size", "seq_len"):
            mine = list(self.names) if key == "domains" else getattr(self, key)
            _check(state.get(key) == mine, f"state_dict.{key}", f"saved {state.get(key)!r}, this stream has {mine!r}")
        self.sequences, self.batches = int(state["sequences"]), int(state["batches"])
        self.selector.load_state_dict(state["selector"])
        self.schedule.load_state_dict(state["schedule"])
        self.log.load_state_dict(state["log"])
        for o, s in zip(self.orders, state["orders"]):
            o.load_state_dict(s)
        for p, s in zip(self.packers, state["packers"]):
            p.load_state_dict(s)

    def describe(self) -> dict[str, Any]:
        return {"domains": self.names, "documents": self.sizes, "schedule": self.schedule.describe(),
                "seq_len": self.seq_len, "batch_size": self.batch_size, "seed": self.seed,
                "eos_token": self.eos_token, "eos_id": self.eos_id, "rank": self.rank, "world_size": self.world_size}


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise CurriculumConfigError(f"{field_name}: {message}")
