"""Debiasing: exact term and co-occurrence counts, counterfactual swaps (and the her/his rule measured on
hand-written and corpus sentences), rebalancing math and sampling, the report, and parameter errors."""
from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.base import ParameterError
from operators.bias import (BiasMeasure, CounterfactualSwap, Rebalance, RebalanceSample, counterfactual_rows,
                            document_weights, fit_multipliers, rebalance_weights)
from operators.bias_lexicons import swap_gender
from pipelines.bias_report import (bias_report, format_bias_report, multipliers_from_manifest,
                                   multipliers_from_parquet)

LEXICON = {"gender": {"female": ["she", "her", "woman", "women"], "male": ["he", "him", "his", "man", "men"]},
           "age": {"old": ["old people", "elderly"], "young": ["young people", "teen*"]}}
ATTRIBUTES = {"family": ["family", "wedding"], "career": ["salary", "career"]}


def table(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def column(out: pa.Table, name: str) -> list:
    return out[name].to_pylist()


def counts_of(out: pa.Table, name: str) -> list[int]:
    """One field of BiasMeasure's ``bias_counts`` struct column."""
    return pa.compute.struct_field(out["bias_counts"], name).to_pylist()


def counts_table(ids: list[str], **fields) -> pa.Table:
    """A batch as BiasMeasure leaves it: ``bias_counts`` with the given int32 fields."""
    struct = pa.StructArray.from_arrays([pa.array(v, pa.int32()) for v in fields.values()], names=list(fields))
    return pa.table({"id": ids, "text": ["x"] * len(ids), "bias_counts": struct})


# -- measurement ---------------------------------------------------------------------------------------------
def test_counts_respect_word_boundaries_and_multi_word_terms():
    out = BiasMeasure(lexicons=LEXICON, attributes={})(table([
        "The theme says hello; then he left. She and HE met.",   # he not inside the/theme/hello/then/she
        "Old people and old-people, Elderly folk; young\npeople and teenagers; teens.",
        "Nothing here: shell, herb, mend, menu, women's, Women.",
        None, ""]))
    assert counts_of(out, "gender_male") == [2, 0, 0, 0, 0]
    assert counts_of(out, "gender_female") == [1, 0, 2, 0, 0]
    assert counts_of(out, "age_old") == [0, 3, 0, 0, 0]
    assert counts_of(out, "age_young") == [0, 3, 0, 0, 0]  # "young\npeople", teen* stems
    assert out.column_names == ["id", "text", "bias_counts"]  # one struct column, not one column per term set
    assert out.schema.field("bias_counts").type == pa.struct([(name, pa.int32()) for name in (
        "gender_female", "gender_male", "age_old", "age_young")])


def test_default_lexicons_mask_technical_senses_and_subtract_negative_terms():
    out = BiasMeasure()(table([
        "See man(1), the man page and man-db; a man walked in. Timeout 100 ms; Mr. Smith and Ms. Jones.",
        "Christian Perrier <bubulle@debian.org> fixed it. Christian charity.",
        "African-American and Native American writers; an American novel.",
        "Updated German, French and Dutch translations; a German car; Brazilian Portuguese translation.",
    ]))
    assert counts_of(out, "gender_male") == [2, 0, 0, 0]      # "a man", "Mr"
    assert counts_of(out, "gender_female") == [1, 0, 0, 0]    # "Ms"
    assert counts_of(out, "religion_christian") == [0, 1, 0, 0]
    assert counts_of(out, "ethnicity_black") == [0, 0, 1, 0]
    assert counts_of(out, "ethnicity_indigenous") == [0, 0, 1, 0]
    assert counts_of(out, "nationality_american") == [0, 0, 1, 0]  # not the two inside ethnic terms
    assert counts_of(out, "nationality_german") == [0, 0, 0, 1]    # the car, not the translation
    assert counts_of(out, "nationality_french") == [0, 0, 0, 0]
    assert counts_of(out, "nationality_brazilian") == [0, 0, 0, 0]


def test_sentence_cooccurrence_counts_mentions_next_to_attribute_words():
    op = BiasMeasure(lexicons=LEXICON, attributes=ATTRIBUTES)
    out = op(table([
        "She loves her family. He talks about his salary and career. His friend Dr. Brown planned the wedding.",
        "She was here. Her family! No one else.",
        "The family of women and men.",
    ]))
    assert counts_of(out, "cooc_gender_female__family") == [2, 1, 1]  # she, her; Her; women
    assert counts_of(out, "cooc_gender_male__family") == [1, 0, 1]    # "Dr." does not end the sentence
    assert counts_of(out, "cooc_gender_male__career") == [2, 0, 0]
    assert counts_of(out, "cooc_gender_female__career") == [0, 0, 0]
    fields = [f.name for f in out.schema.field("bias_counts").type]
    assert "cooc_age_old__family" not in fields  # co-occurrence: gender only by default
    assert fields == op.fields() == ["gender_female", "gender_male", "age_old", "age_young", "cooc_gender_female__family",
                                     "cooc_gender_female__career", "cooc_gender_male__family", "cooc_gender_male__career"]
    assert op.metrics == ("bias_counts",)  # the runner sums each field into the manifest


def test_window_cooccurrence_counts_within_n_tokens():
    op = BiasMeasure(lexicons=LEXICON, attributes=ATTRIBUTES, window=2, cooc_groups=("gender", "age"))
    out = op(table(["she has a family . one two three four he family", "a wedding for old people",
                    "old people love a wedding"]))
    assert counts_of(out, "cooc_gender_female__family") == [0, 0, 0]  # 3 tokens apart
    assert counts_of(out, "cooc_gender_male__family") == [1, 0, 0]
    assert counts_of(out, "cooc_age_old__family") == [0, 1, 0]        # from either end of a multi-word term
    wide = BiasMeasure(lexicons=LEXICON, attributes=ATTRIBUTES, window=3, cooc_groups=("gender", "age"))
    assert counts_of(wide(table(["she has a family"])), "cooc_gender_female__family") == [1]
    assert counts_of(wide(table(["old people love a wedding"])), "cooc_age_old__family") == [1]


def test_lexicons_from_json_config_digest_rerun_and_pickle(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps(LEXICON))
    op = BiasMeasure(lexicons=str(path), attributes={})
    once = op(table(["he and she"]))
    assert counts_of(op(once), "gender_male") == [1] and op(once).schema == once.schema  # replaced, not added
    digest = op.config()["lexicon_digest"]
    path.write_text(json.dumps({"gender": {"female": ["she"], "male": ["he", "his"]}}))
    assert BiasMeasure(lexicons=str(path), attributes={}).config()["lexicon_digest"] != digest
    clone = pickle.loads(pickle.dumps(op))  # Ray ships operators to workers
    assert clone.fields() == op.fields() and clone(table(["he"])).schema == once.schema


def test_default_fields_cover_every_group():
    op = BiasMeasure()
    fields = [f.name for f in op(table(["he"])).schema.field("bias_counts").type]
    assert fields == op.fields() and len(fields) == len(set(fields))
    for name in ("gender_female", "gender_male", "religion_muslim", "ethnicity_asian", "nationality_nigerian",
                 "age_young", "cooc_gender_female__family", "cooc_gender_male__competence",
                 "cooc_gender_female__warmth"):
        assert name in fields


# -- counterfactual augmentation -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("He gave her his book.", "She gave him her book."),
    ("She gave him her book.", "He gave her his book."),
    ("HE SAID SHE WAS HIS WIFE.", "SHE SAID HE WAS HER HUSBAND."),
    ("The king and his sons met the queen's daughters.", "The queen and her daughters met the king's sons."),
    ("I saw her car, then I saw her.", "I saw his car, then I saw him."),
    ("Tell her that her mother called.", "Tell him that his father called."),
    ("The book is his, not hers.", "The book is hers, not his."),
    ("Each user keeps his or her own key; his/her choice.", "Each user keeps her or his own key; her/his choice."),
    ("Mr. Smith met Ms. Jones; the timeout is 5 ms.", "Ms. Smith met Mr. Jones; the timeout is 5 ms."),
    ("See man(1) and the man page; the man himself agreed.", "See man(1) and the man page; the woman herself agreed."),
    ("Theme, hello, shell and Heß stay.", "Theme, hello, shell and Heß stay."),
])
def test_swaps_keep_case_and_resolve_her(text, expected):
    assert swap_gender(text)[0] == expected


def test_names_swap_only_when_asked_and_capitalised():
    assert swap_gender("John met Mary.")[0] == "John met Mary."
    assert swap_gender("John met Mary; john is a login.", names=True)[0] == "Mary met John; john is a login."


@pytest.mark.parametrize("text", [
    "He told his brother that the man was her uncle.", "She and her husband visited their son.",
    "The boys and girls thanked their father.", "His wife gave him a watch.", "Mr. Lee and his nephews left.",
])
def test_swapping_twice_returns_the_original(text):
    once, n = swap_gender(text)
    assert n > 0 and once != text and swap_gender(once)[0] == text


# The her -> him/his rule measured. Each item: text, then the expected word for each "her" in order.
HAND_WRITTEN = [
    ("I gave her the book.", "him"), ("I gave her a book.", "him"), ("I gave her flowers.", "him"),
    ("Her book is on the table.", "His"), ("This is her book.", "his"), ("I saw her yesterday.", "him"),
    ("I saw her at the station.", "him"), ("I saw her car at the station.", "his"),
    ("We met her and her sister.", "him his"), ("Tell her that the train is late.", "him"),
    ("She lost her keys again.", "his"), ("He thanked her for the help.", "him"), ("Nobody believed her.", "him"),
    ("They made her laugh.", "him"), ("Let her go.", "him"), ("I bought her dinner.", "him"),
    ("Her own mother did not recognise her.", "His him"), ("We asked her opinion.", "his"),
    ("We asked her about the plan.", "him"), ("The committee elected her chair.", "him"),
    ("He called her, but she did not answer.", "him"), ("Everyone admired her courage.", "his"),
    ("Give her a chance.", "him"), ("The dog followed her home.", "him"), ("It was her idea to leave early.", "his"),
    ("I have known her since childhood.", "him"), ("Her parents live in Lisbon.", "His"), ("Talk to her!", "him"),
    ("I'd like to meet her.", "him"), ("She found her old letters in the attic.", "his"),
    ("The teacher praised her work.", "his"), ("Did you see her?", "him"), ("We watched her leave the room.", "him"),
    ("Without her help we would have failed.", "his"), ("He wrote her a long letter.", "him"),
    ("They sent her home early.", "him"), ("He kissed her hand.", "his"), ("He kissed her on the cheek.", "him"),
    ("I told her everything.", "him"), ("HER DECISION IS FINAL.", "HIS"),
    ("I can't hear her, the music is too loud.", "him"), ("What did you give her?", "him"),
    ("Her, of all people!", "Him"), ("Between her and me there are no secrets.", "him"),
    ("Ask her whether she agrees.", "him"), ("The award made her famous.", "him"),
]
# Sentences from data/sample (fortunes, dictionaries, manuals) drawn at random and labelled before the rule
# was run on them (none of these was used to write the rule).
CORPUS_BLIND = [
    ("wizard can have influence out of all proportion to his/her ostensible rank", "his"),
    ("appears on TV to plug her latest book.", "his"),
    ("with regard to the part of her that is audible, bleating", "him"),
    ("And the young kangaroo in her pouch said, \"ME TOO!\"", "his"),
    ("sat down beside her, Or at least in her vicinity, And caused her to feel", "him his him"),
    ("She been married so many times she got rice marks all over her face.", "his"),
    ("For I swore I would stay a year away from her; out and alas!", "him"),
    ("To bind the chains about her feet And toll her knell.", "his his"),
    ("If you can get close enough to look into her eyes", "his"),
    ("the wad of rum soaked plug in her right cheek.", "his"),
    ("the right of a woman to vote as some man tells her to.", "him"), ("But the draught did not affect her.", "him"),
    ("Miss Sallie Ann Splurge, of her own accord, Wedded a wandering", "his"),
    ("to have looked upon the lashes of her downcast eyes", "his"),
    ("Being asked solicitously about the state of her health was becoming bothersome", "his"),
    ("Then, he took off his shirt and she took off her blouse.", "his"),
    ("A chip designer who spends most of his or her time at the physical layout level", "his"),
    ("The girl next door bought an album too, and started her own collection.", "his"),
    ("a mother who won't act her age.", "his"),
    ("One of the major difficulties Trillian experienced in her relationship with Zaphod", "his"),
    ("Your only son tells you he wishes Anita Bryant would mind her own business.", "his"),
    ("it suggests that you have one and are still beating her.", "him"),
    ("As the miller told his tale, That her face, at first just ghostly, Turned", "his"),
    ("Her locks an ancient lady gave Her loving husband", "His His"), ("He sought her ever, wandering far", "him"),
    ("fired a charge of bird-shot into the most conspicuous part of her person.", "his"),
    ("Joe sat as his dying wife's bedside. Her voice was little more than a whisper.", "His"),
    ("whose belief in her existence marks a noble discontent", "his"),
    ("and to her amazement the frog spoke to her.", "his him"),
    ("To mailbomb someone by sending a BLOB to him/her; esp. used as a mild threat.", "him"),
    ("Displayed her broad disk to the darkening west", "his"),
    ("so I can marry her. If you win, I promise never to see her again.", "him him"),
    ("and possibly not even by him/her. A Bad Thing.", "him"),
    ("Loses Her Baby in Dallas -- Leaves Her Husband in", "His His"),
    ("Cressida laments her inability to grasp the proof", "his"),
    ("uttered Her bilious mind and scandalously muttered", "His"), ("name removed to protect her job", "his"),
    ("Upon the pestilential blast Her clamors swell.", "His"),
    ("So Nature executes her feats Of wrath on friends", "his"),
    ("A woman with a fine prospect of happiness behind her.", "him"), ("Her mantle glinted in the moon", "His"),
]


def her_misses(items: list[tuple[str, str]]) -> tuple[int, list[str]]:
    """(number of her occurrences, the texts where a swapped her differs from the label)."""
    total, misses = 0, []
    for text, expected in items:
        swapped = swap_gender(text)[0]
        pairs = zip(re.findall(r"[A-Za-z]+", text), re.findall(r"[A-Za-z]+", swapped))  # swaps keep word count
        got = [b for a, b in pairs if a.lower() == "her"]
        assert len(got) == len(expected.split())
        total += len(got)
        misses += [text for g, e in zip(got, expected.split()) if g != e]
    return total, misses


def test_her_rule_accuracy_on_hand_written_sentences():
    total, misses = her_misses(HAND_WRITTEN)
    assert len(HAND_WRITTEN) >= 30 and total == 48
    # Known failures: a predicate noun, an adverbial noun, an adjective complement after the object.
    assert misses == ["The committee elected her chair.", "The dog followed her home.", "The award made her famous."]
    assert (total - len(misses)) / total == pytest.approx(0.9375)  # 45 / 48


def test_her_rule_accuracy_on_corpus_sentences():
    total, misses = her_misses(CORPUS_BLIND)
    assert total == 48
    # Poetic inversion after a two-object verb; an adverb (ever) not among the function words.
    assert misses == ["Her locks an ancient lady gave Her loving husband", "He sought her ever, wandering far"]


def test_operator_augment_and_replace_modes():
    texts = ["He said she was right.", "No gendered words.", None]
    out = CounterfactualSwap()(table(texts))
    assert column(out, "text") == texts
    assert column(out, "text_counterfactual") == ["She said he was right.", None, None]
    assert column(out, "cda_swaps") == [2, 0, 0]
    assert CounterfactualSwap.metrics == ("cda_swaps",)
    replaced = CounterfactualSwap(mode="replace")(table(texts))
    assert column(replaced, "text") == ["She said he was right.", "No gendered words.", None]
    assert "text_counterfactual" not in replaced.column_names


def test_counterfactual_rows_build_extra_rows_with_ids():
    base = table(["He left.", "Nothing.", "Her book."]).append_column("source", pa.array(["a", "b", "c"]))
    rows = counterfactual_rows(CounterfactualSwap()(base))
    assert column(rows, "id") == ["d0#cda", "d2#cda"]
    assert column(rows, "text") == ["She left.", "His book."]
    assert column(rows, "cda_of") == ["d0", "d2"] and column(rows, "source") == ["a", "c"]
    both = counterfactual_rows(base, with_originals=True)
    assert column(both, "id") == ["d0", "d1", "d2", "d0#cda", "d2#cda"]


# -- rebalancing ----------------------------------------------------------------------------------------------
def weighted_shares(counts: dict[str, np.ndarray], weights: np.ndarray) -> dict[str, float]:
    totals = {c: float(np.sum(weights * n)) for c, n in counts.items()}
    return {c: t / sum(totals.values()) for c, t in totals.items()}


def test_rebalance_weights_reach_the_target_exactly_on_single_category_documents():
    counts = {"female": np.array([1, 0, 2, 0, 0, 0]), "male": np.array([0, 3, 0, 2, 4, 0])}
    m = rebalance_weights({"female": 3, "male": 9}, {"female": 0.5, "male": 0.5})
    assert m == pytest.approx({"female": 2.0, "male": 2 / 3})  # 3 * 2 + 9 * 2/3 = 12: mass kept
    w = document_weights(counts, m)
    assert w[-1] == 1.0  # no mentions
    assert weighted_shares(counts, w) == pytest.approx({"female": 0.5, "male": 0.5})
    capped = rebalance_weights({"female": 1, "male": 99}, {"female": 0.5, "male": 0.5}, max_weight=5.0)
    assert max(capped.values()) == 5.0 and capped["female"] / capped["male"] == pytest.approx(99)
    assert rebalance_weights({"female": 3, "male": 9}) == pytest.approx(m)  # None: equal shares


def test_fit_multipliers_is_exact_when_documents_mix_categories():
    counts = {"female": np.array([1, 0, 2, 1, 0]), "male": np.array([0, 3, 1, 4, 5])}
    target = {"female": 0.4, "male": 0.6}
    approx = weighted_shares(counts, document_weights(counts, rebalance_weights(
        {c: n.sum() for c, n in counts.items()}, target)))
    assert approx["female"] != pytest.approx(0.4)  # mixed documents: totals alone are not enough
    exact = fit_multipliers(counts, target)
    assert weighted_shares(counts, document_weights(counts, exact)) == pytest.approx(target)
    with pytest.raises(ValueError, match="not reachable"):
        fit_multipliers({"female": np.array([1, 2]), "male": np.array([1, 2])}, target)


def test_rebalance_operator_and_deterministic_sampler():
    rng = np.random.default_rng(0)
    female, male = rng.integers(0, 2, 4000) * rng.integers(1, 3, 4000), rng.integers(0, 4, 4000)
    female[male > 0] = 0  # single-category documents, so the expected share is exact
    batch = counts_table([f"doc{i}" for i in range(4000)], gender_female=female, gender_male=male)
    m = rebalance_weights({"female": female.sum(), "male": male.sum()}, {"female": 0.5, "male": 0.5})
    weights = Rebalance(multipliers=m)(batch)["sample_weight"].to_numpy()
    assert weighted_shares({"female": female, "male": male}, weights)["female"] == pytest.approx(0.5)
    sampler = RebalanceSample(multipliers=m, seed=7)
    out = sampler(batch)
    kept = out.filter(pa.compute.is_null(out["_reason"]))
    assert set(out["_reason"].drop_null().to_pylist()) == {"rebalanced out"}
    assert out["_reason"].to_pylist() == RebalanceSample(multipliers=m, seed=7)(batch)["_reason"].to_pylist()
    assert out["_reason"].to_pylist() != RebalanceSample(multipliers=m, seed=8)(batch)["_reason"].to_pylist()
    neutral = (female + male) == 0
    assert pa.compute.all(pa.compute.is_null(out["_reason"].filter(pa.array(neutral)))).as_py()
    f, k = sum(counts_of(kept, "gender_female")), sum(counts_of(kept, "gender_male"))
    assert f / (f + k) == pytest.approx(0.5, abs=0.03)  # the sample's share is the target, up to chance
    with pytest.raises(ValueError, match=r"Rebalance: bias_counts fields \['age_old'\] missing; run BiasMeasure"):
        Rebalance(group="age", multipliers={"old": 1.0})(batch)
    with pytest.raises(ValueError, match=r"RebalanceSample: bias_counts fields .* missing; run BiasMeasure"):
        sampler(batch.drop_columns(["bias_counts"]))


def test_multipliers_from_manifest_and_parquet(tmp_path):
    manifest = {"stages": [{"name": "bias_measure", "config": {"operator": "BiasMeasure"},
                            "metrics": {"bias_counts.gender_female": 10, "bias_counts.gender_male": 30,
                                        "bias_counts.age_old": 1, "bias_counts.cooc_gender_female__family": 4}}]}
    (tmp_path / "_manifest.json").write_text(json.dumps(manifest))
    assert multipliers_from_manifest(tmp_path, {"female": 0.5, "male": 0.5}) == pytest.approx(
        {"female": 2.0, "male": 2 / 3})
    pq.write_table(counts_table(["a", "b"], gender_female=[1, 0], gender_male=[0, 3]), tmp_path / "part-0.parquet")
    assert multipliers_from_parquet(tmp_path) == pytest.approx({"female": 2.0, "male": 2 / 3})


@pytest.mark.slow  # a real embedded Ray
def test_runner_sums_each_bias_counts_field_into_the_manifest(ray_local, tmp_path):
    from conftest import write_docs
    from pipelines import Pipeline

    texts = ["She met her sister.", "He and his father left. He waved.", "No people here.", "Women and men.",
             "The man and the woman.", "Her family."]
    data = write_docs(tmp_path / "in", [{"id": f"d{i}", "text": t, "source": "x"} for i, t in enumerate(texts)], files=2)
    op = BiasMeasure(lexicons=LEXICON, attributes=ATTRIBUTES)
    manifest = Pipeline("measure").read_parquet(str(data)).map(op).run(output=str(tmp_path / "out"))
    out = pq.read_table(tmp_path / "out").sort_by("id")
    assert out.column_names == ["id", "text", "source", "bias_counts"]
    assert counts_of(out, "gender_female") == [2, 0, 0, 1, 1, 1] and counts_of(out, "gender_male") == [0, 3, 0, 1, 1, 0]
    metrics = manifest["stages"][1]["metrics"]
    assert metrics == {f"bias_counts.{name}": sum(counts_of(out, name)) for name in op.fields()}
    assert metrics["bias_counts.gender_female"] == 5 and metrics["bias_counts.cooc_gender_female__family"] == 1
    target = {"female": 0.25, "male": 0.75}  # 5 + 5 mentions: m_c = target_c * 10 / 5
    assert multipliers_from_manifest(tmp_path / "out", target) == pytest.approx({"female": 0.5, "male": 1.5})


# -- report ---------------------------------------------------------------------------------------------------
def test_bias_report_before_and_after(tmp_path):
    op = BiasMeasure(lexicons=LEXICON, attributes=ATTRIBUTES)
    texts = ["She loves her family.", "He earns a salary.", "He and his family.", "Nothing here.", "Men and men."]
    before = op(table(texts))
    (tmp_path / "before").mkdir()
    pq.write_table(before, tmp_path / "before" / "part-0.parquet")
    (tmp_path / "before" / "_rejected").mkdir()  # not read
    m = rebalance_weights({"female": 2, "male": 5})
    after = Rebalance(multipliers=m)(before)
    pq.write_table(after, tmp_path / "after.parquet")
    report = bias_report(tmp_path / "before", tmp_path / "after.parquet")
    gender = report["before"]["groups"]["gender"]
    assert report["before"]["documents"] == 5 and gender["mentions"] == 7
    assert gender["categories"]["female"] == {"mentions": 2, "share": 0.2857, "documents": 1, "document_share": 0.2}
    assert gender["categories"]["male"]["documents"] == 3
    family = report["before"]["cooccurrence"]["gender"]["family"]
    assert family["rates"] == {"female": 1.0, "male": 0.4}
    assert family["ratio"] == 2.5 and family["ratio_of"] == "female/male"
    assert report["after"]["groups"]["gender"]["categories"]["female"]["weighted_share"] == 0.5
    assert report["change"]["gender"]["female"] == {"share_before": 0.2857, "share_after": 0.5, "delta": 0.2143}
    text = format_bias_report(report)
    assert "female" in text and "28.6%" in text and "+21.4 pts" in text and "2.50" in text


# -- parameters -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs, field, message", [
    (BiasMeasure, {"lexicons": {"Gender": {"f": ["she"]}}}, "lexicons", "invalid names"),
    (BiasMeasure, {"lexicons": {"gender": {"f": []}}}, "lexicons", "non-empty list"),
    (BiasMeasure, {"lexicons": {"gender": {"f": ["She"]}}}, "lexicons", "lower-case"),
    (BiasMeasure, {"lexicons": "/no/such/file.json"}, "lexicons", "cannot read"),
    (BiasMeasure, {"attributes": {"a__b": ["x"]}}, "attributes", "invalid names"),
    (BiasMeasure, {"groups": ("gender", "caste")}, "groups", "among"),
    (BiasMeasure, {"groups": ("age",), "cooc_groups": ("gender",)}, "cooc_groups", "among"),
    (BiasMeasure, {"window": 0}, "window", "integer >= 1"),
    (BiasMeasure, {"exclude": ("(",)}, "exclude", "bad regex"),
    (CounterfactualSwap, {"pairs": (("he", "She"),)}, "pairs", "lower-case"),
    (CounterfactualSwap, {"pairs": (("he", "she"), ("she", "it"))}, "pairs", "both sides"),
    (CounterfactualSwap, {"mode": "double"}, "mode", "augment"),
    (CounterfactualSwap, {"names": "yes"}, "names", "bool"),
    (Rebalance, {"multipliers": None}, "multipliers", "map categories"),
    (Rebalance, {"multipliers": {"female": -1.0}}, "multipliers", "map categories"),
    (RebalanceSample, {"multipliers": {"female": 1.0}, "seed": "0"}, "seed", "integer"),
])
def test_parameter_errors_name_the_field(cls, kwargs, field, message):
    with pytest.raises(ParameterError, match=rf"{cls.__name__}\.{field}: .*{message}"):
        cls(**kwargs)


def test_target_errors():
    with pytest.raises(ValueError, match="exactly the categories"):
        rebalance_weights({"female": 1, "male": 2}, {"female": 1.0})
    with pytest.raises(ValueError, match="sum to 1"):
        rebalance_weights({"female": 1, "male": 2}, {"female": 0.7, "male": 0.7})
    with pytest.raises(ValueError, match="no mentions"):
        rebalance_weights({"female": 0, "male": 2})
