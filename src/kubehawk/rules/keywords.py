"""Keyword searches: Sigma values with no field, matched against the whole event.

Takes a keyword value (a string with wildcards, a number, a boolean or a regular expression) and
gives a test over the event's JSON text, plus prefilters that ask the event as it was written
(its line, or the head re-encoded with the raw bodies) before that text is built.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sigma.types import (
    SigmaCasedString,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from kubehawk.event import AuditEvent
from kubehawk.rules.ir import Test
from kubehawk.rules.matchers import _StringSet
from kubehawk.rules.needles import _key_searcher
from kubehawk.rules.regex import compile_regex

__all__ = ["event_text"]

_text_cache: list[Any] = [None, "", ""]


def event_text(e: AuditEvent) -> tuple[str, str]:
    """The event as JSON text and its lower-case form (cached for the current event)."""
    if _text_cache[0] is not e:
        text = msgspec.json.encode(e.to_dict()).decode()
        _text_cache[0], _text_cache[1], _text_cache[2] = e, text, text.lower()
    return _text_cache[1], _text_cache[2]


# [event, [the event as written: its line, else the head encoded with the raw bodies; whether it
# is ASCII; whether it holds a backslash-u escape; whether it holds an escaped slash; its
# lower-cased form, made when first asked]] of the last event a keyword asked about.
_line_cell: list[Any] = [(None, None)]
_STRUCTURAL = frozenset('"\\,:{}[]')


def _event_line(e: AuditEvent) -> list[Any]:
    cell = _line_cell[0]
    if cell[0] is e:
        return cell[1]
    raw = e._line
    if raw is not None and (b"\\" not in raw or _ANY_ESCAPE(raw) is None):  # a byte search first
        info = [raw, raw.isascii(), False, False, None]  # the line, and it holds neither escape
    else:
        # no line, or one that holds escapes (Go writes & < > as \u0026...): the head
        # re-encoded holds none, its bodies as they were written (an absent one as nothing)
        raw = msgspec.json.encode(e.head)
        esc = b"\\" in raw
        info = [raw, raw.isascii(), esc and _U_ESCAPE(raw) is not None, esc and _SLASH_ESCAPE(raw) is not None,
                None]
    _line_cell[0] = (e, info)
    return info


# Searches for two-byte needles: Python's `re` finds them about three times faster than `in`.
_ANY_ESCAPE = re.compile(rb"\\[u/]").search
_U_ESCAPE = re.compile(rb"\\u").search
_SLASH_ESCAPE = re.compile(rb"\\/").search


def _keyword_prefilter(lit: str, lower: bool) -> Test | None:
    """A necessary condition for the keyword text ``lit`` to be in :func:`event_text`, read from
    the event as written (no body decoded, nothing re-encoded), or None.

    The event as written is the line it was read from (the file reader keeps it) unless that
    holds an escape, else the head encoded with its bodies as they came. Every token of
    :func:`event_text` is in it: the line may hold more (fields kubehawk does not read), which
    can only say "maybe" more often. A literal without JSON punctuation, backslashes or
    control characters can only be found inside one token (a string's text, a number,
    true/false/null); a string's text differs between the two forms only where the written
    one used an escape (``\\uXXXX``: answer "maybe"; ``\\/``: "maybe" for literals with a
    slash), and numbers are re-written (``1e3`` -> ``1000.0``), so literals that could be part
    of a number are not checked. For a case-insensitive literal the text must be ASCII
    (Unicode lower-casing maps a few non-ASCII letters to ASCII ones).
    """
    if not lit or _numeric(lit) or any(c in _STRUCTURAL or ord(c) < 0x20 for c in lit):
        return None
    needle = (lit.lower() if lower else lit).encode()
    slash = b"/" in needle

    def prefilter(e: AuditEvent) -> bool:
        info = _event_line(e)
        if info[2] or (slash and info[3]):
            return True
        if lower:
            if not info[1]:
                return True
            low = info[4]
            if low is None:
                low = info[4] = info[0].lower()
            return needle in low
        return needle in info[0]

    prefilter.keyword = (needle, lower)  # type: ignore[attr-defined] # several merge into one search
    return prefilter


def _keywords_prefilter(words: list[tuple[bytes, bool]]) -> Test:
    """One pass for an Or of keyword prefilters (:func:`_keyword_prefilter`): one search for
    any of the words (a set of literals, :func:`_key_searcher`; the case-insensitive ones
    folded by the search, ASCII text only) instead of one substring search per word."""
    ci = tuple(sorted({w for w, lower in words if lower}))
    cs = tuple(sorted({w for w, lower in words if not lower}))
    any_ci = _key_searcher(ci, fold=True) if ci else None
    any_cs = _key_searcher(cs) if cs else None
    slash = any(b"/" in w for w, _ in words)

    def prefilter(e: AuditEvent) -> bool:
        raw, ascii_, escaped, slashed, _ = _event_line(e)
        if escaped or (slash and slashed) or (any_ci is not None and not ascii_):
            return True
        return bool((any_ci is not None and any_ci(raw)) or (any_cs is not None and any_cs(raw)))

    return prefilter


def _numeric(lit: str) -> bool:
    """Could ``lit`` be (part of) how a number is written (``1000.0``, ``1e+16``)?"""
    return all(c in "0123456789.+-eE" for c in lit)


def _keyword(a: Any) -> Test:
    if isinstance(a, SigmaRegularExpression):
        search = compile_regex(str(a.regexp), a.flags)
        return lambda e: search(event_text(e)[0]) is not None
    if isinstance(a, SigmaString):
        # Keywords are "contains" searches over the raw event.
        lower = not isinstance(a, SigmaCasedString)
        idx = 1 if lower else 0  # event_text: (text, lower-cased text)
        pieces = _plain_pieces(a)
        if pieces is not None and len(pieces) == 1:
            # a plain word: one substring search in the text (no second lower-casing of it)
            word = pieces[0].lower() if lower else pieces[0]
            full: Test = lambda e: word in event_text(e)[idx]  # noqa: E731
        else:
            parts = list(a.s)
            if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
                parts.insert(0, SpecialChars.WILDCARD_MULTI)
            if parts[-1] is not SpecialChars.WILDCARD_MULTI:
                parts.append(SpecialChars.WILDCARD_MULTI)
            s = SigmaString()
            s.s = parts
            ss = _StringSet(lower=lower)
            ss.add(s)
            pred = ss.pred()
            full = lambda e: pred(event_text(e)[idx])  # noqa: E731
        return full
    text = str(a.number if isinstance(a, SigmaNumber) else str(a.boolean).lower())
    return lambda e: text in event_text(e)[1]


def _plain_pieces(s: SigmaString) -> list[str] | None:
    """The text between the wildcards of ``s`` (None: it holds something else)."""
    pieces, run = [], []
    for p in s.s:
        if isinstance(p, str):
            run.append(p)
        elif p is SpecialChars.WILDCARD_MULTI or p is SpecialChars.WILDCARD_SINGLE:
            pieces.append("".join(run))
            run = []
        else:
            return None
    pieces.append("".join(run))
    return [x for x in pieces if x]
