"""PII redaction: replace emails, phone numbers, IP addresses, payment cards, IBANs and US SSNs in ``text``
with typed tokens (``<EMAIL>``, ``<PHONE>``, ...) and count them per type.

Detection is two-step: precompiled regexes propose candidates, validators accept them (Luhn and IIN prefixes
for cards, ISO 7064 mod-97 and country lengths for IBANs, ``ipaddress`` for IPs, numbering rules for SSNs and
North American numbers). Vectorised RE2 prefilters pick the rows, and the detectors, worth a Python scan.

Near-miss rules (each pinned by ``tests/test_pii.py``):
* IPv4: four dot-separated octets 0-255 without leading zeros, not inside a longer dotted run. A bare
  ``1.2.3.4`` *is* an address. It is read as a version, and kept, when written ``v1.2.3.4``, right after
  v/ver/rev/build, within a few words after version/release/standards/policy/section/chapter/clause/linux/
  kernel/dpkg/gcc on the same line, when it starts with ``0.`` (except 0.0.0.0), or when a Debian revision
  follows (``2.1.8.2-5``, ``1.4.1.2+svn``). Three-part versions (``2.60.0``) never match.
* IPv6: ``ipaddress`` must accept it and it must hold a digit (``::``, ``std::io`` stay); uncompressed forms
  need a group of 3-4 hex digits. Times (``12:30:45``) and MAC addresses (six groups) are not IPv6.
* Phones need a phone shape: ``+CC`` then digit groups (8-15 digits); NANP ``(415) 555-2671`` /
  ``415-555-2671`` (one separator style) with area and exchange codes starting 2-9; European trunk-0 numbers
  (``020 7946 0958``, ``01 23 45 67 89``) with one consistent separator and 9-12 digits, not US ZIP+4, not
  inside a run of space-separated digit or hex groups. Bare digit runs, dates (``28/11/2026``,
  ``01.02.2026``: 8 digits) and ISBNs (groups joined to other digit groups by ``-``) do not match.
* Cards: 13-19 digits, contiguous or in 4-4-4-4(-3) / 4-6-5 / 4-6-4 groups, Luhn-valid, not one repeated
  digit, and (``card_iin=True``, the default) starting with a known issuer prefix.
* IBANs: upper-case country code with its registered length, mod-97 == 1; spaces allowed.
* US SSNs: ``AAA-GG-SSSS`` only, area not 000/666/9xx, group not 00, serial not 0000.
Overlapping candidates go to the type found first: email, IBAN, SSN, card, IP, phone.
"""
from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Operator, check

TYPES = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "IBAN", "US_SSN")

Span = tuple[int, int]
A = re.ASCII  # digits and word characters as RE2 (the prefilters) sees them

# -- candidates (lookarounds stop a candidate from starting or ending inside a longer token) ----------------
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"[A-Za-z]{2,24}(?![\w-])", A)
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?[ .-]?\d+(?:[ .-]\d+)*(?!\w)", A)
_PHONE_NANP = re.compile(r"(?<![\w+.-])(?:1[ .-]?)?(?:\(\d{3}\) ?\d{3}[ .-]|\d{3}(?P<sep>[ .-])\d{3}(?P=sep))\d{4}"
                         r"(?!\w|[.-]\d)", A)
_PHONE_EU = re.compile(r"(?<![\w+./-])(?<!\d )(?:\(0[1-9]\d{0,3}\) ?\d{2,8}(?:[ -]\d{2,8}){0,3}"
                       r"|0[1-9]\d{0,3}(?P<sep>[ .-])\d{2,8}(?:(?P=sep)\d{2,8}){0,4})"
                       r"(?!\w|[./-]\d| [0-9A-Fa-f]{2}\b)", A)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\w|[+~]|-\d+(?:\.\d+)?(?![.\d]))", A)
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]+"
                   r"(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})?(?![\w:]|\.\d)", A)
_CARD = re.compile(r"(?<![\w+-])(?:\d{13,19}|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{1,3})?"
                   r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5})(?!\w|-\d)", A)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}", A)
_SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?!\w|-\d)", A)

_VERSION_BEFORE = re.compile(r"\b(?:v|ver|rev|build)\.?[\s:=]*$|\b(?:versions?|releases?|standards?|policy|section"
                             r"|chapter|clause|linux|kernel|dpkg|gcc)\b[^.\n]{0,24}$", re.I)
_CARD_IIN = re.compile(r"4|3[47]|30[0-5]|3[689]|35(?:2[89]|[3-8]\d)|5[0-8]|6|220[0-4]|222[1-9]|22[3-9]\d"
                       r"|2[3-6]\d\d|27[01]\d|2720", A)
_NOT_DIGIT = re.compile(r"\D", A)
_ZIP_PLUS_4 = re.compile(r"\d{5}-\d{4}", A)

# IBAN length per country (ISO 13616 registry).
IBAN_LENGTHS = {c: int(n) for c, n in (item.split(":") for item in (
    "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BI:27 BR:29 BY:28 CH:21 CR:22 CY:28 CZ:24 DE:22 "
    "DJ:27 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FK:18 FO:18 FR:27 GB:22 GE:22 GI:23 GL:18 GR:27 GT:28 HR:21 "
    "HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 LY:25 MC:27 "
    "MD:24 ME:22 MK:19 MN:20 MR:27 MT:31 MU:30 NI:28 NL:18 NO:15 OM:23 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 "
    "RS:22 RU:33 SA:24 SC:31 SD:18 SE:24 SI:19 SK:24 SM:27 SO:23 ST:25 SV:28 TL:23 TN:24 TR:26 UA:29 VA:22 "
    "VG:24 XK:20 YE:30").split())}


# -- validators ---------------------------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country length and the ISO 7064 mod-97 check (``iban`` without spaces)."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card_valid(digits: str, card_iin: bool) -> bool:
    return (13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)
            and (not card_iin or _CARD_IIN.match(digits) is not None))


# -- finders: yield the accepted (start, end) spans of one pattern ------------------------------------------
def _emails(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        local = m[0].split("@", 1)[0]
        if not (local.startswith(".") or local.endswith(".") or ".." in local):
            yield m.span()


def _phones_international(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _PHONE_INTL.finditer(text):
        if 8 <= len(_NOT_DIGIT.sub("", m[0])) <= 15:
            yield m.span()


def _phones_north_american(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _PHONE_NANP.finditer(text):
        digits = _NOT_DIGIT.sub("", m[0])[-10:]
        if digits[0] >= "2" and digits[3] >= "2":  # area and exchange codes start 2-9
            yield m.span()


def _phones_european(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _PHONE_EU.finditer(text):
        if 9 <= len(_NOT_DIGIT.sub("", m[0])) <= 12 and not _ZIP_PLUS_4.fullmatch(m[0]):
            yield m.span()


def _ipv6(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _IPV6.finditer(text):
        if not any(ch.isdigit() for ch in m[0]) or ("::" not in m[0] and max(map(len, m[0].split(":"))) < 3):
            continue  # "::", "std::io", "2:4:6:8:10:12:14:16" are not addresses
        try:
            ipaddress.IPv6Address(m[0])
        except ValueError:
            continue
        yield m.span()


def _ipv4(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text, max(0, m.start() - 48), m.start()):
            continue
        if m[0].startswith("0.") and m[0] != "0.0.0.0":  # 0.x.y.z is not a host address: a version
            continue
        try:
            ipaddress.IPv4Address(m[0])
        except ValueError:
            continue
        yield m.span()


def _cards(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        start, end = m.span()
        if _card_valid(_NOT_DIGIT.sub("", m[0]), card_iin):
            yield start, end
        elif m["s1"] and m[0].count(m["s1"]) == 4:  # 4-4-4-4 followed by a separate short number
            end = start + m[0].rindex(m["s1"])
            if _card_valid(_NOT_DIGIT.sub("", text[start:end]), card_iin):
                yield start, end


def _ibans(text: str, card_iin: bool) -> Iterator[Span]:
    pos = 0
    while m := _IBAN.search(text, pos):
        start, body = m.start(), m[0]
        length = IBAN_LENGTHS.get(body[:2], 0)
        end, seen = None, 0
        for i, ch in enumerate(body):  # cut the (greedy) candidate at the country's IBAN length
            seen += ch != " "
            if seen == length:
                end = start + i + 1
                break
        if end is not None and not text[end:end + 1].isalnum() and iban_valid(text[start:end].replace(" ", "")):
            yield start, end
            pos = end
        else:
            pos = start + 1


def _ssns(text: str, card_iin: bool) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        area, group, serial = m.groups()
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield m.span()


@dataclass(frozen=True)
class Detector:
    """One pattern of a PII type: an RE2 row prefilter (necessary for any accepted span) and its finder."""

    kind: str
    prefilter: str
    find: Callable[[str, bool], Iterator[Span]]


# In priority order: an overlap goes to the earlier detector (IPv6 before IPv4: it may embed an IPv4 tail).
DETECTORS = (
    Detector("EMAIL", r"@[A-Za-z0-9]", _emails),
    Detector("IBAN", r"[A-Z]{2}\d{2} ?[A-Z0-9]", _ibans),
    Detector("US_SSN", r"\d{3}-\d{2}-\d{4}", _ssns),
    Detector("CREDIT_CARD", r"\d{4}[ -]?\d{4}[ -]?\d{2}", _cards),
    Detector("IP_ADDRESS", r"::|(?:[0-9A-Fa-f]{1,4}:){6}", _ipv6),
    Detector("IP_ADDRESS", r"\d\.\d{1,3}\.\d{1,3}\.\d", _ipv4),
    Detector("PHONE", r"\+\d[\d .()-]{7}", _phones_international),
    Detector("PHONE", r"[2-9]\d\d[ .-][2-9]\d\d[ .-]\d{4}|\([2-9]\d\d\) ?[2-9]\d\d[ .-]\d{4}", _phones_north_american),
    Detector("PHONE", r"\(0[1-9]\d{0,3}\) ?\d{2}|0[1-9]\d{0,3}[ .-]\d{2}", _phones_european),
)


def _redact(text: str, detectors: Iterable[Detector], card_iin: bool) -> tuple[str, dict[str, int]]:
    """Apply ``detectors`` (in priority order) to one string: the redacted text and counts per type."""
    taken: list[tuple[int, int, str]] = []  # accepted spans, sorted and disjoint
    for detector in detectors:
        for start, end in detector.find(text, card_iin):
            i = bisect.bisect(taken, (start,))
            if (i == 0 or taken[i - 1][1] <= start) and (i == len(taken) or end <= taken[i][0]):
                taken.insert(i, (start, end, detector.kind))
    counts: dict[str, int] = {}
    if not taken:
        return text, counts
    parts, last = [], 0
    for start, end, kind in taken:
        parts += [text[last:start], f"<{kind}>"]
        last = end
        counts[kind] = counts.get(kind, 0) + 1
    parts.append(text[last:])
    return "".join(parts), counts


def redact(text: str, types: tuple[str, ...] = TYPES, card_iin: bool = True) -> tuple[str, dict[str, int]]:
    """Redact PII of ``types`` in ``text``: the new text and the number of replacements per type."""
    unknown = set(types) - set(TYPES)
    if unknown:
        raise ValueError(f"unknown PII types {sorted(unknown)}; known: {TYPES}")
    new, found = _redact(text, [d for d in DETECTORS if d.kind in types], card_iin)
    return new, {kind: found.get(kind, 0) for kind in TYPES if kind in types}


def count_columns(types: tuple[str, ...] = TYPES) -> list[str]:
    """The int32 count columns ``RedactPII(types=...)`` adds, in canonical order (``pii_email``, ...)."""
    return [f"pii_{kind.lower()}" for kind in TYPES if kind in types]


@dataclass(frozen=True)
class RedactPII(Operator):
    """Replace PII in ``text`` with typed tokens and add a ``pii_<type>`` int32 count column per type."""

    metrics: ClassVar[tuple[str, ...]] = tuple(count_columns())  # the runner sums these into the manifest

    types: tuple[str, ...] = TYPES
    card_iin: bool = True  # also require a known card issuer prefix (cuts ids and timestamps that pass Luhn)

    def __post_init__(self) -> None:
        check(isinstance(self.types, (tuple, list)) and len(self.types) > 0, self, "types",
              f"must be a non-empty tuple of {TYPES}, got {self.types!r}")
        unknown = [t for t in self.types if t not in TYPES]
        check(not unknown, self, "types", f"unknown PII types {unknown}; choose from {TYPES}")
        check(len(set(self.types)) == len(self.types), self, "types", f"has duplicates: {self.types!r}")
        check(isinstance(self.card_iin, bool), self, "card_iin", f"must be a bool, got {self.card_iin!r}")
        object.__setattr__(self, "types", tuple(self.types))

    def count_columns(self) -> list[str]:
        return count_columns(self.types)

    def __call__(self, batch: pa.Table) -> pa.Table:
        text = batch[self.text_column].combine_chunks()
        detectors = [d for d in DETECTORS if d.kind in self.types]
        # Only rows where some detector's prefilter matches go through Python, and only with those detectors.
        masks = np.stack([pc.fill_null(pc.match_substring_regex(text, d.prefilter), False)
                          .to_numpy(zero_copy_only=False) for d in detectors])
        rows = np.flatnonzero(masks.any(axis=0))
        columns = count_columns(self.types)
        counts = {name: np.zeros(len(text), np.int32) for name in columns}
        if len(rows):
            redacted = []
            for row, value in zip(rows, text.take(pa.array(rows)).to_pylist()):
                new, found = _redact(value, [d for d, hit in zip(detectors, masks[:, row]) if hit], self.card_iin)
                redacted.append(new)
                for kind, n in found.items():
                    counts[f"pii_{kind.lower()}"][row] = n
            changed = np.zeros(len(text), bool)
            changed[rows] = True
            text = pc.replace_with_mask(text, pa.array(changed), pa.array(redacted, text.type))
        batch = batch.set_column(batch.schema.get_field_index(self.text_column), self.text_column, text)
        batch = batch.drop_columns([c for c in columns if c in batch.column_names])
        for name in columns:
            batch = batch.append_column(name, pa.array(counts[name], pa.int32()))
        return batch
