"""Tokenise documents in batches and pack them into fixed-length windows, one domain per window.

Documents are encoded with the fast ``tokenizers`` library (``encode_batch_fast``, no special tokens) and
each is followed by the document separator. The separator is the tokenizer's configured ``eos_token``
(SmolLM2-Instruct's ``tokenizer_config.json`` says ``<|im_end|>``, id 2, which is also its model config's
``eos_token_id``, so a student trained on these windows stops generating where the teacher does);
SmolLM2's pretraining separator ``<|endoftext|>`` (id 0) can be chosen with ``eos_token=``.

A window is ``seq_len + 1`` consecutive tokens of the domain's token stream; consecutive windows overlap by
one token (stride ``seq_len``), so every token is a label exactly once. ``input_ids = window[:-1]``,
``labels = window[1:]``. Documents longer than a window continue in the domain's next window.
Document ids number the documents inside each window from 0 (the separator belongs to the document it
ends), for per-document attention masking.

``Packer`` is the one packing implementation: ``CurriculumStream`` refills one per domain as it streams, and
``pack_windows`` packs a list of documents in memory (``students.data.ParquetTokenStream``, held-out
evaluation). The tokenizer and its separator come from ``operators.tokenizer.load_tokenizer``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from tokenizers import Tokenizer

from curricula.errors import CurriculumConfigError


class Packer:
    """One domain's token buffer: refilled ``fetch()`` chunk by chunk, cut into windows by ``take``."""

    def __init__(self, encode: Callable[[list], list[list[int]]], eos_id: int, window: int):
        self.encode, self.eos_id, self.window = encode, eos_id, window
        self.tokens = np.zeros(0, dtype=np.int64)
        self.docs = np.zeros(0, dtype=np.int64)  # serial number of each buffered token's document
        self.next_doc = 0

    def push(self, documents: list) -> None:
        ids = [d for d in self.encode(documents)]
        if not ids:
            return
        lengths = np.array([len(x) + 1 for x in ids], dtype=np.int64)
        flat = np.full(int(lengths.sum()), self.eos_id, dtype=np.int64)
        ends = np.cumsum(lengths)
        for x, end, n in zip(ids, ends, lengths):
            flat[end - n:end - 1] = x
        serial = np.repeat(np.arange(self.next_doc, self.next_doc + len(ids), dtype=np.int64), lengths)
        self.next_doc += len(ids)
        self.tokens = np.concatenate([self.tokens, flat])
        self.docs = np.concatenate([self.docs, serial])

    def ready(self) -> bool:
        return len(self.tokens) >= self.window

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """The next window's tokens and 0-based document ids; keeps its last token for the next window."""
        tokens, docs = self.tokens[:self.window], self.docs[:self.window]
        self.tokens, self.docs = self.tokens[self.window - 1:], self.docs[self.window - 1:]
        _, doc_ids = np.unique(docs, return_inverse=True)
        return tokens, doc_ids.astype(np.int32)

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens.tolist(), "docs": self.docs.tolist(), "next_doc": self.next_doc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens = np.array(state["tokens"], dtype=np.int64)
        self.docs = np.array(state["docs"], dtype=np.int64)
        self.next_doc = int(state["next_doc"])


def text_encoder(tokenizer: Tokenizer) -> Callable[[list], list[list[int]]]:
    """Encode a batch of texts (nulls and empty texts are skipped)."""
    def encode(texts: list) -> list[list[int]]:
        texts = [t for t in texts if t]
        return [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)] if texts else []
    return encode


def token_passthrough(rows: list) -> list[list[int]]:
    """Pretokenized rows already are token lists (empty ones are skipped)."""
    return [r for r in rows if len(r)]


def pack_windows(documents: list[list[int]], domains: list[str], seq_len: int, eos_id: int
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every full window a ``Packer`` cuts from each domain's documents (domains in sorted order, documents in
    their order, each followed by ``eos_id``): tokens [N, seq_len + 1], 0-based document ids [N, seq_len + 1]
    and the window's domain. A domain's last partial window is dropped."""
    windows, doc_ids, window_domains = [], [], []
    for domain in sorted(set(domains)):
        packer = Packer(token_passthrough, eos_id, seq_len + 1)
        packer.push([doc for doc, d in zip(documents, domains) if d == domain])
        while packer.ready():
            tokens, docs = packer.take()
            windows.append(tokens)
            doc_ids.append(docs)
            window_domains.append(domain)
    if not windows:
        raise CurriculumConfigError(f"data: fewer than seq_len + 1 = {seq_len + 1} tokens in every domain")
    return np.stack(windows), np.stack(doc_ids), window_domains
