"""The rule IR: what a Sigma detection becomes before it is compiled.

Takes the condition tree pySigma parsed (identifiers and ``1 of``/``all of`` already resolved)
and gives a small tree of :class:`And`/:class:`Or`/:class:`Not` over :class:`Leaf` (one test on
one field, or a keyword search), with ``|expand`` placeholders replaced by the config's
variables and OR-ed values of one field merged into one leaf (one field fetch, one
lower-casing, set lookups). The IR is what the rules cache stores, what :mod:`.dnf` reads for
the rule index and the audit-policy scopes, and what :mod:`.compiler` turns into closures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
)

from kubehawk.event import AuditEvent

__all__ = ["And", "CompileError", "FALSE", "Leaf", "Not", "Or", "Pred", "TRUE", "Test", "leaves", "to_ir"]

Pred = Callable[[Any], bool]
Test = Callable[[AuditEvent], bool]


class CompileError(ValueError):
    """A detection that cannot be compiled (the loader adds the file name)."""



@dataclass
class Leaf:
    """One field test. ``atoms`` are OR-ed values of one kind on one field."""

    field: str | None  # None: keyword search over the whole event
    kind: str  # value | null | exists | fieldref | keyword | const
    atoms: list[Any] = field(default_factory=list)
    # leaf_guard(self), computed on first use (see "raw-body prefilters")
    guard: Any = field(default=None, compare=False, repr=False)

    def eq_values(self) -> frozenset[str] | None:
        """The finite set of plain values this leaf requires, or None if it is not one."""
        if self.kind != "value" or self.field is None or not self.atoms:
            return None
        out = set()
        for a in self.atoms:
            if isinstance(a, SigmaString):
                if a.contains_special() or a.contains_placeholder():
                    return None
                out.add(a.to_plain_regex())
            elif isinstance(a, SigmaBool):
                out.add("true" if a.boolean else "false")
            elif isinstance(a, SigmaNumber) and not isinstance(a, SigmaTimestampPart) and isinstance(
                a.number, int
            ):
                out.add(str(a.number))
            else:
                return None
        return frozenset(out)


@dataclass
class And:
    args: list[Any]


@dataclass
class Or:
    args: list[Any]


@dataclass
class Not:
    arg: Any


TRUE = Leaf(None, "const", [True])
FALSE = Leaf(None, "const", [False])


def to_ir(node: Any, variables: Mapping[str, list[str]] | None) -> Any:
    """Convert a pySigma condition tree into the IR (placeholders expanded, ORs merged)."""
    return _simplify(_to_ir(node, variables or {}))


def _to_ir(node: Any, variables: Mapping[str, list[str]]) -> Any:
    # Imported here: sigma.conditions brings pyparsing (~60 ms), which only parsing needs (the
    # rules cache restores the IR without it, see kubehawk.rules.cache).
    from sigma.conditions import (
        ConditionAND,
        ConditionFieldEqualsValueExpression,
        ConditionNOT,
        ConditionOR,
        ConditionValueExpression,
    )

    if isinstance(node, ConditionAND):
        return And([_to_ir(a, variables) for a in node.args])
    if isinstance(node, ConditionOR):
        return Or([_to_ir(a, variables) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Not(_to_ir(node.args[0], variables))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf(node.field, node.value, variables)
    if isinstance(node, ConditionValueExpression):
        return _leaf(None, node.value, variables)
    if node is None:
        return TRUE
    raise CompileError(f"unsupported condition element {type(node).__name__}")


def _expand(value: Any, variables: Mapping[str, list[str]]) -> list[Any]:
    """Resolve ``%name%`` placeholders (``|expand``): a list of values becomes an OR."""
    if not isinstance(value, (SigmaString, SigmaRegularExpression)) or not value.contains_placeholder():
        return [value]

    def values_of(p: Placeholder) -> Any:
        if p.name not in variables:
            known = ", ".join(sorted(variables)) or "none defined"
            raise CompileError(f"unresolved placeholder %{p.name}% (|expand); known variables: {known}")
        vals = variables[p.name]
        if isinstance(vals, (str, int, float)):
            vals = [vals]
        for v in vals:
            # Variable values may use wildcards, like any Sigma value.
            yield str(v) if isinstance(value, SigmaRegularExpression) else SigmaString(str(v))

    out = value.replace_placeholders(values_of)
    if isinstance(value, SigmaCasedString):
        out = [SigmaCasedString.from_sigma_string(s) for s in out]
    elif isinstance(value, SigmaRegularExpression):
        for r in out:
            r.flags = set(value.flags)
    return out


def _leaf(fieldname: str | None, value: Any, variables: Mapping[str, list[str]]) -> Any:
    if isinstance(value, SigmaExpansion):
        atoms = [a for v in value.values for a in _expand(v, variables)]
        return Or([_leaf(fieldname, a, variables) for a in atoms]) if len(atoms) != 1 else _leaf(
            fieldname, atoms[0], variables
        )
    atoms = _expand(value, variables)
    if not atoms:
        return FALSE  # a variable with no values matches nothing
    if len(atoms) > 1:
        return Or([_leaf(fieldname, a, variables) for a in atoms])
    value = atoms[0]
    if fieldname is None:
        if isinstance(value, (SigmaString, SigmaNumber, SigmaRegularExpression, SigmaBool)):
            return Leaf(None, "keyword", [value])
        raise CompileError(f"keyword search with {type(value).__name__} is not supported")
    if isinstance(value, SigmaNull):
        return Leaf(fieldname, "null")
    if isinstance(value, SigmaExists):
        return Leaf(fieldname, "exists", [bool(value.exists)])
    if isinstance(value, SigmaFieldReference):
        return Leaf(fieldname, "fieldref", [value])
    if isinstance(
        value,
        (
            SigmaString,
            SigmaNumber,
            SigmaBool,
            SigmaRegularExpression,
            SigmaCIDRExpression,
            SigmaCompareExpression,
        ),
    ):
        return Leaf(fieldname, "value", [value])
    raise CompileError(f"field {fieldname!r}: value type {type(value).__name__} is not supported")


def _simplify(node: Any) -> Any:
    """Flatten nested And/Or and merge OR-ed value leaves on the same field."""
    if isinstance(node, Not):
        inner = _simplify(node.arg)
        return inner.arg if isinstance(inner, Not) else Not(inner)
    if isinstance(node, (And, Or)):
        cls = type(node)
        flat: list[Any] = []
        for a in node.args:
            a = _simplify(a)
            if isinstance(a, cls):
                flat.extend(a.args)
            else:
                flat.append(a)
        if cls is Or:
            merged: list[Any] = []
            by_field: dict[str, Leaf] = {}
            for a in flat:
                if isinstance(a, Leaf) and a.kind == "value":
                    prev = by_field.get(a.field)
                    if prev is not None:
                        prev.atoms.extend(a.atoms)
                        continue
                    a = Leaf(a.field, a.kind, list(a.atoms))
                    by_field[a.field] = a
                merged.append(a)
            flat = merged
        if len(flat) == 1:
            return flat[0]
        return cls(flat)
    return node


def leaves(node: Any) -> list[Leaf]:
    out: list[Leaf] = []

    def walk(n: Any) -> None:
        if isinstance(n, Leaf):
            out.append(n)
        elif isinstance(n, Not):
            walk(n.arg)
        else:
            for a in n.args:
                walk(a)

    walk(node)
    return out
