"""Field access: from a Sigma field name to a function that reads it from an event.

Takes a dotted path (``objectRef.resource``, ``requestObject.spec.hostPID``,
``x.pod_spec.containers.image``) and gives a getter returning a scalar, a list of values or
None. The top-level fields are attribute reads on the typed head; bodies and ``x.*`` follow
:func:`kubehawk.event.resolve` (a list on the path yields every element; a key that itself
holds dots matches before the split one).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent, split_path

__all__ = ["field_cost", "make_getter", "make_resolver"]

_HEAD_ATTR = {name: operator.attrgetter("head." + name) for name in TOP_FIELDS}


def _joins(parts: tuple[str, ...]) -> list[list[tuple[str, int]]]:
    """For each position i, the dotted keys parts[i:j] (longest first, j > i+1) and their j."""
    n = len(parts)
    return [[(".".join(parts[i:j]), j) for j in range(n, i + 1, -1)] for i in range(n)]


def make_resolver(parts: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    """:func:`kubehawk.event.resolve` for a fixed path, with the dotted keys joined once."""
    if not parts:
        return lambda v: v if type(v) is list else [v]
    joins = _joins(parts)
    n = len(parts)

    def walk(value: Any, i: int, out: list[Any]) -> None:
        while True:
            if i == n:
                if type(value) is list:
                    out.extend(value)
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
    the semantics of :func:`kubehawk.event.resolve` (lists, dotted keys).
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
