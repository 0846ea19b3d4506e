"""Toxicity scoring and filtering: a profanity word list, optionally a fastText toxicity classifier.

``Toxicity`` adds ``toxicity_score`` in [0, 1] and rejects documents scored above ``max_score`` with reason
``toxicity above 0.5`` and a detail such as ``0.86; words: fuck, idiot``.

The score (the rule, in full):

* With ``model_path`` (a fastText supervised model with a ``toxic`` label, e.g. trained with
  ``pipelines.classifier_train.train_classifier``): the model's probability of ``label``. The word list
  only names matched words in the detail.
* Without a model: a function of word-list hits. Every listed entry found in the document counts 1, or
  ``AMBIGUOUS_WEIGHT`` (0.2) when the entry has a common harmless sense (``kill``, ``strip``, ``len``,
  ``god``, ``fat``, anatomy and drug names, mild insults: ``AMBIGUOUS`` below, hand-picked after
  reading which entries fire on Debian's man pages and docs). With ``h`` the weighted hits per 25
  tokens (documents shorter than 25 tokens count as 25), ``score = 1 - exp(-h)``: one strong word in a
  sentence scores 0.63, two 0.86, one ambiguous word 0.18; one strong word in a 500-token page 0.05.
  The constants are hand-set, not fitted; tests/test_toxicity.py measures them against weak labels.

The word list defaults to better-profanity's ``profanity_wordlist.txt`` (916 entries, MIT); ``wordlist``
takes any file with one entry per line (``#`` comments allowed). Text and entries are lower-cased and
split into letter/digit runs, so ``f.u.c.k``, ``son-of-a-bitch`` and ``blow job`` are token sequences
matched as phrases (longest match first, no overlaps). Entries with other symbols (``sh!t``, ``shi+``,
``masterbat*``: 5 in the default list) cannot be matched by this tokenisation and are skipped.
Null or blank text scores null and is kept.
"""
from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DETAIL, REASON, check, reject_where
from operators.classifier import (FastTextFilter, check_model_file, check_probability, fasttext_lines,
                                  label_probabilities, set_column, strip_label)

TOXICITY_SCORE = "toxicity_score"
TOKEN = re.compile(r"[^\W_]+")
AMBIGUOUS_WEIGHT = 0.2
WINDOW_TOKENS = 25
DETAIL_WORDS = 5

AMBIGUOUS = frozenset("""
anal anus areole arian aryan bondage breasts busty cock cocks coon crap crotch cum damn dick dink dinks dong
doofus dopey drunk dummy enlargement erect erection erotic extacy extasy facial fanny fart fat flange fondle
foobar foreskin fubar gae gai ganja gay gays gigolo glans god gonad gonads gringo guido hebe hell hemp heroin
herp herpes hiv hoare homey homo hooch hookah hooker hooters hump humped humping hymen inbred jerk jerked
junkie junky kill kinky knob kock labia lech len leper lesbians lmao lmfao loin loins lube lust lusting lusty
mams massa masochist maxi menses menstruate menstruation meth moron muff murder muther naked napalm nappy
niggle nimrod ninny nipple nipples nob nude nudes omg opiate opium oral orally organ ovary ovum ovums paddy
pantie panties panty pastie pasty pawn pcp pee peepee penetrate penetration penial penile penis perversion
peyote phalli phallic pinko playboy pms pollock poop pot potty prick pricks prig prude pube pubic pubis puss
queer racy rectal rectum rectus reefer reich revue rum rump ruski sadism sadist sandbar scag scantily schizo
screw screwed screwing scum seaman seamen seduce semen sex sexual sissy skag slave sleaze sleazy slope snatch
sniper snuff sodom souse soused sperm spunk steamy strip stroke stupid suck sucked sucking tampon teat teste
testee testes testical testicle testis thrust thug tinkle tit titi toke toots tramp transsexual trashy tush
ugly undies unwed urinal urine uterus uzi vagina valium viagra virgin vixen vodka vomit voyeur vulgar vulva
wad wang weed weenie weirdo wench whiz willies willy womb woody xx xxx yury
""".split())


def packaged_wordlist() -> str | None:
    """Path of better-profanity's ``profanity_wordlist.txt``, or None if the package is absent."""
    spec = importlib.util.find_spec("better_profanity")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "profanity_wordlist.txt")
        if os.path.isfile(path):
            return path
    return None


class WordList:
    """Listed entries as token sequences, matched as phrases with their weights."""

    def __init__(self, entries: list[str]) -> None:
        self.phrases: dict[tuple[str, ...], str] = {}
        self.skipped: list[str] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry or entry.startswith("#"):
                continue
            if re.search(r"[^\w .\-]", entry):  # symbols the tokenisation drops would change the entry
                self.skipped.append(entry)
                continue
            self.phrases.setdefault(tuple(TOKEN.findall(entry)), entry)  # the first spelling listed names it
        self.lengths: dict[str, list[int]] = {}  # first token -> phrase lengths starting there, longest first
        for phrase in self.phrases:
            self.lengths.setdefault(phrase[0], []).append(len(phrase))
        for lengths in self.lengths.values():
            lengths.sort(reverse=True)
        self.first = frozenset(self.lengths)

    @classmethod
    def from_file(cls, path: str) -> WordList:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            return cls(handle.read().splitlines())

    def weight(self, entry: str) -> float:
        return AMBIGUOUS_WEIGHT if entry in AMBIGUOUS else 1.0

    def match(self, text: str) -> tuple[list[str], int]:
        """(matched entries in order, token count) for one document."""
        tokens = TOKEN.findall(text.lower())
        if self.first.isdisjoint(tokens):  # most documents: one set operation, no scan
            return [], len(tokens)
        found, i = [], 0
        while i < len(tokens):
            step = 1
            for n in self.lengths.get(tokens[i], ()):
                entry = self.phrases.get(tuple(tokens[i:i + n]))
                if entry is not None:
                    found.append(entry)
                    step = n
                    break
            i += step
        return found, len(tokens)

    def score(self, found: list[str], tokens: int) -> float:
        """``1 - exp(-h)``, ``h`` = weighted hits per ``WINDOW_TOKENS`` tokens (see the module docstring)."""
        weighted = sum(self.weight(entry) for entry in found)
        return 1.0 - math.exp(-weighted * WINDOW_TOKENS / max(tokens, WINDOW_TOKENS))


def _detail(score: float, found: list[str]) -> str:
    words = list(dict.fromkeys(found))
    shown = ", ".join(words[:DETAIL_WORDS]) + (f" (+{len(words) - DETAIL_WORDS} more)" if len(words) > DETAIL_WORDS else "")
    return f"{score:.2f}; words: {shown}" if words else f"{score:.2f}; no listed words"


@dataclass(frozen=True)
class Toxicity(FastTextFilter):
    """Score toxicity (fastText model if given, else word-list hits) and reject above ``max_score``."""

    max_score: float = 0.5
    model_path: str | None = None
    wordlist: str | None = None
    label: str = "toxic"

    def __post_init__(self) -> None:
        check_probability(self, "max_score", self.max_score, optional=False)
        check_model_file(self, "model_path", self.model_path)
        check(self.wordlist is None or (isinstance(self.wordlist, str) and os.path.isfile(os.path.expanduser(self.wordlist))),
              self, "wordlist", f"no such word-list file: {self.wordlist!r}")
        check(self.wordlist is not None or packaged_wordlist() is not None, self, "wordlist",
              "no wordlist given and better-profanity (which ships one) is not installed: "
              "pip install better-profanity==0.7.0, or pass a file with one entry per line")
        check(isinstance(self.label, str) and bool(strip_label(self.label)), self, "label",
              f"must be the model's toxic label, got {self.label!r}")
        object.__setattr__(self, "label", strip_label(self.label))

    def model_file(self) -> str:
        return self.model_path or ""

    def setup(self) -> None:
        object.__setattr__(self, "_words", WordList.from_file(self.wordlist or packaged_wordlist() or ""))
        if self.model_path:
            super().setup()

    def check_model(self, model: Any) -> None:
        labels = [strip_label(name) for name in model.get_labels()]
        check(self.label in labels, self, "label",
              f"{self.label!r} is not a label of {self.model_path} (its labels: {', '.join(labels)})")

    @property
    def words(self) -> WordList:
        if "_words" not in self.__dict__:
            self.setup()
        return self.__dict__["_words"]

    def _matches(self, batch: pa.Table) -> list[tuple[list[str], int] | None]:
        return [None if not text or not text.strip() else self.words.match(text)
                for text in batch[self.text_column].to_pylist()]

    def _score(self, batch: pa.Table) -> tuple[pa.Table, list[tuple[list[str], int] | None]]:
        matches = self._matches(batch)
        if self.model_path:
            scores = label_probabilities(self.model, fasttext_lines(batch[self.text_column]), self.label)
        else:
            scores = [None if m is None else self.words.score(*m) for m in matches]
        return set_column(batch, TOXICITY_SCORE, pa.array(scores, pa.float64())), matches

    def _rules(self, scored: pa.Table, matches: list[tuple[list[str], int] | None]) -> tuple[pa.Array, pa.Array]:
        scores = scored[TOXICITY_SCORE].combine_chunks()
        over = pc.fill_null(pc.greater(scores, self.max_score), False)
        details = pa.array([_detail(s, m[0] if m else []) if hit else None
                            for s, m, hit in zip(scores.to_pylist(), matches, over.to_pylist())], pa.string())
        return reject_where(over, f"toxicity above {self.max_score:g}", details)

    def score(self, batch: pa.Table) -> pa.Table:
        return self._score(batch)[0]

    def rules(self, scored: pa.Table) -> tuple[pa.Array, pa.Array]:
        return self._rules(scored, self._matches(scored))

    def reasons(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        return self._rules(*self._score(batch))

    def __call__(self, batch: pa.Table) -> pa.Table:
        scored, matches = self._score(batch)
        reason, detail = self._rules(scored, matches)
        return scored.append_column(REASON, reason).append_column(DETAIL, detail)
