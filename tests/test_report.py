"""``distillery report``: a run folder made by real components (a curation pipeline on Ray, a curriculum
stream training a tiny student, its evaluation) becomes one HTML page that a real headless Chromium renders
with its plots."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE, write_docs
from pipelines.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ray_local, smollm2_dir):
    import torch

    from curricula.source import split_by_source
    from curricula.stream import CurriculumStream
    from operators import BiasMeasure, LanguageID, LengthFilter, MinHashDedup, Normalize
    from pipelines import Pipeline
    from students.evaluate import evaluate_model
    from students.model import ModelConfig
    from students.train import TrainConfig, train

    root = tmp_path_factory.mktemp("flagship-run")
    sample = pq.read_table(SAMPLE).sort_by("id").to_pylist()
    rows = [r for source in ("fortunes", "dictionary", "docs") for r in [r for r in sample if r["source"] == source][:130]]
    rows += [dict(r, id=f"{r['id']}-copy") for r in rows[::4] if len(r["text"].split()) > 30]  # known duplicates
    raw = write_docs(root / "raw", rows, files=2)
    (Pipeline("curate").read_parquet(str(raw)).map(Normalize()).filter(LengthFilter(min_words=5), LanguageID())
     .map(BiasMeasure()).dedup(MinHashDedup()).write_parquet(str(root / "curated")).run())

    domains = [d for d in split_by_source(root / "curated") if d.name in ("fortunes", "dictionary", "docs")]
    stream = CurriculumStream(domains, {"fortunes": 0.5, "dictionary": 0.3, "docs": 0.2}, smollm2_dir,
                              seq_len=32, batch_size=4, log_every=8, log_path=root / "mixture-adherence.jsonl")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model_cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)
        result = train(model_cfg, TrainConfig(steps=8, warmup_steps=2, lr=3e-3, checkpoint_every=100, progress=False),
                       stream, root / "students" / "dense")
        held_out = [batch for _, batch in zip(range(2), iter(stream))]
        (root / "eval.json").write_text(json.dumps([evaluate_model(result.model, held_out, name="dense")], default=str))
    finally:
        torch.set_num_threads(threads)
    return root


def test_report_gathers_every_section(run_dir):
    from pipelines.report import build_report

    report = build_report(run_dir)
    curate = next(p for p in report["pipelines"] if p["pipeline"] == "curate")
    names = [s["name"] for s in curate["stages"]]
    assert names[0] == "read" and names[-1] == "min_hash_dedup"
    # Documents mentioning a female term, counted here with pyarrow from the curated rows the report read.
    curated = pq.read_table(sorted((run_dir / "curated").glob("*.parquet")), columns=["bias_counts"])
    female = sum(1 for counts in curated["bias_counts"].to_pylist() if counts["gender_female"] > 0)
    assert 0 < female < curated.num_rows
    assert curate["bias"]["groups"]["gender"]["categories"]["female"]["documents"] == female
    dedup = curate["stages"][-1]
    assert dedup["rows_rejected"] >= 25 and dedup["cluster_sizes"]  # the planted copies
    assert curate["stages"][0]["rows_in"] == pq.read_table(run_dir / "raw").num_rows
    assert "language_score" in curate["histograms"]
    assert sum(curate["histograms"]["language_score"]["counts"]) == dedup["rows_out"]
    assert len(report["training"]) == 1 and len(report["training"][0]["steps"]) == 8
    assert report["mixtures"] and report["mixtures"][0]["windows"][0]["planned"]
    assert report["evaluation"][0]["name"] == "dense"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_renders_with_its_plots_in_headless_chromium(run_dir, tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--output", str(page)]) == 0
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<h1>Distillery report</h1>" in dom
    assert "<h3>Bias</h3>" in dom and "<td>gender</td><td>female</td>" in dom.replace(" ", "")  # one row per category
    for plot in ("funnel", "clusters", "histogram", "mixture", "loss"):
        assert f'data-plot="{plot}"' in dom, plot
    assert dom.count("<rect") > 10 and dom.count("<path") >= 4
    shot = tmp_path / "shot.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    pixels = Image.open(shot).convert("RGB").getdata()
    blue = sum(1 for r, g, b in pixels if b > 150 and r < 80)  # the bars' colour: the plots were drawn
    assert blue > 2000


def test_report_of_an_empty_folder_says_why(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "r.html")]) == 2
    assert "nothing to report" in capsys.readouterr().err
