"""``distillery curricula preview`` and the YAML/Python spec loader, on the bundled sample."""
from __future__ import annotations

import json

import pytest

from curricula import CurriculumConfigError
from curricula.config import stream_from_spec
from pipelines.cli import main
from tests.conftest import SAMPLE


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_preview_prints_planned_vs_realised(tmp_path, capsys, smollm2_dir):
    spec = write(tmp_path, "mix.yaml", f"""
tokenizer: {smollm2_dir}
seq_len: 16
batch_size: 50
domains: {{split_by_source: {SAMPLE}}}
schedule: {{type: cosine, start: {{docs: 1}}, end: {{fortunes: 3, dictionary: 1}}, total_tokens: 32000}}
""")
    assert main(["curricula", "preview", str(spec), "--sequences", "3000", "--json"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["sequences"] for r in records] == [1000, 2000, 3000]
    assert records[0]["realised"]["docs"] > 0.4 and records[2]["planned"] == {
        "dictionary": 0.25, "docs": 0.0, "fortunes": 0.75, "licenses": 0.0, "manpages": 0.0}
    assert all(r["max_abs_error"] <= 0.02 for r in records)


def test_preview_of_a_python_file(tmp_path, capsys, smollm2_dir):
    script = write(tmp_path, "mix.py", f"""
from curricula import CurriculumStream, Temperature, split_by_source
stream = CurriculumStream(split_by_source({str(SAMPLE)!r}), Temperature(1.0), {str(smollm2_dir)!r}, seq_len=16,
                          batch_size=100)
""")
    assert main(["curricula", "preview", str(script), "--sequences", "1000"]) == 0
    out = capsys.readouterr().out
    assert "temperature" in out and "worst |error|" in out


@pytest.mark.parametrize("body, message", [
    ("domains: {split_by_source: SAMPLE}\nschedule: {type: constant, weights: {poetry: 1}}",
     "schedule.mixture.weights['poetry']: unknown domain"),
    ("domains: {split_by_source: SAMPLE}\nschedule: {type: constant, weights: {docs: 0}}",
     "Mixture.weights: must sum to a positive total"),
    ("domains: {split_by_source: SAMPLE}\nseq_len: 1\nschedule: {type: constant, weights: {docs: 1}}",
     "seq_len: must be an integer >= 2"),
    ("domains: [{name: web, path: EMPTY}]\nschedule: {type: constant, weights: {web: 1}}",
     "domains['web'].path: empty source"),
    ("domains: {split_by_source: SAMPLE}\nschedule: {type: cosine, start: {docs: 1}}", "schedule.end: required"),
    ("domains: {split_by_source: SAMPLE}\nschedule: {type: zigzag}", "schedule.type: must be one of"),
    ("domain: {split_by_source: SAMPLE}\nschedule: {type: constant}", "domain: unknown key"),
])
def test_configuration_errors_exit_2_naming_the_field(tmp_path, capsys, smollm2_dir, body, message):
    (tmp_path / "empty").mkdir()
    body = body.replace("SAMPLE", str(SAMPLE)).replace("EMPTY", str(tmp_path / "empty"))
    spec = write(tmp_path, "bad.yaml", f"tokenizer: {smollm2_dir}\n{body}\n")
    assert main(["curricula", "preview", str(spec)]) == 2
    assert message in capsys.readouterr().err


def test_spec_requires_domains_and_schedule():
    with pytest.raises(CurriculumConfigError, match="^domains: required"):
        stream_from_spec({"schedule": {"type": "constant", "weights": {"a": 1}}})
