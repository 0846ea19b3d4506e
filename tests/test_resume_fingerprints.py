"""Resume and caches keyed by content, not paths (issue 17, item 4): the pipeline runner's --resume, stale stage
folders of another pipeline shape, ``students train --resume``, the flagship's training decision, and the
teacher's model-folder fingerprint. Real Ray (the session fixture), real Parquet, real tiny students."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators import Decontaminate, ExactDedup, LengthFilter, MinHashDedup, Normalize
from operators.fingerprint import dataset_fingerprint, fingerprint, fingerprint_files
from operators.minhash import reference_index
from pipelines import Pipeline
from pipelines.cli import main
from pipelines.inspection import inspect_path
from pipelines.manifest import content_fingerprints
from pipelines.report import build_report
from teachers.cache import cache_key
from teachers.engines import Sampling, Teacher
from tests.conftest import sample_rows, write_docs

REPO = Path(__file__).resolve().parents[1]


def write_fixed_size(path: Path, rows: list[dict]) -> None:
    """Uncompressed, no dictionary, no statistics: a same-length edit of a text keeps the file's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="none", use_dictionary=False,
                   write_statistics=False)


# -- fingerprints --------------------------------------------------------------------------------------------
def test_fingerprints_follow_bytes_not_names_sizes_or_paths(tmp_path):
    a, b, copy = tmp_path / "a" / "model", tmp_path / "b" / "model", tmp_path / "c" / "model"
    for folder, fill in ((a, b"\x01"), (b, b"\x02")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "llama"}')
        (folder / "model.safetensors").write_bytes(fill * 4096)  # same name, same size, other bytes
    shutil.copytree(a, copy)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(copy)  # the content decides, not the path
    teachers = [Teacher(model=str(folder)) for folder in (a, b, copy)]
    assert [t.name for t in teachers] == ["model"] * 3
    revisions = [t.resolved_revision() for t in teachers]
    assert revisions[0] != revisions[1] and revisions[0] == revisions[2]
    keys = [cache_key(t.identity(), "qa", "v1", "prompt", Sampling().to_dict()) for t in teachers]
    assert keys[0] != keys[1] and keys[0] == keys[2]
    (copy / "model.safetensors").write_bytes(b"\x03" * 4096)  # rewritten in place: the memo must not answer
    assert Teacher(model=str(copy)).resolved_revision() not in revisions


def test_dataset_fingerprint_ignores_side_folders_but_not_data(tmp_path):
    data = write_docs(tmp_path / "d", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}], files=2)
    before = dataset_fingerprint(data)
    (data / "_manifest.json").write_text("{}")
    (data / "_rejected" / "01-x").mkdir(parents=True)
    (data / "_rejected" / "01-x" / "part.parquet").write_bytes(b"x")
    assert dataset_fingerprint(data) == before
    assert fingerprint_files(sorted(data.glob("*.parquet"))) == fingerprint_files(
        [shutil.copy(f, tmp_path / f.name) for f in sorted(data.glob("*.parquet"))])
    write_docs(data, [{"id": "a", "text": "one"}, {"id": "b", "text": "2wo"}], files=2)
    assert dataset_fingerprint(data) != before


def test_eval_set_and_model_content_are_part_of_a_stages_key(tmp_path):
    rows = [{"id": "e1", "text": " ".join(f"word{i}" for i in range(20))}]
    eval_set = write_docs(tmp_path / "mmlu", rows)
    op = Decontaminate(eval_sets=(str(eval_set),))
    before = content_fingerprints(op)
    assert list(before) == ["eval_sets[0]"]
    write_docs(eval_set, [{"id": "e1", "text": " ".join(f"other{i}" for i in range(20))}])
    assert content_fingerprints(op) != before
    model = tmp_path / "teacher"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert Teacher(model=str(model)).content_fingerprint() == Teacher(model=str(model)).resolved_revision()


# -- the pipeline runner -------------------------------------------------------------------------------------
@pytest.mark.usefixtures("ray_local")
def test_resume_reruns_stages_when_input_bytes_change_at_the_same_size_and_mtime(tmp_path):
    rows = [{"id": r["id"], "text": r["text"], "source": r["source"]} for r in sample_rows(40)]
    twin = rows[1]["text"]
    rows[0]["text"] = twin[:-1] + ("#" if twin[-1] != "#" else "%")  # a same-length near-twin of row 1
    data = tmp_path / "in" / "part-000.parquet"
    write_fixed_size(data, rows)
    out = tmp_path / "out"

    def build(path: Path) -> Pipeline:
        return Pipeline("fp").read_parquet(str(path)).map(Normalize()).dedup(ExactDedup()).filter(LengthFilter(min_chars=1))

    first = build(data.parent).run(output=str(out))
    assert first["stages"][2]["rows_rejected"] == 0 and first["input"]["fingerprint"]
    again = build(data.parent).run(output=str(out), resume=True)
    assert again["resumed"] and [s["skipped"] for s in again["stages"]] == [True] * 4

    copy = tmp_path / "moved"  # the same bytes under another path: still reused
    shutil.copytree(data.parent, copy)
    moved = build(copy).run(output=str(out), resume=True)
    assert [s["skipped"] for s in moved["stages"]] == [True] * 4

    stat = data.stat()
    rows[0]["text"] = twin  # now an exact duplicate of row 1; same size, mtime set back
    write_fixed_size(data, rows)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    changed = build(data.parent).run(output=str(out), resume=True)
    assert [s["skipped"] for s in changed["stages"]] == [False] * 4
    assert changed["stages"][2]["rows_rejected"] == 1
    duplicate = max(rows[0]["id"], rows[1]["id"])  # exact dedup keeps the smallest id
    assert pq.read_table(out / "_rejected" / "02-exact_dedup")["id"].to_pylist() == [duplicate]
    assert changed["input"]["fingerprint"] != first["input"]["fingerprint"]


@pytest.mark.usefixtures("ray_local")
def test_resume_reruns_decontamination_when_the_eval_set_changes(tmp_path):
    rows = [{"id": r["id"], "text": r["text"], "source": r["source"]} for r in sample_rows(20)]
    data = write_docs(tmp_path / "in", rows)
    leaked = rows[3]["text"].split()
    assert len(leaked) >= 13
    eval_set = write_docs(tmp_path / "bench", [{"id": "q", "text": "nothing in common with the corpus"}])
    pipe = Pipeline("decon").read_parquet(str(data)).filter(Decontaminate(eval_sets=(str(eval_set),)))
    assert pipe.run(output=str(tmp_path / "out"))["stages"][1]["rows_rejected"] == 0
    write_docs(eval_set, [{"id": "q", "text": " ".join(leaked[:13])}])  # same path, other content
    again = pipe.run(output=str(tmp_path / "out"), resume=True)
    assert [s["skipped"] for s in again["stages"]] == [False, False]  # (only a dedup stage leaves a resume point)
    assert again["stages"][1]["reject_reasons"] == {"contaminated: bench": 1}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_another_pipeline_shape_leaves_no_stale_stage_folders(tmp_path):
    rows = [{"id": r["id"], "text": r["text"], "source": r["source"]} for r in sample_rows(40)]
    rows += [{**rows[0], "id": "zz-copy"}]  # an exact duplicate
    data = write_docs(tmp_path / "in", rows)
    out = tmp_path / "out"
    (Pipeline("a").read_parquet(str(data)).dedup(ExactDedup()).filter(LengthFilter(min_chars=400))
     .dedup(MinHashDedup()).run(output=str(out)))
    assert {p.name for p in (out / "_rejected").iterdir()} == {"01-exact_dedup", "02-length_filter"}
    assert {p.name for p in (out / "_lsh_index").iterdir()} == {"03-min_hash_dedup"}

    def folders() -> dict[str, set[str]]:
        return {parent: {p.name for p in (out / parent).iterdir()} if (out / parent).exists() else set()
                for parent in ("_rejected", "_clusters", "_lsh_index", "_checkpoints")}

    # Resumed: the exact-dedup checkpoint is reused, everything of the old stages 2 and 3 goes.
    resumed = Pipeline("b").read_parquet(str(data)).dedup(ExactDedup()).dedup(MinHashDedup()).run(
        output=str(out), resume=True)
    assert [s["skipped"] for s in resumed["stages"]] == [True, True, False]
    assert folders() == {"_rejected": {"01-exact_dedup"}, "_clusters": {"01-exact_dedup", "02-min_hash_dedup"},
                         "_lsh_index": {"02-min_hash_dedup"}, "_checkpoints": {"01-exact_dedup"}}
    assert {r["stage"] for r in inspect_path(str(out))["rejected"]} == {"exact_dedup"}
    assert reference_index(str(out)).name == "02-min_hash_dedup"

    # Not resumed, another shape again: only this run's folders remain.
    Pipeline("c").read_parquet(str(data)).filter(LengthFilter(min_chars=400)).run(output=str(out))
    assert folders() == {"_rejected": {"01-length_filter"}, "_clusters": set(), "_lsh_index": set(),
                         "_checkpoints": set()}
    assert {r["stage"] for r in inspect_path(str(out))["rejected"]} == {"length_filter"}
    assert reference_index(str(out)) is None
    assert [s["name"] for s in build_report(out)["pipelines"][0]["stages"]] == ["read", "length_filter"]


# -- students ------------------------------------------------------------------------------------------------
TINY = ["--set", "model.d_model=32", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
        "--set", "train.progress=false", "--set", "train.warmup_steps=1", "--set", "train.checkpoint_every=2",
        "--batch-size", "2", "--seq-len", "16", "--lr", "3e-3"]


def token_file(path: Path, smollm2_dir, start: int) -> Path:
    from students.data import tokenize_texts, write_token_parquet

    table = pq.read_table(REPO / "data" / "sample", columns=["text", "source"]).sort_by("text").slice(start, 24)
    ids = tokenize_texts([t[:400] for t in table.column("text").to_pylist()], smollm2_dir)
    return write_token_parquet(path, ids, table.column("source").to_pylist())


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_students_train_resume_refuses_changed_data_and_starts_over_without_the_flag(tmp_path, smollm2_dir, capsys):
    from students.checkpoint import latest_checkpoint, read_state
    from students.cli import _data_fingerprint

    data = token_file(tmp_path / "train.parquet", smollm2_dir, 0)
    run = tmp_path / "run"
    argv = ["students", "train", "--data", str(data), "--output", str(run), *TINY]
    assert main([*argv, "--steps", "4"]) == 0
    saved = read_state(latest_checkpoint(run))["data_fingerprint"]
    assert saved == _data_fingerprint(str(data), 2, 16, 0, None)
    metrics = (run / "metrics.jsonl").read_text()
    assert main([*argv, "--steps", "4", "--resume"]) == 0  # same data and config: resumed, nothing to redo
    assert (run / "metrics.jsonl").read_text() == metrics
    capsys.readouterr()

    token_file(data, smollm2_dir, 100)  # the same path, other documents
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    now = _data_fingerprint(str(data), 2, 16, 0, None)
    assert capsys.readouterr().err.strip() == (
        f"error: {run}: cannot resume from checkpoint step-0000004: the data changed (fingerprint {saved} -> "
        f"{now}); train without --resume to start over")
    assert main([*argv, "--steps", "4", "--resume", "--set", "train.weight_decay=0.0"]) == 2
    assert ": train.weight_decay 0.1 -> 0.0; the data changed (fingerprint" in capsys.readouterr().err

    assert main([*argv, "--steps", "2"]) == 0  # without --resume: a fresh start on the new data
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000002"]
    assert read_state(latest_checkpoint(run))["data_fingerprint"] == now
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.usefixtures("one_torch_thread")
def test_flagship_training_retrains_when_its_data_changed(tmp_path, smollm2_dir, capsys):
    from pipelines.train import TrainingSize, data_fingerprint, student_config, train_student
    from students.checkpoint import latest_checkpoint, read_state
    from students.data import ParquetTokenStream

    tokenizer = str(smollm2_dir / "tokenizer.json")
    data = token_file(tmp_path / "d" / "part.parquet", smollm2_dir, 0)
    size = TrainingSize(steps=2, batch_size=2, seq_len=16, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1)
    run = tmp_path / "students" / "dense-curated-seed0"

    def train_on(data_fp: str, resume: bool) -> dict:
        train_student(run, student_config(size), size, ParquetTokenStream(data, 2, 16), 0, data_fp, resume)
        return read_state(latest_checkpoint(run))

    first_fp = data_fingerprint([str(data.parent)], tokenizer)
    first = train_on(first_fp, resume=True)  # nothing to resume: trains
    stamp = (latest_checkpoint(run) / "state.json").stat().st_mtime_ns
    assert train_on(first_fp, resume=True) == first  # same data: resumed, nothing retrained
    assert (latest_checkpoint(run) / "state.json").stat().st_mtime_ns == stamp
    capsys.readouterr()

    token_file(data, smollm2_dir, 100)
    changed_fp = data_fingerprint([str(data.parent)], tokenizer)
    assert changed_fp != first_fp
    assert train_on(changed_fp, resume=True)["data_fingerprint"] == changed_fp
    assert capsys.readouterr().out.startswith("dense-curated-seed0: retraining from scratch (the data changed")
    assert (latest_checkpoint(run) / "state.json").stat().st_mtime_ns != stamp
