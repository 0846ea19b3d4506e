"""Quickstart: the bundled sample corpus -> normalise -> length filter -> exact dedup -> Parquet.

Run it with ``distillery run pipelines/quickstart.py`` (embedded local Ray) or ``python pipelines/quickstart.py``.
"""
from operators import ExactDedup, LengthFilter, Normalize
from pipelines import Pipeline

pipeline = (
    Pipeline("quickstart")
    .read_parquet("data/sample")
    .map(Normalize(form="NFKC"))
    .filter(LengthFilter(min_chars=100, max_chars=100_000, min_words=20))
    .dedup(ExactDedup())
    .write_parquet("out/quickstart")
)

if __name__ == "__main__":
    pipeline.run()
