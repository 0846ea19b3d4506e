"""Text from the data made safe to print for people: control characters shown, never sent to the terminal.

Ids, texts, reasons, column and file names come from user data and may carry ANSI escape sequences (which
recolour, move the cursor, retitle the window or clear the screen), carriage returns and backspaces (which
overwrite what was printed), or bidirectional overrides (which reorder it). ``printable`` escapes them
visibly (``\\x1b``, ``\\r``, ``\\u202e``); machine-readable output (``--json``) is JSON, escaped by its encoder.
"""
from __future__ import annotations

import re

# C0 controls (newline and tab included: a field never spans lines), DEL, C1 controls, and the Unicode
# bidirectional embeddings, overrides and isolates, plus the line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
    if char in named:
        return named[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(value: object, keep: str = "") -> str:
    """``str(value)`` with every control character escaped (``\\x1b[31m`` stays visible as text).

    ``keep`` names characters the layout itself needs (e.g. ``"\\n"`` for a multi-line block)."""
    text = str(value)
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
