"""Rule fields checked against the ``audit.k8s.io/v1`` Event schema at load time.

A rule that names a field no audit event has (``hostPath`` or ``apiGroup`` at the top level) or
compares an integer field with a word (``responseStatus.code: 'ALLOW'``) can never fire; it
loads, with a warning naming the rule file and the field. The schema is read from the event
model (:class:`kubehawk.event.EventHead` and :data:`kubehawk.event_schema.HEAD_SCHEMA`), so it cannot
drift from what the decoder keeps. Open maps take any key: ``annotations``, ``user.extra``,
the request and response bodies; ``x.*`` are kubehawk's own derived fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec.inspect as mi
from sigma.types import SigmaString

from kubehawk.event import EventHead
from kubehawk.event_schema import HEAD_SCHEMA
from kubehawk.fieldpath import split_path
from kubehawk.rules.ir import Leaf, leaves

__all__ = ["OPEN", "field_type", "rule_field_warnings"]


class _Open:
    """Marker: the path goes into an open map or a body; any key below is valid."""

    def __repr__(self) -> str:
        return "OPEN"


OPEN = _Open()
_OPEN_TYPES = (mi.DictType, mi.AnyType, mi.RawType)
_HEAD: dict[str, Any] = {}


def _head() -> dict[str, Any]:
    if not _HEAD:
        info = mi.type_info(EventHead)
        for f in info.fields:
            _HEAD[f.encode_name] = mi.type_info(HEAD_SCHEMA[f.name]) if f.name in HEAD_SCHEMA else f.type
    return _HEAD


def _walk(t: Any, parts: tuple[str, ...], i: int) -> Any:
    """The type reached by ``parts[i:]`` from ``t`` (OPEN inside an open map), or None."""
    if isinstance(t, mi.UnionType):
        found = [r for r in (_walk(x, parts, i) for x in t.types if not isinstance(x, mi.NoneType)) if r is not None]
        return found[0] if found else None
    if i == len(parts):
        return t
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return _walk(t.item_type, parts, i)  # a path through a list goes into every element
    if isinstance(t, _OPEN_TYPES):
        return OPEN
    if isinstance(t, mi.StructType):
        for f in t.fields:
            if f.encode_name == parts[i]:
                return _walk(f.type, parts, i + 1)
    return None


def field_type(path: str) -> Any:
    """The schema type of ``path`` (a :mod:`msgspec.inspect` type), OPEN for a body, an open map
    or ``x.*``, None when no audit event can hold it."""
    parts = split_path(path)
    if parts[0] == "x" and len(parts) > 1:
        return OPEN
    t = _head().get(parts[0])
    return None if t is None else _walk(t, parts, 1)


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


def _leaf_warning(leaf: Any) -> str | None:
    if not isinstance(leaf, Leaf) or leaf.field is None:
        return None
    t = field_type(leaf.field)
    if t is None:
        return (f"field {leaf.field!r} is neither in the audit.k8s.io/v1 Event nor an x.* field: "
                "no event holds it")
    if leaf.kind != "value" or not isinstance(_scalar(t), mi.IntType):
        return None
    for a in leaf.atoms:
        if isinstance(a, SigmaString) and not a.contains_special() and not _NUMBER.fullmatch(a.to_plain().strip()):
            return f"field {leaf.field!r} holds an integer, which never equals {a.to_plain()!r}"
    return None


def _scalar(t: Any) -> Any:
    if isinstance(t, mi.UnionType):
        kinds = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return kinds[0] if len(kinds) == 1 else None
    return t


def rule_field_warnings(rules: Iterable[Any]) -> list[str]:
    """One line per (rule, field) that can never match: ``file: 'title': field ...``."""
    out: list[str] = []
    for rule in rules:
        if getattr(rule, "kind", None) != "event" or rule.ir is None:
            continue
        seen: set[str] = set()
        for leaf in leaves(rule.ir):
            msg = _leaf_warning(leaf)
            if msg is not None and msg not in seen:
                seen.add(msg)
                out.append(f"{rule.source}: {rule.title!r}: {msg}")
            ref = leaf.atoms[0].field if leaf.kind == "fieldref" else None
            if ref is not None and field_type(ref) is None:
                msg = f"field {ref!r} (fieldref) is neither in the audit.k8s.io/v1 Event nor an x.* field"
                if msg not in seen:
                    seen.add(msg)
                    out.append(f"{rule.source}: {rule.title!r}: {msg}")
    return out
