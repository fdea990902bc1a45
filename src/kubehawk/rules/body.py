"""The raw bytes of an event's bodies, and what the body guards ask of them.

Takes an event and gives, per body (request, response, the one x.pod_spec is read from), a
:class:`_Body`: the bytes as written, whether a key is there (one substring search), and the
values written after a key, computed once per event and shared by every rule that asks.
Nothing here decodes a body: :mod:`.guards` uses it to rule events out before a body is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from kubehawk import native
from kubehawk.event import AuditEvent
from kubehawk.fieldpath import split_path

_OBJECT: dict[str, Any] = {}  # stands for any object value: no value predicate looks inside one


class _Body:
    """The raw bytes of one body of the current event; what the checks ask is computed once."""

    __slots__ = ("raw", "memo", "_escaped")

    def __init__(self, raw: bytes):
        self.raw = raw
        self.memo: dict[Any, Any] = {}
        self._escaped: bool | None = None

    def escaped(self) -> bool:
        """Does the body hold any backslash (an escape could spell a key or value differently)?"""
        e = self._escaped
        if e is None:
            e = self._escaped = b"\\" in self.raw
        return e

    def has(self, key: bytes) -> bool:
        """Could the body hold the key (anywhere, also inside a JSON-patch pointer)?"""
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = key in self.raw or self.escaped()
        return hit

    def search(self, keys: tuple[bytes, ...], search: Callable[[bytes], Any]) -> Any:
        """The positions in ``keys`` of the keys :meth:`has` finds, by one ``search`` of the body
        (:func:`_key_searcher`); what it finds is remembered for ``has``."""
        memo = self.memo
        if self.escaped():
            for kb in keys:
                memo[kb] = True
            return range(len(keys))
        hits = search(self.raw)
        for i, kb in enumerate(keys):
            memo[kb] = i in hits
        return hits

    def values(self, key: bytes, dotted: bool, patch_matters: bool) -> list[Any] | None:
        """Every value written after ``"key":`` (strings, booleans; objects as ``{}``; nulls left
        out), or None when the bytes cannot tell (see above)."""
        mk = (key, dotted, patch_matters)
        memo = self.memo
        if mk in memo:
            return memo[mk]
        out = memo[mk] = self._scan(key, dotted, patch_matters)
        return out

    def _scan(self, key: bytes, dotted: bool, patch_matters: bool) -> list[Any] | None:
        raw = self.raw
        if self.escaped():
            return None
        if patch_matters and raw[:64].lstrip()[:1] == b"[":
            return None
        if dotted and b"." + key + b'"' in raw:
            return None
        if native.needles is not None:  # the loop below, in C
            return native.needles.written_values(raw, key, _OBJECT)
        q = b'"' + key + b'":'
        size = len(q)
        out: list[Any] = []
        n = 0
        i = raw.find(q)
        while i >= 0:
            n += 1
            j = i + size
            c = raw[j:j + 1]
            if c == b'"':
                k = raw.find(b'"', j + 1)
                if k < 0:
                    return None
                out.append(raw[j + 1:k].decode("utf-8", "surrogateescape"))
                j = k + 1
            elif c == b"t" and raw.startswith(b"true", j):
                out.append(True)
            elif c == b"f" and raw.startswith(b"false", j):
                out.append(False)
            elif c == b"{":
                out.append(_OBJECT)
            elif not (c == b"n" and raw.startswith(b"null", j)):
                return None  # a number, a list, whitespace: not read here
            i = raw.find(q, j)
        if raw.count(b'"' + key + b'"') != n:
            return None  # also written as a string value, or followed by whitespace
        return out


_UNSET_BODY: Any = object()
# [event, request body, response body, pod-spec body] of the last event asked about: held until
# the next event, so its identity cannot be reused meanwhile; a new event gets a new cell.
_body_cell: list[list[Any]] = [[None, _UNSET_BODY, _UNSET_BODY, _UNSET_BODY]]
_REQUEST, _RESPONSE, _SPEC = 1, 2, 3


def _body_of(raw: msgspec.Raw) -> _Body | None:
    n = len(raw)
    if n == 0:
        return None
    b = bytes(raw)
    if n == 4 and b == b"null":
        return None
    return _Body(b)


def _fill(cell: list[Any], slot: int, e: AuditEvent) -> _Body | None:
    """Body ``slot`` of the event: the request's, the response's, or the one x.pod_spec is read
    from (the request's when it has one, else the response's)."""
    if slot == _SPEC:
        b = _fill(cell, _REQUEST, e)
        if b is None:
            b = _fill(cell, _RESPONSE, e)
    else:
        b = cell[slot]
        if b is not _UNSET_BODY:
            return b
        b = _body_of(e.head.requestObject if slot == _REQUEST else e.head.responseObject)
    cell[slot] = b
    return b


def _body(e: AuditEvent, slot: int) -> _Body | None:
    cell = _body_cell[0]
    if cell[0] is not e:
        cell = _body_cell[0] = [e, _UNSET_BODY, _UNSET_BODY, _UNSET_BODY]
    b = cell[slot]
    return _fill(cell, slot, e) if b is _UNSET_BODY else b


def unknown_test(leaf: Any) -> Callable[[AuditEvent], bool] | None:
    """For a leaf (:class:`.ir.Leaf`) read from a body: ``unknown(e)``, true when that body was
    not logged, else None. The leaf is then neither true nor false (a body that was not logged is
    unknown, not empty; see :mod:`.compiler`). The body itself (``requestObject|exists``) is
    known at every level: only paths into it are not."""
    if leaf.field is None or leaf.kind in ("const", "keyword"):
        return None
    parts = split_path(leaf.field)
    if len(parts) < 2:
        return None
    top = parts[0]
    if top in ("requestObject", "responseObject"):
        slot = _REQUEST if top == "requestObject" else _RESPONSE
        return lambda e: _body(e, slot) is None
    if top == "x":
        from kubehawk.xclaims import DERIVED_UNKNOWN

        return DERIVED_UNKNOWN.get(parts[1])
    return None
