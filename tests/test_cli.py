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
from tests.test_jobs import ray_head  # noqa: F401  (the loopback Ray head fixture)

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
    code, stdout, err = run_cli(capsys, "filter", str(data), "--output", str(out), "--ops", "normalize,length_filter,exact_dedup",
                                "--set", "length_filter.min_chars=300")
    assert code == 0, err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["read", "normalize", "length_filter", "exact_dedup"]
    assert manifest["stages"][2]["config"]["min_chars"] == 300
    long_rows = [r for r in rows if len(reference_normalize(r["text"])) >= 300]
    assert pq.read_table(out).num_rows == manifest["output"]["rows"] == len(long_rows)

    code, _, err = run_cli(capsys, "filter", str(data), "-o", str(tmp_path / "o2"), "--ops", "length_filter",
                           "--set", "length_filter.max_chars=oops")
    assert_one_line_error(code, err, "LengthFilter.max_chars")
    code, _, err = run_cli(capsys, "filter", str(data), "-o", str(tmp_path / "o3"), "--ops", "no_such_op")
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
    code, _, err = run_cli(capsys, "filter", str(data), "-o", str(out), "--ops", "gopher_quality,gopher_repetition,c4,fineweb")
    assert code == 0, err
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["read", "gopher_quality", "gopher_repetition", "c4_quality",
                                                       "fine_web_quality"]
    rejected = pq.read_table(out / "_rejected")
    assert pq.read_table(out).num_rows + rejected.num_rows == 60
    assert all(r.split(":")[0] in ("gopher", "gopher_repetition", "c4", "fineweb") or r for r in rejected["reason"].to_pylist())


# --- one CLI convention (issue 17, item 7) ---------------------------------------------------------------

WRITES = {"run", "submit", "filter", "dedup", "report", "classifier train", "students train", "students eval",
          "students export", "teachers prepare-smollm2"}


def command_parsers():
    """Every (sub-)command's parser, by its path (``"students eval"``), from the real argparse tree."""
    import argparse

    from pipelines.cli import _parser

    found, todo = {}, [("", _parser())]
    while todo:
        path, parser = todo.pop()
        found[path] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{path} {name}".strip(), sub) for name, sub in action.choices.items()]
    return found


def test_every_command_spells_output_json_and_debug_one_way():
    import argparse

    parsers = command_parsers()
    assert {"run", "filter", "dedup", "inspect", "report", "students train", "teachers diversity",
            "curricula preview"} <= set(parsers)
    writers = set()
    for path, parser in parsers.items():
        for action in parser._actions:
            assert action.dest not in ("out", "html", "output_dir", "dest") or not action.option_strings, (path, action)
            assert not (set(action.option_strings) & {"--out", "--html", "--output-dir", "--dest"}), (path, action)
            if action.dest == "output":
                assert action.option_strings == ["-o", "--output"], (path, action.option_strings)
                writers.add(path)
            if "--json" in action.option_strings:
                assert isinstance(action, argparse._StoreTrueAction), f"{path}: --json must be a switch"
            if action.dest == "set":
                assert action.help and len(action.help) > 60, f"{path}: --set must say which names it takes"
        assert "--debug" in parser._option_string_actions, f"{path}: no --debug"
    assert writers == WRITES
    assert all(not a.option_strings and a.dest in ("input", "path", "pipeline", "run_dir", "before", "after",
                                                      "runs", "run", "mixture", "action", "job_id")
               for p in parsers.values() for a in p._actions
               if not a.option_strings and not isinstance(a, argparse._SubParsersAction))
    helps = {path: next(a.help for a in parsers[path]._actions if a.dest == "set")
             for path in ("run", "submit", "filter", "students train")}
    assert "workflow" in helps["run"] and "size=full" in helps["run"] and "workflow" in helps["submit"]
    assert "OP is its --ops name" in helps["filter"] and "model.{d_model" in helps["students train"]


def test_debug_is_accepted_before_and_after_any_command(tmp_path, capsys):
    from pipelines.cli import _parser

    parse = _parser().parse_args
    assert parse(["--debug", "inspect", "x"]).debug is True
    assert parse(["inspect", "x", "--debug"]).debug is True
    assert parse(["inspect", "x"]).debug is False
    assert parse(["students", "eval", "r", "--data", "d", "--debug"]).debug is True
    assert parse(["--debug", "students", "eval", "r", "--data", "d"]).debug is True  # not reset by the sub-level
    bad = tmp_path / "bad.py"
    bad.write_text("pipeline = (\n")
    for argv in (["run", str(bad), "--debug"], ["curricula", "preview", str(tmp_path / "none.yaml"), "--debug"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: "), err
    assert main(["curricula", "preview", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: mixture: no such file {str(tmp_path / 'none.yaml')!r}"


def test_submit_timeout_needs_wait_and_a_positive_number(capsys):
    # Checked before anything is submitted: the address below is never contacted.
    code, _, err = run_cli(capsys, "submit", "pipelines/quickstart.py", "--address", "http://127.0.0.1:9",
                           "--timeout", "5")
    assert_one_line_error(code, err, "--timeout 5", "with --wait")
    code, _, err = run_cli(capsys, "submit", "pipelines/quickstart.py", "--address", "http://127.0.0.1:9",
                           "--wait", "--timeout", "0")
    assert_one_line_error(code, err, "--timeout 0", "positive number of seconds")


WORKFLOW = """
def workflow(output=None, address=None, resume=False, num_cpus=None, size="small"):
    folder = output or "out/tiny-default"
    return {{"output": folder, "seconds": {{"first": 0.1, "second": 0.2, "size-" + size: 0.0}}}}
"""


def test_a_workflow_run_ends_with_a_summary_line(tmp_path, capsys):
    import re

    tiny = tmp_path / "tiny_flow.py"
    tiny.write_text(WORKFLOW.format())
    code, stdout, err = run_cli(capsys, "run", str(tiny), "-o", str(tmp_path / "o"), "--set", "size=full")
    assert code == 0, err
    assert re.fullmatch(rf"workflow 'tiny_flow': 3 steps in \d+\.\d s, output {re.escape(str(tmp_path / 'o'))}",
                        stdout.strip().splitlines()[-1]), stdout
    code, stdout, _ = run_cli(capsys, "run", str(tiny))
    assert code == 0 and stdout.strip().endswith(", output out/tiny-default"), stdout
    (tmp_path / "none_flow.py").write_text("def workflow(output=None, address=None, resume=False, num_cpus=None):\n"
                                           "    print('did it')\n")
    code, stdout, _ = run_cli(capsys, "run", str(tmp_path / "none_flow.py"))
    assert code == 0 and re.fullmatch(r"did it\nworkflow 'none_flow': in \d+\.\d s, output \(the workflow's default\)",
                                      stdout.strip()), stdout


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_dedup_reference_removes_near_duplicates_of_an_earlier_dump(tmp_path, capsys):
    from tests.test_minhash import edit_words

    rows = [r for r in sample_rows(400) if len(r["text"].split()) >= 100][:12]
    first = write_docs(tmp_path / "dump1", rows[:8], files=2)
    planted = [{"id": f"new-{k}", "text": edit_words(r["text"], 0.01, k), "source": "x"} for k, r in enumerate(rows[:3])]
    second = write_docs(tmp_path / "dump2", rows[8:] + planted, files=2)
    code, stdout, err = run_cli(capsys, "dedup", str(first), "-o", str(tmp_path / "out1"))
    assert code == 0 and "8 rows in -> 8 kept, 0 rejected" in stdout, err

    code, stdout, err = run_cli(capsys, "dedup", str(second), "-o", str(tmp_path / "out2"),
                                "--reference", str(tmp_path / "out1"))
    assert code == 0, err
    assert "7 rows in -> 4 kept, 3 rejected" in stdout and "duplicates of reference 3" in stdout, stdout
    assert sorted(pq.read_table(tmp_path / "out2")["id"].to_pylist()) == sorted(r["id"] for r in rows[8:])
    rejected = pq.read_table(tmp_path / "out2" / "_rejected").to_pydict()
    assert dict(zip(rejected["id"], rejected["detail"])) == {
        f"new-{k}": f"near-duplicate of {rows[k]['id']} in {tmp_path / 'out1'}" for k in range(3)}

    code, _, err = run_cli(capsys, "dedup", str(second), "-o", str(tmp_path / "out3"),
                           "--reference", str(tmp_path / "out1"), "--num-perm", "64")
    assert_one_line_error(code, err, "MinHashDedup.reference", str(tmp_path / "out1"), "was indexed with")
    code, _, err = run_cli(capsys, "dedup", str(second), "-o", str(tmp_path / "out3"), "--reference", str(first))
    assert_one_line_error(code, err, "MinHashDedup.reference", str(first), "holds no MinHash index")


@pytest.mark.slow
def test_submit_wait_timeout_leaves_the_job_running(ray_head, capsys):
    """A real job on the loopback head (tests/test_jobs.py's fixture) that outlasts ``--timeout 3``."""
    import uuid

    from pipelines import jobs

    jobs_dir = REPO / "tests" / "_jobs"
    jobs_dir.mkdir(exist_ok=True)
    pipeline = jobs_dir / f"sleepy_{uuid.uuid4().hex[:8]}.py"
    pipeline.write_text("import time\ntime.sleep(300)\n")
    job_id = None
    try:
        code = main(["submit", str(pipeline), "--address", ray_head, "--wait", "--timeout", "3"])
        captured = capsys.readouterr()
        job_id = captured.out.split()[2]
        assert code == 124, captured
        assert captured.err.strip() == (f"error: job {job_id}: still running after 3 s (--timeout); left running: "
                                        f"distillery jobs status|logs|stop {job_id} --address {ray_head}")
        assert jobs.status(ray_head, job_id) in ("PENDING", "RUNNING")
    finally:
        if job_id:
            jobs.stop(ray_head, job_id)
        pipeline.unlink()


def test_diversity_prints_text_unless_json(tmp_path, capsys):
    pq.write_table(pa.table({"id": ["1", "2"], "text": ["a b c", "a b d"]}), tmp_path / "x.parquet")
    code, stdout, err = run_cli(capsys, "teachers", "diversity", str(tmp_path))
    assert code == 0, err
    assert "mean_pairwise_rouge_l  0.6667" in stdout.splitlines() and "texts                  2" in stdout
    code, stdout, _ = run_cli(capsys, "teachers", "diversity", str(tmp_path), "--json", "--debug")
    assert code == 0 and json.loads(stdout)["mean_pairwise_rouge_l"] == round(2 / 3, 4)
