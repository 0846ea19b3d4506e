"""Shared text statistics for the heuristic quality filters (``operators.gopher``, ``operators.c4_fineweb``).

The published filters, as DataTrove implements them, count *words* with spaCy's English tokenizer and
*sentences* with spaCy's rule-based sentencizer. Calling spaCy costs ~1 s per MB of text, so this module
re-implements exactly those two rule sets in plain Python ``re``:

* ``split_words(text)`` follows spaCy's English tokenizer algorithm: split on whitespace, then per
  chunk peel prefixes/suffixes, apply the tokenizer exceptions (contractions, abbreviations,
  emoticons), keep URLs whole and split infixes. The punctuation rules are spaCy's; its long
  character classes are rebuilt from ``unicodedata`` (lower/upper/alphabetic/``So`` symbols).
* ``WordTable`` tokenizes whole Arrow batches: each distinct whitespace chunk is tokenized once and
  cached, and the batch becomes flat NumPy arrays of token ids with per-document offsets, so the
  filters compute their statistics with array operations instead of per-word Python loops.
* ``count_sentences(line)`` follows spaCy's ``Sentencizer``.

Known gaps against spaCy (measured by ``benchmarks/quality_vs_datatrove.py``): special cases that span
two whitespace chunks (``") :"`` merged into one ``"):"`` token) are not merged, and non-BMP letters
are not treated as letters by the affix rules.
"""
from __future__ import annotations

import re
import unicodedata
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# --- punctuation tables, as in datatrove.utils.text -------------------------------------------------
_STERM = (
    "!.?\u0589\u061d-\u061f\u06d4\u0700-\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965\u104a\u104b\u1362"
    "\u1367\u1368\u166e\u1735\u1736\u17d4-\u17d6\u17d9\u17da\u1803\u1809\u1944\u1945\u1aa8-\u1aab\u1b5a\u1b5b"
    "\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047-\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002"
    "\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d-\uaa5f\uaaf0\uaaf1\uabeb"
    "\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55-\U00010f59\U00010f86-\U00010f89"
    "\U00011047\U00011048\U000110be-\U000110c1\U00011141-\U00011143\U000111c5\U000111c6\U000111cd\U000111de"
    "\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3"
    "\U000115c9-\U000115d7\U00011641\U00011642\U0001173c-\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f"
    "\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"
)


def _expand(ranges: str) -> str:
    return re.sub(r"(.)-(.)", lambda m: "".join(map(chr, range(ord(m[1]), ord(m[2]) + 1))), ranges)


#: DataTrove's ``TERMINAL_PUNCTUATION``: the Unicode sentence terminators (FineWeb's ``stop_chars``).
TERMINAL_PUNCTUATION = frozenset(_expand(_STERM))
#: spaCy's ``Sentencizer.default_punct_chars``: the terminators minus a few newer or rarer ones.
SENTENCE_PUNCT = TERMINAL_PUNCTUATION - frozenset(_expand(
    "\u061d\u061e\u0837\u0839\u083d\u083e\u17d4-\u17d6\u17d9\u17da\u1b7d\u1b7e\u2e53\u2e54\U00010f55-\U00010f59"
    "\U00010f86-\U00010f89\U00011944\U00011946\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016e98"))
#: DataTrove's ``PUNCTUATION_SET``: a word made only of these is a "symbol" for Gopher's word counts.
PUNCTUATION_SET = frozenset(
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + _expand("\x00-\x08\x0b-\x1f\x7f-\x9f")) | TERMINAL_PUNCTUATION
#: The whitespace ``str.split()`` and spaCy split on (Rust/RE2 ``\s`` lack U+001C..U+001F).
WHITESPACE = r"\s\x1c-\x1f"

# --- spaCy's English tokenizer rules -----------------------------------------------------------------
_PUNCT = re.escape("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪")
_QUOTES = re.escape("'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧")
_CURRENCY = re.escape("$£€¥฿₽﷼") + "\u20a0-\u20bf"
_UNITS = ("km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h|kmh|"
          "mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%|км|км²|км³|м|м²|м³|дм|дм²|дм³|см|см²|см³|мм|мм²|"
          "мм³|нм|кг|г|мг|м/с|км/ч|кПа|Па|мбар|Кб|КБ|кб|Мб|МБ|мб|Гб|ГБ|гб|Тб|ТБ|тбكم|كم²|كم³|م|م²|م³|سم|سم²|"
          "سم³|مم|مم²|مم³|كم|غرام|جرام|جم|كغ|ملغ|كوب|اكواب")
# Scripts without case that spaCy counts as both lower- and upper-case letters (its ``_uncased`` blocks).
_UNCASED = ("\u1200-\u137F\u0980-\u09FF\u0591-\u05F4\uFB1D-\uFB4F\u0620-\u064A\u066E-\u06D5\u06E5-\u06FF"
            "\u0750-\u077F\u08A0-\u08BD\uFB50-\uFBB1\uFBD3-\uFD3D\uFD50-\uFDC7\uFDF0-\uFDFB\uFE70-\uFEFC"
            "\U0001EE00-\U0001EEBB\u0D80-\u0DFF\u0900-\u097F\u0C80-\u0CFF\u0B80-\u0BFF\u0C00-\u0C7F\uAC00-\uD7AF"
            "\u1100-\u11FF\u3040-\u309F\u30A0-\u30FF\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002EBEF\u2E80-\u2FDF"
            "\u2FF0-\u2FFF\u3000-\u303F\u31C0-\u31EF\u3200-\u33FF\uF900-\uFAFF\uFE30-\uFE4F\U0001F200-\U0001F2FF"
            "\U0002F800-\U0002FA1F")


def _char_class(predicate, stop: int = 0x10000, merge_unassigned: bool = False) -> str:
    """A regex class body for the code points below ``stop`` that satisfy ``predicate``."""
    ranges, start, last = [], None, None
    for cp in range(stop):
        char = chr(cp)
        if predicate(char):
            start, last = (cp if start is None else start), cp
        elif start is not None and not (merge_unassigned and unicodedata.category(char) == "Cn"):
            ranges.append((start, last))
            start = None
    if start is not None:
        ranges.append((start, last))
    return "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)


@cache
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    """spaCy English prefix, suffix, infix and URL patterns (built once: ~0.1 s)."""
    lower = _char_class(str.islower) + _UNCASED
    upper = _char_class(str.isupper) + _UNCASED
    alpha = _char_class(lambda c: c.islower() or c.isupper()) + _UNCASED
    # Symbols (So) but the degree sign; astral ones merged across unassigned gaps to keep the class short.
    icons = _char_class(lambda c: c != "°" and unicodedata.category(c) == "So") + _char_class(
        lambda c: ord(c) >= 0x10000 and unicodedata.category(c) == "So", 0x30000, merge_unassigned=True)
    prefix = re.compile(rf"^(?:\.\.+|US\$|C\$|A\$|\+(?![0-9])|[§%=—–{_PUNCT}{_QUOTES}{_CURRENCY}{icons}])")
    suffix = re.compile(
        rf"(?:\.\.+|……|'s|'S|’s|’S|[—–{_PUNCT}{_QUOTES}{icons}]|(?<=[0-9])\+|(?<=°[FfCcKk])\."
        rf"|(?<=[0-9])(?:US\$|C\$|A\$|[{_CURRENCY}]|{_UNITS})|(?<=[0-9{lower}%²\-+|{_PUNCT}{_QUOTES}])\."
        rf"|(?<=[{upper}][{upper}])\.)$")
    infix = re.compile(
        rf"\.\.+|…|[{icons}]|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[{lower}{_QUOTES}])\.(?=[{upper}{_QUOTES}])"
        rf"|(?<=[{alpha}]),(?=[{alpha}])|(?<=[{alpha}0-9])(?:-|–|—|--|---|——|~)(?=[{alpha}])"
        rf"|(?<=[{alpha}0-9])[:<>=/](?=[{alpha}])")
    url = re.compile(  # spaCy's URL_MATCH (after Diego Perini's, MIT)
        r"(?u)^(?:(?:[\w\+\-\.]{2,})://)?(?:\S+(?::\S*)?@)?(?:(?!(?:10|127)(?:\.\d{1,3}){3})"
        r"(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
        r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
        rf"[A-Za-z0-9\u00a1-\uffff]\.)+(?:[{lower}]{{2,63}}))(?::\d{{2,5}})?(?:[/?#]\S*)?$")
    return prefix, suffix, infix, url


_EMOTICONS = r"""
:) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-; :( :-( :((
:-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P :-P :p :-p :O :-O :o :-o :0 :-0
:() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._.
;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 o.O O.o O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^)
(-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) ¯\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*>"""
_SINGLE = r"""
' \") <space> '' C++ ä. ö. ü. 'S 's ‘S ‘s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am
Ma'am o'clock O'clock lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin' Doin' doin Doin goin' Goin' goin
Goin nothin nothin' Nothin Nothin' nuthin nuthin' Nuthin Nuthin' ol ol' Ol Ol' somethin somethin' Somethin Somethin'
em 'em ll 'll nuff 'nuff 'd \t \n Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. Conn. Dec. Del. Feb. Fla. Ga.
Ia. Id. Ill. Ind. Jan. Jul. Jun. Kan. Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y.
Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis. a.m. Adm. Bros. co. Co. Corp. D.C.
Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md. Messrs. Mo. Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof.
Rep. Rev. Sen. St. vs. v.s. —"""
_EXCLUDE = "Ill ill Its its Hell hell Shell shell Shed shed were Were Well well Whore whore".split()


@cache
def special_cases() -> dict[str, tuple[str, ...]]:
    """spaCy's English tokenizer exceptions: string -> its tokens (contractions split, abbreviations kept)."""
    exc: dict[str, tuple[str, ...]] = {}

    def add(*parts: str) -> None:
        exc["".join(parts)] = parts

    for orth in _EMOTICONS.split() + [f"{c}." for c in "abcdefghijklmnopqrstuvwxyz"]:
        add(orth)
    for u in "cfkCFK":
        add("°", u, ".")

    def cased(words):
        return [w for word in words for w in (word, word.title())]

    for o in cased(["i"]):
        add(o, "'m"), add(o, "m"), add(o, "'m", "a"), add(o, "m", "a")
    for o in cased(["i", "you", "he", "she", "it", "we", "they"]):
        for a, b in (("'ll", "'ve"), ("ll", "ve"), ("'d", "'ve"), ("d", "ve")):
            add(o, a), add(o, a, b)
    for o in cased(["i", "you", "we", "they"]):
        add(o, "'ve"), add(o, "ve")
    for o in cased(["you", "we", "they"]):
        add(o, "'re"), add(o, "re")
    for o in cased(["he", "she", "it"]):
        add(o, "'s"), add(o, "s")
    for words, number in ((["who", "what", "when", "where", "why", "how", "there"], None),
                          (["that", "this"], "sing"), (["these", "those"], "plur")):
        for o in cased(words):
            if number != "plur":
                add(o, "'s"), add(o, "s")
            add(o, "'ll"), add(o, "ll"), add(o, "'ll", "'ve"), add(o, "ll", "ve")
            if number != "sing":
                add(o, "'re"), add(o, "re"), add(o, "'ve"), add(o, "ve")
            add(o, "'d"), add(o, "d"), add(o, "'d", "'ve"), add(o, "d", "ve")
    for o in cased("ca could do does did had may might must need ought sha should wo would".split()):
        add(o, "n't"), add(o, "nt"), add(o, "n't", "'ve"), add(o, "nt", "ve")
    for o in cased("could might must should would".split()):
        add(o, "'ve"), add(o, "ve")
    for o in cased("ai are is was were have has dare".split()):
        add(o, "n't"), add(o, "nt")
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            add(str(hour), period)
    for parts in ("y' all", "y all", "how 'd 'y", "How 'd 'y", "not 've", "not ve", "Not 've", "Not ve", "can not",
                  "Can not", "gon na", "Gon na", "got ta", "Got ta", "let 's", "Let 's", "c'm on", "C'm on"):
        add(*parts.split())
    for orth in _SINGLE.split():
        add(orth)
    for orth in _EXCLUDE:
        exc.pop(orth, None)
    for orth, parts in list(exc.items()):  # spaCy duplicates every rule with a typographic apostrophe
        if "'" in orth:
            exc[orth.replace("'", "’")] = tuple(p.replace("'", "’") for p in parts)
    return exc


def _suffix_length(text: str, suffix_re: re.Pattern) -> int:
    """Length of spaCy's suffix match: its earliest-starting alternative that ends the string."""
    if text.endswith(".."):  # a dot run is the only alternative longer than 6 characters
        return len(text) - len(text.rstrip("."))
    m = suffix_re.search(text, max(0, len(text) - 6))
    return m.end() - m.start() if m else 0


def _affixes_and_infixes(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """spaCy's ``Tokenizer._split_affixes`` + ``_attach_tokens`` for one whitespace-free chunk."""
    prefix_re, suffix_re, infix_re, url_re = _patterns()
    prefixes: list[str] = []
    suffixes: list[str] = []
    s, last = chunk, -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        m = prefix_re.match(s)
        pre = m.end() if m else 0
        if pre and s[pre:] in specials:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        suf = _suffix_length(s[pre:], suffix_re)
        if suf and s[:-suf] in specials:
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
    tokens = prefixes
    if s in specials:
        tokens.extend(specials[s])
    elif s.isalnum() or url_re.match(s):  # no infix rule and no URL involves letters and digits only
        tokens.append(s)
    elif s:
        start = 0
        for m in infix_re.finditer(s):
            if m.start() == 0:
                continue
            if m.start() != start:
                tokens.append(s[start:m.start()])
            if m.end() != m.start():
                tokens.append(m.group())
            start = m.end()
        if s[start:]:
            tokens.append(s[start:])
    tokens.extend(reversed(suffixes))
    return tokens


@cache
def _merges() -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]:
    """Special cases the affix rules would split (":)" -> ":", ")"), which spaCy merges back; by first token."""
    merges: dict[str, list] = {}
    for orth, parts in special_cases().items():
        split = tuple(_affixes_and_infixes(orth, {}))
        if len(split) > 1 and split != parts:
            merges.setdefault(split[0], []).append((split, parts))
    for candidates in merges.values():
        candidates.sort(key=lambda c: -len(c[0]))
    return merges


def split_chunk(chunk: str) -> tuple[str, ...]:
    """spaCy English tokens of one whitespace-free chunk."""
    specials = special_cases()
    if chunk in specials:
        return specials[chunk]
    if chunk.isalpha():  # no affix or infix rule applies to letters only
        return (chunk,)
    tokens = _affixes_and_infixes(chunk, specials)
    if len(tokens) > 1:
        merges = _merges()
        i = 0
        while i < len(tokens) - 1:
            for split, parts in merges.get(tokens[i], ()):
                if tuple(tokens[i:i + len(split)]) == split:
                    tokens[i:i + len(split)] = parts
                    break
            i += 1
    return tuple(tokens)


# --- batches of documents as arrays of token ids -------------------------------------------------------
class _Lexicon:
    """Module-level memo: chunk -> token ids, token <-> id, and per-token properties as NumPy arrays.

    It lives as long as the worker process (so a pipeline tokenizes each distinct chunk once) and is
    cleared when it grows past ``MAX_CHUNKS`` distinct chunks, between batches."""

    MAX_CHUNKS = 2_000_000

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.chunks: dict[str, tuple[int, ...]] = {}
        self.ids: dict[str, int] = {}
        self.tokens: list[str] = []
        self._synced = 0
        self.length = np.zeros(0, np.int64)   # characters
        self.symbol = np.zeros(0, bool)       # every character in PUNCTUATION_SET (Gopher's "symbol word")
        self.alpha = np.zeros(0, bool)        # some character is alphabetic
        self.sentence_punct = np.zeros(0, bool)  # spaCy sentencizer: ends a sentence
        self.punct = np.zeros(0, bool)        # spaCy ``is_punct``: every character is Unicode punctuation

    def chunk_ids(self, chunk: str) -> tuple[int, ...]:
        ids = self.chunks.get(chunk)
        if ids is None:
            table = self.ids
            ids = []
            for token in split_chunk(chunk):
                i = table.get(token)
                if i is None:
                    i = table[token] = len(self.tokens)
                    self.tokens.append(token)
                ids.append(i)
            ids = self.chunks[chunk] = tuple(ids)
        return ids

    def sync(self) -> None:
        """Extend the property arrays to tokens added since the last call."""
        new = self.tokens[self._synced:]
        if not new:
            return
        self._synced = len(self.tokens)
        self.length = np.concatenate([self.length, np.fromiter(map(len, new), np.int64, len(new))])
        self.symbol = np.concatenate([self.symbol, [PUNCTUATION_SET.issuperset(t) for t in new]])
        self.alpha = np.concatenate([self.alpha, [any(c.isalpha() for c in t) for t in new]])
        self.sentence_punct = np.concatenate([self.sentence_punct, [t in SENTENCE_PUNCT for t in new]])
        self.punct = np.concatenate(
            [self.punct, [all(unicodedata.category(c).startswith("P") for c in t) for t in new]])

    def lookup(self, words) -> np.ndarray:
        """Ids of ``words`` that have been seen (unseen words cannot occur in this batch)."""
        return np.array([self.ids[w] for w in words if w in self.ids], np.int64)


LEXICON = _Lexicon()
_CHUNK = rf"[^{WHITESPACE}]+"


def clear_caches() -> None:
    """Forget every tokenized chunk (benchmarks use it to time a cold start)."""
    LEXICON.clear()


class Words:
    """The spaCy-English words of a batch of documents, as flat arrays.

    ``ids`` holds the token ids of all documents end to end; document ``d`` owns
    ``ids[offsets[d]:offsets[d + 1]]``. Per-token properties are ``LEXICON`` arrays indexed by id.
    """

    def __init__(self, text: pa.Array | pa.ChunkedArray) -> None:
        lex = LEXICON
        if len(lex.chunks) > lex.MAX_CHUNKS:
            lex.clear()
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        import polars as pl  # polars' Rust regex: Unicode whitespace, one pass over the batch

        chunk_lists = pl.from_arrow(text.cast(pa.large_string()), rechunk=False).str.extract_all(_CHUNK).to_arrow()
        chunks_per_doc = pc.fill_null(pc.list_value_length(chunk_lists), 0).to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(pc.list_flatten(chunk_lists))
        occurrence = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        per_chunk = [lex.chunk_ids(c) for c in encoded.dictionary.to_pylist()]
        lex.sync()
        chunk_len = np.fromiter(map(len, per_chunk), np.int64, len(per_chunk))
        chunk_start = np.concatenate([[0], np.cumsum(chunk_len)])
        chunk_flat = np.fromiter((i for ids in per_chunk for i in ids), np.int64, int(chunk_start[-1]))
        occ_len = chunk_len[occurrence]
        occ_end = np.cumsum(occ_len)
        total = int(occ_end[-1]) if len(occ_end) else 0
        gather = np.repeat(chunk_start[occurrence] - (occ_end - occ_len), occ_len) + np.arange(total)
        self.ids = chunk_flat[gather]
        ends = np.concatenate([[0], occ_end])
        self.offsets = ends[np.concatenate([[0], np.cumsum(chunks_per_doc)])]
        self.counts = np.diff(self.offsets)

    def per_doc(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-token array over each document."""
        cum = np.concatenate([[0], np.cumsum(values)])
        return cum[self.offsets[1:]] - cum[self.offsets[:-1]]

    def doc(self, d: int) -> np.ndarray:
        return self.ids[self.offsets[d]:self.offsets[d + 1]]


def split_words(text: str) -> list[str]:
    """The words DataTrove's ``split_into_words(text, "en")`` returns (spaCy English tokens, no spaces)."""
    lex = LEXICON
    tokens = lex.tokens
    return [tokens[i] for chunk in text.split() for i in lex.chunk_ids(chunk)]


# --- sentences (spaCy's Sentencizer over the tokens) ---------------------------------------------------
_sentence_memo: dict[str, tuple[int, bool | None, bool]] = {}
_SPACES = re.compile(r"(\s+)")


def _chunk_sentence_state(chunk: str) -> tuple[int, bool | None, bool]:
    """(boundaries found starting from "no period seen", state after it or None if unchanged,
    whether a non-punctuation token comes before any sentence-ending one)."""
    memo = _sentence_memo.get(chunk)
    if memo is None:
        fires, state, first_plain = 0, None, None
        for token in split_chunk(chunk):
            if token in SENTENCE_PUNCT:
                state = True
                first_plain = False if first_plain is None else first_plain
            elif not all(unicodedata.category(c).startswith("P") for c in token):
                if state:
                    fires += 1
                state = False
                first_plain = True if first_plain is None else first_plain
        memo = _sentence_memo[chunk] = (fires, state, bool(first_plain))
        if len(_sentence_memo) > _Lexicon.MAX_CHUNKS:
            _sentence_memo.clear()
    return memo


def count_sentences(text: str) -> int:
    """Sentences spaCy's ``Sentencizer`` finds in ``text`` (DataTrove's ``len(split_into_sentences(text))``).

    A sentence ends after a token in ``SENTENCE_PUNCT`` once a token that is not punctuation follows.
    Whitespace other than one space between chunks is a token of its own for spaCy, so it counts too."""
    parts = _SPACES.split(text)
    seen_period, sentences = False, 0
    for k, part in enumerate(parts):
        if not part:
            continue
        if k % 2:  # a whitespace run: a token unless it is the single space separating two chunks
            if k == 1 and not parts[0] or part[0] != " " or len(part) > 1:
                sentences += sentences == 0
                if seen_period:
                    sentences += 1
                seen_period = False
            continue
        fires, state, first_plain = _chunk_sentence_state(part)
        sentences += sentences == 0
        sentences += fires + (seen_period and first_plain)
        if state is not None:
            seen_period = state
        elif seen_period and first_plain:
            seen_period = False
    return sentences
