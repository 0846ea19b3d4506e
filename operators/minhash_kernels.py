"""Compiled inner loops for MinHash (numba): shingle hashing straight from Arrow's UTF-8 buffers, MinHash
signatures with datasketch's "affine32" permutation family, and LSH band keys.

Everything here works on plain numpy arrays (Arrow offsets + data bytes), one whole batch per call, so
there is no per-document Python. ``operators.minhash`` wraps these into the operator.

Shingle hashes are 64-bit. A word n-gram's hash chains its words' hashes (FNV-1a over each word's UTF-8
bytes, avalanched with MurmurHash3's fmix64) through fmix64, so each byte is hashed once, not once per
n-gram it falls in (shingle hashing 0.22 -> 0.12-0.16 CPU s on the sample, benchmarks/dedup_speed.py).
A character n-gram's hash is FNV-1a over its UTF-8 bytes, then fmix64. A document with fewer than ``n`` words (characters) has one shingle: all of it. An empty document
has none, and an all-ones signature.
"""
from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
MASK32 = np.uint64(0xFFFFFFFF)
EMPTY = np.uint32(0xFFFFFFFF)


@njit(cache=True, inline="always")
def fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, inline="always")
def fmix32(h):
    # MurmurHash3's 32-bit finalizer, computed in uint64 and masked (datasketch's affine32 pre-mix).
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True, inline="always")
def _separator(byte, punct):
    # The whitespace of RE2's \s (tab, newline, form feed, carriage return, space), and with ``punct`` the
    # ASCII punctuation and symbols (all in Unicode's P and S categories): words are the runs between.
    if byte == 32 or byte == 9 or byte == 10 or byte == 12 or byte == 13:
        return True
    return punct and (33 <= byte <= 47 or 58 <= byte <= 64 or 91 <= byte <= 96 or 123 <= byte <= 126)


@njit(cache=True)
def _units(data, start, end, chars, punct, bounds):
    """Fill ``bounds`` with (start, end) byte positions of the document's units: words (runs of bytes that
    are not separators) or characters (UTF-8 code points). Return the number of units."""
    count = 0
    i = start
    if chars:
        while i < end:
            j = i + 1
            while j < end and (data[j] & 0xC0) == 0x80:
                j += 1
            bounds[count, 0] = i
            bounds[count, 1] = j
            count += 1
            i = j
        return count
    while i < end:
        while i < end and _separator(data[i], punct):
            i += 1
        if i >= end:
            break
        j = i
        while j < end and not _separator(data[j], punct):
            j += 1
        bounds[count, 0] = i
        bounds[count, 1] = j
        count += 1
        i = j
    return count


@njit(cache=True)
def _char_shingle(data, bounds, first, last):
    """Hash of characters first..last-1: FNV-1a over their bytes, then fmix64."""
    h = FNV_OFFSET
    for i in range(bounds[first, 0], bounds[last - 1, 1]):
        h = (h ^ np.uint64(data[i])) * FNV_PRIME
    return fmix64(h)


@njit(cache=True)
def _word_hashes(data, bounds, units, words):
    """Fill ``words`` with each word's hash: FNV-1a over its bytes, then fmix64."""
    for u in range(units):
        h = FNV_OFFSET
        for i in range(bounds[u, 0], bounds[u, 1]):
            h = (h ^ np.uint64(data[i])) * FNV_PRIME
        words[u] = fmix64(h)


@njit(cache=True, inline="always")
def _word_shingle(words, first, last):
    """Hash of words first..last-1: their hashes chained in order through fmix64."""
    h = FNV_OFFSET
    for u in range(first, last):
        h = fmix64(h ^ words[u]) + np.uint64(u - first + 1)
    return fmix64(h)


@njit(cache=True)
def shingle_hashes(offsets, data, n, chars, punct):
    """All shingle hashes of every document: (flat uint64 hashes, per-document offsets into them)."""
    docs = len(offsets) - 1
    longest = 1
    for d in range(docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    bounds = np.empty((longest + 1, 2), dtype=np.int64)
    words = np.empty(longest + 1, dtype=np.uint64)
    counts = np.zeros(docs + 1, dtype=np.int64)
    # One pass: shingles <= units <= bytes, so start from a guess and grow when a document needs more.
    out = np.empty(len(data) // 4 + docs + 1, dtype=np.uint64)
    k = 0
    for d in range(docs):
        units = _units(data, offsets[d], offsets[d + 1], chars, punct, bounds)
        needed = k + (max(units - n + 1, 1) if units > 0 else 0)
        if needed > len(out):
            grown = np.empty(max(needed, 2 * len(out)), dtype=np.uint64)
            grown[:k] = out[:k]
            out = grown
        if units > 0 and chars:
            for s in range(max(units - n + 1, 1)):
                out[k] = _char_shingle(data, bounds, s, min(s + n, units))
                k += 1
        elif units > 0:
            _word_hashes(data, bounds, units, words)
            for s in range(max(units - n + 1, 1)):
                out[k] = _word_shingle(words, s, min(s + n, units))
                k += 1
        counts[d + 1] = k
    return out[:k].copy(), counts


@njit(cache=True)
def signatures(hashes32, doc_offsets, a, b):
    """MinHash signatures (uint32[docs, num_perm]) from 32-bit shingle hashes grouped by ``doc_offsets``:
    per permutation k, min over shingles of (a_k * fmix32(h) + b_k) mod 2^32 — datasketch's affine32."""
    docs = len(doc_offsets) - 1
    perms = len(a)
    out = np.full((docs, perms), EMPTY, dtype=np.uint32)
    mins = np.empty(perms, dtype=np.uint64)
    for d in range(docs):
        mins[:] = MASK32
        for s in range(doc_offsets[d], doc_offsets[d + 1]):
            hv = fmix32(hashes32[s])
            for k in range(perms):
                v = (a[k] * hv + b[k]) & MASK32
                if v < mins[k]:
                    mins[k] = v
        for k in range(perms):
            out[d, k] = np.uint32(mins[k])
    return out


@njit(cache=True)
def band_keys(sigs, bands, rows):
    """One 64-bit key per (document, band): the hash of that band's ``rows`` signature values."""
    docs = sigs.shape[0]
    out = np.empty((docs, bands), dtype=np.uint64)
    for d in range(docs):
        for band in range(bands):
            h = FNV_OFFSET ^ np.uint64(band)
            for r in range(band * rows, (band + 1) * rows):
                h = fmix64(h ^ np.uint64(sigs[d, r]))
            out[d, band] = h
    return out


@njit(cache=True)
def string_hashes(offsets, data):
    """FNV-1a + fmix64 of each string's UTF-8 bytes (Arrow offsets + data): a hash every process agrees on."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for d in range(len(offsets) - 1):
        h = FNV_OFFSET
        for i in range(offsets[d], offsets[d + 1]):
            h = (h ^ np.uint64(data[i])) * FNV_PRIME
        out[d] = fmix64(h)
    return out


@njit(cache=True)
def shingle_sets(hashes, offsets):
    """Each document's shingle hashes sorted and without repeats: (flat values, per-document offsets)."""
    docs = len(offsets) - 1
    out = np.empty(len(hashes), dtype=np.uint64)
    starts = np.zeros(docs + 1, dtype=np.int64)
    k = 0
    for d in range(docs):
        segment = np.sort(hashes[offsets[d]:offsets[d + 1]])
        for i in range(len(segment)):
            if i == 0 or segment[i] != segment[i - 1]:
                out[k] = segment[i]
                k += 1
        starts[d + 1] = k
    return out[:k], starts


@njit(cache=True)
def pair_jaccard(sets, starts, first, second):
    """Exact Jaccard of the sorted sets of documents first[k] and second[k] (0 when both are empty)."""
    out = np.zeros(len(first), dtype=np.float64)
    for k in range(len(first)):
        i, i_end = starts[first[k]], starts[first[k] + 1]
        j, j_end = starts[second[k]], starts[second[k] + 1]
        size = (i_end - i) + (j_end - j)
        common = 0
        while i < i_end and j < j_end:
            if sets[i] == sets[j]:
                common += 1
                i += 1
                j += 1
            elif sets[i] < sets[j]:
                i += 1
            else:
                j += 1
        if size - common > 0:
            out[k] = common / (size - common)
    return out
