"""A deterministic near-duplicate corpus built from the real ``data/sample`` documents, at any size.

Shared by ``dedup_quality.py`` (ground truth) and ``dedup_speed.py`` (end-to-end timings).

Design (``build(n_docs)``; the same arguments always give the same rows, byte for byte):

* **Originals** ``c0-<id>``: the 9,005 real Debian documents unchanged, so their natural exact and near
  duplicates stay in (families of man pages and changelogs sharing boilerplate, repeated fortunes,
  licence texts, dictionary entries that differ by a word).
* **Planted near-duplicates** ``p<j>-<id>``: ``plant_fraction`` of the corpus (default 5%), each a copy of a
  random original of at least ``PLANT_MIN_WORDS`` words with a known word-edit rate cycling through
  ``PLANT_RATES`` (1%, 2%, 3%, 5%, 10%, 15%). 1-3% edits keep 5-gram Jaccard near 0.8-0.95 (true
  duplicates at 0.8); 5% lands near 0.6-0.7 and 10-15% near 0.3-0.5 (hard negatives at 0.8).
* **Replicas** ``c<k>-<id>`` for k = 1, 2, ...: whole passes over the sample (each pass in its own
  shuffled order, the last pass cut short) until the corpus has ``n_docs`` rows. Each replica gets, with
  probability ``light_p`` (default 0.1), *light* edits (1-3% of its words, uniform) and is then a near
  duplicate of its original (and of the original's other light replicas); otherwise it gets *heavy* edits
  (35-50% of its words, uniform), which leave 5-gram Jaccard with the original near 0.02-0.1, so replicas
  do not all collapse into one cluster per original: a family grows by about ``light_p`` per pass.
  Heavy replicas are new, distinct documents made of real words in a real document's layout.

An edit picks a word position at random and replaces the word with a random vocabulary word, deletes it or
inserts a random vocabulary word before it (one third each; documents under 5 words only get
replacements). Vocabulary: the distinct alphabetic tokens (3-12 letters) of the sample. Edited text is the
edited words joined by single spaces (``prepare_text`` collapses whitespace anyway, so shingles are not
affected by that). Every pass and the plants have their own ``random.Random`` seeded from ``seed``, and a
pass draws in row order, so a smaller corpus is a prefix of a larger one pass by pass (c1 at 10k docs is
the start of c1 at 100k).

Expected duplicate structure at 10k docs: 9,005 originals (about 270 exact-duplicate texts and their
natural near-duplicate families), 500 plants (about half of them true duplicates of their source at
Jaccard >= 0.8: the 1-3% rates on long enough documents), 495 replicas of which about 50 light.
At 100k: the same plus 5,000 plants and about 85,500 replicas (about 8,500 light).

On disk (``materialize``): ``benchmarks/_work/near-dup-<n>/docs/part-*.parquet`` (id, text, source) and
``benchmarks/_work/near-dup-<n>/meta.parquet`` (id, origin, kind, copy, edit_rate): the metadata lives
outside ``docs/`` so that pipelines read only the documents.

    .venv/bin/python benchmarks/near_dup_corpus.py 10000 [100000 ...]     # build and describe
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
WORK = ROOT / "benchmarks" / "_work"

PLANT_RATES = (0.01, 0.02, 0.03, 0.05, 0.10, 0.15)
PLANT_MIN_WORDS = 50
LIGHT_RATES = (0.01, 0.03)
HEAVY_RATES = (0.35, 0.50)
ROWS_PER_FILE = 10_000
VERSION = 1  # bump when the design changes, so cached corpora are rebuilt


def load_sample() -> pa.Table:
    """The real corpus, (id, text, source), in id order (independent of file layout)."""
    return pq.read_table(sorted(str(p) for p in SAMPLE.glob("*.parquet")), columns=["id", "text", "source"]).sort_by("id")


def vocabulary(texts: list[str]) -> list[str]:
    words = set()
    for text in texts:
        words.update(w for w in text.split() if 3 <= len(w) <= 12 and w.isalpha())
    return sorted(words)


def edit_words(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    """Apply ``max(1, round(rate * words))`` random word edits (replace / delete / insert)."""
    words = text.split()
    if not words:
        return text
    edits = min(len(words), max(1, round(rate * len(words))))
    for position in sorted(rng.sample(range(len(words)), edits), reverse=True):
        op = rng.randrange(3) if len(words) >= 5 else 0
        if op == 0:
            words[position] = rng.choice(vocab)
        elif op == 1:
            del words[position]
        else:
            words.insert(position, rng.choice(vocab))
    return " ".join(words)


def build(n_docs: int, seed: int = 0, light_p: float = 0.1, plant_fraction: float = 0.05) -> tuple[pa.Table, pa.Table]:
    """(documents: id, text, source; metadata: id, origin, kind, copy, edit_rate) with ``n_docs`` rows."""
    sample = load_sample()
    ids, texts, sources = (sample[c].to_pylist() for c in ("id", "text", "source"))
    vocab = vocabulary(texts)
    n_plants = round(plant_fraction * n_docs)
    n_originals = min(len(ids), n_docs - n_plants)
    rows: list[tuple[str, str, str, str, str, int, float]] = []  # id, text, source, origin, kind, copy, rate

    originals = sorted(random.Random(f"{seed}:originals").sample(range(len(ids)), n_originals))
    rows += [(f"c0-{ids[i]}", texts[i], sources[i], ids[i], "original", 0, 0.0) for i in originals]

    rng = random.Random(f"{seed}:plants")
    eligible = [i for i in originals if len(texts[i].split()) >= PLANT_MIN_WORDS]
    for j in range(n_plants):
        i, rate = rng.choice(eligible), PLANT_RATES[j % len(PLANT_RATES)]
        rows.append((f"p{j}-{ids[i]}", edit_words(texts[i], rate, rng, vocab), sources[i], ids[i], "plant", -1, rate))

    copy = 0
    while len(rows) < n_docs:
        copy += 1
        rng = random.Random(f"{seed}:copy:{copy}")
        order = list(range(len(ids)))
        rng.shuffle(order)
        for i in order[: n_docs - len(rows)]:
            light = rng.random() < light_p
            rate = rng.uniform(*(LIGHT_RATES if light else HEAVY_RATES))
            rows.append((f"c{copy}-{ids[i]}", edit_words(texts[i], rate, rng, vocab), sources[i], ids[i],
                         "light" if light else "heavy", copy, round(rate, 4)))

    columns = list(zip(*rows))
    docs = pa.table({"id": pa.array(columns[0], pa.string()), "text": pa.array(columns[1], pa.string()),
                     "source": pa.array(columns[2], pa.string())})
    meta = pa.table({"id": docs["id"], "origin": pa.array(columns[3], pa.string()),
                     "kind": pa.array(columns[4], pa.string()), "copy": pa.array(columns[5], pa.int32()),
                     "edit_rate": pa.array(columns[6], pa.float64())})
    return docs, meta


def corpus_dir(n_docs: int, seed: int = 0, light_p: float = 0.1, plant_fraction: float = 0.05) -> Path:
    suffix = "" if (seed, light_p, plant_fraction) == (0, 0.1, 0.05) else f"-s{seed}-l{light_p}-p{plant_fraction}"
    return WORK / f"near-dup-{n_docs}{suffix}"


def materialize(n_docs: int, seed: int = 0, light_p: float = 0.1, plant_fraction: float = 0.05) -> Path:
    """Build the corpus under ``benchmarks/_work`` unless an identical build is there; return its directory."""
    target = corpus_dir(n_docs, seed, light_p, plant_fraction)
    stamp = {"version": VERSION, "n_docs": n_docs, "seed": seed, "light_p": light_p, "plant_fraction": plant_fraction}
    done = target / "BUILT.json"
    if done.exists() and json.loads(done.read_text()) == stamp:
        return target
    docs, meta = build(n_docs, seed, light_p, plant_fraction)
    (target / "docs").mkdir(parents=True, exist_ok=True)
    for old in (target / "docs").glob("*.parquet"):
        old.unlink()
    for k, start in enumerate(range(0, docs.num_rows, ROWS_PER_FILE)):
        pq.write_table(docs.slice(start, ROWS_PER_FILE), target / "docs" / f"part-{k:05d}.parquet", compression="zstd")
    pq.write_table(meta, target / "meta.parquet", compression="zstd")
    done.write_text(json.dumps(stamp))
    return target


def load(n_docs: int, **kwargs) -> tuple[pa.Table, pa.Table, Path]:
    """(documents, metadata, directory) of the materialized corpus, documents in file (= build) order."""
    target = materialize(n_docs, **kwargs)
    docs = pq.read_table(sorted(str(p) for p in (target / "docs").glob("*.parquet")))
    return docs, pq.read_table(target / "meta.parquet"), target


def describe(docs: pa.Table, meta: pa.Table) -> str:
    import pyarrow.compute as pc

    kinds = meta.group_by("kind").aggregate([("id", "count")]).to_pylist()
    text_mb = pc.sum(pc.binary_length(docs["text"])).as_py() / 1e6
    exact = docs.num_rows - len(pc.unique(docs["text"]))
    return (f"{docs.num_rows:,} docs, {text_mb:.1f} MB of text; "
            + ", ".join(f"{k['kind']} {k['id_count']:,}" for k in sorted(kinds, key=lambda k: k["kind"]))
            + f"; {exact:,} rows repeat an earlier text exactly")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["10000"]:
        d, m, where = load(int(re.sub(r"[_,]", "", arg)))
        print(f"{where.relative_to(ROOT)}: {describe(d, m)}")
