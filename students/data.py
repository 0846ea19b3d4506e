"""Token streams the trainer can consume before (and besides) the curriculum stream.

``ParquetTokenStream`` reads a Parquet file or folder of documents, either already tokenised (column
``input_ids``: list<int>) or as text (column ``text``, tokenised with SmolLM2's tokenizer), with the domain
in ``domain`` or ``source``. Each domain's documents are joined with an end-of-text token and cut into
windows of seq_len + 1 tokens (``curricula.packing.pack_windows``); windows are shuffled per epoch with a fixed seed and grouped into batches.
It implements ``curricula.batch.TokenStream``: ``state_dict`` records (epoch, batch index), so a restored
stream yields exactly the batches the uninterrupted one would. ``shard(rank, world)`` gives worker ``rank``
every world-th batch, which is how distributed workers read disjoint parts of the stream.

``ListStream`` serves a fixed list of batches (tests, held-out evaluation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curricula.batch import TokenBatch
from curricula.packing import pack_windows
from students.model import ConfigError

END_OF_TEXT = 0  # SmolLM2's <|endoftext|>


def tokenize_texts(texts: list[str], tokenizer_dir: str | Path | None = None) -> list[list[int]]:
    """SmolLM2's tokenizer (the students' shared vocabulary) over ``texts``."""
    from operators.tokenizer import read_tokenizer

    if tokenizer_dir is None:
        from teachers.smollm2 import smollm2_dir
        tokenizer_dir = smollm2_dir()
    tokenizer = read_tokenizer(tokenizer_dir)
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def read_documents(path: str | Path, tokenizer_dir: str | Path | None = None) -> tuple[list[list[int]], list[str]]:
    """(token ids per document, domain per document) from a Parquet file or folder."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data: {path} does not exist")
    table = pq.read_table(path)
    names = table.column_names
    domain_col = "domain" if "domain" in names else "source" if "source" in names else None
    domains = table.column(domain_col).to_pylist() if domain_col else ["default"] * table.num_rows
    if "input_ids" in names:
        ids = table.column("input_ids").to_pylist()
    elif "text" in names:
        ids = tokenize_texts(table.column("text").to_pylist(), tokenizer_dir)
    else:
        raise ConfigError(f"data: {path} needs a column 'input_ids' (list<int>) or 'text', has {names}")
    return ids, [str(d) for d in domains]


def write_token_parquet(path: str | Path, documents: list[list[int]], domains: list[str]) -> Path:
    """Write documents of token ids (+ their domains) as the Parquet file ParquetTokenStream reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"input_ids": pa.array(documents, type=pa.list_(pa.int32())), "domain": domains})
    pq.write_table(table, path)
    return path


class ParquetTokenStream:
    def __init__(self, path: str | Path | None = None, batch_size: int = 8, seq_len: int = 256, seed: int = 0,
                 loop: bool = True, rank: int = 0, world: int = 1, documents: tuple | None = None,
                 tokenizer_dir: str | Path | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        if seq_len < 1:
            raise ConfigError(f"seq_len must be >= 1, not {seq_len}")
        docs, domains = documents if documents is not None else read_documents(path, tokenizer_dir)
        self.windows, self.doc_ids, self.domains = pack_windows(docs, domains, seq_len, END_OF_TEXT)
        if len(self.windows) < batch_size * world:
            raise ConfigError(f"batch_size: {len(self.windows)} windows of {seq_len + 1} tokens cannot fill "
                              f"{world} worker(s) x batch_size {batch_size}")
        self.path, self.batch_size, self.seq_len, self.seed, self.loop = path, batch_size, seq_len, seed, loop
        self.rank, self.world = rank, world
        self.epoch, self.index = 0, 0  # index: batches of this shard already yielded in this epoch

    def shard(self, rank: int, world: int) -> "ParquetTokenStream":
        """The same data as worker ``rank`` of ``world`` sees it (disjoint batches per worker)."""
        other = object.__new__(ParquetTokenStream)
        other.__dict__.update(self.__dict__)
        other.rank, other.world, other.epoch, other.index = rank, world, 0, 0
        return other

    @property
    def batches_per_epoch(self) -> int:
        return len(self.windows) // (self.batch_size * self.world)

    def _batch(self, order: np.ndarray, index: int) -> TokenBatch:
        start = (index * self.world + self.rank) * self.batch_size
        rows = order[start:start + self.batch_size]
        w = self.windows[rows]
        return TokenBatch(input_ids=w[:, :-1].copy(), labels=w[:, 1:].copy(),
                          domains=[self.domains[r] for r in rows], document_ids=self.doc_ids[rows, :-1].copy(),
                          meta={"epoch": self.epoch, "index": index})

    def __iter__(self) -> Iterator[TokenBatch]:
        while True:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.windows))
            while self.index < self.batches_per_epoch:
                batch = self._batch(order, self.index)
                self.index += 1
                yield batch
            if not self.loop:
                return
            self.epoch, self.index = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "rank": self.rank, "world": self.world}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


class ListStream:
    """A fixed list of batches as a TokenStream (resumable by position)."""

    def __init__(self, batches: list[TokenBatch], loop: bool = False):
        self.batches, self.loop, self.position = list(batches), loop, 0

    def __iter__(self) -> Iterator[TokenBatch]:
        while self.position < len(self.batches) or (self.loop and self.batches):
            if self.position >= len(self.batches):
                self.position = 0
            batch = self.batches[self.position]
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
