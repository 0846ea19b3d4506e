"""The Perplexity operator with the real SmolLM2-135M: agrees with transformers' own loss, and ranks real
text as easier than the same words shuffled."""
from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from curricula.perplexity import Perplexity
from operators.base import ParameterError
from tests.conftest import sample_rows


@pytest.fixture
def one_thread():
    """One torch thread: on the shared 2-core machine, two threads under load made a forward pass 14x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_perplexity_matches_transformers_loss_and_ranks_real_text_easier(smollm2_dir, one_thread):
    import torch
    from tokenizers import Tokenizer

    docs = [r["text"] for r in sample_rows(9005) if r["source"] in ("docs", "fortunes")][::400][:3]
    words = docs[0].split()
    random.Random(0).shuffle(words)
    texts = docs + [" ".join(words)]
    op = Perplexity(model_dir=str(smollm2_dir), max_tokens=48, batch_size=4)
    out = op(pa.table({"id": [str(i) for i in range(4)], "text": texts}))
    ppl = out.column("perplexity").to_pylist()
    tok = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))
    model = op._model
    for text, value in zip(texts, ppl):
        ids = torch.tensor([tok.encode(text, add_special_tokens=False).ids[:48]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # each document alone, no padding
        assert value == pytest.approx(math.exp(loss), rel=1e-3)
    assert ppl[3] > 2 * ppl[0]  # shuffled words are much harder than the same words in order


def test_perplexity_parameters_are_checked():
    with pytest.raises(ParameterError, match=r"^Perplexity.max_tokens: must be >= 2"):
        Perplexity(model_dir="x", max_tokens=1)
    with pytest.raises(ParameterError, match=r"^Perplexity.model_dir"):
        Perplexity()
