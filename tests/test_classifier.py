"""train_classifier + FastTextScore on real text (no Ray).

The labelled data is the shipped sample corpus (data/sample, Debian text) labelled by its ``source``:
man pages vs fortunes, a real and separable task.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from operators.base import DETAIL, REASON, ParameterError
from operators.classifier import FastTextScore, fasttext_lines, top_fraction_threshold
from pipelines.classifier_train import add_train_arguments, evaluate, in_validation, run_train, train_classifier
from pipelines.errors import DistilleryError

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SMALL = {"dim": 16, "bucket": 50_000, "thread": 1}  # small, fast and reproducible models for tests

MANPAGE = ("NAME\n       rsync - a fast, versatile, remote (and local) file-copying tool\n\nSYNOPSIS\n"
           "       rsync [OPTION...] SRC... [DEST]\n\nDESCRIPTION\n       Rsync copies files either to or from a "
           "remote host, or locally on the current host.\n\nOPTIONS\n       -v, --verbose    increase verbosity")
FORTUNE = "A friend in need is a friend indeed, but a friend with a boat is a friend you call every summer."


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Sample documents from two domains as Parquet, labelled by their ``source`` column (2 files); each text
    cut to its first 2,000 characters to keep training fast."""
    frame = (pl.read_parquet(sorted(SAMPLE.glob("*.parquet"))).filter(pl.col("source").is_in(["manpages", "fortunes"]))
             .with_columns(pl.col("text").str.slice(0, 2000)))
    out = tmp_path_factory.mktemp("labelled")
    half = frame.height // 2
    frame[:half].write_parquet(out / "part-0.parquet")
    frame[half:].write_parquet(out / "part-1.parquet")
    return out


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory) -> tuple[Path, dict]:
    model = tmp_path_factory.mktemp("model") / "domain.bin"
    report = train_classifier(str(labelled), str(model), label_column="source", valid_fraction=0.2, seed=7, lr=0.5,
                              **SMALL)
    return model, report


def test_train_classifier_separates_manpages_from_fortunes_on_held_out_rows(trained):
    model, report = trained
    metrics = report["validation"]
    assert set(metrics["per_label"]) == {"manpages", "fortunes"}
    for label, scores in metrics["per_label"].items():
        assert scores["f1"] > 0.9, (label, scores)
    assert metrics["macro_f1"] > 0.9 and metrics["accuracy"] > 0.95
    # Our metrics and fastText's own test agree on accuracy (= precision@1 for single-label rows).
    assert abs(report["fasttext_test"]["precision_at_1"] - metrics["accuracy"]) < 1e-3
    rows = report["rows"]
    assert rows["read"] == 872 + 3602 and rows["train"] + rows["valid"] + rows["skipped_empty_text_or_label"] == rows["read"]
    assert 0.15 < rows["valid"] / rows["read"] < 0.25
    assert sum(c["valid"] for c in report["labels"].values()) == rows["valid"] == metrics["rows"]


def test_model_and_report_are_written_atomically(trained):
    model, report = trained
    assert model.is_file() and report["model_bytes"] == model.stat().st_size
    assert json.loads(Path(f"{model}.report.json").read_text()) == json.loads(json.dumps(report))
    assert sorted(p.name for p in model.parent.iterdir()) == ["domain.bin", "domain.bin.report.json"]


def test_split_and_training_are_deterministic_per_seed(labelled, tmp_path):
    first = train_classifier(str(labelled), str(tmp_path / "a.bin"), label_column="source", valid_fraction=0.2,
                             seed=7, epoch=1, **SMALL)
    again = train_classifier(str(labelled), str(tmp_path / "b.bin"), label_column="source", valid_fraction=0.2,
                             seed=7, epoch=1, **SMALL)
    assert first["labels"] == again["labels"] and first["validation"] == again["validation"]
    lines = [line for line in fasttext_lines(pl.read_parquet(sorted(labelled.glob("*.parquet")))["text"].to_arrow()) if line]
    held = [in_validation(line, 7, 0.2) for line in lines]
    assert sum(held) == first["rows"]["valid"]
    assert held != [in_validation(line, 8, 0.2) for line in lines]  # another seed, another split
    assert in_validation(lines[0], 7, 0.2) == in_validation(lines[0], 7, 0.2)


def test_fasttext_score_loads_the_trained_model_and_scores(trained):
    model, _ = trained
    batch = pa.table({"id": ["m", "f", "n"], "text": pa.array([MANPAGE, FORTUNE, None], pa.string())})
    out = FastTextScore(model_path=str(model), label="manpages")(batch)
    scores = out["manpages_score"].to_pylist()
    assert scores[0] > 0.9 and scores[1] < 0.1 and scores[2] is None
    assert out[REASON].to_pylist() == [None, None, None]  # no bounds: scores only

    bounded = FastTextScore(model_path=str(model), label="__label__manpages", column="man", min_score=0.5)(batch)
    assert bounded[REASON].to_pylist() == [None, "man below 0.5", None]
    assert bounded[DETAIL][1].as_py() == f"{bounded['man'][1].as_py():.4f}"
    capped = FastTextScore(model_path=str(model), label="fortunes", max_score=0.5)(batch)
    assert capped[REASON].to_pylist() == [None, "fortunes_score above 0.5", None]


def test_fasttext_score_agrees_with_the_training_report_on_held_out_rows(labelled, trained):
    """The operator and the trainer flatten text the same way: scoring the held-out rows with
    FastTextScore reproduces the report's accuracy."""
    model, report = trained
    frame = pl.read_parquet(sorted(labelled.glob("*.parquet")))
    lines = fasttext_lines(frame["text"].to_arrow())
    held = [i for i, line in enumerate(lines) if line is not None and in_validation(line, 7, 0.2)]
    rows = frame[held]
    scores = FastTextScore(model_path=str(model), label="manpages")(rows.to_arrow())["manpages_score"].to_pylist()
    predicted = ["manpages" if s > 0.5 else "fortunes" for s in scores]
    accuracy = sum(p == t for p, t in zip(predicted, rows["source"].to_list())) / len(predicted)
    assert len(predicted) == report["rows"]["valid"] and abs(accuracy - report["validation"]["accuracy"]) < 1e-3


def test_fasttext_score_unknown_label_names_the_models_labels(trained):
    model, _ = trained
    op = FastTextScore(model_path=str(model), label="hq")
    with pytest.raises(ParameterError, match=r"FastTextScore\.label: 'hq' is not a label of .*fortunes, manpages|manpages, fortunes"):
        op.setup()


@pytest.mark.parametrize("kwargs, field", [
    ({"model_path": "/nonexistent/model.bin", "label": "hq"}, "model_path"),
    ({"label": "two words"}, "label"),
    ({"label": "hq", "min_score": 0.8, "max_score": 0.2}, "max_score"),
    ({"label": "hq", "min_score": 2}, "min_score"),
])
def test_fasttext_score_validates_parameters(trained, kwargs, field):
    kwargs = {"model_path": str(trained[0]), **kwargs}
    with pytest.raises(ParameterError, match=rf"FastTextScore\.{field}:"):
        FastTextScore(**kwargs)


def write(path: Path, frame: pl.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def test_errors_name_the_file_and_the_column(tmp_path):
    with pytest.raises(DistilleryError, match=r"nope: no such file or directory"):
        train_classifier(str(tmp_path / "nope"), str(tmp_path / "m.bin"))
    no_label = write(tmp_path / "a" / "x.parquet", pl.DataFrame({"text": ["a b", "c d"]}))
    with pytest.raises(DistilleryError, match=rf"{no_label}: no column 'label' \(label_column\); columns: text"):
        train_classifier(str(no_label.parent), str(tmp_path / "m.bin"))
    no_text = write(tmp_path / "b" / "x.parquet", pl.DataFrame({"body": ["a b"], "label": ["x"]}))
    with pytest.raises(DistilleryError, match=rf"{no_text}: no column 'text' \(text_column\)"):
        train_classifier(str(no_text), str(tmp_path / "m.bin"))
    numbers = write(tmp_path / "c" / "x.parquet", pl.DataFrame({"text": [1, 2], "label": ["x", "y"]}))
    with pytest.raises(DistilleryError, match=r"text column 'text' must hold strings"):
        train_classifier(str(numbers), str(tmp_path / "m.bin"))


def test_errors_for_one_label_empty_data_and_bad_labels(tmp_path):
    one = write(tmp_path / "one.parquet", pl.DataFrame({"text": ["good text", "more text"], "label": ["hq", "hq"]}))
    with pytest.raises(DistilleryError, match=r"one.parquet: label column 'label' has 1 distinct label\(s\) \(hq\)"):
        train_classifier(str(one), str(tmp_path / "m.bin"))
    empty = write(tmp_path / "empty.parquet", pl.DataFrame({"text": [], "label": []}, schema={"text": pl.String, "label": pl.String}))
    with pytest.raises(DistilleryError, match=r"empty.parquet: no rows to train on"):
        train_classifier(str(empty), str(tmp_path / "m.bin"))
    blank = write(tmp_path / "blank.parquet", pl.DataFrame({"text": [" ", None], "label": ["a", "b"]}))
    with pytest.raises(DistilleryError, match=r"no row has both a non-empty 'text' and a 'label'"):
        train_classifier(str(blank), str(tmp_path / "m.bin"))
    spaced = write(tmp_path / "spaced.parquet", pl.DataFrame({"text": ["x", "y"], "label": ["high quality", "low"]}))
    with pytest.raises(DistilleryError, match=r"'high quality': fastText labels cannot contain whitespace"):
        train_classifier(str(spaced), str(tmp_path / "m.bin"))
    with pytest.raises(DistilleryError, match=r"valid_fraction must be in \[0, 1\)"):
        train_classifier(str(spaced), str(tmp_path / "m.bin"), valid_fraction=1.0)
    assert not (tmp_path / "m.bin").exists()


def test_integer_labels_and_balance_and_no_validation(tmp_path):
    texts = [f"apple banana cherry {i}" for i in range(40)] + [f"engine piston valve {i}" for i in range(10)]
    data = write(tmp_path / "ints.parquet", pl.DataFrame({"text": texts, "label": [0] * 40 + [1] * 10}))
    report = train_classifier(str(data), str(tmp_path / "m.bin"), valid_fraction=0.0, balance=True, epoch=20, **SMALL)
    assert report["validation"] is None and report["rows"]["valid"] == 0
    assert report["labels"]["1"] == {"train": 10, "valid": 0, "train_balanced": 40}
    out = FastTextScore(model_path=str(tmp_path / "m.bin"), label="1")(pa.table({"text": ["engine piston", "apple"]}))
    assert out["1_score"][0].as_py() > out["1_score"][1].as_py()


def test_evaluate_counts_per_label():
    metrics = evaluate(["a", "a", "a", "b", "b"], ["a", "a", "b", "b", "a"])
    assert metrics["per_label"]["a"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3,
                                         "predicted": 3, "true_positives": 2}
    assert metrics["per_label"]["b"]["recall"] == 0.5 and metrics["accuracy"] == 0.6


def test_fasttext_lines_flattens_whitespace_and_nulls():
    text = pa.array(["a\nb\r\n\tc\x0bd", "  ", None, "x  y "])
    assert fasttext_lines(text) == ["a b c d", None, None, "x y"]


def test_top_fraction_threshold_keeps_about_that_fraction():
    scores = [i / 100 for i in range(100)]
    threshold = top_fraction_threshold(scores, 0.1)
    assert sum(s >= threshold for s in scores) == 10


def test_cli_helpers_train_and_print(labelled, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--input", str(labelled), "--output", str(tmp_path / "cli.bin"), "--label-column", "source", "--dim", "16",
                              "--bucket", "50000", "--thread", "1", "--epoch", "2"])
    assert run_train(args) == 0
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed and "manpages" in printed and (tmp_path / "cli.bin.report.json").is_file()
