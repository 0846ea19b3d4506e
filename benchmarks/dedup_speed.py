"""MinHash speed and memory, side by side in one run: signature throughput per core, then end-to-end
near-duplicate removal through the Ray plan at growing corpus sizes.

Part 1, signatures (text -> 128 MinHash values per document, word 5-grams), one process, one thread
(``OMP_NUM_THREADS=1``, ``pa.set_cpu_count(1)``, numba kernels are serial), on the real ``data/sample``
corpus (9,005 documents). Competitors are interleaved round by round and the median is reported, as wall
MB/s and as MB per CPU-second (= per core; on a shared machine the CPU figure is the steadier one).
MB = UTF-8 bytes of the raw ``text`` column / 1e6.

* ``datasketch update loop``   ``MinHash(128)``, ``m.update(s)`` for every shingle of every document
* ``datasketch update_batch``  ``MinHash(128)``, ``m.update_batch(shingles)`` per document
  (both fed the operator's own shingles: ``prepare_text`` on the Arrow column, timed in, then
  ``shingle_strings`` per document, timed in)
* ``ours (sketch)``            ``MinHashDedup().sketch(batch)`` on 4,096-row batches as the Ray plan does
  (prepare_text + compiled 64-bit shingle hashing + compiled signatures; numba compiled beforehand)
* ``ours, datasketch-compatible``  ``MinHashDedup(datasketch_compatible=True).sketch``: SHA-1 shingle
  hashes in Python (value-for-value datasketch signatures), compiled signatures
* ``DataTrove compute``        in ``benchmarks/_work/datatrove-venv`` (if present and importable):
  ``MinhashDedupSignature`` with 16 buckets x 8 hashes (128, like the others), ``get_shingles`` +
  ``get_signature`` per document (its default spaCy word tokenizer, 64-bit xxhash)
* ``DataTrove step``           the same step's ``run()``: the above plus writing and sorting its
  signature files (what a DataTrove pipeline actually executes for stage 1)

Part 2, end-to-end: ``Pipeline("dedup").read_parquet(<corpus>/docs).dedup(MinHashDedup()).run(num_cpus=2)``
on ``near_dup_corpus`` at each ``--sizes`` entry, each in a fresh child process that starts its own
embedded Ray (``ray_session``, 2 CPUs, 2 GiB object store; ``ray.init`` timed apart). The parent samples
every 0.25 s the child's whole process tree (driver, raylet, GCS, workers) from ``/proc``: the sum of
PSS (shared pages such as the object store counted once) and the sum of RSS; the peaks are reported.
Phase seconds come from the manifest's dedup ``plan``. For reference the in-batch core
(``MinHashDedup().clusters(table)`` on the whole corpus in one process) runs on the same corpus.

    .venv/bin/python benchmarks/dedup_speed.py [--repeats 3] [--sizes 10000,100000] [--skip-signatures]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from curricula.ray_session import configure_local_environment  # noqa: E402

configure_local_environment()  # before anything imports ray

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import near_dup_corpus  # noqa: E402
from operators.minhash import MinHashDedup, prepare_text, shingle_strings  # noqa: E402

WORK = near_dup_corpus.WORK
DATATROVE = WORK / "datatrove-venv" / "bin" / "python"
NUM_PERM = 128
BATCH = 4096

DATATROVE_CHILD = r"""
import json, sys, time, tempfile, shutil
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
mode, files = sys.argv[1], sys.argv[2:]
table = pq.read_table(files, columns=["id", "text"]).sort_by("id")
docs = [Document(text=t, id=i) for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist())]
out = tempfile.mkdtemp(prefix="dt-sig-")
step = MinhashDedupSignature(output_folder=out, config=MinhashConfig(num_buckets=16, hashes_per_bucket=8))
step.get_signature(step.get_shingles("warm up the tokenizer and the hash parameters"))
wall, cpu = time.perf_counter(), time.process_time()
if mode == "compute":
    for doc in docs:
        shingles = step.get_shingles(doc.text)
        if shingles.size:
            step.get_signature(shingles)
else:
    step.run(iter(docs))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
shutil.rmtree(out, ignore_errors=True)
"""


# ----------------------------------------------------------------------------------------------- part 1
def sample_table() -> pa.Table:
    return near_dup_corpus.load_sample().select(["id", "text"])


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def datasketch_loop(table: pa.Table, batch: bool) -> None:
    from datasketch import MinHash

    for doc in prepare_text(table["text"]).to_pylist():
        m = MinHash(num_perm=NUM_PERM, seed=1)
        shingles = shingle_strings(doc, 5, False)
        if batch:
            m.update_batch(shingles)
        else:
            for s in shingles:
                m.update(s)


def ours(table: pa.Table, **kwargs) -> None:
    op = MinHashDedup(num_perm=NUM_PERM, **kwargs)
    for batch in table.to_batches(BATCH):
        op.sketch(pa.Table.from_batches([batch]))


def nfkc_comparison(table: pa.Table, rounds: int = 5) -> tuple[float, float]:
    """Best-of-``rounds`` CPU seconds of NFKC on the non-ASCII texts: (Arrow's utf8_normalize, Python's
    unicodedata as ``operators.minhash.nfkc`` does); the results must be equal."""
    import unicodedata

    text = pc.fill_null(table["text"].combine_chunks(), "")
    other = pc.filter(text, pc.invert(pc.string_is_ascii(text)))
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        start = time.process_time()
        arrow = pc.utf8_normalize(other, "NFKC")
        mid = time.process_time()
        python = pa.array([unicodedata.normalize("NFKC", v) for v in other.to_pylist()], pa.string())
        end = time.process_time()
        best = [min(best[0], mid - start), min(best[1], end - mid)]
    assert arrow.equals(python), "NFKC differs between Arrow and unicodedata"
    return best[0], best[1]


def ours_phases(table: pa.Table) -> dict[str, float]:
    """CPU seconds of each step of ``sketch`` (prepare, shingle hashing, signatures) over the whole table."""
    from operators.minhash import shingle_hashes, signatures

    spent = {"prepare_text": 0.0, "shingle_hashes": 0.0, "signatures": 0.0}
    for batch in table.to_batches(BATCH):
        start = time.process_time()
        prepared = prepare_text(pa.Table.from_batches([batch])["text"], word_kernel=True)  # as sketch does
        mid = time.process_time()
        hashes, offsets = shingle_hashes(prepared, 5, punct_separates=True)
        end = time.process_time()
        signatures(hashes, offsets, NUM_PERM, 1)
        spent["prepare_text"] += mid - start
        spent["shingle_hashes"] += end - mid
        spent["signatures"] += time.process_time() - end
    return spent


def datatrove_usable() -> str | None:
    """None if the DataTrove venv runs MinhashDedupSignature, else why not."""
    if not DATATROVE.exists():
        return f"{DATATROVE.relative_to(ROOT)} does not exist"
    probe = subprocess.run([str(DATATROVE), "-c", "from datatrove.pipeline.dedup.minhash import MinhashDedupSignature; "
                            "import datatrove, pyarrow; print(datatrove.__version__ if hasattr(datatrove, '__version__') else '?')"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"import failed: {probe.stderr.strip().splitlines()[-1:]}"


def datatrove(mode: str, files: list[str]) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([str(DATATROVE), "-c", DATATROVE_CHILD, mode, *files], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"datatrove {mode} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["wall"], result["cpu"]


def signature_benchmark(repeats: int) -> None:
    pa.set_cpu_count(1)
    table = sample_table()
    files = sorted(str(p) for p in near_dup_corpus.SAMPLE.glob("*.parquet"))
    mb = pc.sum(pc.binary_length(table["text"])).as_py() / 1e6
    ours(table.slice(0, 64))  # compile / load the numba kernels outside the timings
    ours(table.slice(0, 64), datasketch_compatible=True)
    competitors = {
        "datasketch update loop": lambda: timed(lambda: datasketch_loop(table, batch=False)),
        "datasketch update_batch": lambda: timed(lambda: datasketch_loop(table, batch=True)),
        "ours (sketch)": lambda: timed(lambda: ours(table)),
        "ours, datasketch-compatible": lambda: timed(lambda: ours(table, datasketch_compatible=True)),
    }
    why_not = datatrove_usable()
    if why_not is None:
        competitors["DataTrove compute"] = lambda: datatrove("compute", files)
        competitors["DataTrove step"] = lambda: datatrove("run", files)
    print(f"signatures: data/sample, {table.num_rows:,} docs, {mb:.2f} MB of text; {NUM_PERM} permutations, word "
          f"5-grams; {repeats} interleaved rounds; DataTrove: {'yes' if why_not is None else 'no (' + why_not + ')'}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in competitors}
    for round_ in range(repeats):
        for name, fn in competitors.items():
            wall, cpu = fn()
            runs[name].append((wall, cpu))
            print(f"  round {round_ + 1}/{repeats} {name:<30} wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
    phases = ours_phases(table)
    arrow_nfkc, python_nfkc = nfkc_comparison(table)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")

    base_cpu = mb / statistics.median(c for _, c in runs["datasketch update_batch"])
    print("\n| competitor | median wall s | median CPU s | MB/s (wall) | MB/s per core (CPU) | × datasketch update_batch (per core) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in runs.items():
        wall, cpu = statistics.median(w for w, _ in values), statistics.median(c for _, c in values)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {mb / wall:.2f} | {mb / cpu:.2f} | {mb / cpu / base_cpu:.2f} |")
    total = sum(phases.values())
    print("\nours, where the CPU time goes (one extra pass): " + ", ".join(
        f"{k} {v:.2f} s ({v / total:.0%}, {mb / v:.0f} MB/s)" for k, v in phases.items()))
    print(f"NFKC of the non-ASCII texts, best of 5, CPU s: Arrow utf8_normalize {arrow_nfkc:.3f}, "
          f"unicodedata {python_nfkc:.3f} ({arrow_nfkc / python_nfkc:.1f}x)")


# ----------------------------------------------------------------------------------------------- part 2
def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in kB of one process, (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def process_name(pid: int) -> str:
    """A process's title (Ray workers name their current task there), shortened."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:48]
    except OSError:
        return "?"


class Sampler(threading.Thread):
    """Peak summed PSS / RSS (and process count) of a process tree, sampled every ``interval`` seconds, and
    the CPU seconds the tree used (each process's last sampled utime + stime; a process that ends between
    two samples loses at most one interval)."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop = pid, interval, threading.Event()
        self.peak_pss = self.peak_rss = self.peak_procs = 0
        self.started, self.peak_at, self.peak_top = time.perf_counter(), 0.0, []
        self.cpu: dict[int, float] = {}

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def run(self) -> None:
        while not self.stop.is_set():
            tree = process_tree(self.pid)
            for p in tree:
                self.cpu[p] = max(self.cpu.get(p, 0.0), cpu_seconds(p))
            sizes = [memory_kb(p) for p in tree]
            if sum(s[0] for s in sizes) > self.peak_pss:  # where the peak is: when, and the largest processes
                self.peak_at = time.perf_counter() - self.started
                self.peak_top = sorted(((s[0] // 1024, process_name(p)) for p, s in zip(tree, sizes)), reverse=True)[:5]
            self.peak_pss = max(self.peak_pss, sum(s[0] for s in sizes))
            self.peak_rss = max(self.peak_rss, sum(s[1] for s in sizes))
            self.peak_procs = max(self.peak_procs, len(tree))
            self.stop.wait(self.interval)


def run_child(args: list[str], timeout: float) -> tuple[dict, float, Sampler]:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(child.pid)
    sampler.start()
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.terminate()  # the child's ray_session shuts its own Ray down on SIGTERM-triggered exit
        out, err = child.communicate()
        return {"timed_out": True, "stderr": err[-2000:]}, time.perf_counter() - started, sampler
    finally:
        sampler.stop.set()
        sampler.join()
    if child.returncode:
        return {"failed": child.returncode, "stderr": err[-3000:]}, time.perf_counter() - started, sampler
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]  # Ray may print after the result
    if not lines:
        return {"failed": "no result line", "stdout": out[-2000:], "stderr": err[-2000:]}, time.perf_counter() - started, sampler
    return json.loads(lines[-1]), time.perf_counter() - started, sampler


def child_ray(corpus: str, output: str, store_gib: str) -> None:
    from pipelines import Pipeline
    from curricula.ray_session import RayOptions, ray_session

    started = time.perf_counter()
    with ray_session(None, RayOptions(num_cpus=2, object_store_bytes=int(float(store_gib) * 1024**3))):
        init = time.perf_counter() - started
        shutil.rmtree(output, ignore_errors=True)
        manifest = Pipeline("dedup").read_parquet(corpus).dedup(MinHashDedup()).run(output=output)
        print(json.dumps({"init": init, "seconds": manifest["seconds"], "stages": manifest["stages"],
                          "rows_out": manifest["output"]["rows"]}))


def child_in_batch(corpus: str) -> None:
    import resource

    table = pq.read_table(corpus, columns=["id", "text"])
    started, cpu = time.perf_counter(), time.process_time()
    clusters = MinHashDedup().clusters(table)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "removed": int(table.num_rows - pc.sum(clusters["kept"]).as_py()),
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def end_to_end(sizes: list[int], timeout: float, in_batch_max: int, store_gib: float = 2.0) -> None:
    rows = []
    for n in sizes:
        built = time.perf_counter()
        corpus = near_dup_corpus.materialize(n)
        docs = corpus / "docs"
        text_mb = sum(pc.sum(pc.binary_length(pq.read_table(f, columns=["text"])["text"])).as_py()
                      for f in sorted(docs.glob("*.parquet"))) / 1e6
        print(f"end-to-end {n:,} docs ({text_mb:.1f} MB of text, corpus ready in {time.perf_counter() - built:.0f} s); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        ray_result, ray_wall, ray_mem = run_child(["--child-ray", str(docs), str(WORK / f"speed-out-{n}"),
                                                   str(store_gib)], timeout)
        print(f"  ray plan: {ray_wall:.1f} s wall, {ray_mem.cpu_total:.0f} CPU s (process tree), peak PSS {ray_mem.peak_pss / 1024:.0f} MB, peak RSS "
              f"{ray_mem.peak_rss / 1024:.0f} MB, {ray_mem.peak_procs} processes; "
              f"{json.dumps(ray_result)[:1500]}", flush=True)
        print(f"  peak PSS at {ray_mem.peak_at:.0f} s, largest processes (MB): {ray_mem.peak_top}", flush=True)
        if n > in_batch_max:  # one process holding the whole corpus: skipped for the largest sizes
            rows.append((n, text_mb, ray_result, ray_wall, ray_mem, {"skipped": True}, 0.0, None))
            continue
        batch_result, batch_wall, batch_mem = run_child(["--child-in-batch", str(docs)], timeout)
        print(f"  in-batch core: {batch_wall:.1f} s wall, {batch_mem.cpu_total:.0f} CPU s, peak PSS {batch_mem.peak_pss / 1024:.0f} MB; "
              f"{json.dumps(batch_result)}", flush=True)
        rows.append((n, text_mb, ray_result, ray_wall, ray_mem, batch_result, batch_wall, batch_mem))

    print("\n| docs | MB text | ray.init s | run s (manifest) | CPU s (tree, incl. init) | docs/s | MB/s | read s | sketch+bucket s | verify s | "
          "components + cluster + index s | rest s (join, annotate, write) | candidate pairs | verified | removed | peak PSS MB (sum) | "
          "peak RSS MB (sum) | in-batch core s | in-batch CPU s | in-batch peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, mb, r, wall, mem, b, bwall, bmem in rows:
        if "stages" not in r:
            print(f"| {n:,} | {mb:.1f} | did not finish: {r} |")
            continue
        stage = next(s for s in r["stages"] if s["kind"] == "dedup")
        plan, phases = stage["plan"], stage["plan"]["seconds"]
        rest = r["seconds"] - sum(phases.values())
        in_batch = (f"{b['seconds']:.1f} | {b['cpu']:.1f} | {b['maxrss_kb'] / 1024:.0f}" if "seconds" in b
                    else "not run | - | -" if b.get("skipped") else "failed | - | -")
        print(f"| {n:,} | {mb:.1f} | {r['init']:.1f} | {r['seconds']:.1f} | {mem.cpu_total:.0f} | {n / r['seconds']:,.0f} | {mb / r['seconds']:.2f} | "
              f"{phases['read']:.1f} | {phases['sketch_and_bucket']:.1f} | {phases['verify']:.1f} | {phases.get('components', 0.0) + phases['cluster'] + phases.get('index', 0.0):.1f} | "
              f"{rest:.1f} | {plan['candidate_pairs']:,} | {plan['verified_pairs']:,} | {stage['rows_rejected']:,} | "
              f"{mem.peak_pss / 1024:,.0f} | {mem.peak_rss / 1024:,.0f} | {in_batch} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-ray":
        return child_ray(sys.argv[2], sys.argv[3], sys.argv[4])
    if len(sys.argv) > 1 and sys.argv[1] == "--child-in-batch":
        return child_in_batch(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000", help="end-to-end corpus sizes, comma-separated")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per end-to-end run")
    parser.add_argument("--in-batch-max", type=int, default=200_000,
                        help="largest size at which the one-process in-batch core also runs")
    parser.add_argument("--object-store-gib", type=float, default=2.0,
                        help="the embedded Ray's object store in the end-to-end runs (ray_session's default: 2)")
    parser.add_argument("--skip-signatures", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    import numba
    import ray

    print(f"python {sys.version.split()[0]}, ray {ray.__version__}, pyarrow {pa.__version__}, numba {numba.__version__}, "
          f"cpus {os.cpu_count()}, date {time.strftime('%Y-%m-%d %H:%M')}")
    if not args.skip_signatures:
        signature_benchmark(args.repeats)
    if not args.skip_end_to_end:
        end_to_end([int(s) for s in args.sizes.split(",") if s], args.timeout, args.in_batch_max, args.object_store_gib)


if __name__ == "__main__":
    main()
