"""The predicate builder: an IR tree (:mod:`.ir`) becomes one Python test over an :class:`AuditEvent`.

Takes the IR and gives nested closures, so that nothing is decided again per event: each leaf
reads its field with a specialised getter (:mod:`.fields`; ``head.verb`` is an attribute read,
not a path walk) and tests it with a pre-built value matcher (:mod:`.matchers`, :mod:`.regex`)
or a keyword search (:mod:`.keywords`); inside an And or an Or the cheap tests run first. With
guards, cheap necessary conditions (:mod:`.guards`) run before the real tests: a body test
first asks the raw JSON bytes, a keyword the event as written, an allowlist test the config.
They only ever answer "no" when the real test would (tests/rules/test_guards.py).

Semantics (documented in the README): strings compare case-insensitively with ``*``/``?``
wildcards unless ``|cased`` (the rule's text folded too); a path through a list matches if any
element matches, nested lists to any depth; a missing field (or JSON null) never equals a
value, so ``not sel`` on a missing field is true; ``field: null`` matches a missing field or
JSON null; ``|exists`` tests presence, a field written as null included
(:func:`kubehawk.rules.fields.make_presence`); numbers match ints, floats and strings written
exactly as a JSON number; booleans match JSON booleans and the strings true/false.

A body that was not logged is unknown, not empty (:func:`.body.unknown_test`): a test on a
path read from it (``requestObject.*``, ``responseObject.*``, the x.* fields read from a body)
is neither true nor false, and the condition is evaluated in Kleene's three-valued logic; the
rule matches only when the result is true. ``build`` does this without a third value: with
negations pushed to the leaves (the polarity of each leaf), an unknown leaf counts as false
where it is positive and true where it stands under an odd number of ``not`` -- the same
matches as Kleene's logic (And and Or are monotone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sigma.types import SigmaFieldReference, SigmaRegularExpression

from kubehawk.event import AuditEvent
from kubehawk.fieldpath import flatten_lists
from kubehawk.rules.body import unknown_test
from kubehawk.rules.fields import field_cost, make_getter, make_presence
from kubehawk.rules.guards import _guard_of, _keys, _necessary
from kubehawk.rules.ir import And, CompileError, Leaf, Not, Pred, Test, leaves
from kubehawk.rules.keywords import _keyword
from kubehawk.rules.matchers import _scalar_str, value_pred

__all__ = ["build", "leaf_test"]


def _any_value(getter: Callable[[AuditEvent], Any], pred: Pred) -> Test:
    def any_in(v: list[Any]) -> bool:
        for x in v:
            if x is not None:
                if pred(x):  # false for a list: no predicate matches one
                    return True
                if type(x) is list and any_in(x):  # a nested list: its elements, at any depth
                    return True
        return False

    def test(e: AuditEvent) -> bool:
        v = getter(e)
        if v is None:
            return False
        if type(v) is list:
            return any_in(v)
        return pred(v)

    return test


def _values(v: Any) -> list[Any]:
    if v is None:
        return []
    if type(v) is list:
        out: list[Any] = []
        flatten_lists(v, out)
        return [x for x in out if x is not None]
    return [v]


def leaf_test(leaf: Leaf) -> Test:
    """The compiled test of one leaf, without its guard (:func:`build` adds the guards itself)."""
    if leaf.kind == "const":
        value = bool(leaf.atoms[0])
        return lambda e: value
    if leaf.kind == "keyword":
        return _keyword(leaf.atoms[0])
    getter = make_getter(leaf.field)
    if leaf.kind == "value":
        return _any_value(getter, value_pred(leaf.atoms))
    if leaf.kind == "null":

        def is_null(e: AuditEvent) -> bool:
            v = getter(e)
            if v is None:
                return True
            if type(v) is list:
                flat: list[Any] = []
                flatten_lists(v, flat)
                return not flat or None in flat
            return False

        return is_null
    if leaf.kind == "exists":
        want = leaf.atoms[0]
        present = make_presence(leaf.field)

        def exists(e: AuditEvent) -> bool:
            return present(e) is want

        return exists
    if leaf.kind == "fieldref":
        ref: SigmaFieldReference = leaf.atoms[0]
        other = make_getter(ref.field)
        sw, ew = ref.starts_with, ref.ends_with

        def fieldref(e: AuditEvent) -> bool:
            mine = [s.lower() for s in map(_scalar_str, _values(getter(e))) if s is not None]
            if not mine:
                return False
            for o in _values(other(e)):
                s = _scalar_str(o)
                if s is None:
                    continue
                s = s.lower()
                for m in mine:
                    if (sw and m.startswith(s)) or (ew and m.endswith(s)) or (not sw and not ew and m == s):
                        return True
            return False

        return fieldref
    raise CompileError(f"unknown leaf kind {leaf.kind}")  # pragma: no cover


def _cost(node: Any) -> int:
    if isinstance(node, Leaf):
        base = field_cost(node.field)
        if node.kind == "value" and any(isinstance(a, SigmaRegularExpression) for a in node.atoms):
            base += 1
        return base
    if isinstance(node, Not):
        return _cost(node.arg)
    return max((_cost(a) for a in node.args), default=0)


def _reads_body(node: Any) -> bool:
    return any(unknown_test(lf) is not None for lf in leaves(node))


def build(node: Any, leaf: Callable[[Leaf], Test] | None = None, guards: bool = True,
          _covered: frozenset[int] | set[int] = frozenset(), negated: bool = False) -> Test:
    """Closures for the IR; cheap tests first inside And/Or (the tests are pure).

    ``leaf`` supplies the test of each leaf (default: :func:`leaf_test`); the rule index passes
    tests shared between rules. With ``guards``, a positive body test first checks the raw body,
    and an And checks the guards of all its body tests before any of them decodes a body
    (:func:`leaf_guard`). ``negated``: ``node`` stands under an odd number of ``not`` (a leaf on
    a body that was not logged is then true, so that the ``not`` makes it false).
    """
    if isinstance(node, Leaf):
        test = leaf(node) if leaf is not None else leaf_test(node)
        g = _guard_of(node) if guards and id(node) not in _covered else None
        if g is not None:
            plain = test
            test = lambda e: g(e) and plain(e)  # noqa: E731
            test.keys = _keys(g)  # type: ignore[attr-defined]
        unknown = unknown_test(node)
        if unknown is None or not (negated or node.kind == "null" or (node.kind == "exists" and not node.atoms[0])):
            return test  # a positive value test is false on a missing body already
        known = test
        return lambda e: negated if unknown(e) else known(e)
    if isinstance(node, Not):
        inner = build(node.arg, leaf, guards, _covered, not negated)
        return lambda e: not inner(e)
    pre = None
    if guards and not (negated and _reads_body(node)):  # leaf guards say "false" on a missing body
        covered = set(_covered)
        pre = _necessary(node, covered, _covered)
        if pre is not None:
            _covered = covered
    test = _build_nary(node, leaf, guards, _covered, negated)
    if pre is None:
        return test
    guarded = lambda e: pre(e) and test(e)  # noqa: E731
    guarded.keys = _keys(pre)  # type: ignore[attr-defined]
    return guarded


def _build_nary(node: Any, leaf: Callable[[Leaf], Test] | None, guards: bool, covered: Any,
                negated: bool = False) -> Test:
    args = sorted(node.args, key=_cost)
    tests = [build(a, leaf, guards, covered, negated) for a in args]
    if isinstance(node, And):
        if len(tests) == 2:
            a, b = tests
            return lambda e: a(e) and b(e)
        if len(tests) == 3:
            a, b, c = tests
            return lambda e: a(e) and b(e) and c(e)
        ts = tuple(tests)

        def all_of(e: AuditEvent) -> bool:
            for t in ts:  # noqa: SIM110 - hot path
                if not t(e):
                    return False
            return True

        return all_of
    if len(tests) == 2:
        a, b = tests
        return lambda e: a(e) or b(e)
    ts = tuple(tests)

    def any_of(e: AuditEvent) -> bool:
        for t in ts:  # noqa: SIM110 - hot path
            if t(e):
                return True
        return False

    return any_of
