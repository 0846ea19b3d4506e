"""Hostile input through the whole operator suite on a real Ray run: nothing crashes, nothing is lost.

Invalid UTF-8, control characters, a 1 MB line, empty and whitespace-only documents, and non-English text
under English rules each end as kept or rejected-with-a-reason rows; a missing model file is a one-line
error naming the parameter and the path.

Bad input files through the CLI (``run``, ``filter``, ``dedup``, ``inspect``, ``inspect --json``): zero-byte,
truncated and non-Parquet files among valid ones, and non-regular files (FIFO, socket, character devices)
in a directory, by glob or given directly, each end in exit 2 and one ``error:`` line naming the file,
before Ray starts and without opening the FIFO (which would block). Each class runs its commands in
one subprocess (``pipelines.cli.main``, the console script's entry point) with a timeout and a
``faulthandler`` watchdog, so a hang fails the test and shows where it blocked. Also: malformed ``--ops``
lists, and data carrying ANSI escapes and control characters printed for people (escaped) and as JSON.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators import (C4Quality, ExactDedup, FastTextScore, FineWebQuality, GopherQuality, GopherRepetition,
                       LanguageID, LengthFilter, Normalize, ParameterError, RedactPII, Toxicity)
from pipelines import Pipeline
from operators.registry import parse_ops
from tests.conftest import REPO, sample_rows, write_docs


def hostile_table() -> pa.Table:
    real = sample_rows(12)
    texts = [r["text"] for r in real] + [
        "control\x00chars\x07 and a bell\x1b[31m in red, with enough words to be a document of some length",
        "x" * 1_000_000,                                    # one line of 1 MB
        "",                                                  # empty
        " \n\t ",                                            # whitespace only
        "Der schnelle braune Fuchs springt über den faulen Hund, und die Katze schläft auf dem Sofa.",
        None,                                                # null
    ]
    ids = [r["id"] for r in real] + ["zz-control", "zz-long", "zz-empty", "zz-space", "zz-german", "zz-null"]
    data = "".join(t or "" for t in texts).encode() + b"bad \xff\xfe bytes in an otherwise fine document"
    offsets, position = [0], 0
    for t in texts:
        position += len((t or "").encode())
        offsets.append(position)
    offsets.append(len(data))
    validity = pa.array([t is not None for t in texts] + [True]).buffers()[1]
    text = pa.StringArray.from_buffers(len(texts) + 1, pa.array(offsets, pa.int32()).buffers()[1], pa.py_buffer(data),
                                       null_bitmap=validity, null_count=1)
    return pa.table({"id": ids + ["zz-invalid-utf8"], "text": text})


@pytest.mark.usefixtures("ray_local")
def test_hostile_documents_through_the_operator_suite(tmp_path):
    table = hostile_table()
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out"
    manifest = (Pipeline("hostile").read_parquet(str(tmp_path / "in.parquet"))
                .map(Normalize()).map(RedactPII()).filter(LanguageID(languages=("en",)), Toxicity(), LengthFilter(min_chars=20))
                .filter(GopherQuality(), GopherRepetition(), C4Quality(), FineWebQuality())
                .dedup(ExactDedup()).run(output=str(out)))
    assert manifest["accounting"]["balanced"] and manifest["input"]["rows"] == 19
    rejected = pq.read_table(out / "_rejected")
    reasons = dict(zip(rejected["id"].to_pylist(), rejected["reason"].to_pylist()))
    assert reasons["zz-null"] == "text is null"
    assert reasons["zz-empty"] == reasons["zz-space"] == "text is empty"
    assert reasons["zz-invalid-utf8"] == "text is not valid UTF-8"
    assert reasons["zz-german"] == "language not allowed"
    output = pq.read_table(out)  # may hold no rows: the quality rules reject these short dictionary entries
    kept = set(output["id"].to_pylist()) if output.num_columns else set()
    assert len(kept) + rejected.num_rows == 19
    assert "zz-long" in kept or "zz-long" in reasons  # the 1 MB line went through every operator
    assert "zz-control" in kept or "zz-control" in reasons


@pytest.mark.parametrize("make, field", [
    (lambda p: LanguageID(model_path=p), "LanguageID.model_path"),
    (lambda p: FastTextScore(model_path=p, label="hq"), "FastTextScore.model_path"),
    (lambda p: Toxicity(model_path=p), "Toxicity.model_path"),
])
def test_missing_model_files_name_the_parameter_and_path(tmp_path, make, field):
    missing = str(tmp_path / "no-such-model.bin")
    with pytest.raises(ParameterError, match=rf"{field}.*no-such-model\.bin"):
        make(missing)


# --- bad input files through the CLI -------------------------------------------------------------------------

DRIVER = r"""
import contextlib, faulthandler, io, json, sys
faulthandler.dump_traceback_later(45, exit=True)  # a blocked open() shows its traceback and fails
import curricula.ray_session as session
from pipelines.cli import main
sessions = []  # a spy, not a mock: every Ray the CLI starts or joins goes through connect (ray_session's too)
real_connect = session.connect
session.connect = lambda *args, **kwargs: sessions.append(args) or real_connect(*args, **kwargs)
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results.append({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "ray_started": bool(sessions) or ("ray" in sys.modules and sys.modules["ray"].is_initialized())})
print(json.dumps(results))
"""

PIPELINE = """
from operators import Normalize
from pipelines import Pipeline
pipeline = Pipeline("bad-input").read_parquet({input!r}).map(Normalize()).write_parquet({output!r})
"""

RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # \n and \t are layout


def cli_in_subprocess(*argvs: list[str]) -> list[dict]:
    """Run each argv through ``pipelines.cli.main`` in one fresh interpreter (60 s limit: a hang fails)."""
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def every_command(case: Path, location: str) -> list[list[str]]:
    """The five commands over one input ``location``, with outputs under ``case``."""
    pipe = case / "pipe.py"
    pipe.write_text(PIPELINE.format(input=location, output=str(case / "out-run")))
    return [["run", str(pipe)],
            ["filter", location, "--output", str(case / "out-filter"), "--ops", "normalize"],
            ["dedup", location, "--output", str(case / "out-dedup")],
            ["inspect", location], ["inspect", location, "--json"]]


def assert_refused(results: list[dict], case: Path, named: str, *fragments: str) -> None:
    """Each command: exit 2, one ``error:`` line naming the file, nothing printed or written, no Ray."""
    assert [r["argv"][0] for r in results] == ["run", "filter", "dedup", "inspect", "inspect"]
    for r in results:
        lines = r["stderr"].splitlines()
        assert r["code"] == 2, r
        assert len(lines) == 1 and lines[0].startswith("error: "), r
        assert named in lines[0] and all(f in lines[0] for f in fragments), r
        assert r["stdout"] == "", r
        assert not r["ray_started"], f"{r['argv']}: Ray was started before the input was refused"
    for out in ("out-run", "out-filter", "out-dedup"):
        assert not (case / out).exists()  # nothing written


def run_cases(cases: dict[str, tuple[Path, str]]) -> dict[str, list[dict]]:
    """Every command for every case, in one subprocess (imports once); results by case name."""
    argvs = [argv for case, location in cases.values() for argv in every_command(case, location)]
    results = cli_in_subprocess(*argvs)
    return {name: results[5 * k: 5 * k + 5] for k, name in enumerate(cases)}


def valid_dir(case: Path) -> Path:
    """Two valid Parquet files of real documents."""
    return write_docs(case / "in", sample_rows(6), files=2)


def make_zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def make_truncated(path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(sample_rows(6)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_text(path: Path) -> None:
    path.write_text("id,text\n1,this is a CSV file named like Parquet\n")


def test_corrupt_files_among_valid_ones_are_named_by_every_command(tmp_path):
    makers = {"zero-byte": (make_zero_byte, "(Parquet file size is 0 bytes)"),
              "truncated": (make_truncated, "(Parquet magic bytes not found in footer"),
              "text": (make_text, "(Parquet magic bytes not found in footer")}
    cases = {}
    for name, (make, _) in makers.items():
        data = valid_dir(tmp_path / name)
        make(data / "part-bad.parquet")
        cases[name] = (tmp_path / name, str(data))
    for name, results in run_cases(cases).items():
        bad = tmp_path / name / "in" / "part-bad.parquet"
        assert_refused(results, tmp_path / name, f"error: {bad}: not a readable Parquet file {makers[name][1]}")


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # a live listening socket, as a server would leave it
    return server


def test_non_regular_files_are_refused_by_name_and_never_block(tmp_path):
    """A FIFO or a socket in an input directory, matched by a glob or given directly, and character devices
    given directly: each named, never opened (opening a FIFO for reading blocks until a writer comes)."""
    cases, expected, servers = {}, {}, []
    for kind, make, says in [("fifo", make_fifo, "is a FIFO"), ("socket", make_socket, "is a socket")]:
        for given in ("directory", "glob", "path"):
            case = tmp_path / f"{kind}-{given}"
            data = valid_dir(case)
            bad = data / "part-zz.parquet"
            servers.append(make(bad))
            location = {"directory": str(data), "glob": str(data / "*.parquet"), "path": str(bad)}[given]
            cases[case.name], expected[case.name] = (case, location), (str(bad), says)
    for device in ("/dev/zero", "/dev/null"):
        case = tmp_path / device.replace("/", "-")
        case.mkdir()
        cases[case.name], expected[case.name] = (case, device), (device, "is a character device")
    try:
        outcomes = run_cases(cases)
    finally:
        for server in filter(None, servers):
            server.close()
    assert len(outcomes) == 8
    for name, results in outcomes.items():
        bad, says = expected[name]
        assert_refused(results, cases[name][0], f"error: {bad}: {says}, not a regular file")
    for name in [n for n in cases if n.startswith(("fifo", "socket"))]:  # the inputs are untouched
        assert sorted(p.name for p in (tmp_path / name / "in").iterdir()) == [
            "part-000.parquet", "part-001.parquet", "part-zz.parquet"]


def test_fifo_refused_by_the_console_script(tmp_path):
    """The installed ``distillery`` script itself, on a FIFO given directly (the case that used to hang)."""
    fifo = tmp_path / "stream.parquet"
    os.mkfifo(fifo)
    script = Path(sys.executable).with_name("distillery")
    done = subprocess.run([str(script), "inspect", str(fifo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {fifo}: is a FIFO, not a regular file; inputs must be Parquet files"]


@pytest.mark.parametrize("ops, fragment", [
    ("", "--ops '': no operator names"),
    (" ", "--ops ' ': no operator names"),
    (",", "--ops ',': no operator names"),
    ("normalize,,exact_dedup", "--ops 'normalize,,exact_dedup': item 2 of 3 is empty"),
    ("normalize,", "--ops 'normalize,': item 2 of 2 is empty"),
    ("normalize,no_such_op", "--ops: unknown operator 'no_such_op'"),
])
def test_malformed_operator_lists_are_errors(ops, fragment):
    with pytest.raises(ParameterError) as caught:
        parse_ops(ops)
    message = str(caught.value)
    assert message.startswith(fragment) and "\n" not in message
    assert "known: bias_measure, boilerplate_lines, c4, " in message and "length_filter" in message


def test_malformed_operator_lists_through_the_cli_fail_before_ray(tmp_path):
    data = valid_dir(tmp_path)
    results = cli_in_subprocess(*[["filter", str(data), "--output", str(tmp_path / "out"), "--ops", ops]
                                  for ops in ("", ",", "normalize,,exact_dedup", "nope")])
    expected = ["--ops '': no operator names", "--ops ',': no operator names",
                "--ops 'normalize,,exact_dedup': item 2 of 3 is empty", "--ops: unknown operator 'nope'"]
    for r, fragment in zip(results, expected, strict=True):
        lines = r["stderr"].splitlines()
        assert r["code"] == 2 and len(lines) == 1 and lines[0].startswith(f"error: {fragment}"), r
        assert not r["ray_started"]
    assert not (tmp_path / "out").exists()
    assert parse_ops(" normalize , exact_dedup") == ["normalize", "exact_dedup"]


# --- text from the data printed to a terminal ------------------------------------------------------------------

HOSTILE = "red \x1b[31mALERT\x1b[0m, title \x1b]0;pwned\x07, erase\r\x08\x7f, c1 \x9b2J, bidi \u202eevil"


def test_text_from_the_data_is_escaped_for_people_and_exact_in_json(tmp_path):
    out = tmp_path / "output"
    out.mkdir()
    pq.write_table(pa.table({"id": ["doc\x1b[2J"], "text": [HOSTILE], "source": ["web\x1b[1m"],
                             "col\x1b[5m": ["x"]}), out / "part-0.parquet")
    (out / "_rejected" / "01-x").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["r1"], "text": ["t"], "stage": ["x\x1b[7m"], "reason": ["bad \x1b[31mreason"]}),
                   out / "_rejected" / "01-x" / "part-0.parquet")
    data = valid_dir(tmp_path)
    (data / "evil\x1b[2J\n.parquet").write_bytes(b"")  # a file name that is itself an escape sequence
    people, machine, named = cli_in_subprocess(["inspect", str(out)], ["inspect", str(out), "--json"],
                                               ["inspect", str(data)])
    assert named["code"] == 2 and named["stdout"] == ""
    assert named["stderr"] == (f"error: {data}/evil\\x1b[2J\\n.parquet: not a readable Parquet file "
                               "(Parquet file size is 0 bytes)\n")
    assert people["code"] == machine["code"] == 0
    text = people["stdout"]
    assert not RAW_CONTROL.search(text), repr(RAW_CONTROL.search(text))
    for shown in ("[doc\\x1b[2J]", "(web\\x1b[1m)", "red \\x1b[31mALERT\\x1b[0m", "title \\x1b]0;pwned\\x07",
                  "erase\\r\\x08\\x7f", "c1 \\x9b2J", "bidi \\u202eevil", "col\\x1b[5m", "x\\x1b[7m",
                  "bad \\x1b[31mreason"):
        assert shown in text, shown
    assert not RAW_CONTROL.search(machine["stdout"])  # JSON escapes them itself
    report = json.loads(machine["stdout"])
    assert report["samples"] == [{"id": "doc\x1b[2J", "text": HOSTILE, "source": "web\x1b[1m", "col\x1b[5m": "x"}]
    assert report["rejected"] == [{"stage": "x\x1b[7m", "reason": "bad \x1b[31mreason", "rows": 1}]



def test_inspect_names_a_file_whose_data_pages_are_corrupt(tmp_path):
    """A footer that reads fine over pages that do not decode: polars' error names no file, inspect does."""
    from pipelines.errors import InputError
    from pipelines.inspection import inspect_path

    data = valid_dir(tmp_path)
    bad = data / "part-bad.parquet"
    rows = [{"id": f"r{i}", "text": f"text {i}", "source": "s"} for i in range(500)]  # the valid files' schema
    pq.write_table(pa.Table.from_pylist(rows), bad, compression="none")
    damaged = bytearray(bad.read_bytes())
    damaged[4:200] = b"\xff" * 196  # the first page header and values, after the leading magic bytes
    bad.write_bytes(bytes(damaged))
    assert pq.read_metadata(bad).num_rows == 500  # the footer is intact: only reading the data finds it
    with pytest.raises(InputError, match=rf"^{re.escape(str(bad))}: not a readable Parquet file \("):
        inspect_path(str(data))
