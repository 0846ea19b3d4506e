"""Export a student to a Hugging Face folder: ``LlamaForCausalLM`` (dense) or ``MixtralForCausalLM`` (MoE)
config.json + model.safetensors + SmolLM2's tokenizer, loadable by transformers and servable by vLLM.

Weights are renamed to the Hugging Face layout (Mixtral experts in the classic per-expert w1/w2/w3 layout that
both transformers and vLLM read). RoPE scalings map to transformers' ``rope_parameters``: linear -> linear,
yarn -> yarn (same formula), NTK-aware -> default RoPE with the NTK-scaled theta (an exact equivalent;
transformers' "dynamic" NTK is a different, length-dependent method). ALiBi has no Llama equivalent and is
refused; a capacity factor is recorded but not enforced by transformers/vLLM (they never drop tokens).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from operators.fileio import staged_folder
from students.model import ConfigError, ModelConfig, Student
from students.rope import ntk_theta

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "chat_template.jinja", "added_tokens.json")


def rope_parameters(cfg: ModelConfig) -> dict:
    """transformers' ``rope_parameters`` equivalent to the student's RoPE."""
    if cfg.alibi:
        raise ConfigError("alibi: a model with ALiBi biases has no LlamaForCausalLM equivalent")
    if cfg.rope_scaling == "none" or cfg.rope_factor == 1.0:
        return {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling == "linear":
        return {"rope_type": "linear", "rope_theta": cfg.rope_theta, "factor": cfg.rope_factor}
    if cfg.rope_scaling == "ntk":
        return {"rope_type": "default", "rope_theta": ntk_theta(cfg.rope_theta, cfg.rope_factor, cfg.head_dim)}
    return {"rope_type": "yarn", "rope_theta": cfg.rope_theta, "factor": cfg.rope_factor,
            "original_max_position_embeddings": cfg.rope_original_max_len or cfg.max_seq_len}


def hf_config(cfg: ModelConfig, bos_token_id: int | None = 1, eos_token_id: int | None = 2):
    """The transformers config object (LlamaConfig or MixtralConfig) for ``cfg``."""
    from transformers import LlamaConfig, MixtralConfig

    common = dict(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_hidden,
                  num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                  num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, hidden_act="silu",
                  max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
                  tie_word_embeddings=cfg.tie_embeddings, rope_parameters=rope_parameters(cfg),
                  bos_token_id=bos_token_id, eos_token_id=eos_token_id, initializer_range=cfg.init_std)
    if cfg.is_moe:
        return MixtralConfig(num_local_experts=cfg.n_experts, num_experts_per_tok=cfg.top_k,
                             router_aux_loss_coef=cfg.aux_loss_coef, sliding_window=None, **common)
    return LlamaConfig(attention_bias=False, mlp_bias=False, **common)


def hf_state_dict(model: Student) -> dict[str, torch.Tensor]:
    """Our parameters under Hugging Face names."""
    cfg, out = model.cfg, {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = model.lm_head.weight
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = block.attn_norm.weight
        out[p + "post_attention_layernorm.weight"] = block.mlp_norm.weight
        q, k, v = block.attn.qkv_proj.weight.split(block.attn.qkv_sizes)
        for name, weight in (("q_proj", q), ("k_proj", k), ("v_proj", v), ("o_proj", block.attn.o_proj.weight)):
            out[p + f"self_attn.{name}.weight"] = weight
        if cfg.is_moe:
            moe = block.mlp
            out[p + "block_sparse_moe.gate.weight"] = moe.router.weight
            for e in range(cfg.n_experts):
                for w in ("w1", "w2", "w3"):
                    out[p + f"block_sparse_moe.experts.{e}.{w}.weight"] = getattr(moe, w)[e]
        else:
            gate, up = block.mlp.gate_up_proj.weight.chunk(2)
            for name, weight in (("gate_proj", gate), ("up_proj", up), ("down_proj", block.mlp.down_proj.weight)):
                out[p + f"mlp.{name}.weight"] = weight
    return out


def export_hf(model: Student, out: str | Path, tokenizer_dir: str | Path | None = None,
              dtype: str = "float32") -> Path:
    """Write the Hugging Face folder to ``out`` (atomically) and return it. ``tokenizer_dir`` defaults to the
    prepared SmolLM2 folder (the students' shared tokenizer)."""
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, not {dtype!r}")
    if tokenizer_dir is None:
        from teachers.smollm2 import smollm2_dir
        tokenizer_dir = smollm2_dir()
    tokenizer_dir = Path(tokenizer_dir)
    bos, eos = _special_ids(tokenizer_dir)
    config = hf_config(model.cfg, bos, eos)
    config.architectures = ["MixtralForCausalLM" if model.cfg.is_moe else "LlamaForCausalLM"]
    config.dtype = dtype
    out = Path(out)
    with staged_folder(out) as staging:
        config.save_pretrained(staging)
        tensors = {k: v.detach().to("cpu", getattr(torch, dtype)).contiguous().clone()
                   for k, v in hf_state_dict(model).items()}
        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy2(tokenizer_dir / name, staging / name)
        if (tokenizer_dir / "generation_config.json").is_file():
            shutil.copy2(tokenizer_dir / "generation_config.json", staging / "generation_config.json")
        (staging / "distillery_student.json").write_text(json.dumps(
            {"model": model.cfg.to_dict(), "tokenizer": str(tokenizer_dir),
             "note": "capacity_factor is not applied by transformers or vLLM" if model.cfg.capacity_factor else ""},
            indent=2))
    return out


def _special_ids(tokenizer_dir: Path) -> tuple[int | None, int | None]:
    config = tokenizer_dir / "config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        eos = values.get("eos_token_id")
        return values.get("bos_token_id"), eos[0] if isinstance(eos, list) else eos
    return 1, 2


def student_from_hf(folder: str | Path) -> Student:
    """The inverse of ``export_hf``: a Llama or Mixtral Hugging Face folder (default or linear RoPE) as a
    Student in fp32, e.g. SmolLM2 itself for evaluation, or a student exported earlier."""
    from safetensors.torch import load_file

    folder = Path(folder)
    c = json.loads((folder / "config.json").read_text())
    rope = c.get("rope_parameters") or {"rope_type": "default", "rope_theta": c.get("rope_theta", 10000.0)}
    kind = rope.get("rope_type", "default")
    if kind not in ("default", "linear", "yarn"):
        raise ConfigError(f"rope_parameters: rope_type {kind!r} is not supported")
    cfg = ModelConfig(vocab_size=c["vocab_size"], d_model=c["hidden_size"], n_layers=c["num_hidden_layers"],
                      n_heads=c["num_attention_heads"], n_kv_heads=c.get("num_key_value_heads"),
                      ffn_hidden=c["intermediate_size"], max_seq_len=c.get("max_position_embeddings", 2048),
                      rope_theta=rope["rope_theta"], rope_scaling="none" if kind == "default" else kind,
                      rope_factor=rope.get("factor", 1.0),
                      rope_original_max_len=rope.get("original_max_position_embeddings"),
                      tie_embeddings=c.get("tie_word_embeddings", False), norm_eps=c["rms_norm_eps"],
                      n_experts=c.get("num_local_experts", 0) if "num_local_experts" in c else 0,
                      top_k=c.get("num_experts_per_tok", 2))
    if c.get("head_dim") not in (None, cfg.head_dim):
        raise ConfigError(f"head_dim: {c['head_dim']} differs from hidden_size / num_attention_heads")
    model = Student(cfg)
    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(path)))
    names = hf_state_dict(model)
    with torch.no_grad():
        for name, param in names.items():
            if name not in tensors:
                raise ConfigError(f"{folder}: weight {name} is missing")
            param.copy_(tensors[name].float())
    return model.eval()
