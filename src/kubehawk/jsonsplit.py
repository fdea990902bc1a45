"""Take a JSON array or object apart into its members' raw text, without recursing.

msgspec recurses once per nesting level, so a batch (an EventList, a JSON array of events) that
holds one record nested a thousand levels deep makes the decode of the whole batch raise
``RecursionError``. Readers then fall back to this scanner: it walks the text with a regular
expression (each string taken whole, brackets counted), hands back each top-level member's span,
and the members are decoded one by one, so the deep one fails alone and the others are read.
Only the failure path uses it: it is a Python loop over the batch's tokens.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

__all__ = ["Member", "Split", "split"]

# A string (escapes included) or one structural character; everything else lies between tokens.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
_WS = b" \t\r\n"
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


class Member(NamedTuple):
    """One member: its key (objects; None in an array) and the span of its value in the text."""

    key: str | None
    start: int
    end: int


class Split(NamedTuple):
    kind: str  # "array" or "object"
    end: int  # just past the closing bracket
    members: list[Member]


def split(data: bytes, pos: int = 0) -> Split | None:
    """The top-level members of the array or object at ``pos`` (after whitespace), or None when
    there is none there or its brackets do not balance. Members are not validated: decoding each
    one is what reports a malformed member."""
    n = len(data)
    while pos < n and data[pos] in _WS:
        pos += 1
    if pos >= n or data[pos] not in _OPEN:
        return None
    is_object = data[pos] == 0x7B
    members: list[Member] = []
    depth = 0
    start = colon = -1
    key: str | None = None
    for m in _TOKEN.finditer(data, pos):
        c = data[m.start()]
        if c in _OPEN:
            depth += 1
            if depth == 1:
                start, colon, key = m.end(), -1, None
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                if (c == 0x7D) != is_object:  # "]" closing "{", or "}" closing "["
                    return None
                _add(data, members, start, colon, key, m.start(), is_object, last=True)
                return Split("object" if is_object else "array", m.end(), members)
        elif depth == 1:
            if c == 0x2C:  # ,
                _add(data, members, start, colon, key, m.start(), is_object, last=False)
                start, colon, key = m.end(), -1, None
            elif c == 0x3A and is_object and colon < 0:  # :
                colon = m.end()
                key = _key(data[start:m.start()])
    return None


def _add(data: bytes, members: list[Member], start: int, colon: int, key: str | None, end: int,
         is_object: bool, last: bool) -> None:
    vstart = colon if is_object and colon >= 0 else start
    while vstart < end and data[vstart] in _WS:
        vstart += 1
    vend = end
    while vend > vstart and data[vend - 1] in _WS:
        vend -= 1
    if vstart == vend and last and not members:
        return  # an empty container
    members.append(Member(key, vstart, vend))


def _key(text: bytes) -> str | None:
    try:
        key = msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return None
    return key if isinstance(key, str) else None
