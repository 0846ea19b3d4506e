"""Export to a Hugging Face folder: transformers loads it and its fp32 logits match ours within 1e-4."""
from __future__ import annotations

import json
import os

import pytest
import torch

from students.errors import ConfigError
from students.export import export_hf
from students.model import ModelConfig, Student

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BASE = dict(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128, init_std=0.1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.mark.parametrize("variant, values", [
    ("dense", {}),
    ("dense-untied", dict(tie_embeddings=False, n_kv_heads=4)),
    ("moe", dict(n_experts=4, top_k=2)),
    ("linear", dict(rope_scaling="linear", rope_factor=4.0)),
    ("ntk", dict(rope_scaling="ntk", rope_factor=4.0)),
    ("yarn", dict(rope_scaling="yarn", rope_factor=4.0, rope_original_max_len=32)),
])
def test_transformers_logits_match(tmp_path, smollm2_dir, variant, values):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = ModelConfig(**{**BASE, **values})
    model = Student(cfg).eval()
    folder = export_hf(model, tmp_path / variant, tokenizer_dir=smollm2_dir)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(hf).__name__ == ("MixtralForCausalLM" if cfg.is_moe else "LlamaForCausalLM")
    x = torch.randint(0, cfg.vocab_size, (2, 120))
    with torch.no_grad():
        ours, theirs = model(x).logits, hf(x).logits
    assert (ours - theirs).abs().max() < 1e-4
    if cfg.rope_scaling != "none":  # the scaling matters at these positions: ignoring it would fail above
        plain = Student(ModelConfig(**{**BASE, **{k: v for k, v in values.items() if not k.startswith("rope")}}))
        plain.load_state_dict(model.state_dict())
        with torch.no_grad():
            assert (plain.eval()(x).logits - ours).abs().max() > 1e-3


def test_exported_tokenizer_is_smollm2s(tmp_path, smollm2_dir):
    from transformers import AutoTokenizer

    folder = export_hf(Student(ModelConfig(**BASE)), tmp_path / "tok", tokenizer_dir=smollm2_dir)
    ours, reference = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(smollm2_dir)
    text = "Distillery trains small students from curated text."
    assert ours(text)["input_ids"] == reference(text)["input_ids"]
    assert json.loads((folder / "distillery_student.json").read_text())["model"]["d_model"] == 64


def test_alibi_export_is_refused(tmp_path, smollm2_dir):
    with pytest.raises(ConfigError, match="alibi"):
        export_hf(Student(ModelConfig(**BASE, alibi=True)), tmp_path / "a", tokenizer_dir=smollm2_dir)
