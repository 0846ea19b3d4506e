"""Decontamination speed: ``operators.Decontaminate`` against a Python set of 13-word tuples and DataTrove.

Real text only. The 105,138-document corpus of ``scripts/build_real_corpus.py`` is split by a hash of the
id: 10% are the documents to check, the other 90% are cut into eval "lines" (runs of 13 to 26 words of one
document, the lengths cycling; a line starts every ``STRIDE`` words, so 1M lines of ~8.5 M words overlap).
Eval sets of 10k, 100k and 1M lines are seeded samples of those lines. Into ``--planted`` of the checked
documents per eval set, one line of that eval set is inserted at a word boundary: the flagged documents
must be exactly the planted ones plus those that share a 13-gram with the eval set already (found by the
same run on the unplanted documents), and every implementation must flag the same documents.

Implementations, each in its own process (so its peak RSS is its own), one after the other per eval set,
their order rotating:

* ``distillery``: ``Decontaminate(eval_sets=..., mode="flag")``: words by RE2, 64-bit BLAKE2b word hashes,
  a polynomial n-gram hash, a sorted array per eval set and ``np.searchsorted`` (batches of 4,096 rows).
* ``python-set``: the straightforward way: per text NFKC + ``str.lower`` + ``regex`` words
  (``[\\p{L}\\p{N}\\p{M}]+``, the same definition), a ``set`` of 13-word tuples, a membership test per n-gram.
* ``datatrove``: DataTrove 0.10.1's ``NGramsDecontFilter`` (13-grams) in its venv; its index is built with
  ``NGramsDecontIndexer.compute_hashes`` (the indexer's own hashing; its ``run`` needs lighteval and a
  download). Its words differ (spaCy tokens after ``simplify_text``: numbers become 0, diacritics
  dropped), so its count of already-contaminated documents may differ; the planted ones must match.

Index build = reading the eval set's Parquet column and building the index, CPU seconds. Scan = checking
all documents, CPU seconds; documents/s per core = documents / scan CPU seconds. Peak memory = the
process's peak RSS (``VmHWM``) and its peak after imports, before reading any data.

Run (after building the corpus):

    .venv/bin/python benchmarks/decontamination_speed.py [--sizes 10000,100000,1000000] [--datatrove-max 1000000]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "decont"
CORPUS = ROOT / "benchmarks" / "_work" / "real-100k" / "data"
DATATROVE_PYTHON = ROOT / "benchmarks" / "_work" / "datatrove-venv" / "bin" / "python"
SEED, NGRAM, STRIDE, BATCH = 13, 13, 6, 4096
PLANT_WORDS = 16  # a planted line has at least this many letter/digit words, so every definition finds a 13-gram
LENGTHS = range(13, 27)


def rss_mb() -> float:
    """This process's peak RSS so far (VmHWM; ``ru_maxrss`` would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers: each runs in its own process and prints one JSON line ----------------------------------------
def worker(impl: str, eval_path: str, docs_path: str) -> None:
    start_rss = rss_mb()
    if impl == "distillery":
        from operators.decontaminate import Decontaminate
        op = Decontaminate(eval_sets=(eval_path,), ngram=NGRAM, mode="flag")
        cpu = time.process_time()
        op.setup()
        build = time.process_time() - cpu
        size = int(sum(len(v) for v in op.index().values()))
        docs = pq.read_table(docs_path)
        cpu = time.process_time()
        flagged = []
        for batch in docs.to_batches(BATCH):
            out = op(pa.Table.from_batches([batch]))
            flagged += out.filter(out["contaminated"])["id"].to_pylist()
        scan = time.process_time() - cpu
    elif impl == "python-set":
        import unicodedata

        import regex
        word = regex.compile(r"[\p{L}\p{N}\p{M}]+")

        def words_of(text: str) -> list[str]:
            return word.findall(unicodedata.normalize("NFKC", text).lower())

        cpu = time.process_time()
        index: set[tuple[str, ...]] = set()
        for line in pq.read_table(eval_path, columns=["text"])["text"].to_pylist():
            w = words_of(line)
            index.update(tuple(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1))
        build, size = time.process_time() - cpu, len(index)
        docs = pq.read_table(docs_path)
        cpu = time.process_time()
        flagged = []
        for doc_id, text in zip(docs["id"].to_pylist(), docs["text"].to_pylist()):
            w = words_of(text)
            if any(tuple(w[i:i + NGRAM]) in index for i in range(len(w) - NGRAM + 1)):
                flagged.append(doc_id)
        scan = time.process_time() - cpu
    elif impl == "datatrove":
        import shutil
        import tempfile
        from types import SimpleNamespace

        import numpy as np
        from datatrove.data import Document
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
        from datatrove.utils.hashing import create_hash_func
        from datatrove.utils.word_tokenizers import load_word_tokenizer
        config = NGramsDecontConfig(n_grams=NGRAM)
        folder = tempfile.mkdtemp(prefix="dt-index-", dir=WORK)
        # the indexer's own compute_hashes, on an object with the attributes its __init__ sets (constructing
        # the step itself demands lighteval, which its run() uses to download benchmark tasks)
        indexer = SimpleNamespace(tokenizer=load_word_tokenizer("en"), config=config,
                                  hash_func=create_hash_func(config.hash_config))
        compute_hashes = NGramsDecontIndexer.compute_hashes
        compute_hashes(indexer, "Load spaCy before timing, please.")
        decont = NGramsDecontFilter(folder, config=config)
        cpu = time.process_time()
        hashes: set[int] = set()
        for line in pq.read_table(eval_path, columns=["text"])["text"].to_pylist():
            hashes.update(compute_hashes(indexer, line))
        np.array(list(hashes), dtype=config.hash_config.np_descr).tofile(f"{folder}/eval.index.hashes")
        decont.load_index_hashes()  # the filter's own loading, part of building its lookup table
        build, size = time.process_time() - cpu, len(hashes)
        docs = pq.read_table(docs_path)
        cpu = time.process_time()
        flagged = [i for i, t in zip(docs["id"].to_pylist(), docs["text"].to_pylist())
                   if decont.filter(Document(text=t, id=i)) is not True]
        scan = time.process_time() - cpu
        shutil.rmtree(folder)
    else:
        raise SystemExit(f"unknown implementation {impl}")
    print(json.dumps({"impl": impl, "build_cpu_s": build, "scan_cpu_s": scan, "index_entries": size,
                      "docs": docs.num_rows, "flagged": sorted(flagged), "start_rss_mb": start_rss,
                      "peak_rss_mb": rss_mb()}))


def run_worker(impl: str, eval_path: Path, docs_path: Path) -> dict:
    python = str(DATATROVE_PYTHON) if impl == "datatrove" else sys.executable
    env = {**os.environ, "PYTHONPATH": "" if impl == "datatrove" else str(ROOT)}
    wall = time.perf_counter()
    out = subprocess.run([python, __file__, "--worker", impl, str(eval_path), str(docs_path)],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - wall
    return result


# --- data: real documents, eval lines cut from other real documents, planted overlaps ----------------------
WORD = re.compile(r"[^\W\d_]{2,}")  # plain words, for choosing lines to plant


def held_out(doc_id: str) -> bool:
    return hashlib.sha1(doc_id.encode()).digest()[0] < 26  # ~10% of documents are checked


def prepare(sizes: list[int], planted: int) -> tuple[Path, dict[int, tuple[Path, Path, set[str]]]]:
    table = pq.read_table(CORPUS, columns=["id", "text"])
    ids, texts = table["id"].to_pylist(), table["text"].to_pylist()
    order = sorted(range(len(ids)), key=ids.__getitem__)
    check = [(ids[i], texts[i]) for i in order if held_out(ids[i])]
    lines = []
    for i in order:
        if held_out(ids[i]):
            continue
        w, start = texts[i].split(), 0
        while start + LENGTHS[0] <= len(w):
            length = LENGTHS[len(lines) % len(LENGTHS)]
            lines.append(" ".join(w[start:start + length]))
            start += STRIDE
    rng = random.Random(SEED)
    if max(sizes) > len(lines):
        raise SystemExit(f"only {len(lines):,} eval lines can be cut, {max(sizes):,} asked")
    pool = rng.sample(lines, max(sizes))
    WORK.mkdir(parents=True, exist_ok=True)
    clean = WORK / "docs-clean.parquet"
    pq.write_table(pa.table({"id": [c[0] for c in check], "text": [c[1] for c in check]}), clean)
    out = {}
    for size in sizes:
        eval_lines = pool[:size]  # the smaller sets are prefixes of one seeded sample
        eval_path = WORK / f"eval-{size}.parquet"
        pq.write_table(pa.table({"text": eval_lines}), eval_path)
        targets = rng.sample(range(len(check)), planted)
        plantable = [line for line in eval_lines if len(WORD.findall(line)) >= PLANT_WORDS]
        docs = list(check)
        for d in targets:
            doc_id, text = docs[d]
            w = text.split(" ")
            at = rng.randrange(len(w) + 1)
            docs[d] = (doc_id, " ".join(w[:at] + [plantable[rng.randrange(len(plantable))]] + w[at:]))
        docs_path = WORK / f"docs-planted-{size}.parquet"
        pq.write_table(pa.table({"id": [c[0] for c in docs], "text": [c[1] for c in docs]}), docs_path)
        out[size] = (eval_path, docs_path, {check[d][0] for d in targets})
    print(f"{len(check):,} documents to check ({sum(len(c[1]) for c in check) / 1e6:.1f} MB), "
          f"{len(lines):,} eval lines cut from the other {len(ids) - len(check):,}", flush=True)
    return clean, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--planted", type=int, default=500, help="documents given one eval line, per eval set")
    parser.add_argument("--datatrove-max", type=int, default=1_000_000, help="largest eval set DataTrove runs on")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    sizes = [int(s) for s in args.sizes.split(",")]
    clean, sets = prepare(sizes, args.planted)
    rows = []
    for k, size in enumerate(sizes):
        eval_path, docs_path, planted = sets[size]
        natural = set(run_worker("distillery", eval_path, clean)["flagged"])  # contaminated before planting
        expected = natural | planted
        impls = ["distillery", "python-set"] + (["datatrove"] if DATATROVE_PYTHON.exists()
                                                 and size <= args.datatrove_max else [])
        impls = impls[k % len(impls):] + impls[:k % len(impls)]  # rotate the order between sizes
        for impl in impls:
            r = run_worker(impl, eval_path, docs_path)
            flagged = set(r["flagged"])
            verdict = "exact" if flagged == expected else (
                f"{len(planted - flagged)} planted missed, {len(flagged - expected)} extra, "
                f"{len(expected - flagged - planted)} of the already-contaminated missed")
            rows.append((size, impl, r, len(natural), verdict))
            print(f"{size:>9,} lines  {impl:<11} build {r['build_cpu_s']:8.2f} CPU s  scan {r['scan_cpu_s']:8.2f} CPU s "
                  f"({r['docs'] / r['scan_cpu_s']:>9,.0f} docs/s)  index {r['index_entries']:>10,}  "
                  f"RSS {r['start_rss_mb']:.0f} -> {r['peak_rss_mb']:.0f} MB  flagged {len(flagged):,} "
                  f"(planted {len(planted)}, already {len(natural)}): {verdict}  [{r['wall_s']:.0f} s wall]", flush=True)
    print("\n| eval lines | implementation | index entries | index build CPU s | scan CPU s | docs/s per core "
          "| peak RSS MB (after imports) | flagged | planted + already contaminated | check |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for size, impl, r, n_natural, verdict in rows:
        print(f"| {size:,} | {impl} | {r['index_entries']:,} | {r['build_cpu_s']:.2f} | {r['scan_cpu_s']:.2f} "
              f"| {r['docs'] / r['scan_cpu_s']:,.0f} | {r['peak_rss_mb']:,.0f} ({r['start_rss_mb']:,.0f}) "
              f"| {len(r['flagged']):,} | {args.planted} + {n_natural:,} | {verdict} |")


if __name__ == "__main__":
    main()
