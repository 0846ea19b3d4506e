"""One end-to-end near-dedup run through the Ray plan, printing run seconds and the plan's phase seconds.

    .venv/bin/python benchmarks/near_dup_corpus.py 100000          # builds benchmarks/_work/near-dup-100000
    .venv/bin/python benchmarks/dedup_end_to_end.py benchmarks/_work/near-dup-100000/docs
"""
import shutil
import sys
import time

from operators import MinHashDedup
from pipelines import Pipeline

OUT = "benchmarks/_work/dedup-end-to-end-out"

if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    started = time.time()
    manifest = Pipeline("nd").read_parquet(sys.argv[1]).dedup(MinHashDedup()).run(output=OUT, num_cpus=2)
    plan = manifest["stages"][1]["plan"]
    print("seconds", round(time.time() - started, 1), "rejected", manifest["stages"][1]["rows_rejected"],
          "plan", {k: plan[k] for k in ("candidate_pairs", "verified_pairs", "seconds")})
