"""The ``distillery`` CLI: bad input gives one line naming the file, column or parameter; run + inspect."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.conftest import REPO, reference_normalize, sample_rows, write_docs

PIPELINE = """
from operators import ExactDedup, LengthFilter, Normalize
from pipelines import Pipeline
pipeline = (Pipeline("cli").read_parquet({input!r}).map(Normalize())
            .filter(LengthFilter(min_chars={min_chars})).dedup(ExactDedup()).write_parquet({output!r}))
"""


def pipeline_file(tmp_path, input_path, output=None, min_chars=10, name="pipe.py"):
    path = tmp_path / name
    path.write_text(PIPELINE.format(input=str(input_path), output=str(output or tmp_path / "out"), min_chars=min_chars))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_text_column(tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), data / "a.parquet")
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "a.parquet", "column 'text' is missing")


def test_non_string_text(tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": [42]}), data / "a.parquet")
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "a.parquet", "'text' must be a string", "int64")


def test_empty_input_directory(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, tmp_path / "in")))
    assert_one_line_error(code, err, "in", "holds no Parquet files")


def test_corrupt_parquet(tmp_path, capsys):
    data = write_docs(tmp_path / "in", sample_rows(5))
    (data / "broken.parquet").write_bytes(b"PAR1 this is not really parquet")
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "broken.parquet", "not a readable Parquet file")


def test_non_parquet_file_among_inputs(tmp_path, capsys):
    data = write_docs(tmp_path / "in", sample_rows(5))
    (data / "notes.csv").write_text("id,text\n")
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "notes.csv", "not a Parquet file")


def test_input_path_that_does_not_exist(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, tmp_path / "nowhere")))
    assert_one_line_error(code, err, "nowhere", "no such file or directory")


def test_schema_that_differs_between_files(tmp_path, capsys):
    data = write_docs(tmp_path / "in", sample_rows(5))
    pq.write_table(pa.table({"id": ["z"], "text": ["x"], "lang": ["en"]}), data / "zz.parquet")
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "zz.parquet", "schema differs", "missing 'source'", "extra 'lang'")


def test_pipeline_file_with_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("from pipelines import Pipeline\npipeline = Pipeline('x'\n")
    code, _, err = run_cli(capsys, "run", str(bad))
    assert_one_line_error(code, err, "bad.py:2", "syntax error")


def test_pipeline_file_with_a_bad_operator_parameter(tmp_path, capsys):
    data = write_docs(tmp_path / "in", sample_rows(5))
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data, min_chars=-5)))
    assert_one_line_error(code, err, "pipe.py", "LengthFilter.min_chars", "-5")


def test_missing_pipeline_file_and_output_that_is_not_ours(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "absent.py"))
    assert_one_line_error(code, err, "absent.py", "no such pipeline file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    data = write_docs(tmp_path / "in", sample_rows(5))
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)), "--output", str(foreign))
    assert_one_line_error(code, err, "foreign", "not a Distillery output")
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_console_script_hides_the_traceback_unless_debug(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("pipeline = (\n")
    exe = [sys.executable, "-m", "pipelines.cli"]
    quiet = subprocess.run([*exe, "run", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr and "bad.py:1" in quiet.stderr
    loud = subprocess.run([*exe, "--debug", "run", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert loud.returncode == 2 and "Traceback" in loud.stderr


@pytest.mark.usefixtures("ray_local")
def test_run_then_inspect_reports_the_right_counts(tmp_path, capsys):
    rows = sample_rows(40)
    rows += [dict(rows[0], id="zz-dup"), {"id": "zz-short", "text": "tiny", "source": "x"},
             {"id": "zz-null", "text": None, "source": "x"}]
    data = write_docs(tmp_path / "in", rows, files=2)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data, output=out, min_chars=5)))
    assert code == 0, err
    assert "43 rows in" in stdout and str(out) in stdout

    code, stdout, _ = run_cli(capsys, "inspect", str(out), "--json")
    report = json.loads(stdout)
    kept = pq.read_table(out).num_rows
    assert report["rows"] == kept == report["manifest"]["output"]["rows"]
    assert len({r["text"] for r in rows[:40]}) == 40 and min(len(r["text"]) for r in rows[:40]) >= 5
    assert kept == 40  # the 40 distinct real documents; the copy, the short and the null text are rejected
    assert [s["name"] for s in report["stages"]] == ["read", "normalize", "length_filter", "exact_dedup"]
    rejected = {(r["stage"], r["reason"]): r["rows"] for r in report["rejected"]}
    assert rejected[("read", "text is null")] == 1
    assert rejected[("length_filter", "shorter than 5 characters")] == 1
    assert rejected[("exact_dedup", "duplicate")] == 1
    assert sum(rejected.values()) == 3
    assert report["schema"] == {"id": "String", "text": "String", "source": "String"}

    code, stdout, _ = run_cli(capsys, "inspect", str(out))
    assert code == 0 and f"{kept:,} rows" in stdout and "accounting: balanced" in stdout


def test_repeated_ids_are_an_error_naming_them(tmp_path, capsys):
    rows = sample_rows(6)
    data = write_docs(tmp_path / "in", rows + [dict(rows[2], text="another text")], files=2)
    code, _, err = run_cli(capsys, "run", str(pipeline_file(tmp_path, data)))
    assert_one_line_error(code, err, "column 'id' must be unique", f"{rows[2]['id']!r} (2x)")


@pytest.mark.usefixtures("ray_local")
def test_filter_command_runs_named_operators_with_settings(tmp_path, capsys):
    rows = sample_rows(30)
    data = write_docs(tmp_path / "in", rows + [dict(rows[3], id="zz-dup")], files=2)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "filter", str(data), str(out), "--ops", "normalize,length_filter,exact_dedup",
                                "--set", "length_filter.min_chars=300")
    assert code == 0, err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["read", "normalize", "length_filter", "exact_dedup"]
    assert manifest["stages"][2]["config"]["min_chars"] == 300
    long_rows = [r for r in rows if len(reference_normalize(r["text"])) >= 300]
    assert pq.read_table(out).num_rows == manifest["output"]["rows"] == len(long_rows)

    code, _, err = run_cli(capsys, "filter", str(data), str(tmp_path / "o2"), "--ops", "length_filter",
                           "--set", "length_filter.max_chars=oops")
    assert_one_line_error(code, err, "LengthFilter.max_chars")
    code, _, err = run_cli(capsys, "filter", str(data), str(tmp_path / "o3"), "--ops", "no_such_op")
    assert_one_line_error(code, err, "unknown operator 'no_such_op'", "length_filter")


def test_classifier_train_command_writes_a_model_and_report(tmp_path, capsys):
    table = pq.read_table(REPO / "data" / "sample")
    rows = [dict(r, label=r["source"]) for r in table.to_pylist() if r["source"] in ("manpages", "fortunes")]
    data = tmp_path / "labelled.parquet"
    pq.write_table(pa.Table.from_pylist(rows[::3]), data)
    model = tmp_path / "model.bin"
    code, stdout, err = run_cli(capsys, "classifier", "train", "--input", str(data), "--output", str(model),
                                "--label-column", "label", "--seed", "7", "--thread", "1", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert model.exists() and json.loads((tmp_path / "model.bin.report.json").read_text()) == report
    code, _, err = run_cli(capsys, "classifier", "train", "--input", str(data), "--output", str(model),
                           "--label-column", "nope")
    assert_one_line_error(code, err, "nope")


def test_bias_report_command(tmp_path, capsys):
    from operators import BiasMeasure

    table = pa.table({"id": ["a", "b", "c"], "text": ["She met her sister.", "He and his father left.", "No people."]})
    pq.write_table(BiasMeasure()(table), tmp_path / "part-0.parquet")
    code, stdout, err = run_cli(capsys, "bias-report", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(stdout) and "female" in stdout and "male" in stdout
    code, stdout, _ = run_cli(capsys, "bias-report", str(tmp_path))
    assert code == 0 and "female" in stdout


@pytest.mark.usefixtures("ray_local")
def test_filter_command_with_the_published_quality_rules(tmp_path, capsys):
    data = write_docs(tmp_path / "in", sample_rows(60), files=2)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "filter", str(data), str(out), "--ops", "gopher_quality,gopher_repetition,c4,fineweb")
    assert code == 0, err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["read", "gopher_quality", "gopher_repetition", "c4_quality",
                                                       "fine_web_quality"]
    rejected = pq.read_table(out / "_rejected")
    assert pq.read_table(out).num_rows + rejected.num_rows == 60
    assert all(r.split(":")[0] in ("gopher", "gopher_repetition", "c4", "fineweb") or r for r in rejected["reason"].to_pylist())
