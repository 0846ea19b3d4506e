"""Similarity and diversity of generated text: ROUGE-L, distinct-n, the novelty filter and the diversity report.

* ``rouge_l(a, b)``      — ROUGE-L F1 on lower-cased alphanumeric tokens (as Google's ``rouge_score`` with its
                           default tokenizer, without stemming): the LCS of the token sequences.
* ``RougeNovelty``       — the self-instruct novelty rule as a filter: a row whose text has ROUGE-L >= threshold
                           (0.7 in the paper) with a reference text (seed tasks) or with an earlier kept row of
                           the batch is rejected, naming the most similar text.
* ``diversity_report``   — distinct-1/2/3 (distinct n-grams / all n-grams over the corpus) and the mean pairwise
                           ROUGE-L of a (seeded) sample of texts.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable, Sequence

import pyarrow as pa

from operators.base import Filter, check, reject_where

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str | None) -> list[str]:
    return _TOKEN.findall((text or "").lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_tokens(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


def rouge_l(a: str, b: str) -> float:
    return rouge_l_tokens(tokens(a), tokens(b))


def most_similar(text: str, references: Iterable[Sequence[str]], texts: Sequence[str]) -> tuple[float, int]:
    """(best ROUGE-L, index) of ``text`` against tokenised ``references`` (index -1 when there are none)."""
    mine = tokens(text)
    best, where = 0.0, -1
    for i, ref in enumerate(references):
        score = rouge_l_tokens(mine, ref)
        if score > best:
            best, where = score, i
    return best, where


@dataclass(frozen=True)
class RougeNovelty(Filter):
    """Reject rows too similar (ROUGE-L >= ``threshold``) to a reference text or to an earlier row of the batch."""

    threshold: float = 0.7
    reference: tuple[str, ...] = ()   # existing texts (e.g. the seed tasks)
    reference_path: str | None = None  # or a Parquet file/directory whose ``text`` column holds them
    within_batch: bool = True

    def __post_init__(self) -> None:
        check(0 < self.threshold <= 1, self, "threshold", f"must be in (0, 1], got {self.threshold!r}")
        object.__setattr__(self, "reference", tuple(self.reference))

    def references(self) -> list[str]:
        texts = list(self.reference)
        if self.reference_path:
            import pyarrow.parquet as pq

            texts += [t for t in pq.read_table(self.reference_path, columns=["text"])["text"].to_pylist() if t]
        return texts

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        texts = self.references()
        tokenised = [tokens(t) for t in texts]
        rejected, details = [], []
        for text in batch[self.text_column].to_pylist():
            score, where = most_similar(text or "", tokenised, texts)
            too_close = score >= self.threshold
            rejected.append(too_close)
            details.append(f"ROUGE-L {score:.2f} with: {texts[where][:160]}" if too_close else None)
            if not too_close and self.within_batch and text:
                texts.append(text)
                tokenised.append(tokens(text))
        return reject_where(pa.array(rejected), f"too similar to an existing text (ROUGE-L >= {self.threshold:g})",
                            pa.array(details, pa.string()))


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / total n-grams over all texts (0.0 when there are none)."""
    seen, total = set(), 0
    for text in texts:
        toks = tokens(text)
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def diversity_report(texts: Sequence[str], sample: int = 300, seed: int = 0) -> dict[str, Any]:
    """distinct-1/2/3 over all texts; mean pairwise ROUGE-L over a seeded sample of at most ``sample`` texts."""
    texts = [t for t in texts if t]
    chosen = texts if len(texts) <= sample else random.Random(seed).sample(texts, sample)
    tokenised = [tokens(t) for t in chosen]
    pairs = [rouge_l_tokens(a, b) for a, b in combinations(tokenised, 2)]
    return {"texts": len(texts), "distinct_1": round(distinct_n(texts, 1), 4), "distinct_2": round(distinct_n(texts, 2), 4),
            "distinct_3": round(distinct_n(texts, 3), 4), "rouge_l_sample": len(chosen),
            "mean_pairwise_rouge_l": round(sum(pairs) / len(pairs), 4) if pairs else 0.0}
