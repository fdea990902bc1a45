"""Settling a rule from the slots alone: three-valued (Kleene) evaluation of its condition.

Takes a rule's IR and the slot values of one event and gives TRUE, FALSE or UNKNOWN, with the
residual condition left to test per event (:class:`_Leaves`). Which leaves the slots settle
(:func:`_classify`): a test on a slot's value, on an ``x.*`` field computed only from slots, on
a field whose slot says it is absent, on a derived field whose gate says it is absent. Leaves
of the same shape share one test, remembered per event when it reads a body or ``x.*``.
"""

from collections.abc import Callable
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent
from kubehawk.fieldpath import split_path
from kubehawk.rules.body import unknown_test
from kubehawk.rules.compiler import leaf_test
from kubehawk.rules.fields import field_cost, make_getter
from kubehawk.rules.ir import And, Leaf, Not, Test, leaves
from kubehawk.rules.model import Rule
from kubehawk.rules.slots import (
    _BODIES,
    PRESENT_BODY,
    PRESENT_HEAD,
    VALUE,
    VALUE_FIELDS,
    _always_present,
    _cheap,
    _Slots,
)
from kubehawk.xclaims import DERIVED_DEPS

_FALSE, _TRUE, _UNKNOWN = 0, 1, 2
_NOT = (_TRUE, _FALSE, _UNKNOWN)


# How a leaf's outcome is settled by the slots: always, never, or when a check on the key holds.
_ALWAYS = "always"


def _classify(leaf: Leaf, slots: _Slots) -> tuple[Any, tuple[int, ...]]:
    """(``_ALWAYS`` | a check ``(key, event) -> bool`` | None, slots it depends on)."""
    if leaf.kind == "const":
        return _ALWAYS, ()
    f = leaf.field
    if f is None or leaf.kind == "keyword":
        return None, ()
    if leaf.kind == "exists" and split_path(f)[0] != "x":
        return _exists_settled(f, slots)
    if leaf.kind == "fieldref":
        a, b = _known(f, slots), _known(leaf.atoms[0].field, slots)
        return (_ALWAYS, a + b) if a is not None and b is not None else (None, ())
    known = _known(f, slots)
    if known is not None:
        return _ALWAYS, known
    parts = split_path(f)
    top = parts[0]
    if top == "x":
        gate = slots.gates.get(".".join(parts[1:3])) if len(parts) > 2 else None
        if gate is None:
            gate = slots.gates.get(parts[1]) if len(parts) > 1 else None
        if gate is None:
            return None, ()
        fields, possible = gate
        idx = slots.deps(fields)
        if idx is None:
            return None, ()
        getters = tuple(_gate_arg(d, i) for d, i in zip(fields, idx, strict=True))

        def gate_closed(k: tuple[Any, ...], e: AuditEvent) -> bool:
            return not possible(*[g(k, e) for g in getters])

        return gate_closed, idx
    if top in _BODIES:
        i = slots.slot(top, PRESENT_BODY)
        return (lambda k, e: not k[i]), (i,)
    if top not in TOP_FIELDS or _always_present(f) or not _cheap(parts):
        return None, ()
    i = slots.slot(f, PRESENT_HEAD)
    return (lambda k, e: not k[i]), (i,)


def _exists_settled(f: str, slots: _Slots) -> tuple[Any, tuple[int, ...]]:
    """``|exists`` is settled when a slot shows the field holds a value (it is there, whatever
    the event). A slot showing none cannot tell a missing field from one written as null, which
    exists (the Sigma spec): then the leaf is asked itself. Derived ``x.*`` fields are not here:
    they exist when they have a value, which the other cases settle."""
    parts = split_path(f)
    top = parts[0]
    if f in VALUE_FIELDS:
        i = slots.slot(f, VALUE)
        return (lambda k, e: k[i] is not None), (i,)
    if top in _BODIES:
        if len(parts) == 1:
            return None, ()  # a body written as null exists
        i = slots.slot(top, PRESENT_BODY)
        return (lambda k, e: not k[i]), (i,)  # no body, or a null one: nothing below it exists
    if top not in TOP_FIELDS or _always_present(f) or not _cheap(parts):
        return None, ()
    i = slots.slot(f, PRESENT_HEAD)
    return (lambda k, e: k[i]), (i,)


def _gate_arg(dep: str, i: int) -> Callable[[tuple[Any, ...], AuditEvent], Any]:
    """A gate's argument: presence from the key, a value read from the event itself."""
    if dep.startswith("?"):
        return lambda k, e: k[i]
    get = make_getter(dep)
    return lambda k, e: get(e)


def _known(path: str, slots: _Slots) -> tuple[int, ...] | None:
    """Slots that determine the value at ``path`` entirely, or None."""
    if path in VALUE_FIELDS:
        return (slots.slot(path, VALUE),)
    parts = split_path(path)
    if parts[0] == "x" and len(parts) > 1:
        ds = DERIVED_DEPS.get(parts[1])
        if ds is not None:
            return slots.deps(ds)
    return None


def _shape(leaf: Leaf) -> Any:
    """Leaves with the same shape give the same result on an event: their test is shared."""
    if leaf.kind not in ("value", "null", "exists") or leaf.field is None:
        return None
    return (leaf.field, leaf.kind, tuple((type(a).__qualname__, repr(a)) for a in leaf.atoms))


def _per_event(test: Test) -> Test:
    """Remember the result for the last event (rules sharing the leaf ask it in turn).

    The event is held until the next one comes, so its identity cannot be reused meanwhile;
    (event, context, result) is replaced as one tuple, so a reader never mixes two events.
    """
    cell: list[tuple[Any, Any, bool]] = [(None, None, False)]

    def cached(e: AuditEvent) -> bool:
        last = cell[0]
        if last[0] is e and last[1] is e._ctx:
            return last[2]
        r = test(e)
        cell[0] = (e, e._ctx, r)
        return r

    return cached


class _Leaves:
    """Every leaf of the indexed rules: how the slots settle it, and its (shared) test."""

    def __init__(self, rules: list[Rule], slots: _Slots):
        shapes: dict[Any, int] = {}
        shape_of: dict[int, Any] = {}  # id(leaf) -> its shape, made once (repr of the atoms is slow)
        for r in rules:
            for lf in leaves(r.ir):
                sh = shape_of[id(lf)] = _shape(lf)
                if sh is not None:
                    shapes[sh] = shapes.get(sh, 0) + 1
        tests: dict[Any, Test] = {}
        # id(leaf) -> (how the slots settle it, its test, the slots it depends on, whether its body
        # was not logged: compiler.unknown_test)
        self.info: dict[int, tuple[Any, Test, tuple[int, ...], Any]] = {}
        for r in rules:
            for lf in leaves(r.ir):
                if id(lf) in self.info:
                    continue
                how, idx = _classify(lf, slots)
                sh = shape_of[id(lf)]
                test = tests.get(sh) if sh is not None else None
                if test is None:
                    test = leaf_test(lf)
                    if sh is not None:
                        if shapes[sh] > 1 and field_cost(lf.field) > 0:
                            test = _per_event(test)  # a body or x.* read asked by several rules
                        tests[sh] = test
                self.info[id(lf)] = (how, test, idx, unknown_test(lf))

    def test(self, leaf: Leaf) -> Test:
        return self.info[id(leaf)][1]

    def settle(self, node: Any, e: AuditEvent, k: tuple[Any, ...], known: frozenset[int] | None) -> tuple[int, Any]:
        """Kleene evaluation of ``node`` with only what the slots settle (see :meth:`_settle`)."""
        return self._settle(node, e, k, known, False)

    def _settle(self, node: Any, e: AuditEvent, k: tuple[Any, ...], known: frozenset[int] | None,
                negated: bool) -> tuple[int, Any]:
        """Kleene evaluation of ``node`` with only what the slots settle: (value, residual).

        ``known``: the slots that may be used (None: all). The residual is the part of the
        condition left to decide per event (None when the value is known): settled leaves
        are gone, so the head is not tested twice. ``negated``: ``node`` stands under an odd
        number of ``not``; a leaf on a body that was not logged is then true (see
        :func:`kubehawk.rules.compiler.build`; the slots that settle it hold the body's presence).
        """
        t = type(node)
        if t is Leaf:
            how, test, idx, unknown = self.info[id(node)]
            if how is None or (known is not None and not known.issuperset(idx)):
                return _UNKNOWN, node
            try:
                if how is not _ALWAYS and not how(k, e):
                    return _UNKNOWN, node
                if unknown is not None and unknown(e):
                    return (_TRUE if negated else _FALSE), None
                return (_TRUE if test(e) else _FALSE), None
            except Exception:  # noqa: BLE001 - left to the per-event evaluation, which counts the error
                return _UNKNOWN, node
        if t is Not:
            v, rest = self._settle(node.arg, e, k, known, not negated)
            return (_NOT[v], None) if v != _UNKNOWN else (_UNKNOWN, Not(rest))
        stop = _FALSE if t is And else _TRUE
        left = []
        for arg in node.args:
            v, rest = self._settle(arg, e, k, known, negated)
            if v == stop:
                return stop, None
            if v == _UNKNOWN:
                left.append(rest)
        if not left:
            return _NOT[stop], None
        return _UNKNOWN, (left[0] if len(left) == 1 else t(left))


def _signature(node: Any) -> Any:
    """A hashable picture of a residual condition (its leaves are the rule's own objects)."""
    t = type(node)
    if t is Leaf:
        return id(node)
    if t is Not:
        return ("not", _signature(node.arg))
    return (t.__name__, tuple(_signature(a) for a in node.args))
