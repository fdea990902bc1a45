"""The line screen: JSON lines that no rule can match are counted, not decoded.

Two thirds of a cluster's audit events meet no rule: the rule index (:mod:`kubehawk.rules.index`)
gives them an empty plan from a few head fields, its *slots*. The screen
(``kubehawk/_linescreen.c``, built at install when a C compiler is there) reads a line once,
validates it as the typed head decode would, and keys it by the raw JSON text of those slots.
When the engine finds a line's plan empty it tells the screen (:meth:`LineScreen.learn`), and the
file reader skips every later line with the same key (:meth:`LineScreen.skip`): no decode, no
event, no lookup. A line whose plan is not empty is decoded, and its key keeps the plan's number
in the engine's list (:meth:`kubehawk.rules.engine.Engine.stream`): the next line with that key
gets its plan back from the screen instead of from the index. Equal raw text means equal values,
so the plan, a function of the slot values, is the same: the alerts do not change
(tests/rules/test_linescreen.py holds it to that).

A line the screen cannot vouch for goes the usual way, so errors are reported as before. Without
the compiled module, or with ``KUBEHAWK_NATIVE=0`` in the environment, every line is decoded.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from kubehawk import native
from kubehawk.event import _CheckedHead
from kubehawk.fieldpath import split_path
from kubehawk.rules.slots import PRESENT_BODY, PRESENT_HEAD, VALUE, inline_key

__all__ = ["LineScreen", "line_screen"]

# Field types the native screen checks (as in _linescreen.c)
_T_STR, _T_LIT, _T_DICT, _T_STRDICT, _T_STRLIST, _T_RAW = range(6)
_MODES = {VALUE: 0, PRESENT_HEAD: 1, PRESENT_BODY: 2}
# The reader's test of an audit Event: one of these holds a value (kubehawk.event._check)
_REQUIRED = ("verb", "requestURI", "auditID")

LineScreen = Any  # kubehawk._linescreen.Screen: skip(line) -> bool, learn(line), key(line)


def _field_type(t: Any) -> tuple[int, tuple[bytes, ...] | None] | None:
    """The native check of a head field's msgspec type, or None when it has none."""
    ti = msgspec.inspect
    if isinstance(t, ti.RawType):
        return _T_RAW, None
    if not isinstance(t, ti.UnionType):
        return None
    rest = [x for x in t.types if not isinstance(x, ti.NoneType)]
    if len(rest) != 1 or len(t.types) != 2:
        return None
    (t,) = rest
    if isinstance(t, ti.StrType) and not (t.min_length or t.max_length or t.pattern):
        return _T_STR, None
    if isinstance(t, ti.LiteralType) and all(isinstance(v, str) for v in t.values):
        return _T_LIT, tuple(v.encode() for v in t.values)
    if isinstance(t, ti.DictType) and isinstance(t.key_type, ti.StrType):
        if isinstance(t.value_type, ti.AnyType):
            return _T_DICT, None
        if isinstance(t.value_type, ti.StrType):
            return _T_STRDICT, None
    if isinstance(t, ti.ListType) and isinstance(t.item_type, ti.StrType):
        return _T_STRLIST, None
    return None


def _schema() -> tuple[list[tuple[bytes, int, Any]], dict[str, int]] | None:
    """The head fields as the typed decode of the file reader checks them."""
    info = msgspec.inspect.type_info(_CheckedHead)
    if info.forbid_unknown_fields or info.array_like:
        return None
    fields: list[tuple[bytes, int, Any]] = []
    pos: dict[str, int] = {}
    for f in info.fields:
        kind = _field_type(f.type)
        if kind is None or f.encode_name != f.name:
            return None
        pos[f.name] = len(fields)
        fields.append((f.name.encode(), kind[0], kind[1]))
    return fields, pos


def line_screen(slots: list[tuple[str, str]], max_known: int = 50_000) -> LineScreen | None:
    """A screen keyed by the index's ``slots`` ((path, mode) as in :class:`kubehawk.rules.index.RuleIndex`),
    or None: no compiled module, switched off, or a slot it cannot read from the raw text.
    ``max_known``: how many keys it remembers before it starts again (memory stays flat)."""
    if native.linescreen is None:  # not built, or KUBEHAWK_NATIVE=0: every line is decoded
        return None
    schema = _schema()
    if schema is None:
        return None
    fields, pos = schema
    keyed: list[tuple[int, bytes | None, int]] = []
    # the stage too: the engine learns from RequestReceived lines, which it never plans
    for path, mode in [*slots, ("stage", VALUE)]:
        parts = split_path(path)
        top = parts[0]
        if top not in pos or mode not in _MODES:
            return None
        key = inline_key(parts) if mode != PRESENT_BODY else None
        if len(parts) == 1:
            keyed.append((pos[top], None, _MODES[mode]))
        elif key is not None:
            keyed.append((pos[top], key.encode(), _MODES[mode]))
        else:
            return None  # read through a getter (a deeper path): not from the raw text
    if any(r not in pos for r in _REQUIRED):
        return None
    try:
        # a random seed for the table's hash: lines crafted to collide cannot slow the screen down
        seed = int.from_bytes(os.urandom(8), "little")
        return native.linescreen.Screen(fields, keyed, tuple(pos[r] for r in _REQUIRED), max_known, seed)
    except ValueError:  # more slots than the native table holds
        return None
