"""Precision from the CPU's features (operators/hardware.py): the parser, auto on this machine, a real student
trained in fp32 and in bf16 (autocast on the CPU) from the same seed and data, resume across precisions, and
the teacher's vLLM dtype (resolved and part of the response-cache key).

The CPU of the machine running the tests cannot be changed, so the parser tests feed synthetic /proc/cpuinfo
text (flags strings of real CPUs, abridged); everything else uses this machine's real features and real torch.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from operators.hardware import (CpuFeatures, cpu_features, cpu_precision, parse_cpuinfo, parse_flags,
                                precision_dtype_name, resolve_precision)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Abridged flags of three real CPUs (synthetic input: the test machine's own CPU is fixed).
AMX_XEON = ("fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl "
            "avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8")
AVX512_BF16_ONLY = "fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16"  # Cooper Lake
AVX2_EPYC = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 fma sha_ni vaes"                 # Zen 2/3


def cpuinfo(flags: str, model: str) -> str:
    return (f"processor\t: 0\nvendor_id\t: x\nmodel name\t: {model}\nflags\t\t: {flags}\nbugs\t\t: none\n\n"
            f"processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")


# -- (a) the parser ----------------------------------------------------------------------------------------
def test_parser_reads_flags_and_model_and_picks_the_precision():
    xeon = parse_cpuinfo(cpuinfo(AMX_XEON, "Intel(R) Xeon(R) Platinum 8480+"))
    assert xeon == CpuFeatures("Intel(R) Xeon(R) Platinum 8480+", avx2=True, avx512f=True, avx512_bf16=True,
                               amx_bf16=True, amx_tile=True)
    cooper = parse_cpuinfo(cpuinfo(AVX512_BF16_ONLY, "Intel(R) Xeon(R) Gold 6348H"))
    assert cooper.avx512_bf16 and not cooper.amx_bf16 and not cooper.amx_tile
    epyc = parse_cpuinfo(cpuinfo(AVX2_EPYC, "AMD EPYC 7B13"))
    assert epyc.avx2 and not (epyc.avx512f or epyc.avx512_bf16 or epyc.amx_bf16) and epyc.model_name == "AMD EPYC 7B13"
    assert [cpu_precision(f) for f in (xeon, cooper, epyc)] == ["bf16", "bf16", "fp32"]
    # flags are whole words: avx512f alone (no bf16) is fp32, and "amx_bf16x" is not amx_bf16
    assert cpu_precision(parse_flags("avx2 avx512f avx512bw amx_bf16x")) == "fp32"
    assert parse_cpuinfo("") == CpuFeatures()  # no cpuinfo text: nothing assumed


# -- (b) auto on this machine, validation ------------------------------------------------------------------
def test_auto_follows_this_machines_real_features_and_bad_values_name_the_parameter():
    here = cpu_features()
    assert here.model_name  # read from /proc/cpuinfo (or the platform) of this machine
    assert resolve_precision("auto", torch.device("cpu")) == cpu_precision(here)
    assert resolve_precision("auto", "cpu") == cpu_precision(here)
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="train.precision"):
        resolve_precision("fp16", "cpu")
    from students.errors import ConfigError
    from students.train import TrainConfig
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig(precision="half")
    assert precision_dtype_name("bf16") == "bfloat16" and precision_dtype_name("fp32") == "float32"


def test_cli_set_overrides_precision():
    from students.cli import SET_FIELDS, apply_overrides
    from students.train import TrainConfig
    assert "precision" in SET_FIELDS["train"]
    config = apply_overrides({}, ["train.precision=fp32"])
    assert TrainConfig.from_dict(config["train"]).precision == "fp32"


# -- (c) a real student, fp32 vs bf16 ----------------------------------------------------------------------
VOCAB = 256
MODEL = dict(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)


@pytest.fixture(scope="module")
def documents():
    """120 documents from a noisy deterministic chain (next = 7 * prev + 3 mod 256, 10% random): learnable."""
    rng = np.random.default_rng(0)
    docs = []
    for _ in range(120):
        ids = [int(rng.integers(1, VOCAB))]
        for _ in range(80):
            ids.append(int(rng.integers(1, VOCAB)) if rng.random() < 0.1 else (ids[-1] * 7 + 3) % VOCAB or 1)
        docs.append(ids)
    return docs, ["chain"] * len(docs)


def run(documents, folder, precision, steps=20, resume=False):
    from students.data import ParquetTokenStream
    from students.model import ModelConfig
    from students.train import TrainConfig, train
    cfg = TrainConfig(steps=steps, lr=3e-3, warmup_steps=2, checkpoint_every=100, progress=False, seed=0,
                      precision=precision)
    return train(ModelConfig(**MODEL), cfg, ParquetTokenStream(documents=documents, batch_size=4, seq_len=32),
                 folder, resume=resume)


def test_bf16_loss_curve_follows_fp32_and_the_run_records_its_precision(tmp_path, documents):
    from students.train import read_metrics
    curves = {}
    for precision in ("fp32", "bf16"):
        result = run(documents, tmp_path / precision, precision)
        curves[precision] = np.array(result.losses)
        config = json.loads((tmp_path / precision / "config.json").read_text())
        assert config["train"]["precision"] == precision
        assert config["precision"]["requested"] == config["precision"]["resolved"] == precision
        assert config["precision"]["cpu"] == cpu_features().to_dict()
        assert {m["precision"] for m in read_metrics(tmp_path / precision)} == {precision}
    fp32, bf16 = curves["fp32"], curves["bf16"]
    for curve in (fp32, bf16):  # both learn: from ln(256) = 5.55 towards the chain's entropy
        assert curve[-5:].mean() < curve[:5].mean() - 0.5
    relative = np.abs(bf16 - fp32) / fp32
    assert relative.max() > 0  # bf16 really ran (autocast on the CPU): the curves are not bit-identical
    # Measured on an AMD EPYC (AVX2, torch 2.13, 1 thread): max relative difference 1.55e-4 over 20 steps
    # (`.venv/bin/python -m pytest -q tests/test_precision.py -k bf16_loss`). Tolerance about 3x that.
    assert relative.max() < 5e-4, f"bf16 vs fp32 max relative loss difference {relative.max():.2e}"


def test_a_change_of_precision_blocks_resume_and_auto_is_compared_resolved(tmp_path, documents):
    from students.errors import ConfigError
    here = cpu_precision(cpu_features())
    other = "fp32" if here == "bf16" else "bf16"
    run(documents, tmp_path / "a", here, steps=2)
    run(documents, tmp_path / "a", "auto", steps=2, resume=True)  # auto resolves to the same: resumable
    with pytest.raises(ConfigError, match=rf"train\.precision '{here}' -> '{other}'"):
        run(documents, tmp_path / "a", other, steps=2, resume=True)


# -- the teacher's vLLM dtype (no engine is started) -------------------------------------------------------
def test_teacher_dtype_follows_the_cpu_and_is_part_of_the_cache_key(tmp_path):
    from teachers.cache import cache_key
    from teachers.engines import Sampling, Teacher, resolve_dtype
    assert resolve_dtype("auto", features=parse_flags(AVX2_EPYC, "AMD EPYC")) == "float32"
    assert resolve_dtype("auto", features=parse_flags(AMX_XEON, "Xeon")) == "bfloat16"
    assert resolve_dtype("auto", features=parse_flags(AVX512_BF16_ONLY, "Xeon")) == "bfloat16"
    assert resolve_dtype("float32", features=parse_flags(AMX_XEON)) == "float32"  # explicit values win
    assert resolve_dtype("auto", gpu=True) == "bfloat16"
    with pytest.raises(ValueError, match="Teacher.dtype"):
        resolve_dtype("fp8")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="Teacher.dtype"):
        Teacher(model=str(folder), dtype="half-ish")
    auto, fp32, bf16 = (Teacher(model=str(folder), dtype=d) for d in ("auto", "float32", "bfloat16"))
    here = precision_dtype_name(cpu_precision(cpu_features()))
    assert auto.resolved_dtype() == here and auto.identity()["dtype"] == here
    keys = {t.dtype: cache_key(t.identity(), "qa", "v1", "prompt", Sampling().to_dict()) for t in (auto, fp32, bf16)}
    assert keys["float32"] != keys["bfloat16"]  # another dtype, other answers: never the same cache entry
    assert keys["auto"] == keys[here]           # auto is keyed by what it resolved to
