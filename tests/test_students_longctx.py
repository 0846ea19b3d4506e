"""Long context: passkey prompts, passkey retrieval with the real SmolLM2, perplexity by position, and a
short context-extension fine-tune at tiny size."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from students.data import ParquetTokenStream, tokenize_texts
from students.errors import ConfigError
from students.longctx import NEEDLE, QUESTION, extend_context, extended_config, passkey_prompt, \
    passkey_retrieval, perplexity_by_position
from students.model import ModelConfig, Student
from students.train import TrainConfig, read_metrics, train

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))


def encode_with(tok):
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def test_passkey_prompt_has_the_exact_length_and_depth(tokenizer):
    encode = encode_with(tokenizer)
    needle = encode(NEEDLE.format(key=12345))
    for length in (128, 300):
        for depth in (0.0, 0.5, 1.0):
            ids = passkey_prompt(encode, length, depth, 12345)
            assert len(ids) == length and ids[-len(encode(QUESTION)):] == encode(QUESTION)
            at = next(i for i in range(length) if ids[i:i + len(needle)] == needle)
            room = length - len(needle) - len(encode(QUESTION))
            assert at == round(depth * room)
    with pytest.raises(ConfigError, match="length"):
        passkey_prompt(encode, 10, 0.5, 12345)


@pytest.mark.slow
def test_passkey_retrieval_with_real_smollm2(tokenizer, smollm2_dir):
    """SmolLM2-135M loaded into our Student finds a key hidden at the start and the middle of 256 tokens."""
    from students.export import student_from_hf

    model = student_from_hf(smollm2_dir)
    rows = passkey_retrieval(model, encode_with(tokenizer), lengths=(256, 512), depths=(0.0, 0.5), trials=2)
    assert [(r["length"], r["depth"], r["accuracy"]) for r in rows] == [
        (256, 0.0, 1.0), (256, 0.5, 1.0), (512, 0.0, 1.0), (512, 0.5, 1.0)]
    # Greedy decoding token by token agrees with the one-pass check.
    from students.longctx import greedy_reproduces
    prompt = passkey_prompt(encode_with(tokenizer), 256, 0.5, 48213)
    seq = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(6):
            seq = torch.cat([seq, model(seq).logits[:, -1:].argmax(-1)], dim=1)
    decoded = seq[0, len(prompt):].tolist()
    assert decoded == encode_with(tokenizer)(" 48213")
    assert greedy_reproduces(model, prompt, decoded) and not greedy_reproduces(model, prompt, decoded[:-1] + [33])


def test_train_short_then_extend_the_context(tmp_path, smollm2_dir):
    table = pq.read_table(REPO / "data" / "sample", columns=["text", "source"]).slice(0, 120)
    docs = (tokenize_texts([t[:3000] for t in table.column("text").to_pylist()], smollm2_dir),
            table.column("source").to_pylist())
    short = ModelConfig(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, max_seq_len=32)
    quiet = dict(progress=False, warmup_steps=2, lr=3e-3)
    train(short, TrainConfig(steps=20, **quiet), ParquetTokenStream(documents=docs, batch_size=4, seq_len=32),
          tmp_path / "short")
    long_stream = ParquetTokenStream(documents=docs, batch_size=2, seq_len=128)
    result = extend_context(tmp_path / "short", tmp_path / "long", long_stream, 128, TrainConfig(steps=4, **quiet),
                            scaling="linear")
    saved = json.loads((tmp_path / "long" / "config.json").read_text())["model"]
    assert (saved["max_seq_len"], saved["rope_scaling"], saved["rope_factor"], saved["rope_original_max_len"]) \
        == (128, "linear", 4.0, 32)
    assert len(read_metrics(tmp_path / "long")) == 4 and all(torch.isfinite(torch.tensor(result.losses)))
    # The extended model starts from the short run's weights: its first loss is well below a fresh model's.
    first = next(iter(ParquetTokenStream(documents=docs, batch_size=2, seq_len=128)))
    torch.manual_seed(0)
    fresh = Student(extended_config(short, 128, "linear"))(torch.as_tensor(first.input_ids),
                                                            labels=torch.as_tensor(first.labels)).loss
    assert result.losses[0] < fresh.item() - 1.0
    from students.checkpoint import load_checkpoint
    model = Student(extended_config(short, 128, "linear"))
    load_checkpoint(result.last_checkpoint, model, restore_rng=False)
    held_out = ParquetTokenStream(documents=docs, batch_size=2, seq_len=128, loop=False, seed=7)
    rows = perplexity_by_position(model, [b for _, b in zip(range(3), held_out)], bucket=32)
    assert [(r["start"], r["end"], r["tokens"]) for r in rows] == [(0, 32, 192), (32, 64, 192), (64, 96, 192),
                                                                  (96, 128, 192)]
    assert all(1.0 < r["perplexity"] < 49152 for r in rows)
    with pytest.raises(ConfigError, match="max_seq_len"):
        extended_config(short, 16)


def test_yarn_and_ntk_extensions_build():
    short = ModelConfig(vocab_size=256, d_model=64, n_layers=1, n_heads=4, max_seq_len=32)
    for scaling in ("ntk", "yarn"):
        cfg = extended_config(short, 256, scaling)
        assert cfg.rope_factor == 8.0 and Student(cfg)(torch.zeros(1, 256, dtype=torch.long)).logits.shape[1] == 256
