"""The disjunctive normal form of a rule's positive equality constraints.

Takes an IR tree (:mod:`.ir`) and gives the disjuncts of the plain values it requires per field
(``verb in {create, update}``...), or "present" for a field that must hold something. The rule
index files rules under these values, and the audit-policy toolkit reads them as the scope of
requests a rule can see. Over-approximates: negations and other tests count as "true".
"""

from __future__ import annotations

from typing import Any

from kubehawk.rules.ir import Leaf, Not, Or

__all__ = ["Conjunct", "PRESENT", "dnf"]

Conjunct = dict[str, Any]  # field -> frozenset of plain values, or PRESENT


class _Present:
    """Marker: the conjunct needs the field to hold some non-null value (any value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PRESENT"


PRESENT = _Present()


def _positive(leaf: Leaf) -> Any:
    if leaf.field is None:
        return None
    if leaf.kind == "value":
        vals = leaf.eq_values()
        return vals if vals is not None else PRESENT
    if leaf.kind == "fieldref":
        return PRESENT
    return None  # |exists holds for a field written as null too: no non-null value is needed


def dnf(node: Any, limit: int = 64) -> list[Conjunct] | None:
    """Disjuncts of the positive constraints: plain equality sets or "present" (None if > ``limit``).

    Negations and other tests are treated as "true", so the result over-approximates the
    events the rule can match: safe for indexing and for audit-policy scopes. Two
    constraints on one field in a conjunct are not intersected (a list field such as
    ``user.groups`` can satisfy both with different elements); the smaller set is kept.
    """
    if isinstance(node, Leaf):
        c = _positive(node)
        return [{node.field: c}] if c is not None else [{}]
    if isinstance(node, Not):
        return [{}]
    if isinstance(node, Or):
        out: list[Conjunct] = []
        for a in node.args:
            d = dnf(a, limit)
            if d is None:
                return None
            out.extend(d)
            if len(out) > limit:
                return None
        return out
    acc: list[Conjunct] = [{}]
    for a in node.args:
        d = dnf(a, limit)
        if d is None:
            return None
        if len(acc) * len(d) > limit:
            return None
        nxt = []
        for c1 in acc:
            for c2 in d:
                c = dict(c1)
                for k, v in c2.items():
                    old = c.get(k)
                    if old is None or old is PRESENT or (v is not PRESENT and len(v) < len(old)):
                        c[k] = v
                nxt.append(c)
        acc = nxt
    return acc
