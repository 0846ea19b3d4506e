"""Distributed tokenisation with Ray Data: the order-free pass of the curriculum pipeline.

``pretokenize(input, output, tokenizer)`` streams a Parquet corpus through
``ray.data.read_parquet(...).map_batches(_Tokenize, ...)`` (an actor pool, each actor holding the fast
tokenizer once, encoding whole Arrow batches with ``encode_batch_fast``) and writes it back with every
input column plus ``input_ids`` (list<int32>, no special tokens, no separator) and ``num_tokens``. The
corpus is never materialised: Ray Data streams blocks from read to write. The output is written to a
temporary folder and renamed, so a killed run never leaves a half output that looks whole.

``CurriculumStream`` reads such a folder directly (no tokenisation at training time); ``token_sizes``
sums ``num_tokens`` per domain for temperature sampling in tokens.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from tokenizers import Tokenizer

from curricula.source import TOKENS_COLUMN, parquet_files
from operators.fileio import staged_folder
from operators.tokenizer import load_tokenizer


class _Tokenize:
    """Ray Data actor: Arrow batch in, the same batch plus ``input_ids`` and ``num_tokens`` out."""

    def __init__(self, tokenizer_json: str, text_column: str):
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.text_column = text_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = [t or "" for t in batch.column(self.text_column).to_pylist()]
        ids = [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        tokens = pa.array(ids, type=pa.list_(pa.int32()))
        return batch.append_column(TOKENS_COLUMN, tokens).append_column("num_tokens", pc.list_value_length(tokens))


def pretokenize(input_path: str | Path, output_path: str | Path, tokenizer: Tokenizer | str | Path, *,
                text_column: str = "text", batch_size: int = 256, concurrency: int = 1) -> Path:
    """Tokenise ``input_path`` into ``output_path`` with Ray Data (uses the running Ray, else ``RAY_ADDRESS``,
    else starts an embedded one on loopback, as the pipelines do).

    ``concurrency`` tokenizer actors (1 CPU each); leave a CPU for the read tasks (on 2 CPUs, 2 actors
    starve the file listing and the run hangs), e.g. one actor per worker node's CPUs minus one."""
    import ray.data

    from curricula.ray_session import connect

    connect()
    tok, _, _ = load_tokenizer(tokenizer)
    files = parquet_files(str(input_path), "pretokenize.input")
    out = Path(output_path)
    ds = ray.data.read_parquet(files)
    ds = ds.map_batches(_Tokenize, fn_constructor_args=(tok.to_str(), text_column), batch_size=batch_size,
                        batch_format="pyarrow", concurrency=concurrency)
    with staged_folder(out) as staging:
        ds.write_parquet(str(staging))
    return out


def token_sizes(path: str | Path, source_column: str = "source") -> dict[str, int]:
    """Tokens per domain (``source`` value) of a pretokenized folder, from its ``num_tokens`` column."""
    table = pads.dataset(parquet_files(str(path), "token_sizes"), format="parquet").to_table(
        columns=[source_column, "num_tokens"])
    grouped = table.group_by(source_column).aggregate([("num_tokens", "sum")])
    return dict(zip(grouped.column(source_column).to_pylist(), grouped.column("num_tokens_sum").to_pylist()))
