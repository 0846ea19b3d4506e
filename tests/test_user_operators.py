"""A user's own operators, in a pipeline file outside the repository and in modules beside it, run on Ray's
workers: with ``distillery run`` (embedded Ray), ``run --address`` (an existing cluster) and ``submit`` (a job).

The user's folder is a temporary folder that no Ray worker has on its path, so these tests fail if the
classes travel by module name (``No module named '__distillery__'`` / ``'user_ops'``) instead of by value.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.conftest import REPO, write_docs
from tests.test_jobs import ray_head  # noqa: F401  (the fixture: the CI's head, or one started here)

# The head's GCS address for ``run --address``: the port .ci/run and tests/test_jobs.py start it on.
GCS = os.environ.get("DISTILLERY_TEST_RAY_GCS", "127.0.0.1:6390")

SPAM = {"d01", "d04", "d09"}          # rejected by the in-file filter: "mentions spam"
SHORT = {"d02", "d07"}                # rejected by the sibling module's filter: "fewer than 4 words"
KEPT = {f"d{i:02d}" for i in range(12)} - SPAM - SHORT

PIPELINE = '''\
from dataclasses import dataclass

import pyarrow.compute as pc

from operators.base import Filter, reject_where
from pipelines import Pipeline
from user_ops import MinWords          # a module beside this file


@dataclass(frozen=True)
class NoSpam(Filter):
    word: str = "spam"

    def reasons(self, batch):
        return reject_where(pc.match_substring(pc.utf8_lower(batch["text"]), self.word), f"mentions {{self.word}}")


pipeline = Pipeline("mine").read_parquet({data!r}).filter(NoSpam(), MinWords(min_words=4))

if __name__ == "__main__":
    raise SystemExit("the loader must not run this block")
'''

USER_OPS = '''\
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Filter, reject_where
from rules import REASON               # a package beside the pipeline file, used by this module's code


def word_counts(texts):
    return pa.array([len(t.split()) for t in texts.to_pylist()], pa.int64())


@dataclass(frozen=True)
class MinWords(Filter):
    min_words: int = 3

    def reasons(self, batch):
        counts = word_counts(batch["text"])
        return reject_where(pc.less(counts, self.min_words), REASON.format(n=self.min_words), counts)
'''


def _texts() -> list[dict]:
    rows = []
    for i in range(12):
        doc = f"d{i:02d}"
        if doc in SPAM:
            text = f"Buy cheap SPAM today, document number {i} says so"
        elif doc in SHORT:
            text = f"tiny doc {i}"
        else:
            text = f"A perfectly ordinary document, number {i}, with enough words in it"
        rows.append({"id": doc, "text": text, "source": "web"})
    return rows


@pytest.fixture
def user_folder(tmp_path) -> tuple[Path, Path]:
    """(the user's pipeline file, its input): a folder outside the repo with a sibling module and package."""
    data = write_docs(tmp_path / "in", _texts(), files=2)
    folder = tmp_path / "user"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "__init__.py").write_text('REASON = "fewer than {n} words"\n')
    (folder / "user_ops.py").write_text(USER_OPS)
    pipeline = folder / "my_pipeline.py"
    pipeline.write_text(PIPELINE.format(data=str(data)))
    assert REPO not in pipeline.resolve().parents
    return pipeline, data


def _check_output(out: Path) -> None:
    assert sorted(pq.read_table(out)["id"].to_pylist()) == sorted(KEPT)
    rejected = pq.read_table(out / "_rejected").to_pylist()
    assert {(r["id"], r["stage"], r["reason"]) for r in rejected} == (
        {(d, "no_spam", "mentions spam") for d in SPAM} | {(d, "min_words", "fewer than 4 words") for d in SHORT})
    assert {r["detail"] for r in rejected if r["stage"] == "min_words"} == {"3"}
    manifest = json.loads((out / "_manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert (stages["no_spam"]["rows_in"], stages["no_spam"]["rows_out"], stages["no_spam"]["rows_rejected"]) == (12, 9, 3)
    assert stages["no_spam"]["reject_reasons"] == {"mentions spam": 3}
    assert (stages["min_words"]["rows_in"], stages["min_words"]["rows_out"]) == (9, 7)
    assert stages["min_words"]["reject_reasons"] == {"fewer than 4 words": 2}
    assert stages["min_words"]["config"] == {"operator": "MinWords", "min_words": 4}
    assert manifest["accounting"] == {"rows_in": 12, "rows_out": 7, "rows_rejected": 5, "balanced": True}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_user_modules_are_the_file_and_its_neighbours_not_the_project(user_folder):
    from pipelines.loader import MODULE, load_pipeline, user_modules

    pipeline_file, _ = user_folder
    loaded = load_pipeline(str(pipeline_file))
    assert [s.name for s in loaded.stages] == ["no_spam", "min_words"]
    names = user_modules(pipeline_file.parent.resolve())
    assert sorted(names) == sorted([MODULE, "user_ops", "rules"])
    # Inside the project, the project's own modules are never shipped by value.
    load_pipeline(str(REPO / "pipelines" / "quickstart.py"))
    assert user_modules((REPO / "pipelines").resolve()) == [MODULE]
    for name in ("user_ops", "rules"):  # other tests in this process may load a different user folder
        sys.modules.pop(name, None)


@pytest.mark.slow
def test_run_on_embedded_ray_from_a_folder_outside_the_repo(user_folder, tmp_path):
    pipeline_file, _ = user_folder
    out = tmp_path / "out"
    done = _cli("run", str(pipeline_file), "--output", str(out), cwd=tmp_path)  # cwd is not the user's folder
    assert done.returncode == 0, done.stderr
    assert "12 rows in -> 7 kept, 5 rejected" in done.stdout
    _check_output(out)


@pytest.mark.slow
def test_run_with_address_from_a_folder_outside_the_repo(ray_head, user_folder, tmp_path):  # noqa: F811
    pipeline_file, _ = user_folder
    out = tmp_path / "out"
    done = _cli("run", str(pipeline_file), "--output", str(out), "--address", GCS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "_manifest.json").read_text())["ray"]["address"] == GCS
    _check_output(out)


@pytest.mark.slow
def test_submit_a_file_outside_the_repo(ray_head, user_folder, tmp_path, capsys):  # noqa: F811
    pipeline_file, _ = user_folder
    out = tmp_path / "job-out"
    code = main(["submit", str(pipeline_file), "--address", ray_head, "--output", str(out), "--wait"])
    captured = capsys.readouterr()
    assert code == 0, f"{captured.out}\n{captured.err}"
    assert "12 rows in -> 7 kept, 5 rejected" in captured.out  # the job's own log, printed by --wait
    _check_output(out)
