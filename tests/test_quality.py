"""The heuristic quality filters (Gopher, C4, FineWeb) and their spaCy-compatible word splitting, on
single Arrow batches (no Ray). Each crafted document fails exactly one rule; every expected reason was
also checked against DataTrove 0.10.1's filters (``benchmarks/quality_vs_datatrove.py`` does that at
scale)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from operators import DETAIL, REASON, ParameterError
from operators.c4_fineweb import C4Quality, FineWebQuality
from operators.gopher import GopherQuality, GopherRepetition
from operators.quality import count_sentences, split_sentences, split_words

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def table(*texts: str | None) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def judged(op, *texts: str | None) -> list[tuple[str | None, str | None]]:
    out = op(table(*texts))
    return list(zip(out[REASON].to_pylist(), out[DETAIL].to_pylist()))


def unique_words(n: int, start: int = 0, width: int = 5) -> str:
    """n distinct letter-only words: no n-gram repeats among them."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = []
    for i in range(start, start + n):
        word = ""
        for _ in range(width):
            word, i = letters[i % 26] + word, i // 26
        words.append(word)
    return " ".join(words)


# --- spaCy-compatible words and sentences ----------------------------------------------------------------
def test_split_words_matches_spacy_english():
    # Expected: DataTrove's split_into_words (spaCy 3.8, blank "en") on the same text.
    text = "Don't stop... it's 3.5 e-mail foo@bar.com #tag (see e.g. U.S.) and/or 10km C++ :) gonna"
    assert split_words(text) == ["Do", "n't", "stop", "...", "it", "'s", "3.5", "e", "-", "mail", "foo@bar.com", "#",
                                 "tag", "(", "see", "e.g.", "U.S.", ")", "and/or", "10", "km", "C++", ":)", "gon", "na"]


def test_sentences_follow_spacy_sentencizer():
    assert count_sentences("Hello world. This is Dr. Who! Is it?") == 3
    assert count_sentences("no end here") == 1
    assert count_sentences("") == 0
    assert split_sentences("Hi.  There. ") == ["Hi.", "  There. "]


# --- GopherQuality ----------------------------------------------------------------------------------------
BASE = "The quick brown fox jumps over the lazy dog and runs to the river with friends. " * 4  # 64 words, 68 tokens


@pytest.mark.parametrize("text, reason, detail", [
    ("The cat and the dog.", "gopher: fewer than 50 words", "5 words"),
    ("the cat and dog " * 25_001, "gopher: more than 100000 words", "100004 words"),
    ("I am to be in it of the and so " * 6, "gopher: mean word length below 3", "2.10 characters"),
    ("internationalization characteristically the and " * 15, "gopher: mean word length above 10",
     "11.00 characters"),
    (BASE + " #x" * 10, "gopher: '#' per word above 0.1", "10 '#' in 88 words (0.114)"),
    (BASE + " wait..." * 10, "gopher: ellipses per word above 0.1", "10 ellipses in 88 words (0.114)"),
    ("- The quick brown fox jumps over the lazy dog and runs to the river with friends.\n" * 10,
     "gopher: more than 90% of lines start with a bullet", "10 of 10 lines (100.0%)"),
    ("The quick brown fox jumps over the lazy dog and runs to the river with friends.\n" * 6
     + "The quick brown fox jumps over the lazy dog and runs to the river with friends...\n" * 4,
     "gopher: more than 30% of lines end with an ellipsis", "4 of 10 lines (40.0%)"),
    (BASE + " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", "gopher: fewer than 80% of words contain a letter",
     "64 of 88 words (72.7%)"),
    ("quick brown foxes jump over lazy dogs near rivers " * 6 + "the end", "gopher: fewer than 2 stop words",
     "1 of 8 stop words"),
    (BASE, None, None),
])
def test_gopher_quality_names_the_failed_rule(text, reason, detail):
    assert judged(GopherQuality(), text) == [(reason, detail)]


def test_gopher_quality_rules_can_be_turned_off_and_stop_words_changed():
    assert judged(GopherQuality(min_doc_words=None, min_stop_words=None), "The cat and the dog.") == [(None, None)]
    assert judged(GopherQuality(stop_words=("cat", "mouse", "bird")), BASE)[0][0] == "gopher: fewer than 2 stop words"
    assert judged(GopherQuality(), None)[0][0] == "gopher: fewer than 50 words"


@pytest.mark.parametrize("kwargs, field", [
    ({"min_doc_words": -1}, "min_doc_words"), ({"min_doc_words": 5.5}, "min_doc_words"),
    ({"min_doc_words": 100, "max_doc_words": 50}, "max_doc_words"), ({"max_bullet_lines_ratio": 1.5}, "max_bullet_lines_ratio"),
    ({"min_avg_word_length": 5, "max_avg_word_length": 4}, "max_avg_word_length"), ({"stop_words": ["the"]}, "stop_words"),
])
def test_gopher_quality_validates_parameters(kwargs, field):
    with pytest.raises(ParameterError, match=rf"GopherQuality\.{field}:"):
        GopherQuality(**kwargs)


# --- GopherRepetition -------------------------------------------------------------------------------------
REPEATED = "abcde fghij klmno pqrst uvwxy zabcd efghi jklmn opqrs tuvwx"  # a 10-word phrase, 59 characters


@pytest.mark.parametrize("text, reason, detail", [
    ("", "gopher repetition: text is empty", ""),
    ("\n\n".join(["one two three"] * 5 + [unique_words(3, 10 * i) for i in range(5)]),
     "gopher repetition: more than 30% of paragraphs are duplicates", "4 of 10 paragraphs"),
    ("\n\n".join([unique_words(40)] * 3 + [unique_words(1, 100 + i) for i in range(7)]),
     "gopher repetition: more than 20% of characters in duplicate paragraphs", "478 of 770 characters (62.1%)"),
    ("\n".join(["one two three"] * 5 + [unique_words(3, 10 * i) for i in range(5)]),
     "gopher repetition: more than 30% of lines are duplicates", "4 of 10 lines"),
    ("\n".join([unique_words(40)] * 3 + [unique_words(1, 100 + i) for i in range(7)]),
     "gopher repetition: more than 20% of characters in duplicate lines", "478 of 761 characters (62.8%)"),
    (" ".join(f"ab cd {unique_words(1, i)}" for i in range(10)),
     "gopher repetition: the top 2-gram covers more than 20% of characters", "'ab cd' x10: 50 of 119 characters (42.0%)"),
    (" ".join(f"ab cd ef {unique_words(3, 3 * i)}" for i in range(30)),
     "gopher repetition: the top 3-gram covers more than 18% of characters", "'ab cd ef' x30: 240 of 809 characters (29.7%)"),
    (" ".join(f"ab cd ef gh {unique_words(6, 6 * i)}" for i in range(30)),
     "gopher repetition: the top 4-gram covers more than 16% of characters", "'ab cd ef gh' x30: 330 of 1439 characters (22.9%)"),
    (" ".join([REPEATED, unique_words(15, 100), REPEATED, unique_words(15, 200)]),
     "gopher repetition: repeated 5-grams cover more than 15% of characters", "at least 50 of 299 characters (16.7%+)"),
    (" ".join([REPEATED, unique_words(80, 100), REPEATED]), None, None),
])
def test_gopher_repetition_names_the_failed_rule(text, reason, detail):
    assert judged(GopherRepetition(), text) == [(reason, detail)]


def test_gopher_repetition_counts_a_repeated_passage_once_per_n_gram_window():
    # DataTrove's scan jumps past a repeated n-gram: a repeated 10-word phrase counts its 50 letters once.
    text = " ".join([REPEATED, unique_words(15, 100), REPEATED, unique_words(15, 200)])
    assert judged(GopherRepetition(dup_n_grams=((5, 0.1673),)), text) == [(None, None)]  # 50 / 299 = 0.16722
    assert judged(GopherRepetition(dup_n_grams=((5, 0.1672),)), text)[0][0] is not None


def _reference_ngram_reason(text: str, top_n_grams, dup_n_grams) -> str | None:
    """DataTrove's n-gram rules written out plainly (its find_top_duplicate and find_all_duplicate, on
    word tuples) over our words: the first rule that fails, named as GopherRepetition names it."""
    from collections import Counter
    words = split_words(text)
    for n, frac in top_n_grams:
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            gram, count = Counter(grams).most_common(1)[0]
            if len(" ".join(gram)) * count / len(text) > frac:
                return f"top {n}-gram"
    for n, frac in dup_n_grams:
        seen, repeated, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = tuple(words[i:i + n])
            if gram in seen:
                repeated, i = repeated + sum(map(len, gram)), i + n
            else:
                seen.add(gram)
                i += 1
        if repeated / len(text) > frac:
            return f"repeated {n}-grams"
    return None


def test_gopher_repetition_n_gram_rules_match_a_plain_reference_on_random_repetition():
    # Texts of random words from small to large vocabularies (so n-grams repeat at some sizes and not at
    # others) and random thresholds (so every size gets counted): the pruned, batched n-gram code must
    # name the same first failing rule as the plain loops, document by document.
    import random
    rng = random.Random(7)
    texts, settings = [], []
    for _ in range(300):
        vocab = [f"w{k}" for k in range(rng.choice([2, 3, 5, 8, 20, 100, 5000]))]
        texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 250))))
    for _ in range(6):
        settings.append((tuple((n, rng.uniform(0.05, 0.9)) for n in (2, 3, 4)),
                         tuple((n, rng.uniform(0.02, 0.6)) for n in range(5, 11))))
    for top, dup in settings + [(GopherRepetition.top_n_grams, GopherRepetition.dup_n_grams)]:
        reasons = judged(GopherRepetition(top_n_grams=top, dup_n_grams=dup), *texts)
        for text, (reason, _) in zip(texts, reasons):
            got = None if reason is None else reason.split(": ")[1].split(" cover")[0].replace("the ", "")
            assert got == _reference_ngram_reason(text, top, dup), text


@pytest.mark.parametrize("kwargs, field", [
    ({"dup_line_frac": 2}, "dup_line_frac"), ({"top_n_grams": ((2, 0.2), (0, 0.1))}, "top_n_grams"),
    ({"dup_n_grams": [(5, 0.15)]}, "dup_n_grams"),
])
def test_gopher_repetition_validates_parameters(kwargs, field):
    with pytest.raises(ParameterError, match=rf"GopherRepetition\.{field}:"):
        GopherRepetition(**kwargs)


# --- C4Quality ----------------------------------------------------------------------------------------------
GOOD = ["This is a good sentence. And another one here.", "The third sentence is also fine!",
        "Is the fourth one a question?", "Yes, and this is the fifth."]


def test_c4_quality_drops_lines_and_keeps_the_rewritten_text():
    text = "\n".join([GOOD[0], "Short line without an end", "Please enable JavaScript to see this page.",
                      "We use cookies to improve your experience.", "Wikipedia cites things[1] well[citation needed].",
                      "ok.", "  " + GOOD[1] + "  ", GOOD[2], "x" * 1001 + " is far too long.", GOOD[3]])
    out = C4Quality()(table(text))
    assert out[REASON].to_pylist() == [None]
    assert out["text"].to_pylist() == ["\n".join([GOOD[0], "Wikipedia cites things well.", GOOD[1], GOOD[2], GOOD[3]])]


@pytest.mark.parametrize("lines, reason, detail", [
    (GOOD[:2] + ["Lorem ipsum dolor sit amet."] + GOOD[2:], "c4: contains 'lorem ipsum'", "line 3"),
    (GOOD + ["Use the { bracket here."], "c4: contains a curly bracket", "line 5"),
    (GOOD[1:3], "c4: fewer than 5 sentences", "2 sentences in 2 kept lines"),
    # Only lines that survive the line rules can reject a document.
    (GOOD + ["lorem ipsum without an end", "Turn on javascript { now."], None, None),
])
def test_c4_quality_names_the_failed_rule(lines, reason, detail):
    assert judged(C4Quality(), "\n".join(lines)) == [(reason, detail)]


def test_c4_quality_rejected_rows_keep_their_text_and_reasons_alone_rewrite_nothing():
    batch = table("\n".join(GOOD[1:3]), "\n".join(GOOD + ["no end"]))
    out = C4Quality()(batch)
    assert out["text"].to_pylist() == ["\n".join(GOOD[1:3]), "\n".join(GOOD)]
    reason, _ = C4Quality().reasons(batch)
    assert reason.to_pylist() == ["c4: fewer than 5 sentences", None]


def test_c4_quality_options():
    text = "\n".join(GOOD + ["Some darn words here."])
    assert judged(C4Quality(bad_words=("darn",)), text) == [("c4: contains a bad word", "'darn'")]
    assert judged(C4Quality(min_num_sentences=None), GOOD[0]) == [(None, None)]
    # Sentences instead of lines: the tail has no end punctuation and is dropped, five sentences stay.
    out = C4Quality(split_paragraph=False)(table("One sentence here. Two is here too! Three is a question?\n"
                                                 "Four is fine. Five is the end. And a tail"))
    assert out[REASON].to_pylist() == [None]
    assert out["text"].to_pylist() == ["One sentence here. Two is here too! Three is a question? Four is fine. Five is the end."]


@pytest.mark.parametrize("kwargs, field", [
    ({"min_num_sentences": -1}, "min_num_sentences"), ({"filter_policy": "yes"}, "filter_policy"),
    ({"bad_words": ["x"]}, "bad_words"), ({"max_word_length": 0.5}, "max_word_length"),
])
def test_c4_quality_validates_parameters(kwargs, field):
    with pytest.raises(ParameterError, match=rf"C4Quality\.{field}:"):
        C4Quality(**kwargs)


# --- FineWebQuality ---------------------------------------------------------------------------------------
LONG_LINES = [f"This line number {unique_words(1, i)} is long enough to count." for i in range(10)]


@pytest.mark.parametrize("lines, reason, detail", [
    (["", "  ", ""], "fineweb: text is empty", ""),
    ([line[:-1] for line in LONG_LINES], "fineweb: fewer than 12% of lines end with punctuation", "0 of 10 lines (0.0%)"),
    ([f"Short {unique_words(1, i)}." for i in range(8)] + LONG_LINES[:2],
     "fineweb: more than 67% of lines are short (<= 30 characters)", "8 of 10 lines (80.0%)"),
    (LONG_LINES[:9] + LONG_LINES[:1], "fineweb: more than 1% of characters in duplicate lines",
     "47 of 470 characters (10.0%)"),
    ([f"Pneumonoultramicroscopicsilicovolcano{unique_words(1, i)}!" for i in range(10)],
     "fineweb: more than 0.3 newlines per word", "9 newlines, 20 words (0.45)"),
    (LONG_LINES, None, None),
])
def test_fineweb_quality_names_the_failed_rule(lines, reason, detail):
    assert judged(FineWebQuality(), "\n".join(lines)) == [(reason, detail)]


def test_fineweb_quality_exclusions():
    no_punct = "\n".join(line[:-1] for line in LONG_LINES)
    assert judged(FineWebQuality(line_punct_exclude_zero=True), no_punct) == [(None, None)]
    assert judged(FineWebQuality(stop_chars=("count",)), no_punct) == [(None, None)]


@pytest.mark.parametrize("kwargs, field", [
    ({"line_punct_thr": 1.2}, "line_punct_thr"), ({"short_line_length": -3}, "short_line_length"),
    ({"stop_chars": ()}, "stop_chars"), ({"new_line_ratio": -0.1}, "new_line_ratio"),
])
def test_fineweb_quality_validates_parameters(kwargs, field):
    with pytest.raises(ParameterError, match=rf"FineWebQuality\.{field}:"):
        FineWebQuality(**kwargs)


# --- real documents: DataTrove 0.10.1's decisions on data/sample -------------------------------------------------
KNOWN = {
    GopherQuality(): {"dictionary-8726b887b245": None, "fortunes-331eeafd7da8": "gopher: fewer than 50 words",
                      "manpages-c0ebc6ff76dd": "gopher: fewer than 80% of words contain a letter",
                      "manpages-3c02a320efca": "gopher: mean word length below 3",
                      "docs-0978138ae0bd": "gopher: mean word length above 10",
                      "dictionary-059b2f1b40e9": "gopher: fewer than 2 stop words"},
    GopherRepetition(): {"manpages-c0ebc6ff76dd": None,
                         "manpages-3c02a320efca": "gopher repetition: the top 2-gram covers more than 20% of characters",
                         "fortunes-331eeafd7da8": "gopher repetition: the top 3-gram covers more than 18% of characters",
                         "dictionary-f289d4791331": "gopher repetition: the top 4-gram covers more than 16% of characters",
                         "docs-f92186640215": "gopher repetition: repeated 5-grams cover more than 15% of characters",
                         "fortunes-499d6fd5a4c2": "gopher repetition: more than 30% of lines are duplicates",
                         "fortunes-e5f6d14a6a5d": "gopher repetition: more than 20% of characters in duplicate lines"},
    C4Quality(): {"manpages-c0ebc6ff76dd": None, "fortunes-331eeafd7da8": "c4: fewer than 5 sentences",
                  "dictionary-e76776b33f1a": "c4: contains a curly bracket"},
    FineWebQuality(): {"manpages-c0ebc6ff76dd": None, "dictionary-a041a3e5fba9": "fineweb: more than 0.3 newlines per word",
                       "docs-451af069c0a8": "fineweb: fewer than 12% of lines end with punctuation",
                       "docs-f92186640215": "fineweb: more than 1% of characters in duplicate lines",
                       "fortunes-0cd8f374d3a0": "fineweb: more than 67% of lines are short (<= 30 characters)"},
}


@pytest.fixture(scope="module")
def sample_docs() -> pa.Table:
    ids = sorted({i for known in KNOWN.values() for i in known})
    return pq.read_table(SAMPLE, columns=["id", "text"], filters=[("id", "in", ids)])


@pytest.mark.parametrize("op", list(KNOWN), ids=lambda op: op.name)
def test_real_documents_get_datatroves_decisions(op, sample_docs):
    known = KNOWN[op]
    batch = sample_docs.filter(pc.is_in(sample_docs["id"], pa.array(list(known))))
    out = op(batch)
    assert dict(zip(out["id"].to_pylist(), out[REASON].to_pylist())) == known
