"""Issue #17 item 5: cross-dump near-dedup keeps the reference, generated ids are injective and output ids are
checked unique, evaluation masks documents as training does, and a NaN on one DDP rank stops every rank."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import write_docs
from operators import Operator

REPO = Path(__file__).resolve().parents[1]


# -- cross-dump near-dedup with a score column keeps the published document --------------------------------

def test_the_keep_rule_prefers_a_reference_document_over_better_scored_copies():
    from operators import MinHashDedup
    from pipelines.near_dedup import REFERENCE_MARK, _published_first

    ref = f"{REFERENCE_MARK}0{REFERENCE_MARK}"
    # Cluster keys are the smallest id of each component; reference rows have no score (null).
    narrow = pa.table({"key": [f"{ref}old", f"{ref}old", f"{ref}old", "a", "a", f"{ref}p", f"{ref}p"],
                       "id": [f"{ref}old", "new-1", "new-2", "a", "b", f"{ref}p", f"{ref}q"],
                       "quality": [None, 0.9, 0.8, 0.1, 0.7, None, None]})
    op = MinHashDedup(score_column="quality")
    assert dict(zip(*op.choose(narrow).to_pydict().values())) == {  # the plain rule: the copy wins
        "a": "b", f"{ref}old": "new-1", f"{ref}p": f"{ref}p"}
    assert dict(zip(*_published_first(op.choose(narrow), narrow).to_pydict().values())) == {
        "a": "b", f"{ref}old": f"{ref}old", f"{ref}p": f"{ref}p"}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_cross_dump_dedup_with_score_column_keeps_the_reference_document(tmp_path):
    from operators import MinHashDedup
    from pipelines import Pipeline
    from test_minhash import edit_words
    from conftest import sample_rows

    rows = [r for r in sample_rows(400) if len(r["text"].split()) >= 100][:10]
    published = write_docs(tmp_path / "dump1", [dict(r, quality=0.0) for r in rows[:6]], files=2)
    Pipeline("dump1").read_parquet(str(published)).dedup(MinHashDedup(score_column="quality")).run(
        output=str(tmp_path / "out1"))
    # Dump 2: two better-scored near-copies of published rows[0], one of rows[1], a near-duplicate pair of its
    # own (rows[6] vs a copy: the score rule decides there) and three new documents.
    later = [dict(r, quality=0.5) for r in rows[6:]]
    later += [{"id": "copy-0a", "text": edit_words(rows[0]["text"], 0.01, 1), "source": "x", "quality": 0.99},
              {"id": "copy-0b", "text": edit_words(rows[0]["text"], 0.01, 2), "source": "x", "quality": 0.98},
              {"id": "copy-1", "text": edit_words(rows[1]["text"], 0.01, 3), "source": "x", "quality": 0.97},
              {"id": "copy-6", "text": edit_words(rows[6]["text"], 0.01, 4), "source": "x", "quality": 0.9}]
    second = write_docs(tmp_path / "dump2", later, files=2)
    manifest = (Pipeline("dump2").read_parquet(str(second))
                .dedup(MinHashDedup(score_column="quality", reference=(str(tmp_path / "out1"),)))
                .run(output=str(tmp_path / "out2")))

    kept = sorted(pq.read_table(tmp_path / "out2")["id"].to_pylist())
    assert kept == sorted(["copy-6", rows[7]["id"], rows[8]["id"], rows[9]["id"]])
    rejected = pq.read_table(tmp_path / "out2" / "_rejected").select(["id", "detail"]).to_pylist()
    out1 = tmp_path / "out1"
    assert sorted((r["id"], r["detail"]) for r in rejected) == sorted([
        ("copy-0a", f"near-duplicate of {rows[0]['id']} in {out1}"),
        ("copy-0b", f"near-duplicate of {rows[0]['id']} in {out1}"),
        ("copy-1", f"near-duplicate of {rows[1]['id']} in {out1}"),
        (rows[6]["id"], "near-duplicate of copy-6")])
    assert manifest["stages"][1]["plan"]["duplicates_of_reference"] == 3
    assert manifest["stages"][1]["rows_in"] == 8 and manifest["stages"][1]["rows_rejected"] == 4


# -- generated ids are injective; output ids are checked unique -------------------------------------------

def test_generated_ids_cannot_collide():
    from teachers.task import generated_id

    assert generated_id("t", "a", 1) == "t:a:1" and generated_id("t", "a:1") == "t:a%3A1"  # once both "t:a:1"
    assert generated_id("grounded_qa", "d1") == "grounded_qa:d1" and generated_id("t", "50%", 2) == "t:50%25:2"
    tricky = ["a", "a:1", "a:1:1", "a%3A1", "a%253A1", "%", ":", "", "1"]
    ids = [generated_id(task, source, k) for task in ("t", "t:a", "t%3Aa") for source in tricky for k in range(3)]
    assert len(set(ids)) == len(ids) == 81


def test_a_generation_task_gives_the_colliding_example_distinct_ids():
    from teachers.documents import GroundedQA
    from teachers.engines import Sampling
    from test_teachers_helpers import ScriptedEngine, stub_teacher
    from test_teachers_tasks import qa_answer, table

    teacher = stub_teacher("http://127.0.0.1:9")  # never contacted: a scripted engine answers
    op = GroundedQA(teacher=teacher, cache_dir=None, sampling=Sampling(n=2, temperature=0.5))
    rows = [{"id": "a", "text": "Paris is the capital of France and its largest city.", "source": "geo"},
            {"id": "a:1", "text": "Rome is the capital of Italy and its largest city.", "source": "geo"}]
    out = op.attach(ScriptedEngine(teacher, qa_answer))(table(rows))
    assert out["id"].to_pylist() == ["grounded_qa:a", "grounded_qa:a:1", "grounded_qa:a%3A1", "grounded_qa:a%3A1:1"]
    assert out["source_ids"].to_pylist() == [["a"], ["a"], ["a:1"], ["a:1"]]  # provenance keeps the raw ids


@dataclass(frozen=True)
class OldSchemeIds(Operator):
    """Gives rows the ids the former generate scheme produced: source ``a`` sample 1 and source ``a:1``
    sample 0 both became ``t:a:1``."""

    def __call__(self, batch):
        ids = [f"t:{i}" + ("" if ":" in i else ":1") for i in batch["id"].to_pylist()]
        return batch.set_column(batch.schema.get_field_index("id"), "id", pa.array(ids, pa.string()))


@pytest.mark.usefixtures("ray_local")
def test_a_run_whose_output_repeats_an_id_fails_naming_the_stage_and_the_id(tmp_path):
    from pipelines import Pipeline
    from pipelines.errors import DistilleryError

    source = write_docs(tmp_path / "in", [{"id": i, "text": f"document {i}", "source": "x"}
                                          for i in ("a", "a:1", "b")], files=2)
    out = tmp_path / "out"
    with pytest.raises(DistilleryError) as error:
        Pipeline("ids").read_parquet(str(source)).map(OldSchemeIds()).run(output=str(out))
    assert str(error.value) == ("stage 01-old_scheme_ids: output ids are not unique; repeated ids include "
                                "'t:a:1' (2x) (a stage that sets ids must give every row its own)")
    assert not list(out.glob("*.parquet")) and not list(out.glob(".staging-*"))  # nothing was committed


# -- evaluation uses the training masks ----------------------------------------------------------------------

def test_eval_loss_of_a_batch_equals_its_training_loss_with_document_masks(tmp_path, one_torch_thread):
    import torch

    from students.data import ListStream, ParquetTokenStream
    from students.evaluate import heldout
    from students.model import ModelConfig, Student
    from students.train import TrainConfig, train

    rng = np.random.default_rng(7)
    # Documents of 4..12 tokens packed into windows of 17: windows start inside a document and hold two or
    # three documents, so per-document attention masks change the loss.
    documents = [rng.integers(1, 500, rng.integers(4, 13)).tolist() for _ in range(40)]
    stream = ParquetTokenStream(batch_size=4, seq_len=16, documents=(documents, ["a", "b"] * 20), seed=3)
    batch = next(iter(stream))
    assert (batch.document_ids.max(axis=1) >= 1).all()  # every window crosses a document boundary
    cfg = ModelConfig(vocab_size=500, d_model=32, n_layers=2, n_heads=4, max_seq_len=16)
    torch.manual_seed(0)
    model = Student(cfg)
    before = copy.deepcopy(model).eval()

    trained = train(cfg, TrainConfig(steps=1, warmup_steps=0, checkpoint_every=1, progress=False),
                    ListStream([batch]), tmp_path / "run", resume=False, model=model)
    evaluated = heldout(before, [batch])
    assert abs(evaluated["loss"] - trained.losses[0]) < 1e-6, (evaluated["loss"], trained.losses[0])
    assert evaluated["tokens"] == batch.labels.size  # no label is masked in these windows

    # The same windows without document masks give another loss: the equality above is not a coincidence.
    unmasked = copy.copy(batch)
    unmasked.document_ids = None
    assert abs(heldout(before, [unmasked])["loss"] - trained.losses[0]) > 1e-4


# -- a NaN on one DDP rank stops every rank ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(300)  # a hang (one rank waiting in DDP's all-reduce for a rank that stopped) fails here
def test_nan_on_one_ddp_rank_stops_every_rank_with_a_clear_error(ray_local, tmp_path, one_torch_thread):
    from students.data import write_token_parquet
    from students.distributed import train_distributed
    from students.errors import TrainingDiverged
    from students.train import TrainConfig, read_metrics
    from students.model import ModelConfig

    rng = np.random.default_rng(0)
    data = write_token_parquet(tmp_path / "tokens.parquet", [rng.integers(1, 300, 60).tolist() for _ in range(40)],
                               ["a"] * 40)
    model = ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, max_seq_len=16)
    cfg = TrainConfig(steps=5, lr=1e-3, warmup_steps=0, checkpoint_every=1, progress=False)
    # The fault is injected (rank 1's loss is NaN from step 2 on): a natural NaN on exactly one rank cannot be
    # produced deterministically.
    with pytest.raises(TrainingDiverged) as error:
        train_distributed(model, cfg, data, tmp_path / "ddp", workers=2, batch_size=2, seq_len=16,
                          fault={"rank": 1, "step": 2})
    message = str(error.value)
    assert message.startswith("step 2: loss is non-finite on rank(s) 1 (this rank 0: "), message
    assert message.endswith("; ranks that stopped: 0, 1 of 2"), message
    assert f"last good checkpoint: {tmp_path / 'ddp' / 'checkpoints' / 'step-0000002'}" in message
    workers = [json.loads((tmp_path / "ddp" / f"worker-{r}.json").read_text()) for r in (0, 1)]
    assert [w["error"].startswith(f"step 2: loss is non-finite on rank(s) 1 (this rank {r}: ")
            for r, w in enumerate(workers)] == [True, True]  # each rank stopped itself, at the same step
    assert "(this rank 1: nan)" in workers[1]["error"] and "step-0000002" in workers[1]["error"]
    assert [m["step"] for m in read_metrics(tmp_path / "ddp")] == [1, 2]  # the NaN step was never applied
