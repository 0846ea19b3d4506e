"""Curate: raw documents -> clean, deduplicated, decontaminated training text (the flagship's first step).

    read -> hold out a split -> normalise -> language id -> length and quality rules -> toxicity ->
    PII redaction -> bias measurement -> exact dedup -> near-dup (MinHash LSH) -> decontaminate

``curate(part="train")`` keeps the training pool and decontaminates it against ``eval_sets`` (the held-out
split); ``curate(part="heldout")`` cleans the held-out split with the same rules (the evaluation data).
``debias`` then thins over-represented gender mentions (``RebalanceSample``, weights fitted on the curated
output's own counts) and measures again, so the report shows bias before and after.

Run alone: ``distillery run pipelines/curate.py`` (bundled sample -> out/curate). The flagship
(``pipelines/flagship.py``) calls these functions with its own paths.
"""
from __future__ import annotations

from operators import (BiasMeasure, C4Quality, Decontaminate, ExactDedup, GopherQuality, GopherRepetition,
                       HashSample, LanguageID, LengthFilter, MinHashDedup, Normalize, RebalanceSample, RedactPII,
                       Toxicity)
from pipelines import Pipeline

HELDOUT_FRACTION = 0.1  # of the documents, chosen by a hash of the id: the evaluation split
SPLIT_SEED = 0


def raw_split(source: str, output: str, part: str = "train") -> Pipeline:
    """The uncurated documents of one split (the experiment's baseline stream)."""
    return (Pipeline(f"raw-{part}").read_parquet(source)
            .filter(HashSample(HELDOUT_FRACTION, seed=SPLIT_SEED, complement=part == "train"))
            .write_parquet(output))


def curate(source: str, output: str, part: str = "train", eval_sets: tuple[str, ...] = ()) -> Pipeline:
    pipe = (Pipeline(f"curate-{part}").read_parquet(source)
            .filter(HashSample(HELDOUT_FRACTION, seed=SPLIT_SEED, complement=part == "train"))
            .map(Normalize(form="NFKC"))
            .filter(LanguageID(languages=("en",), min_score=0.5),
                    LengthFilter(min_chars=200, max_chars=100_000, min_words=30),
                    GopherQuality(min_doc_words=30, min_alpha_words_ratio=0.6, max_symbol_word_ratio=0.2),
                    GopherRepetition(),
                    C4Quality(filter_no_terminal_punct=False, min_num_sentences=2, filter_curly_bracket=False),
                    Toxicity(max_score=0.5))
            .map(RedactPII())
            .map(BiasMeasure())
            .dedup(ExactDedup())
            .dedup(MinHashDedup(threshold=0.8)))
    if eval_sets:
        pipe = pipe.filter(Decontaminate(eval_sets=tuple(eval_sets), ngram=13))
    return pipe.write_parquet(output)


def debias(curated: str, output: str, multipliers: dict[str, float]) -> Pipeline:
    """Thin documents whose gender mentions are over-represented, then measure again."""
    return (Pipeline("debias").read_parquet(curated)
            .filter(RebalanceSample(group="gender", multipliers=multipliers, seed=SPLIT_SEED))
            .map(BiasMeasure())
            .write_parquet(output))


pipeline = curate("data/sample", "out/curate")

if __name__ == "__main__":
    pipeline.run()
