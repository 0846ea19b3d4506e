"""MinHash LSH near-duplicate removal: the pure core that works on one Arrow batch.

Steps, each a small function: ``prepare_text`` (NFKC, lower-case, punctuation to spaces), shingle hashing
(word or character n-grams, 64-bit, compiled in ``operators.minhash_kernels``), ``signatures`` (datasketch's
affine32 permutations: ``datasketch_signatures`` gives the same values as ``datasketch.MinHash``),
``optimal_bands`` (bands x rows minimising weighted false positive + false negative probability),
``candidate_pairs`` (documents sharing a band bucket), ``verified_pairs`` (exact Jaccard of the shingle
sets), ``components`` (union-find over verified edges only, so unrelated documents are never chained
through a shared bucket) and the keep rule of ``operators.base.Dedup``.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators import minhash_kernels as kernels
from operators.base import Dedup, check

_WORD_SEPARATORS = re.compile(r"[\t\n\f\r ]+")  # the kernel's word separators (RE2's \s)
# Names the shingle-hash definition in ``minhash_kernels``: an index written with another one has other bucket
# keys, so a cross-dump run must refuse it rather than silently find nothing.
SHINGLE_HASH = "words-fmix64-chain/2"
MAX_BUCKET_PAIRS = 64  # buckets larger than this pair every member with the bucket's first member only


def prepare_text(text: pa.Array, lowercase: bool = True, strip_punctuation: bool = True,
                 word_kernel: bool = False) -> pa.Array:
    """NFKC, optional lower-casing and punctuation/symbols -> space, whitespace runs -> one ASCII space.

    ``word_kernel=True`` prepares text for the compiled word shingler, which splits words on ASCII whitespace
    (and, when ``strip_punctuation``, on ASCII punctuation) itself: the whitespace pass is skipped, and the
    punctuation pass runs only on non-ASCII strings. The words, and so the shingles, are the same; the
    preparation takes half the time.
    """
    text = nfkc(text)
    if lowercase:
        text = pc.utf8_lower(text)
    if strip_punctuation and not word_kernel:
        text = pc.replace_substring_regex(text, r"[\pP\pS]+", " ")
    elif strip_punctuation:
        other = pc.invert(pc.string_is_ascii(text))
        if pc.any(other).as_py():
            stripped = pc.replace_substring_regex(pc.filter(text, other), r"[\pP\pS]+", " ")
            text = pc.replace_with_mask(text, other, stripped)
    if not word_kernel:
        text = pc.replace_substring_regex(text, r"\s+", " ")
    return pc.utf8_trim_whitespace(text)


def nfkc(text: pa.Array) -> pa.Array:
    """Unicode NFKC of a string array, nulls as "". ASCII strings are already NFKC; the others go through
    Python's ``unicodedata``: 4x faster than Arrow's ``utf8_normalize``, conversions included (0.039 vs
    0.162 CPU s on the sample's non-ASCII texts, benchmarks/dedup_speed.py)."""
    text = pc.fill_null(text, "")
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    other = pc.invert(pc.string_is_ascii(text))
    if not pc.any(other).as_py():
        return text
    normal = [unicodedata.normalize("NFKC", value) for value in pc.filter(text, other).to_pylist()]
    return pc.replace_with_mask(text, other, pa.array(normal, text.type))


def arrow_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets, uint8 data) of a string array, zero-copy where Arrow allows."""
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    text = text.cast(pa.large_string())
    _, offsets, data = text.buffers()
    offs = np.frombuffer(offsets, dtype=np.int64)[text.offset: text.offset + len(text) + 1]
    return offs, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


def shingle_hashes(text: pa.Array, ngram: int, chars: bool = False,
                   punct_separates: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every shingle of every (prepared) document, and per-document offsets. Words are
    split on ASCII whitespace, and on ASCII punctuation too with ``punct_separates``."""
    offsets, data = arrow_buffers(text)
    return kernels.shingle_hashes(offsets, data, ngram, chars, punct_separates)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of datasketch's affine32 scheme for ``MinHash(num_perm, seed)`` (a odd), as uint64."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint64), b.astype(np.uint64)


def fold32(hashes: np.ndarray) -> np.ndarray:
    return (hashes ^ (hashes >> np.uint64(32))) & np.uint64(0xFFFFFFFF)


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """uint32[docs, num_perm] MinHash signatures from 64-bit shingle hashes (folded to 32 bits)."""
    a, b = permutations(num_perm, seed)
    return kernels.signatures(fold32(hashes), offsets, a, b)


def shingle_strings(prepared: str, ngram: int, chars: bool) -> list[bytes]:
    """The shingles of one prepared document as bytes, as one would feed them to datasketch."""
    units = list(prepared) if chars else [w for w in _WORD_SEPARATORS.split(prepared) if w]
    if not units:
        return []
    joiner = "" if chars else " "
    return [joiner.join(units[i:i + ngram]).encode("utf-8") for i in range(max(len(units) - ngram + 1, 1))]


def datasketch_signatures(prepared: pa.Array, ngram: int, chars: bool, num_perm: int, seed: int) -> np.ndarray:
    """Signatures equal, value for value, to ``datasketch.MinHash(num_perm, seed)`` updated with the same
    shingles (SHA-1 32-bit shingle hashes; slow: a Python loop over shingles, for interoperability)."""
    hashes, offsets = [], [0]
    for doc in prepared.to_pylist():
        hashes += [struct.unpack("<I", hashlib.sha1(s).digest()[:4])[0] for s in shingle_strings(doc, ngram, chars)]
        offsets.append(len(hashes))
    a, b = permutations(num_perm, seed)
    return kernels.signatures(np.array(hashes, dtype=np.uint64), np.array(offsets, dtype=np.int64), a, b)


def _integral(f, low: float, high: float, points: int = 2001) -> float:
    x = np.linspace(low, high, points)
    return float(np.trapezoid(f(x), x))


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising fp_weight * P(false positive) +
    fn_weight * P(false negative), integrated over Jaccard similarity (as datasketch's MinHashLSH does)."""
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            def collide(s):
                return 1 - (1 - s ** rows) ** bands
            fp = _integral(collide, 0.0, threshold)
            fn = _integral(lambda s: 1 - collide(s), threshold, 1.0)
            error = fp * fp_weight + fn * fn_weight
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def candidate_pairs(keys: np.ndarray, has_shingles: np.ndarray) -> np.ndarray:
    """int64[pairs, 2] (i < j) of documents that share a bucket in any band. Documents without shingles
    (empty text) never collide. Large buckets pair members with the bucket's first member only."""
    docs = np.flatnonzero(has_shingles)
    found = []
    for band in range(keys.shape[1]):
        band_keys = keys[docs, band]
        order = np.argsort(band_keys, kind="stable")
        sorted_keys, members = band_keys[order], docs[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(sorted_keys)]
        for start, end in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            group = np.sort(members[start:end])
            if len(group) <= MAX_BUCKET_PAIRS:
                i, j = np.triu_indices(len(group), k=1)
                found.append(np.stack([group[i], group[j]], axis=1))
            else:
                found.append(np.stack([np.full(len(group) - 1, group[0]), group[1:]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0).astype(np.int64)


def verified_pairs(pairs: np.ndarray, hashes: np.ndarray, offsets: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs whose exact shingle-set Jaccard is >= threshold, and their similarities."""
    sims = pair_similarities(hashes, offsets, pairs[:, 0], pairs[:, 1])
    keep = sims >= threshold
    return pairs[keep], sims[keep]


def pair_similarities(hashes: np.ndarray, offsets: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle sets of documents first[k] and second[k]: each document's set is built once,
    then all pairs are compared in one compiled pass."""
    sets, starts = kernels.shingle_sets(hashes, offsets)
    return kernels.pair_jaccard(sets, starts, np.asarray(first, np.int64), np.asarray(second, np.int64))


def components(num_docs: int, edges: np.ndarray) -> np.ndarray:
    """Union-find: a component label per document (the smallest document index in its component)."""
    parent = np.arange(num_docs)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in edges:
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(x) for x in range(num_docs)])


def reference_index(path: str) -> Path | None:
    """The ``_lsh_index/NN-stage`` folder of an earlier output (the last one, if it has several)."""
    found = sorted(Path(path).glob("_lsh_index/*/params.json"))
    return found[-1].parent if found else None


def pairs_from_buckets(members: list[list[str]]) -> tuple[list[str], list[str]]:
    """Candidate pairs (a < b) from the id lists of LSH buckets, with the same large-bucket rule as
    ``candidate_pairs``: all pairs up to ``MAX_BUCKET_PAIRS`` members, else each member with the first."""
    firsts, seconds = [], []
    for ids in members:
        group = sorted(ids)
        if len(group) <= MAX_BUCKET_PAIRS:
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    firsts.append(group[i])
                    seconds.append(group[j])
        else:
            firsts += [group[0]] * (len(group) - 1)
            seconds += group[1:]
    return firsts, seconds


@dataclass(frozen=True)
class MinHashDedup(Dedup):
    """Remove near-duplicates: documents whose shingle sets have Jaccard similarity >= ``threshold``."""

    reason: ClassVar[str] = "near-duplicate"
    keys_are_global: ClassVar[bool] = False

    threshold: float = 0.8
    ngram: int = 5
    char_ngrams: bool = False
    num_perm: int = 128
    bands: int | None = None
    rows: int | None = None
    # With exact verification a false positive only costs a Jaccard check, so the band layout favours
    # recall: at threshold 0.8 and 128 permutations this gives 16 bands x 8 rows (P(candidate | J=0.8) = 0.95).
    false_negative_weight: float = 0.95
    verify: bool = True
    seed: int = 1
    lowercase: bool = True
    strip_punctuation: bool = True
    datasketch_compatible: bool = False
    # Earlier Distillery outputs of a MinHash stage (with ``_lsh_index/``): documents near-duplicate to
    # one of theirs are rejected too (cross-dump dedup). Their index parameters must equal ours.
    reference: tuple[str, ...] = ()

    def index_params(self) -> dict:
        """What must agree between this operator and an index it is compared with."""
        bands, rows = self.band_layout()
        return {"ngram": self.ngram, "char_ngrams": self.char_ngrams, "num_perm": self.num_perm, "bands": bands,
                "rows": rows, "seed": self.seed, "lowercase": self.lowercase,
                "strip_punctuation": self.strip_punctuation, "datasketch_compatible": self.datasketch_compatible,
                "shingle_hash": SHINGLE_HASH}

    def __post_init__(self) -> None:
        if isinstance(self.reference, (str, list)):
            object.__setattr__(self, "reference", (self.reference,) if isinstance(self.reference, str)
                               else tuple(self.reference))
        check(isinstance(self.threshold, (int, float)) and 0 < self.threshold < 1, self, "threshold",
              f"must lie strictly between 0 and 1, got {self.threshold!r}")
        check(isinstance(self.ngram, int) and self.ngram >= 1, self, "ngram", f"must be an integer >= 1, got {self.ngram!r}")
        check(isinstance(self.num_perm, int) and 2 <= self.num_perm <= 1024, self, "num_perm",
              f"must be an integer in [2, 1024], got {self.num_perm!r}")
        check(isinstance(self.false_negative_weight, (int, float)) and 0 < self.false_negative_weight < 1, self,
              "false_negative_weight", f"must lie strictly between 0 and 1, got {self.false_negative_weight!r}")
        check((self.bands is None) == (self.rows is None), self, "bands", "give both bands and rows, or neither")
        if self.bands is not None:
            check(isinstance(self.bands, int) and isinstance(self.rows, int) and self.bands >= 1 and self.rows >= 1
                  and self.bands * self.rows <= self.num_perm, self, "bands",
                  f"bands x rows ({self.bands} x {self.rows}) must be positive integers with a product <= num_perm "
                  f"({self.num_perm})")
        for path in self.reference:
            check(bool(reference_index(path)), self, "reference",
                  f"{path} holds no MinHash index (_lsh_index/*/params.json); run MinHashDedup on it first")
            found = json.loads((reference_index(path) / "params.json").read_text())
            check(found == self.index_params(), self, "reference",
                  f"{path} was indexed with {found}, which differs from this operator's {self.index_params()}")

    def band_layout(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm, 1 - self.false_negative_weight, self.false_negative_weight)

    def shingles(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """(64-bit shingle hashes, per-document offsets, prepared texts) of a batch."""
        fast = not (self.char_ngrams or self.datasketch_compatible)  # the compiled word shingler splits words
        prepared = prepare_text(batch[self.text_column], self.lowercase, self.strip_punctuation, word_kernel=fast)
        hashes, offsets = shingle_hashes(prepared, self.ngram, self.char_ngrams, fast and self.strip_punctuation)
        return hashes, offsets, prepared

    def sketch(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shingle hashes, per-document offsets, signatures) of a batch."""
        hashes, offsets, prepared = self.shingles(batch)
        if self.datasketch_compatible:
            sigs = datasketch_signatures(prepared.combine_chunks() if isinstance(prepared, pa.ChunkedArray) else prepared,
                                         self.ngram, self.char_ngrams, self.num_perm, self.seed)
        else:
            sigs = signatures(hashes, offsets, self.num_perm, self.seed)
        return hashes, offsets, sigs

    def edges(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Verified duplicate edges (document index pairs), their Jaccard, and counts for the manifest."""
        hashes, offsets, sigs = self.sketch(batch)
        bands, rows = self.band_layout()
        keys = kernels.band_keys(sigs, bands, rows)
        pairs = candidate_pairs(keys, np.diff(offsets) > 0)
        if self.verify:
            kept, sims = verified_pairs(pairs, hashes, offsets, self.threshold)
        else:  # estimate-checked: the signatures' agreement must reach the threshold
            agree = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)
            kept, sims = pairs[agree >= self.threshold], agree[agree >= self.threshold]
        return kept, sims, {"candidate_pairs": len(pairs), "verified_pairs": len(kept)}

    def bucket_rows(self, batch: pa.Table) -> pa.Table:
        """One (band, bucket, id[, score]) row per document and band; documents without shingles get none."""
        _, offsets, sigs = self.sketch(batch)
        bands, rows = self.band_layout()
        keys = kernels.band_keys(sigs, bands, rows)
        docs = np.flatnonzero(np.diff(offsets) > 0)
        columns = {"band": pa.array(np.tile(np.arange(bands, dtype=np.int32), len(docs))),
                   "bucket": pa.array(keys[docs].reshape(-1).view(np.int64)),
                   "id": pc.take(batch["id"], pa.array(np.repeat(docs, bands)))}
        return pa.table(columns)

    def profiles(self, texts: pa.Array) -> pa.Array:
        """What verification compares, one list per text: its sorted distinct shingle hashes (exact Jaccard,
        ``verify``) or its MinHash signature (agreement estimate). The distributed plan computes each candidate
        document's profile once, however many pairs it is in."""
        batch = pa.table({self.text_column: _flat(texts)})
        if self.verify:
            values, starts = kernels.shingle_sets(*self.shingles(batch)[:2])
        else:
            sigs = self.sketch(batch)[2].astype(np.uint64)
            values, starts = sigs.reshape(-1), np.arange(len(sigs) + 1, dtype=np.int64) * self.num_perm
        return pa.LargeListArray.from_arrays(pa.array(starts, pa.int64()), pa.array(values, pa.uint64()))

    def profile_similarities(self, profiles: pa.Array, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Exact Jaccard (``verify``) or signature agreement of each pair (profiles[first[k]], profiles[second[k]])."""
        profiles = profiles.combine_chunks() if isinstance(profiles, pa.ChunkedArray) else profiles
        starts = np.asarray(profiles.offsets, dtype=np.int64)
        values = np.asarray(profiles.flatten(), dtype=np.uint64)
        first, second = np.asarray(first, np.int64), np.asarray(second, np.int64)
        if self.verify:
            return kernels.pair_jaccard(values, starts - starts[0], first, second)
        sigs = values.reshape(-1, self.num_perm)
        return (sigs[first] == sigs[second]).mean(axis=1) if len(first) else np.zeros(0)

    def similarities(self, texts: pa.Array, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Exact Jaccard (``verify``) or the signature agreement of each pair (texts[first[k]], texts[second[k]])."""
        return self.profile_similarities(self.profiles(texts), first, second)

    def clusters(self, batch: pa.Table) -> pa.Table:
        """(id, cluster, kept) for every document: cluster = smallest id in its component."""
        edges, _, _ = self.edges(batch)
        labels = components(batch.num_rows, edges)
        ids = np.array(batch["id"].to_pylist(), dtype=object)
        order = np.argsort(ids, kind="stable")  # the smallest id labels the cluster, whatever the row order
        smallest = {}
        for index in order:
            smallest.setdefault(labels[index], ids[index])
        cluster = pa.array([smallest[label] for label in labels], pa.string())
        narrow = self.narrow_with_key(batch, cluster)
        keep_id = narrow.select(["key"]).append_column("row", pa.array(np.arange(batch.num_rows))).join(
            self.choose(narrow), "key").sort_by("row")["keep_id"]
        return pa.table({"id": batch["id"], "cluster": cluster, "kept": pc.equal(batch["id"], keep_id)})

    def narrow_with_key(self, batch: pa.Table, key: pa.Array) -> pa.Table:
        columns = {"key": key, "id": batch["id"]}
        if self.score_column:
            columns[self.score_column] = batch[self.score_column]
        return pa.table(columns)

    def keys(self, batch: pa.Table) -> pa.Array:
        """The cluster of each row, within this batch (the distributed plan joins clusters across batches)."""
        return self.clusters(batch)["cluster"]


def _flat(array) -> pa.Array:
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array.cast(pa.string())
