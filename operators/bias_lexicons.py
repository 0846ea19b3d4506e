"""Word lists for bias measurement and counterfactual augmentation, the helpers that load and compile them,
and the text rules over them: ``resolve_her`` / ``resolve_his`` and ``swap_gender`` (the operators that use
all this are in ``operators.bias``).

A *lexicon* maps group -> category -> terms (``{"gender": {"female": ["she", ...], "male": [...]}}``); an
*attribute* lexicon maps attribute -> terms (``{"family": [...], "career": [...]}``). Terms are matched
lower-case on word boundaries. A space in a term matches any run of spaces, newlines or hyphens
(``"african american"`` also finds ``African-American``); a trailing ``*`` matches any word ending
(``"nurtur*"``); a leading ``-`` makes a *negative* term whose matches are subtracted from the category
(``"-african american"`` under nationality/american: each such phrase holds exactly one ``american``).

The default lists are hand-curated (see ``docs/bias_lexicons.md`` for sources, rationale and limits):
inspired by the HolisticBias descriptor axes (Smith et al. 2022), the Bolukbasi et al. (2016) gender pairs,
the StereoSet / CrowS-Pairs bias categories, WEAT attribute sets (Caliskan et al. 2017) and the Stereotype
Content Model's competence/warmth dimensions (Fiske et al. 2002). ``EXCLUDE`` masks technical senses that
collide with the terms in software documentation (``man`` pages, ``mr.po``, ``Christian`` as a first name).
"""
from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


LEXICONS: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": _w("she,her,hers,herself,woman,women,girl,girls,lady,ladies,female,females,feminine,mother,"
                     "mothers,daughter,daughters,sister,sisters,wife,wives,aunt,aunts,niece,nieces,grandmother,"
                     "grandmothers,granddaughter,granddaughters,grandma,queen,queens,princess,princesses,mrs,ms,"
                     "madam,girlfriend,girlfriends,bride,brides,mom,moms,mum,mommy,fiancee,widow,widows,stepmother,"
                     "spokeswoman,chairwoman,businesswoman,businesswomen,housewife,housewives"),
        "male": _w("he,him,his,himself,man,men,boy,boys,gentleman,gentlemen,male,males,masculine,father,fathers,son,"
                   "sons,brother,brothers,husband,husbands,uncle,uncles,nephew,nephews,grandfather,grandfathers,"
                   "grandson,grandsons,grandpa,king,kings,prince,princes,mr,sir,boyfriend,boyfriends,bridegroom,dad,"
                   "dads,daddy,fiance,widower,widowers,stepfather,spokesman,chairman,businessman,businessmen,"
                   "househusband"),
    },
    "religion": {
        "christian": _w("christian,christians,christianity,catholic,catholics,catholicism,protestant,protestants,"
                        "protestantism,evangelical,evangelicals,mormon,mormons,church,churches"),
        "muslim": _w("muslim,muslims,moslem,moslems,islam,islamic,mosque,mosques,quran,koran"),
        "jewish": _w("jew,jews,jewish,judaism,synagogue,synagogues,rabbi,rabbis"),
        "hindu": _w("hindu,hindus,hinduism"),
        "buddhist": _w("buddhist,buddhists,buddhism,buddha"),
        "sikh": _w("sikh,sikhs,sikhism"),
        "atheist": _w("atheist,atheists,atheism,nonbeliever,nonbelievers,non believer,non believers"),
    },
    "ethnicity": {
        "black": _w("black people,black person,black man,black men,black woman,black women,black american,"
                    "black americans,black folks,black community,african american,african americans"),
        "white": _w("white people,white person,white man,white men,white woman,white women,white american,"
                    "white americans,white folks,caucasian,caucasians"),
        "asian": _w("asian,asians"),
        "hispanic": _w("hispanic,hispanics,latino,latinos,latina,latinas,latinx"),
        "indigenous": _w("indigenous,native american,native americans,american indian,american indians,"
                         "first nations,aboriginal,aborigine,aborigines,alaska native,alaska natives"),
        "middle_eastern": _w("arab,arabs,middle eastern,middle easterner,middle easterners"),
    },
    "nationality": {
        "american": _w("american,americans,-african american,-native american,-asian american,-american indian,"
                       "-latin american,-mexican american,-black american,-white american,-south american,"
                       "-central american"),
        "british": _w("british,briton,britons,brit,brits,britain"),
        "chinese": _w("chinese,china"),
        "indian": _w("indian,indians,india,-american indian"),
        "mexican": _w("mexican,mexicans,mexico,-new mexico,-mexican american"),
        "german": _w("german,germans,germany"),
        "french": _w("french,frenchman,frenchmen,frenchwoman,frenchwomen,france"),
        "russian": _w("russian,russians,russia"),
        "japanese": _w("japanese,japan"),
        "nigerian": _w("nigerian,nigerians,nigeria"),
        "brazilian": _w("brazilian,brazilians,brazil"),
    },
    "age": {
        "young": _w("young people,young person,young man,young men,young woman,young women,young adult,young adults,"
                    "young girl,young girls,young boy,young boys,young lady,youth,youths,youngster,youngsters,teen,"
                    "teens,teenager,teenagers,teenage,adolescent,adolescents,kid,kids,juvenile,juveniles"),
        "old": _w("elderly,old people,old person,old man,old men,old woman,old women,old lady,old folks,"
                  "older people,older adults,older person,senior citizen,senior citizens,pensioner,pensioners,"
                  "retiree,retirees,the aged,geriatric"),
    },
}

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    # WEAT 6 (career vs family), minus words with a technical sense here (office, management, home, children).
    "career": _w("career,careers,salary,salaries,wage,wages,paycheck,executive,executives,professional,"
                 "professionals,profession,corporation,corporations,corporate,business,promotion,boss,bosses,"
                 "employer,employers,employment,ambition,ambitious"),
    "family": _w("family,families,parents,parenting,cousin,cousins,marriage,married,wedding,weddings,relatives,"
                 "household,households,housework,homemaker,homemakers,spouse,spouses,baby,babies,pregnancy,pregnant,"
                 "childcare,nursery"),
    # WEAT 7/8 (math, science vs arts).
    "science": _w("science,sciences,scientist,scientists,scientific,physics,chemistry,biology,astronomy,math,"
                  "mathematics,algebra,geometry,calculus,engineering,engineer,engineers,technology,experiment,"
                  "experiments"),
    "arts": _w("art,arts,artist,artists,poetry,poem,poems,poet,poets,dance,dancing,literature,novel,novels,symphony,"
               "drama,sculpture,painting,paintings,music"),
    # Stereotype Content Model: competence vs warmth.
    "competence": _w("competent,competence,capable,intelligent,intelligence,clever,skilled,skillful,talented,"
                     "brilliant,genius,smart,expert,rational,logical,decisive,confident,leader,leadership"),
    "warmth": _w("warm,warmth,friendly,caring,gentle,sweet,sincere,honest,trustworthy,affectionate,compassionate,"
                 "tender,loving,supportive,cheerful,generous,kindness,good natured"),
    # Appearance words (Bolukbasi et al. 2016 analogies: beautiful/handsome).
    "appearance": _w("beautiful,beauty,attractive,sexy,ugly,gorgeous,handsome,cute,lovely,slim,fat,pretty girl"),
    # Abid et al. 2021: violence associations (no "kill", "attack", "bomb": process and security senses).
    "violence": _w("violent,violence,terrorist,terrorists,terrorism,murder,murders,murderer,criminal,criminals,"
                   "crime,crimes,assault,weapon,weapons,gun,guns,extremist,extremists,thug,thugs"),
}

_LANGS = ("french|german|chinese|japanese|russian|portuguese|spanish|italian|english|hindi|arabic|dutch|polish|"
          "czech|slovak|slovenian|swedish|danish|norwegian|finnish|hungarian|bulgarian|romanian|greek|turkish|"
          "ukrainian|korean|vietnamese|thai|indonesian|malay|catalan|basque|galician|irish|welsh|icelandic|"
          "lithuanian|latvian|estonian|serbian|croatian|bosnian|hebrew|persian|brazilian")
_L = rf"\b(?:{_LANGS})\b"
# Regexes (RE2 and Python ``re`` syntax; case-sensitive unless inside ``(?i:...)``) whose matches are masked
# out of the text before terms are counted and are never swapped by CounterfactualSwap.
EXCLUDE: tuple[str, ...] = (
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",                                      # email addresses
    r"(?i:https?://\S+)",                                                  # URLs
    r"(?i:\bman(?:\s*pages?\b|\s*\(\d|-db\b|-pages\b|\s+[1-9][a-z]*\b|\s+-\w|\s+(?:command|program)\b|[:.]\S)"
    r"|[/.$`-]man\b|\bman/)",                                               # the man command, man pages
    r"\b(?:ms|MS|mr|MR|mrs|MRS)\b",                                        # milliseconds, MS-DOS, merge requests
    r"\b[a-z]{2,3}(?:_[A-Z]{2})?\.(?:po|mo)\b|\b[a-z]{2}_[A-Z]{2}\b|(?:\b[a-z]{2},\s*){3,}[a-z]{2}\b",  # he.po, he_IL
    r"\bChristian\s+[A-Z]|(?i:\bchristian[._]\w)|\b[A-Z][a-z]+ (?:He|King)\s*[<),;]",  # names: Christian X, Jun He
    # language names: in lists (German, French and Dutch), before a language word (German translation)
    rf"(?i:{_L}(?:\s*\([\w\s,]*\))?(?:\s*(?:,|\band\b|/)?\s*{_L})+|\b(?:simplified|traditional)\s+chinese\b"
    rf"|{_L}\s+(?:translations?|translators?|language|locale|keyboard|keymap|manual|man\s+pages?|documentation|docs"
    r"|version|text|input|messages|strings|characters?|fonts?|po|debconf|l10n|templates?|dictionary|spelling"
    r"|hyphenation|descriptions?)\b)",
    rf"(?i:\b(?:in|into|to|from)\s+{_L}\s*(?:[.,;:)]|$)|\({_L}\)|\[{_L})",  # "translated into German."
    r"(?i:\b(?:font|address|protocol|processor|socket|cpu)[\s-]+famil(?:y|ies)\b|\bfamil(?:y|ies)\s*[=:>\"]|<family>)",
)

# Counterfactual pairs (male, female). Words with two counterparts (her -> him/his, his -> her/hers) are
# resolved by ``resolve_her`` / ``resolve_his`` below; for others the first pair listed wins (Mr -> Ms).
GENDER_PAIRS: tuple[tuple[str, str], ...] = tuple(tuple(p.split(":")) for p in (  # type: ignore[misc]
    "he:she,him:her,his:her,his:hers,himself:herself,man:woman,men:women,boy:girl,boys:girls,male:female,"
    "males:females,masculine:feminine,father:mother,fathers:mothers,son:daughter,sons:daughters,brother:sister,"
    "brothers:sisters,husband:wife,husbands:wives,uncle:aunt,uncles:aunts,nephew:niece,nephews:nieces,"
    "grandfather:grandmother,grandfathers:grandmothers,grandson:granddaughter,grandsons:granddaughters,"
    "grandpa:grandma,king:queen,kings:queens,prince:princess,princes:princesses,gentleman:lady,gentlemen:ladies,"
    "mr:ms,mr:mrs,sir:madam,boyfriend:girlfriend,boyfriends:girlfriends,dad:mom,dads:moms,daddy:mommy,"
    "fiance:fiancee,widower:widow,widowers:widows,stepfather:stepmother,spokesman:spokeswoman,"
    "chairman:chairwoman,businessman:businesswoman,businessmen:businesswomen,househusband:housewife"
).split(","))
# Swapped only when written with a capital (``Mr``, ``MS``): lower-case forms are milliseconds, verbs, ...
CASE_SENSITIVE: frozenset[str] = frozenset({"mr", "ms", "mrs"})
# First names (male, female), swapped only with ``names=True`` and only when capitalised. Common US given
# names chosen to avoid ordinary English words (no Mark, Bill, Will, Rose, Grace, May, June, Joy).
NAME_PAIRS: tuple[tuple[str, str], ...] = tuple(tuple(p.split(":")) for p in (  # type: ignore[misc]
    "john:mary,james:patricia,robert:jennifer,michael:linda,david:elizabeth,william:barbara,richard:susan,"
    "joseph:jessica,thomas:sarah,charles:karen,christopher:nancy,daniel:lisa,matthew:margaret,anthony:sandra,"
    "steven:ashley,paul:kimberly,andrew:emily,joshua:donna,kenneth:michelle,kevin:carol,brian:amanda,"
    "george:melissa,edward:deborah,ronald:stephanie,timothy:rebecca,jason:laura,jeffrey:sharon,ryan:cynthia,"
    "jacob:kathleen,gary:amy,peter:anna,alexander:alexandra"
).split(","))

# Function words after "her"/"his" that mark the object/pronoun reading (him, hers): prepositions and
# particles, conjunctions, determiners, pronouns, auxiliaries and modals, and adverbs that follow objects.
OBJECT_FOLLOWERS: frozenset[str] = frozenset((
    "about above across after against along among around as at away before behind below beneath beside "
    "besides between beyond by down during except for from in inside into like near of off on onto out outside "
    "over since than through throughout till to toward towards under underneath until up upon via with "
    "within without and or but nor so yet because although though while whereas if unless whether that when "
    "where why how what who whom whose which a an the this these those some any no another each both either "
    "neither such i me you he him she it we us they them myself yourself himself herself itself ourselves "
    "themselves my your his its our their mine yours ours theirs something anything nothing everything someone "
    "anyone everyone nobody somebody anybody everybody is are was were be been am has have had do does "
    "did would shall should can could may might must again also too already still just even now then there "
    "here today tonight yesterday tomorrow soon later once twice well enough anymore instead directly "
    "immediately alone not never always often sometimes").split())
# Previous words after which "her" is an object: verbs that take two objects (gave her flowers), and
# causative/perception verbs that take an object plus a bare infinitive (made her laugh, saw her leave).
DATIVE_VERBS: frozenset[str] = frozenset((
    "give gives gave given giving send sends sent sending buy buys bought buying bring brings brought bringing "
    "hand hands handed offer offers offered offering lend lends lent owe owes owed show shows showed shown "
    "teach teaches taught promise promised pay pays paid").split())
LET_VERBS: frozenset[str] = frozenset("let lets letting".split())
CAUSATIVE_VERBS: frozenset[str] = frozenset((
    "make makes made making help helps helped helping see sees saw seen watch watches watched hear hears heard "
    "have has had feel felt notice noticed").split())
BARE_VERBS: frozenset[str] = frozenset((
    "be go come leave cry laugh smile know feel think say sing dance speak talk sleep stay win lose fall die eat "
    "drink work try get take see hear find keep move read write walk run wait sit stand look listen stop "
    "understand believe do play change").split())


def load_json(path: str) -> Any:
    """Read a JSON lexicon file (a ``ValueError`` / ``OSError`` names the problem)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


_GROUP, _NAME = re.compile(r"[a-z][a-z0-9]*"), re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _name_problems(where: str, mapping: Any, pattern: re.Pattern) -> list[str]:
    if not isinstance(mapping, Mapping) or not mapping:
        return [f"{where} must be a non-empty mapping, got {type(mapping).__name__}"]
    bad = [k for k in mapping if not isinstance(k, str) or not pattern.fullmatch(k) or k == "cooc"]
    return [f"{where} has invalid names {bad!r} (they become columns: {pattern.pattern})"] if bad else []


def _term_problems(where: str, terms: Any) -> list[str]:
    if isinstance(terms, str) or not isinstance(terms, Sequence) or not terms:
        return [f"{where} must be a non-empty list of terms, got {terms!r}"]
    bad = [t for t in terms if not isinstance(t, str) or not t.strip("-* ") or t != t.lower()]
    if bad:
        return [f"{where} has empty or non-lower-case terms {bad!r}"]
    return [] if split_terms(terms)[0] else [f"{where} has only negative terms"]


def lexicon_problems(lexicons: Any) -> list[str]:
    """What is wrong with a group -> category -> terms mapping (empty: nothing). Names become column names:
    lower-case letters, digits and single underscores; groups have no underscore (``bias_<group>_<cat>``)."""
    problems = _name_problems("lexicons", lexicons, _GROUP)
    for group, cats in (lexicons.items() if not problems else ()):
        problems += _name_problems(f"lexicons[{group!r}]", cats, _NAME) or [
            p for c, terms in cats.items() for p in _term_problems(f"lexicons[{group!r}][{c!r}]", terms)]
    return problems


def attribute_problems(attributes: Any) -> list[str]:
    """What is wrong with an attribute -> terms mapping (empty or None: no co-occurrence, fine)."""
    if not attributes and isinstance(attributes, (Mapping, type(None))):
        return []
    return _name_problems("attributes", attributes, _NAME) or [
        p for a, terms in attributes.items() for p in _term_problems(f"attributes[{a!r}]", terms)]


def regex_problems(patterns: Any) -> list[str]:
    """What is wrong with a tuple of exclusion regexes."""
    if not isinstance(patterns, (tuple, list)) or not all(isinstance(p, str) for p in patterns):
        return [f"must be a tuple of regexes, got {patterns!r}"]
    problems = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"bad regex {pattern!r}: {exc}")
    return problems


def term_regex(terms: Sequence[str]) -> str:
    """One RE2/Python alternation for ``terms`` on word boundaries (longest first; see the module docstring)."""
    parts = []
    for term in sorted(terms, key=lambda t: (-len(t), t)):
        stem = term.endswith("*")
        words = [re.escape(w) for w in term.rstrip("*").split()]
        parts.append(r"[\s-]+".join(words) + (r"\w*" if stem else ""))
    return r"\b(?:" + "|".join(parts) + r")\b"


def split_terms(terms: Sequence[str]) -> tuple[list[str], list[str]]:
    """(positive terms, negative terms without their leading ``-``)."""
    return [t for t in terms if not t.startswith("-")], [t[1:] for t in terms if t.startswith("-")]


# -- counterfactual swaps: the her/his rule and the swap itself ---------------------------------------------
_NEXT = re.compile(r"\s*([A-Za-z][A-Za-z'’-]*|[^\sA-Za-z])?(?:\s*([A-Za-z]+))?")
_PREV = re.compile(r"([A-Za-z]+)\s+$")
_POSSESSIVES = frozenset({"his", "her", "my", "your", "their", "our", "its"})


def _object_reading(word: str, following: str | None, after: str | None) -> bool:
    """True when the word after her/his marks the object/pronoun reading: end of text, punctuation, or a
    function word -- except ``and``/``or``/``/`` before a different possessive (``his or her rights``,
    ``his/her``; but ``met her and her sister`` is an object)."""
    if following is not None and following.lower() in ("and", "or", "/") and after is not None and \
            after.lower() in _POSSESSIVES - {word}:
        return False
    return following is None or not following[0].isalpha() or following.lower() in OBJECT_FOLLOWERS


def resolve_her(previous: str | None, following: str | None, after: str | None = None) -> str:
    """``him`` or ``his`` for ``her``: object if followed by end/punctuation/a function word, if it follows
    a two-object verb (gave her flowers) or let, or a causative/perception verb before a bare verb (made
    her laugh); otherwise possessive (her book, her own, her first husband)."""
    prev = (previous or "").lower()
    if _object_reading("her", following, after) or prev in DATIVE_VERBS or prev in LET_VERBS:
        return "him"
    if prev in CAUSATIVE_VERBS and following is not None and following.lower() in BARE_VERBS:
        return "him"
    return "his"


def resolve_his(following: str | None, after: str | None = None) -> str:
    """``hers`` for ``his`` standing alone (the book is his. / a friend of his), ``her`` before a noun."""
    return "hers" if _object_reading("his", following, after) else "her"


def _match_case(source: str, word: str) -> str:
    if len(source) > 1 and source.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if source[:1].isupper() else word


@functools.lru_cache(maxsize=32)
def _swap_table(pairs: tuple[tuple[str, str], ...], names: bool) -> tuple[dict[str, str], frozenset[str]]:
    """word -> counterpart (``<her>``/``<his>``: resolved per occurrence) and the words swapped only capitalised."""
    table: dict[str, str] = {}
    for male, female in pairs + (NAME_PAIRS if names else ()):
        table.setdefault(male, female)  # the first pair listed wins (mr -> ms, not mrs)
        table.setdefault(female, male)
    for word, both in (("her", {"him", "his"}), ("his", {"her", "hers"})):
        if both <= {b for a, b in pairs if a == word} | {a for a, b in pairs if b == word}:
            table[word] = f"<{word}>"
    return table, CASE_SENSITIVE | (frozenset(w for p in NAME_PAIRS for w in p) if names else frozenset())


_MARK_OPEN, _MARK_CLOSE = "\x1e", "\x1f"
_WORD = re.compile(r"[A-Za-z]+")


def excluded_spans(texts: list[str], exclude: tuple[str, ...]) -> list[list[tuple[int, int]]]:
    """Per text, the (start, end) spans the ``exclude`` regexes match (RE2, as BiasMeasure masks them)."""
    if not exclude:
        return [[] for _ in texts]
    pattern = "(" + "|".join(f"(?:{p})" for p in exclude) + ")"
    marked = pc.replace_substring_regex(pa.array(texts, pa.string()), pattern, f"{_MARK_OPEN}\\1{_MARK_CLOSE}")
    result = []
    for text, mark in zip(texts, marked.to_pylist()):
        if _MARK_OPEN in text or _MARK_CLOSE in text:  # the text holds the markers: find the spans in Python
            result.append([m.span() for m in re.finditer(pattern, text)])
            continue
        spans, i = [], mark.find(_MARK_OPEN)
        while i >= 0:  # each earlier span added two marker characters
            j = mark.index(_MARK_CLOSE, i)
            spans.append((i - 2 * len(spans), j - 2 * len(spans) - 1))
            i = mark.find(_MARK_OPEN, j)
        result.append(spans)
    return result


def swap_gender(text: str, pairs: tuple[tuple[str, str], ...] = GENDER_PAIRS, names: bool = False,
                exclude: tuple[str, ...] = EXCLUDE, spans: list[tuple[int, int]] | None = None) -> tuple[str, int]:
    """Swap gendered words in ``text`` (see ``CounterfactualSwap``): the new text and the number of swaps.
    ``spans``: the excluded regions if already known (``excluded_spans``)."""
    table, capital_only = _swap_table(tuple(map(tuple, pairs)), names)
    spans = excluded_spans([text], tuple(exclude))[0] if spans is None else spans
    ends = [e for _, e in spans]
    parts, last, swaps = [], 0, 0
    for m in _WORD.finditer(text):
        source, start, end = m.group(), m.start(), m.end()
        key = source.lower()
        if key not in table or (start and (text[start - 1].isalnum() or text[start - 1] == "_")) or (
                end < len(text) and (text[end].isalnum() or text[end] == "_")):
            continue  # not a pair word, or inside a longer word (he_IL, 2he, Heß)
        i = bisect.bisect_right(ends, start)
        if (i < len(spans) and spans[i][0] <= start) or (key in capital_only and not source[0].isupper()):
            continue
        new = table[key]
        if new in ("<her>", "<his>"):
            following, after = _NEXT.match(text, end).groups()
            prev = _PREV.search(text, max(0, start - 40), start)
            new = resolve_her(prev and prev[1], following, after) if key == "her" else resolve_his(following, after)
        parts += [text[last:start], _match_case(source, new)]
        last, swaps = end, swaps + 1
    return "".join(parts) + text[last:], swaps
