"""Field access: from a Sigma field name to a function that reads it from an event.

Takes a dotted path (``objectRef.resource``, ``requestObject.spec.hostPID``,
``x.pod_spec.containers.image``) and gives a getter returning a scalar, a list of values or
None. The top-level fields are attribute reads on the typed head; bodies and ``x.*`` follow
:func:`kubehawk.fieldpath.resolve` (a list on the path yields every element; a key that itself
holds dots matches before the split one; nested lists are walked to any depth, at the end of
the path as in its middle). :func:`make_presence` answers ``|exists``: is the field there at all.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent
from kubehawk.fieldpath import flatten_lists, split_path
from kubehawk.rules.ir import Test

__all__ = ["field_cost", "make_getter", "make_presence", "make_resolver"]

_HEAD_ATTR = {name: operator.attrgetter("head." + name) for name in TOP_FIELDS}


def _joins(parts: tuple[str, ...]) -> list[list[tuple[str, int]]]:
    """For each position i, the dotted keys parts[i:j] (longest first, j > i+1) and their j."""
    n = len(parts)
    return [[(".".join(parts[i:j]), j) for j in range(n, i + 1, -1)] for i in range(n)]


def make_resolver(parts: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    """:func:`kubehawk.fieldpath.resolve` for a fixed path, with the dotted keys joined once."""
    if not parts:
        def whole(v: Any) -> list[Any]:
            out: list[Any] = []
            flatten_lists(v if type(v) is list else [v], out)
            return out

        return whole
    joins = _joins(parts)
    n = len(parts)

    def walk(value: Any, i: int, out: list[Any]) -> None:
        while True:
            if i == n:
                if type(value) is list:
                    flatten_lists(value, out)
                else:
                    out.append(value)
                return
            t = type(value)
            if t is list:
                for item in value:
                    walk(item, i, out)
                return
            if t is not dict and not isinstance(value, Mapping):
                return
            for joined, j in joins[i]:
                if joined in value:
                    walk(value[joined], j, out)
                    return
            key = parts[i]
            if key not in value:
                return
            value = value[key]
            i += 1

    def resolve_path(value: Any) -> list[Any]:
        out: list[Any] = []
        walk(value, 0, out)
        return out

    return resolve_path


def _derived_keys_plain() -> bool:
    try:
        from kubehawk.enrich import DERIVED_LEVELS
    except ImportError:  # pragma: no cover - enrich is part of the package
        return False
    return not any("." in k for k in DERIVED_LEVELS)


def make_getter(path: str) -> Callable[[AuditEvent], Any]:
    """A function returning the value(s) at ``path``: a scalar, a list of values, or None.

    Specialised for the top-level fields of the typed head; bodies and ``x.*`` follow
    the semantics of :func:`kubehawk.fieldpath.resolve` (lists, dotted keys).
    """
    parts = split_path(path)
    top, rest = parts[0], parts[1:]
    if top in ("requestObject", "responseObject"):
        attr = "request_object" if top == "requestObject" else "response_object"
        body = operator.attrgetter(attr)
        if not rest:
            return body
        res = make_resolver(rest)

        def get_body(e: AuditEvent) -> Any:
            b = body(e)
            return None if b is None else res(b)

        return get_body
    if top == "x":
        if not rest:
            return lambda e: e.derived
        if _derived_keys_plain():
            # Derived keys have no dots: read the first one directly, walk the rest.
            first = rest[0]
            sub = make_resolver(rest[1:]) if len(rest) > 1 else None

            def get_derived_fast(e: AuditEvent) -> Any:
                v = e.derived_value(first)
                if v is None or sub is None:
                    return v
                return sub(v)

            return get_derived_fast
        res_x = make_resolver(rest)

        def get_derived(e: AuditEvent) -> Any:
            return res_x(e.derived)

        return get_derived
    if top in TOP_FIELDS:
        head = _HEAD_ATTR[top]
        if not rest:
            return head
        if len(rest) == 1:
            key = rest[0]
            res1 = make_resolver(rest)

            def get_one(e: AuditEvent) -> Any:
                d = head(e)
                if type(d) is dict:
                    return d.get(key)
                return None if d is None else res1(d)

            return get_one
        if top == "annotations":
            # Annotation values are strings, so only the whole dotted key can match.
            joined = ".".join(rest)

            def get_annotation(e: AuditEvent) -> Any:
                d = head(e)
                return d.get(joined) if type(d) is dict else None

            return get_annotation
        resn = make_resolver(rest)

        def get_path(e: AuditEvent) -> Any:
            d = head(e)
            return None if d is None else resn(d)

        return get_path

    def get_extra(e: AuditEvent) -> Any:
        return e.get(parts)

    return get_extra


def _present(value: Any, parts: tuple[str, ...], i: int) -> bool:
    """Does the path ``parts[i:]`` lead somewhere in ``value`` (through lists, by the longest
    dotted key as :func:`make_resolver` goes), whatever is there: null, ``[]`` and ``[null]`` too?"""
    n = len(parts)
    while i < n:
        t = type(value)
        if t is list:
            return any(_present(x, parts, i) for x in value)
        if t is not dict and not isinstance(value, Mapping):
            return False
        for j in range(n, i + 1, -1):
            joined = ".".join(parts[i:j])
            if joined in value:
                return _present(value[joined], parts, j)
        if parts[i] not in value:
            return False
        value = value[parts[i]]
        i += 1
    return True


def make_presence(path: str) -> Test:
    """``path|exists`` as the Sigma spec has it: is the field there, "not its value, be it empty or
    null"? A field written as null, ``[]`` or ``[null]`` is there. Derived ``x.*`` fields, which
    are computed rather than written, are there when they have a value."""
    parts = split_path(path)
    top, rest = parts[0], parts[1:]
    if top in ("requestObject", "responseObject"):
        raw = _HEAD_ATTR[top]
        body = operator.attrgetter("request_object" if top == "requestObject" else "response_object")
        if not rest:
            return lambda e: len(raw(e)) > 0 or e.written_null(top)
        return lambda e: _present(body(e), rest, 0)
    if top in TOP_FIELDS:
        head = _HEAD_ATTR[top]

        def present(e: AuditEvent) -> bool:
            v = head(e)
            if v is None:
                return not rest and e.written_null(top)
            return _present(v, rest, 0)

        return present
    getter = make_getter(path)

    def has_value(e: AuditEvent) -> bool:
        v = getter(e)
        if type(v) is list:
            flat: list[Any] = []
            flatten_lists(v, flat)
            return any(x is not None for x in flat)
        return v is not None

    return has_value


def field_cost(path: str | None) -> int:
    """Relative cost of reading a field: head < bodies < derived < keyword text."""
    if path is None:
        return 4
    top = split_path(path)[0]
    if top in ("requestObject", "responseObject"):
        return 2
    if top == "x":
        return 3
    return 0 if top in TOP_FIELDS else 1
