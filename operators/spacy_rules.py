"""spaCy 3.8's English tokenizer rules, re-implemented in plain Python ``re`` (no spaCy at run time).

``split_chunk`` splits one whitespace-free chunk the way ``spacy.blank("en")`` does: peel prefixes and
suffixes, apply the tokenizer exceptions (contractions, abbreviations, emoticons, generated as spaCy
generates them), keep URLs whole and split infixes. The long character classes are rebuilt from
``unicodedata``; DataTrove's punctuation tables are here too. ``operators.quality`` builds words and
sentences for whole batches on top of this.
"""
from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import NamedTuple



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


def _ranges(predicate, start: int = 0, stop: int = 0x10000, merge_unassigned: bool = False) -> list[tuple[int, int]]:
    """The code point ranges in [start, stop) whose characters satisfy ``predicate``."""
    ranges, first, last = [], None, None
    for cp in range(start, stop):
        char = chr(cp)
        if predicate(char):
            first, last = (cp if first is None else first), cp
        elif first is not None and not (merge_unassigned and unicodedata.category(char) == "Cn"):
            ranges.append((first, last))
            first = None
    if first is not None:
        ranges.append((first, last))
    return ranges


def _class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)


class _Rules(NamedTuple):
    prefix: re.Pattern
    suffix: re.Pattern
    infix: re.Pattern
    url: re.Pattern
    infix_chars: re.Pattern      # a character some infix rule needs
    final_dot: re.Pattern        # the suffix rules for a final "." (match at its position)
    digit: re.Pattern
    prefix_chars: frozenset      # characters that are a whole prefix by themselves
    suffix_chars: frozenset      # characters that are the whole suffix whenever they end a string


@cache
def _rules() -> _Rules:
    """spaCy's English prefix, suffix, infix and URL rules (built once, ~0.2 s)."""
    lower = _class(_ranges(str.islower)) + _UNCASED
    upper = _class(_ranges(str.isupper)) + _UNCASED
    alpha = _class(_ranges(lambda c: c.islower() or c.isupper())) + _UNCASED
    # Symbols (So) but the degree sign; astral ones merged across unassigned gaps to keep the class short.
    icon_ranges = _ranges(lambda c: c != "°" and unicodedata.category(c) == "So") + _ranges(
        lambda c: unicodedata.category(c) == "So", 0x10000, 0x30000, merge_unassigned=True)
    icons = _class(icon_ranges)
    icon_chars = frozenset(chr(cp) for a, b in icon_ranges for cp in range(a, b + 1))
    punct, quotes = _PUNCT.replace("\\", ""), _QUOTES.replace("\\", "")
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
    currency = "$£€¥฿₽﷼" + "".join(map(chr, range(0x20A0, 0x20C0)))
    final_dot = re.compile(rf"(?:(?<=[0-9{lower}%²\-+|{_PUNCT}{_QUOTES}])|(?<=[{upper}][{upper}])|(?<=°[FfCcKk]))\.$")
    infix_chars = re.compile(rf"[.…,\-–—~+*^:<>=/{icons}]")
    return _Rules(prefix, suffix, infix, url, infix_chars, final_dot, re.compile("[0-9]"),
                  frozenset("§%=—–" + punct + quotes + currency) | icon_chars,
                  frozenset("—–" + punct.replace("…", "") + quotes) | icon_chars)


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


_SPECIALS: dict[str, tuple[str, ...]] = {}  # filled by the first special_cases() call


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
    _SPECIALS.update(exc)
    return _SPECIALS


_APOSTROPHE_S = frozenset(("'s", "'S", "’s", "’S"))
_OTHER_SUFFIX_ENDS = frozenset("…+%²³$£€¥฿₽﷼" + "".join(map(chr, range(0x20A0, 0x20C0))))


def _suffix_length(text: str, rules: _Rules) -> int:
    """Length of spaCy's suffix match on ``text``: its earliest-starting alternative that ends the string.

    Cheap character tests decide the common cases: a lone punctuation mark; a word end, where only "'s"
    or a unit after a digit can match; a digit, which ends no suffix; a final ".", whose rules look back
    two characters at most."""
    last = text[-1]
    if last in rules.suffix_chars:
        return 1
    if last.isalpha():
        if text[-2:] in _APOSTROPHE_S:
            return 2
        if not rules.digit.search(text, max(0, len(text) - 6)):
            return 0
    elif last == ".":
        if text.endswith(".."):  # a run of dots is one suffix
            return len(text) - len(text.rstrip("."))
        return 1 if rules.final_dot.match(text, len(text) - 1) else 0
    elif last not in _OTHER_SUFFIX_ENDS:
        return 0
    m = rules.suffix.search(text, max(0, len(text) - 6))  # no other alternative is longer than 6
    return m.end() - m.start() if m else 0


def _affixes_and_infixes(chunk: str, specials: dict[str, tuple[str, ...]], rules: _Rules) -> list[str]:
    """spaCy's ``Tokenizer._split_affixes`` + ``_attach_tokens`` for one whitespace-free chunk.

    The regexes run only where a cheap character test cannot decide: most prefixes and suffixes are
    one punctuation character (see ``_suffix_length``)."""
    prefix_chars, suffix_chars = rules.prefix_chars, rules.suffix_chars
    prefixes: list[str] = []
    suffixes: list[str] = []
    s, last = chunk, -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        first = s[0]
        if first in prefix_chars:
            pre = 1
        elif first in "+.UCA":
            m = rules.prefix.match(s)
            pre = m.end() if m else 0
        else:
            pre = 0
        if pre and s[pre:] in specials:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        rest = s[pre:]
        suf = 0 if not rest else 1 if rest[-1] in suffix_chars else _suffix_length(rest, rules)
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
    elif s.isalnum() or ("." in s and rules.url.match(s)) or not rules.infix_chars.search(s):
        if s:  # no infix rule (nor a URL, which needs a dot) applies
            tokens.append(s)
    else:
        start = 0
        for m in rules.infix.finditer(s):
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
        split = tuple(_affixes_and_infixes(orth, {}, _rules()))
        if len(split) > 1 and split != parts:
            merges.setdefault(split[0], []).append((split, parts))
    for candidates in merges.values():
        candidates.sort(key=lambda c: -len(c[0]))
    return merges


def split_chunk(chunk: str) -> tuple[str, ...]:
    """spaCy English tokens of one whitespace-free chunk."""
    specials = _SPECIALS or special_cases()
    if chunk.isalpha():  # no affix or infix rule applies to letters only
        return specials.get(chunk) or (chunk,)
    if chunk in specials:
        return specials[chunk]
    word, last, rules = chunk[:-1], chunk[-1], _rules()
    if word.isalpha() and (last in rules.suffix_chars or last == "."):  # the commonest shape: "word," "word."
        if last == "." and not rules.final_dot.match(chunk, len(chunk) - 1):
            return (chunk,)
        tokens = [*specials.get(word, (word,)), last]
    else:
        tokens = _affixes_and_infixes(chunk, specials, rules)
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
