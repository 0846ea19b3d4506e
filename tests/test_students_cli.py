"""``distillery students train | eval | export`` end to end on real tokenised text, in-process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from students.data import tokenize_texts, write_token_parquet

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.d_model=64", "--set", "model.n_layers=2", "--set", "model.n_heads=4",
        "--set", "train.progress=false", "--set", "train.warmup_steps=2", "--batch-size", "4", "--seq-len", "32"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def token_files(tmp_path_factory, smollm2_dir):
    table = pq.read_table(REPO / "data" / "sample", columns=["text", "source"]).sort_by("text").slice(0, 200)
    ids = tokenize_texts([t[:1500] for t in table.column("text").to_pylist()], smollm2_dir)
    domains = table.column("source").to_pylist()
    root = tmp_path_factory.mktemp("tokens")
    return (write_token_parquet(root / "train.parquet", ids[:160], domains[:160]),
            write_token_parquet(root / "heldout.parquet", ids[160:], domains[160:]))


def test_train_eval_export(tmp_path, token_files, smollm2_dir, capsys):
    train_file, heldout_file = token_files
    assert main(["students", "train", "--data", str(train_file), "--output", str(tmp_path / "dense"),
                 "--steps", "15", "--lr", "3e-3", *TINY]) == 0
    assert main(["students", "train", "--data", str(train_file), "-o", str(tmp_path / "moe"), "--steps", "15",
                 "--lr", "3e-3", "--set", "model.n_experts=4", "--set", "model.top_k=2", *TINY]) == 0
    capsys.readouterr()
    report = tmp_path / "eval.json"
    assert main(["students", "eval", str(tmp_path / "dense"), str(tmp_path / "moe"), "--data", str(heldout_file),
                 "--seq-len", "64", "--batches", "3", "--passkey-lengths", "64", "--passkey-depths", "0.5",
                 "--passkey-trials", "1", "--throughput", "--peak-tflops", "0.1", "--output", str(report)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| student | params | active |") and "passkey@64" in table
    rows = json.loads(report.read_text())
    assert [r["name"] for r in rows] == ["dense", "moe"]
    assert all(1 < r["perplexity"] < 49152 and r["tokens_per_s"] > 0 for r in rows)
    for r in rows:  # MFU follows from the measured tokens/s: 6 x active params + 12 x layers x width x seq per token
        flops = 6 * r["active_params"] + 12 * 2 * 64 * 64
        assert r["model_tflops"] == pytest.approx(r["tokens_per_s"] * flops / 1e12, rel=1e-9)
        assert r["mfu"] == pytest.approx(r["model_tflops"] / 0.1, rel=1e-9) and r["peak_tflops"] == 0.1
    # The load CV is the per-layer std / mean of the reported expert counts, averaged over layers.
    counts = np.array(rows[1]["expert_counts"], dtype=float)
    assert "expert_load_cv" not in rows[0] and counts.shape == (2, 4)
    assert rows[1]["expert_load_cv"] == pytest.approx((counts.std(axis=1) / counts.mean(axis=1)).mean(), rel=1e-6)
    assert rows[1]["expert_load_cv"] > 0  # 4 experts, 768 routed tokens per layer: never exactly balanced here
    assert sum(sum(layer) for layer in rows[1]["expert_counts"]) == 2 * 2 * 3 * 4 * 64  # layers*k*batches*B*T
    assert main(["students", "eval", str(tmp_path / "dense"), "--data", str(heldout_file), "--seq-len", "64",
                 "--batches", "3", "--json"]) == 0  # --json: the same rows on stdout instead of the table
    printed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in printed] == ["dense"] and printed[0]["perplexity"] == rows[0]["perplexity"]
    assert main(["students", "export", str(tmp_path / "moe"), "--output", str(tmp_path / "hf"),
                 "--tokenizer", str(smollm2_dir)]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["MixtralForCausalLM"]


def test_user_errors_name_the_field(tmp_path, token_files, capsys):
    train_file, _ = token_files
    assert main(["students", "train", "--data", str(train_file), "--output", str(tmp_path / "x"),
                 "--set", "model.n_heads=5", "--set", "model.d_model=64"]) == 2
    assert "n_heads" in capsys.readouterr().err
    assert main(["students", "train", "--data", str(train_file), "--output", str(tmp_path / "x"),
                 "--set", "train.schedul=wsd"]) == 2
    assert "schedul" in capsys.readouterr().err
    assert main(["students", "eval", str(tmp_path / "missing"), "--data", str(train_file)]) == 2
    assert "missing" in capsys.readouterr().err


def test_set_help_names_real_config_fields():
    """``students train --set`` documents its names; each one named must be a real config field."""
    from dataclasses import fields

    from pipelines.cli import _parser
    from students.cli import SET_FIELDS, SET_HELP
    from students.model import ModelConfig
    from students.train import TrainConfig

    assert set(SET_FIELDS["model"]) <= {f.name for f in fields(ModelConfig)}
    assert set(SET_FIELDS["train"]) <= {f.name for f in fields(TrainConfig)}
    assert "model.{d_model,n_layers" in SET_HELP and "data.{path,batch_size,seq_len,seed}" in SET_HELP
    students = _parser()._subparsers._group_actions[0].choices["students"]
    train = students._subparsers._group_actions[0].choices["train"]
    assert next(a for a in train._actions if a.dest == "set").help == SET_HELP
