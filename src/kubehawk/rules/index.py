"""The rule index: an event meets only the rules that could match it.

Each event rule is filed under one field that every disjunct of its condition
constrains to a finite set of plain values (e.g. ``verb in {create, update}``); the
index maps field -> lower-cased value -> rules. Rules with no such field are
evaluated on every event. Per event: one field read and a few dict lookups per
distinct index field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent, split_path
from kubehawk.rules.compiler import _scalar_str, make_getter
from kubehawk.rules.model import Rule

__all__ = ["RuleIndex", "choose_index_key"]

_READ_VERBS = frozenset({"get", "list", "watch"})
_RANK = {
    "objectRef.subresource": 0,  # exec, attach, token, proxy...: rare, so selective
    "verb": 1,
    "objectRef.resource": 2,
    "user.username": 3,
    "objectRef.apiGroup": 5,
}


def _rank(field: str, values: frozenset[str]) -> float:
    if field == "verb" and values & _READ_VERBS:
        return 4.5  # reads are most of the traffic: a poor filter
    r = _RANK.get(field)
    if r is not None:
        return r
    top = split_path(field)[0]
    if top == "annotations":
        return 4
    if top in ("requestObject", "responseObject"):
        return 8  # reading it decodes the body of every event
    if top == "x":
        return 9  # reading it runs the enricher on every event
    return 6 if top in TOP_FIELDS else 7


def choose_index_key(conjuncts: list[dict[str, frozenset[str]]] | None) -> tuple[str, frozenset[str]] | None:
    """The (field, lower-cased values) to file a rule under, or None for "always evaluate"."""
    if not conjuncts:
        return None
    common = set(conjuncts[0])
    for c in conjuncts[1:]:
        common &= set(c)
    best: tuple[float, int, str] | None = None
    best_values: frozenset[str] = frozenset()
    for f in common:
        values = frozenset(v.lower() for c in conjuncts for v in c[f])
        key = (_rank(f, values), len(values), f)
        if best is None or key < best:
            best, best_values = key, values
    if best is None:
        return None
    return best[2], best_values


def _key(v: Any) -> str | None:
    if type(v) is str:
        return v.lower()
    return _scalar_str(v)


class RuleIndex:
    """Candidate rules for an event, in rule order."""

    def __init__(self, rules: Iterable[Rule]):
        tables: dict[str, dict[str, list[Rule]]] = {}
        self.always: list[Rule] = []
        for r in rules:
            if r.predicate is None:
                continue
            if r.index_key is None:
                self.always.append(r)
                continue
            field, values = r.index_key
            table = tables.setdefault(field, {})
            for v in values:
                table.setdefault(v, []).append(r)
        self.fields: list[tuple[Callable[[AuditEvent], Any], dict[str, list[Rule]]]] = [
            (make_getter(f), t) for f, t in tables.items()
        ]
        self.field_names = list(tables)

    def candidates(self, e: AuditEvent) -> list[Rule]:
        hits: list[list[Rule]] = []
        for getter, table in self.fields:
            v = getter(e)
            if v is None:
                continue
            if type(v) is list:
                for x in v:
                    k = _key(x)
                    if k is not None:
                        h = table.get(k)
                        if h:
                            hits.append(h)
            else:
                k = _key(v)
                if k is not None:
                    h = table.get(k)
                    if h:
                        hits.append(h)
        if not hits:
            return self.always
        if len(hits) == 1 and not self.always:
            return hits[0]
        merged = {r.ordinal: r for h in hits for r in h}
        for r in self.always:
            merged[r.ordinal] = r
        return [merged[k] for k in sorted(merged)]
