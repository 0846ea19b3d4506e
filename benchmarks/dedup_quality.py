"""Near-duplicate quality against exact ground truth: pair precision / recall / F1 at Jaccard 0.7, 0.8, 0.9 (and 0.5).

Corpus: ``near_dup_corpus`` at ``--docs`` documents (default 10,000: the 9,005 real ``data/sample``
documents with their natural duplicates, 5% planted near-duplicates at known edit rates, and lightly or
heavily edited replicas; see that module).

Ground truth, exact and candidate-free: every document's shingle set is built with the operator's own
definition (``prepare_text``, then ``shingle_strings`` -> word 5-gram *strings*, not our 64-bit hashes),
shingles are numbered, and the document x shingle incidence matrix X is multiplied by its transpose in
blocks of rows (``scipy.sparse``). That product is an inverted-index join: every pair of documents that
shares at least one shingle gets its exact intersection size, every other pair has Jaccard 0. Jaccard =
|A & B| / (|A| + |B| - |A & B|), the same float64 expression the operator's verification uses. A random
sample of pairs is re-checked with plain set arithmetic. Documents without shingles (empty after
``prepare_text``) are nobody's duplicate, as in the operator.

Methods, each giving a cluster label per document:

* ``ours, verify on``       ``MinHashDedup(threshold=t).clusters(table)`` (the in-batch core; 128 perms,
                            the recall-weighted band layout, exact Jaccard check, union-find over verified
                            edges only)
* ``ours, verify on, 0.5/0.5 bands``  the same with datasketch's band layout (``false_negative_weight=0.5``)
* ``ours, verify off``      ``MinHashDedup(threshold=t, verify=False)``: edges kept when the signature
                            agreement (estimated Jaccard) reaches t
* ``datasketch LSH + union-find``  datasketch ``MinHash(128)`` (``update_batch`` over the same shingle
                            strings), ``MinHashLSH(threshold=t, num_perm=128)`` with its default 0.5/0.5
                            weights, union-find over every bucket's members (= over all candidate pairs)

Pair metrics: predicted pairs = every pair inside one predicted cluster. Two truths:

* **direct** (primary): true pairs = pairs with exact Jaccard >= t.
* **closure**: true pairs = pairs inside one connected component of the "Jaccard >= t" graph. Fairer to
  any method that clusters transitively (A~B, B~C puts A, C together although J(A, C) < t).

Also: edge-level recall of our LSH (true pairs that were candidates), and recall of the planted copies by
edit rate. Finally the Ray plan (``Pipeline(...).read_parquet(...).dedup(MinHashDedup()).run(...)``) is run
once at 0.8 on the same files and its ``_clusters`` output is compared with the in-batch clusters.

    .venv/bin/python benchmarks/dedup_quality.py [--docs 10000] [--skip-ray]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from curricula.ray_session import configure_local_environment  # noqa: E402

configure_local_environment()  # before anything imports ray

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from scipy import sparse  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

import near_dup_corpus  # noqa: E402
from operators.minhash import MinHashDedup, prepare_text, shingle_strings  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.8, 0.9)  # 0.5 is a stress row outside the range: where chaining shows
NUM_PERM = 128
NGRAM = 5


# ----------------------------------------------------------------------------------------------- truth
def shingle_sets(prepared: list[str]) -> tuple[list[np.ndarray], list[list[bytes]]]:
    """Per document: sorted unique shingle numbers, and the shingle strings (for datasketch)."""
    numbers: dict[bytes, int] = {}
    sets, strings = [], []
    for doc in prepared:
        shingles = shingle_strings(doc, NGRAM, False)
        strings.append(shingles)
        sets.append(np.unique(np.fromiter((numbers.setdefault(s, len(numbers)) for s in shingles), np.int64,
                                          len(shingles))))
    return sets, strings


def exact_pairs(sets: list[np.ndarray], low: float, block: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(i, j, jaccard) of every pair i < j with exact Jaccard >= low, and how many pairs share >= 1 shingle."""
    n = len(sets)
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    indptr = np.r_[0, np.cumsum(sizes)]
    vocab = int(max((s.max() for s in sets if len(s)), default=-1)) + 1
    x = sparse.csr_matrix((np.ones(indptr[-1], np.int32), np.concatenate(sets) if n else [], indptr), shape=(n, vocab))
    xt = x.T.tocsc()
    found_i, found_j, found_s, sharing = [], [], [], 0
    for start in range(0, n, block):
        product = (x[start:start + block] @ xt).tocoo()  # intersection sizes (the inverted-index join)
        rows = product.row.astype(np.int64) + start
        upper = product.col > rows
        rows, cols, inter = rows[upper], product.col[upper].astype(np.int64), product.data[upper].astype(np.int64)
        sharing += len(rows)
        sim = inter / (sizes[rows] + sizes[cols] - inter)
        keep = sim >= low
        found_i.append(rows[keep]), found_j.append(cols[keep]), found_s.append(sim[keep])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s), sharing


def spot_check(sets: list[np.ndarray], i: np.ndarray, j: np.ndarray, sim: np.ndarray, low: float, checks: int = 3000) -> int:
    """Recompute random pairs with set arithmetic (half of them drawn from the found pairs); return mismatches."""
    rng = np.random.default_rng(7)
    known = dict(zip(zip(i.tolist(), j.tolist()), sim.tolist()))
    picks = [tuple(sorted(rng.choice(len(sets), 2, replace=False).tolist())) for _ in range(checks // 2)]
    picks += [(int(i[k]), int(j[k])) for k in rng.choice(len(i), min(len(i), checks // 2), replace=False)]
    bad = 0
    for a, b in picks:
        sa, sb = set(sets[a].tolist()), set(sets[b].tolist())
        union = len(sa | sb)
        truth = len(sa & sb) / union if union else 0.0
        expected = truth if truth >= low else None
        got = known.get((a, b))
        if (expected is None) != (got is None) or (got is not None and abs(got - expected) > 1e-12):
            bad += 1
    return bad


def components_of(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = sparse.coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


# ----------------------------------------------------------------------------------------------- metrics
def pairs_within(labels: np.ndarray) -> int:
    sizes = np.bincount(np.unique(labels, return_inverse=True)[1])
    return int((sizes * (sizes - 1) // 2).sum())


def pair_scores(pred: np.ndarray, true_i: np.ndarray, true_j: np.ndarray, truth_labels: np.ndarray) -> dict:
    predicted = pairs_within(pred)
    tp = int((pred[true_i] == pred[true_j]).sum())
    direct = _prf(tp, predicted, len(true_i))
    cells = Counter(zip(truth_labels.tolist(), pred.tolist()))
    tp_closure = sum(c * (c - 1) // 2 for c in cells.values())
    closure = _prf(tp_closure, predicted, pairs_within(truth_labels))
    sizes = np.bincount(np.unique(pred, return_inverse=True)[1])
    return {"direct": direct, "closure": closure, "predicted_pairs": predicted, "largest": int(sizes.max()),
            "clusters": int((sizes > 1).sum()), "removed": int(len(pred) - len(sizes))}


def _prf(tp: int, predicted: int, true: int) -> tuple[float, float, float]:
    p = tp / predicted if predicted else 1.0
    r = tp / true if true else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# ----------------------------------------------------------------------------------------------- methods
def ours(docs: pa.Table, t: float, **kwargs) -> tuple[np.ndarray, float]:
    op = MinHashDedup(threshold=t, num_perm=NUM_PERM, ngram=NGRAM, **kwargs)
    started = time.perf_counter()
    clusters = op.clusters(docs)
    seconds = time.perf_counter() - started
    return np.unique(clusters["cluster"].to_numpy(zero_copy_only=False), return_inverse=True)[1], seconds


def datasketch_minhashes(strings: list[list[bytes]]) -> tuple[list, float]:
    from datasketch import LeanMinHash, MinHash

    started = time.perf_counter()
    out = []
    for shingles in strings:
        if not shingles:
            out.append(None)  # no shingles: left out, as the operator does (else all empties share every bucket)
            continue
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch(shingles)
        out.append(LeanMinHash(m))
    return out, time.perf_counter() - started


def datasketch_lsh(minhashes: list, t: float) -> tuple[np.ndarray, float, dict]:
    from datasketch import MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=t, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for k, m in enumerate(minhashes):
            if m is not None:
                session.insert(k, m, check_duplication=False)
    first, other, bucket_pairs, largest = [], [], 0, 0
    for table in lsh.hashtables:
        for key in table.keys():
            members = list(table.get(key))
            if len(members) > 1:
                first += [members[0]] * (len(members) - 1)
                other += members[1:]
                bucket_pairs += len(members) * (len(members) - 1) // 2
                largest = max(largest, len(members))
    labels = components_of(len(minhashes), np.array(first, np.int64), np.array(other, np.int64))
    info = {"bands": lsh.b, "rows": lsh.r, "bucket_pairs": bucket_pairs, "largest_bucket": largest}
    return labels, time.perf_counter() - started, info


def edge_recall(docs: pa.Table, t: float, true_i: np.ndarray, true_j: np.ndarray) -> dict:
    """Share of the true pairs that our LSH made candidates (before verification), and the counts."""
    from operators import minhash_kernels as kernels
    from operators.minhash import candidate_pairs

    op = MinHashDedup(threshold=t, num_perm=NUM_PERM, ngram=NGRAM)
    _, offsets, sigs = op.sketch(docs)
    bands, rows = op.band_layout()
    pairs = candidate_pairs(kernels.band_keys(sigs, bands, rows), np.diff(offsets) > 0)
    n = docs.num_rows
    hit = np.isin(true_i * n + true_j, pairs[:, 0] * n + pairs[:, 1])
    return {"bands": bands, "rows": rows, "candidates": len(pairs), "true_as_candidates": float(hit.mean()) if len(hit) else 1.0}


# ----------------------------------------------------------------------------------------------- ray plan
def ray_plan_agrees(corpus: Path, in_batch: pa.Table) -> dict:
    from pipelines import Pipeline

    out = near_dup_corpus.WORK / "quality-ray-out"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    manifest = Pipeline("near").read_parquet(str(corpus / "docs")).dedup(MinHashDedup()).run(output=str(out), num_cpus=2)
    seconds = time.perf_counter() - started
    ray_clusters = pq.read_table(out / "_clusters" / "01-min_hash_dedup").select(["id", "cluster", "kept"]).sort_by("id")
    mine = in_batch.select(["id", "cluster", "kept"]).sort_by("id")
    same_ids = ray_clusters["id"].equals(mine["id"])
    differ = [a for a, b, c, d in zip(mine["id"].to_pylist(), mine["cluster"].to_pylist(),
                                      ray_clusters["cluster"].to_pylist(), ray_clusters["id"].to_pylist()) if b != c] if same_ids else None
    kept_differ = int((~np.equal(mine["kept"].to_numpy(zero_copy_only=False),
                                 ray_clusters["kept"].to_numpy(zero_copy_only=False))).sum()) if same_ids else None
    stage = manifest["stages"][1]
    return {"seconds": seconds, "same_ids": same_ids, "cluster_differs": len(differ) if differ is not None else None,
            "examples": (differ or [])[:5], "kept_differs": kept_differ, "plan": stage["plan"],
            "rejected": stage["rows_rejected"]}


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--skip-ray", action="store_true", help="skip the Ray-plan agreement check")
    args = parser.parse_args()

    docs, meta, corpus = near_dup_corpus.load(args.docs)
    docs = docs.select(["id", "text"])
    n = docs.num_rows
    print(f"corpus {corpus.relative_to(ROOT)}: {near_dup_corpus.describe(docs, meta)}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    started = time.perf_counter()
    prepared = prepare_text(docs["text"]).to_pylist()
    sets, strings = shingle_sets(prepared)
    ti, tj, ts, sharing = exact_pairs(sets, min(THRESHOLDS))
    truth_seconds = time.perf_counter() - started
    bad = spot_check(sets, ti, tj, ts, min(THRESHOLDS))
    empty = sum(1 for s in sets if not len(s))
    print(f"ground truth: {sum(len(s) for s in sets):,} shingles ({1 + max(int(s.max()) for s in sets if len(s)):,} "
          f"distinct); {sharing:,} pairs share >= 1 shingle (of {n * (n - 1) // 2:,}); {len(ti):,} pairs with "
          f"J >= {min(THRESHOLDS)}; {empty} documents without shingles; {truth_seconds:.1f} s; spot check of 3,000 "
          f"pairs by set arithmetic: {bad} mismatches", flush=True)
    if bad:
        raise SystemExit("ground truth spot check failed")

    dsk, dsk_sketch_seconds = datasketch_minhashes(strings)
    print(f"datasketch MinHash.update_batch for {n:,} docs: {dsk_sketch_seconds:.1f} s", flush=True)

    results, extra = {}, {}
    for t in THRESHOLDS:
        keep = ts >= t
        true_i, true_j = ti[keep], tj[keep]
        truth_labels = components_of(n, true_i, true_j)
        extra[t] = {"true_pairs": len(true_i), "closure_pairs": pairs_within(truth_labels),
                    "true_removed": int(n - len(np.unique(truth_labels))), **edge_recall(docs, t, true_i, true_j)}
        methods = {
            "ours, verify on": ours(docs, t),
            "ours, verify on, 0.5/0.5 bands": ours(docs, t, false_negative_weight=0.5),
            "ours, verify off": ours(docs, t, verify=False),
        }
        labels, seconds, info = datasketch_lsh(dsk, t)
        methods["datasketch LSH + union-find"] = (labels, seconds)
        extra[t]["datasketch"] = info
        for name, (labels, seconds) in methods.items():
            results[(t, name)] = {**pair_scores(labels, true_i, true_j, truth_labels), "seconds": seconds}
            r = results[(t, name)]
            print(f"  t={t} {name:<32} P={r['direct'][0]:.4f} R={r['direct'][1]:.4f} F1={r['direct'][2]:.4f} "
                  f"(closure F1 {r['closure'][2]:.4f}) largest {r['largest']} {r['seconds']:.1f} s", flush=True)

    print(f"\n## Pair precision / recall / F1 ({n:,} docs; predicted pairs = pairs within a predicted cluster)\n")
    print("| Jaccard t | true pairs (direct / closure) | method | P direct | R direct | F1 direct | P closure | "
          "R closure | F1 closure | predicted pairs | dup clusters | largest cluster | docs removed (true) | s |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (t, name), r in results.items():
        e = extra[t]
        d, c = r["direct"], r["closure"]
        print(f"| {t} | {e['true_pairs']:,} / {e['closure_pairs']:,} | {name} | {d[0]:.4f} | {d[1]:.4f} | {d[2]:.4f} | "
              f"{c[0]:.4f} | {c[1]:.4f} | {c[2]:.4f} | {r['predicted_pairs']:,} | {r['clusters']:,} | {r['largest']:,} | "
              f"{r['removed']:,} ({e['true_removed']:,}) | {r['seconds']:.1f} |")

    print("\n## LSH candidates (before verification)\n")
    print("| Jaccard t | ours bands x rows | ours candidate pairs | true pairs that were candidates | "
          "datasketch bands x rows | datasketch bucket pairs | datasketch largest bucket |")
    print("|---:|---|---:|---:|---|---:|---:|")
    for t in THRESHOLDS:
        e, ds = extra[t], extra[t]["datasketch"]
        print(f"| {t} | {e['bands']} x {e['rows']} | {e['candidates']:,} | {e['true_as_candidates']:.4f} | "
              f"{ds['bands']} x {ds['rows']} | {ds['bucket_pairs']:,} | {ds['largest_bucket']:,} |")

    plant_table(docs, meta, sets, results_labels=_labels_at(docs, dsk, 0.8))

    if not args.skip_ray:
        in_batch = MinHashDedup().clusters(docs)
        check = ray_plan_agrees(corpus, in_batch)
        plan = check["plan"]
        print(f"\n## Ray plan vs in-batch core (threshold 0.8, defaults)\n\nRay plan run {check['seconds']:.1f} s; same ids: "
              f"{check['same_ids']}; documents whose cluster differs: {check['cluster_differs']} {check['examples']}; "
              f"kept flag differs: {check['kept_differs']}; plan: candidate pairs {plan['candidate_pairs']:,}, verified "
              f"{plan['verified_pairs']:,}, clusters {plan['clusters']:,}, duplicates {plan['duplicates']:,} "
              f"(rejected {check['rejected']:,}); seconds {plan['seconds']}")


def _labels_at(docs: pa.Table, dsk: list, t: float) -> dict[str, np.ndarray]:
    return {"ours, verify on": ours(docs, t)[0], "datasketch LSH + union-find": datasketch_lsh(dsk, t)[0]}


def plant_table(docs: pa.Table, meta: pa.Table, sets: list[np.ndarray], results_labels: dict[str, np.ndarray]) -> None:
    """Planted copies by edit rate: exact Jaccard with their source and whether each method clustered them."""
    row = {doc_id: k for k, doc_id in enumerate(docs["id"].to_pylist())}
    plants = meta.filter(pa.compute.equal(meta["kind"], "plant")).to_pylist()
    by_rate: dict[float, list] = {}
    for p in plants:
        a, b = row[p["id"]], row[f"c0-{p['origin']}"]
        inter = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        sim = inter / (len(sets[a]) + len(sets[b]) - inter)
        found = {name: bool(labels[a] == labels[b]) for name, labels in results_labels.items()}
        by_rate.setdefault(p["edit_rate"], []).append((sim, found))
    names = list(results_labels)
    print("\n## Planted copies at threshold 0.8 (found = in one cluster with its source)\n")
    print("| edit rate | plants | median J | J >= 0.8 | " + " | ".join(f"{n}: found (of J >= 0.8)" for n in names)
          + " | " + " | ".join(f"{n}: found (of J < 0.8)" for n in names) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * (2 * len(names)))
    for rate in sorted(by_rate):
        items = by_rate[rate]
        sims = np.array([s for s, _ in items])
        above = [f for s, f in items if s >= 0.8]
        below = [f for s, f in items if s < 0.8]
        cells = [f"{sum(f[n] for f in above)} / {len(above)}" for n in names]
        cells += [f"{sum(f[n] for f in below)} / {len(below)}" for n in names]
        print(f"| {rate:.0%} | {len(items)} | {np.median(sims):.3f} | {len(above)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
