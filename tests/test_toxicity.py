"""Toxicity: the word-list score on written sentences, and a fastText toxicity model trained on weak labels.

The weakly supervised model is trained on real text (sentences of the fortunes and dictionary documents in
data/sample) labelled by alt-profanity-check when it is installed, else by our word-list score. These labels
are weak: they are another model's (or a word list's) opinion, not human judgements. We report the held-out
precision/recall against those weak labels AND on HAND_TOXIC/HAND_CLEAN: 40 sentences written by hand for
this test (half toxic, half clean; the clean half deliberately uses words with a harmless sense such as
``kill``, ``strip`` or ``Dick``).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from operators.base import DETAIL, REASON, ParameterError
from operators.toxicity import TOXICITY_SCORE, Toxicity, packaged_wordlist
from pipelines.classifier_train import train_classifier

pytestmark = pytest.mark.skipif(packaged_wordlist() is None, reason="better-profanity not installed")
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

# Hand-written test sentences (not from any dataset). Toxic: insults and profanity aimed at someone.
HAND_TOXIC = [
    "You are a fucking idiot and everyone here knows it.", "Shut up, you stupid piece of shit.",
    "This code is absolute garbage, whoever wrote it is a moron.", "Go fuck yourself, nobody asked for your opinion.",
    "What a bunch of worthless assholes.", "I hope you choke on it, you pathetic loser.",
    "He's a lying bastard and a coward.", "Get lost, you dumb bitch.",
    "This is bullshit and you damn well know it.", "Nobody cares about your crap, dickhead.",
    "You're too dumb to tie your own shoes, you useless idiot.", "Screw you and your shitty little project.",
    "I will find you and make you regret this, scumbag.", "Stop whining, you spineless little prick.",
    "Only a complete retard would believe that.", "Fuck off and take your stupid ideas with you.",
    "You disgusting pig, nobody wants you here.", "That ugly jerk should keep his fat mouth shut.",
    "The author is a clueless jackass who can't write.", "Damn you, you motherfucking cheat.",
]
# Clean, including words the profanity list holds in another sense.
HAND_CLEAN = [
    "Use kill -9 to stop the process if it ignores SIGTERM.", "Run strip on the binary to remove its debugging symbols.",
    "Guido van Rossum created the Python programming language.",
    "The FAT32 file system cannot store files larger than four gigabytes.", "Moby Dick is a novel by Herman Melville.",
    "The cock crowed at dawn and woke the whole farm.", "Tighten the screw a quarter turn so the hinge does not wobble.",
    "Put the pot on the stove and bring the water to a boil.",
    "In humans, females usually have two X chromosomes, written XX.",
    "The committee thanked the volunteers for their hard work.", "Please review the pull request before Friday's release.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Our hiking trail follows the river for about six kilometres.", "The library is open until eight o'clock on weekdays.",
    "She thanked her colleagues for a wonderful farewell party.", "Compile the kernel module and load it with modprobe.",
    "The orchestra played Beethoven's ninth symphony beautifully.",
    "Temperatures will drop below freezing tonight, so cover your plants.",
    "He apologised for the delay and promised a refund.", "The museum's new exhibition explores the history of printing.",
]


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def test_profane_sentences_are_rejected_with_exact_reason_and_words():
    out = Toxicity()(table(["You are a fucking idiot.", "The weather is lovely today.",
                            "Shut up, you stupid piece of shit, fuck off."]))
    scores = out[TOXICITY_SCORE].to_pylist()
    assert scores[0] == pytest.approx(0.6321, abs=1e-4)  # one strong word in a sentence: 1 - e^-1
    assert scores[1] == 0.0
    assert scores[2] == pytest.approx(0.8892, abs=1e-4)  # shit + fuck + stupid (ambiguous, 0.2): 1 - e^-2.2
    assert out[REASON].to_pylist() == ["toxicity above 0.5", None, "toxicity above 0.5"]
    assert out[DETAIL].to_pylist() == ["0.63; words: fucking", None, "0.89; words: stupid, shit, fuck"]


def test_max_score_sets_the_bound_in_the_reason():
    out = Toxicity(max_score=0.9)(table(["You are a fucking idiot.", "shit shit fuck"]))
    assert out[REASON].to_pylist() == [None, "toxicity above 0.9"]


def test_multi_word_and_punctuated_entries_are_matched_as_phrases():
    words = Toxicity().words
    assert words.match("What a total son of a bitch.")[0] == ["son-of-a-bitch"]  # not also "bitch"
    assert words.match("That is bull shit.")[0] == ["bull shit"]                 # not also "shit"
    assert words.match("He offered a blow job")[0] == ["blow job"]
    assert words.match("F.U.C.K this, and s.h.i.t too")[0] == ["f_u_c_k", "s_h_i_t"]  # first spelling listed
    assert words.match("Scunthorpe classic bassist")[0] == []                     # tokens, not substrings
    assert {"sh!t", "shi+"} <= set(words.skipped)  # symbols the tokenisation cannot keep (documented)


def test_words_with_a_harmless_sense_weigh_less_and_long_documents_dilute():
    out = Toxicity()(table(["Use kill -9 to stop the process.", " ".join(["word"] * 499 + ["fuck"])]))
    scores = out[TOXICITY_SCORE].to_pylist()
    assert scores[0] == pytest.approx(0.1813, abs=1e-4)  # 1 - e^-0.2
    assert scores[1] == pytest.approx(0.0488, abs=1e-4)  # 1 - e^-(25/500)
    assert out[REASON].to_pylist() == [None, None]


def test_null_and_blank_text_score_null_and_are_kept():
    out = Toxicity()(table([None, "   ", "fuck"]))
    assert out[TOXICITY_SCORE].to_pylist()[:2] == [None, None]
    assert out[REASON].to_pylist() == [None, None, "toxicity above 0.5"]


def test_custom_wordlist_file_and_detail_truncation(tmp_path):
    listed = tmp_path / "words.txt"
    listed.write_text("# our list\nzonk\nwibble wobble\nalpha\nbeta\ngamma\ndelta\n\n")
    op = Toxicity(wordlist=str(listed))
    out = op(table(["Wibble   wobble! zonk", "alpha beta gamma delta zonk wibble wobble"]))
    assert out[DETAIL].to_pylist() == ["0.86; words: wibble wobble, zonk",
                                       "1.00; words: alpha, beta, gamma, delta, zonk (+1 more)"]
    assert op.words.match("fuck")[0] == []


@pytest.mark.parametrize("kwargs, field", [({"max_score": 1.2}, "max_score"), ({"model_path": "/no/such.bin"}, "model_path"),
                                           ({"wordlist": "/no/such.txt"}, "wordlist")])
def test_parameters_are_validated(kwargs, field):
    with pytest.raises(ParameterError, match=rf"Toxicity\.{field}:"):
        Toxicity(**kwargs)


def sentences(frame: pl.DataFrame) -> list[str]:
    """Sentences (3+ words) of the documents: short units make the weak labels more precise."""
    out = []
    for text in frame["text"]:
        for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", text[:3000]):
            part = " ".join(part.split())
            if len(part.split()) >= 3:
                out.append(part)
    return out


def weak_labels(texts: list[str], labeller: str) -> list[str]:
    if labeller == "alt-profanity-check":
        from profanity_check import predict_prob

        return ["toxic" if p > 0.5 else "clean" for p in predict_prob(texts)]
    scores = Toxicity()(table(texts))[TOXICITY_SCORE].to_pylist()
    return ["toxic" if s > 0.5 else "clean" for s in scores]


def precision_recall(predicted: list[bool], truth: list[bool]) -> tuple[float, float]:
    tp = sum(p and t for p, t in zip(predicted, truth))
    return tp / max(1, sum(predicted)), tp / max(1, sum(truth))


# The labeller: alt-profanity-check when installed, else the word list (DISTILLERY_WEAK_LABELLER overrides,
# to measure both). Measured here with these settings (thread=1, seed 0: reproducible):
#   alt-profanity-check: 455 weak-toxic training sentences; held-out toxic P 0.66 R 0.38 F1 0.48; hand P 0.85 R 0.55
#   wordlist:            92 weak-toxic training sentences;  held-out toxic P 1.00 R 0.08 F1 0.15; hand P 1.00 R 0.15
# The floors sit below those numbers; they guard against regressions, not claim quality.
LABELLER = os.environ.get("DISTILLERY_WEAK_LABELLER") or (
    "alt-profanity-check" if importlib.util.find_spec("profanity_check") else "wordlist")
FLOORS = {"alt-profanity-check": {"held_out_f1": 0.3, "hand_precision": 0.7, "hand_recall": 0.4},
          "wordlist": {"held_out_f1": 0.05, "hand_precision": 0.7, "hand_recall": 0.1}}


def test_fasttext_toxicity_model_from_weak_labels(tmp_path):
    labeller = LABELLER
    frame = pl.read_parquet(sorted(SAMPLE.glob("*.parquet"))).filter(pl.col("source").is_in(["fortunes", "dictionary"]))
    texts = sentences(frame)
    pl.DataFrame({"text": texts, "label": weak_labels(texts, labeller)}).write_parquet(tmp_path / "weak.parquet")
    model = tmp_path / "toxicity.bin"
    report = train_classifier(str(tmp_path / "weak.parquet"), str(model), valid_fraction=0.2, seed=0, epoch=5, lr=0.5,
                              wordNgrams=1, minn=3, maxn=5, dim=16, bucket=200_000, thread=1, balance=True)
    held_out = report["validation"]["per_label"]["toxic"]

    out = Toxicity(model_path=str(model))(table(HAND_TOXIC + HAND_CLEAN))
    predicted = [s > 0.5 for s in out[TOXICITY_SCORE].to_pylist()]
    hand_p, hand_r = precision_recall(predicted, [True] * 20 + [False] * 20)
    assert out[REASON].to_pylist() == ["toxicity above 0.5" if p else None for p in predicted]
    words_only = [s > 0.5 for s in Toxicity()(table(HAND_TOXIC + HAND_CLEAN))[TOXICITY_SCORE].to_pylist()]
    summary = {"labeller": labeller, "sentences": len(texts), "weak_toxic": report["labels"]["toxic"],
               "held_out_vs_weak_labels": held_out, "hand_precision": round(hand_p, 3), "hand_recall": round(hand_r, 3),
               "wordlist_only_hand_precision_recall": [round(x, 3) for x in precision_recall(words_only, [True] * 20 + [False] * 20)]}
    print(json.dumps(summary))
    floors = FLOORS[labeller]
    assert held_out["f1"] > floors["held_out_f1"], summary
    assert hand_p >= floors["hand_precision"] and hand_r >= floors["hand_recall"], summary


def test_model_without_the_toxic_label_is_an_error_at_setup(tmp_path):
    pl.DataFrame({"text": ["good day", "bad day"] * 5, "label": ["pos", "neg"] * 5}).write_parquet(tmp_path / "d.parquet")
    train_classifier(str(tmp_path / "d.parquet"), str(tmp_path / "m.bin"), valid_fraction=0.0, dim=8, bucket=1000, thread=1)
    with pytest.raises(ParameterError, match=r"Toxicity\.label: 'toxic' is not a label of .*m\.bin"):
        Toxicity(model_path=str(tmp_path / "m.bin")).setup()
    assert Toxicity(model_path=str(tmp_path / "m.bin"), label="neg")(table(["bad day"]))[TOXICITY_SCORE][0].as_py() > 0.5
