"""The rule index: an event meets only the rules that could match it.

:class:`RuleIndex` reads a few cheap, low-cardinality fields of each event's head (verb,
resource, subresource, user, user agent, response code, the decision annotation, whether
an annotation or body is present...: the *slots*, chosen from what the rules test) and
keys a memo with their values. The first event with a new combination evaluates every
rule in three-valued (Kleene) logic: a test whose outcome those slots settle (a test on a
slot, on an ``x.*`` field computed only from slots per :data:`kubehawk.enrich.DERIVED_DEPS`,
on a field whose slot says it is absent, on a derived field whose gate in
:func:`kubehawk.enrich.derived_gates` says it is absent) is evaluated on that event; any
other test is UNKNOWN. A rule that comes out FALSE cannot match any event with that
combination and is dropped; one that comes out TRUE matches without further work; for the
rest the memo keeps the *residual* condition (settled tests removed, compiled once per
distinct residual) to run per event. So a repeated combination costs one tuple and one
dict lookup, done by one generated function (:func:`make_extractor`), and most events meet
no rule at all. A new combination first looks up its request shape (the slots without
users and namespaces), which has already ruled out most rules, and settles only the
survivors; each rule's outcome is remembered per value of the slots its own tests read,
so a new user on a known shape settles again only the rules that read users. Tests on a
body or ``x.*`` field that several rules share are computed once per event. A plan with
several body rules is a :class:`ScreenedPlan`: one search of the body for all the keys
their raw-body guards look for drops, before any is called, those that cannot match.

The per-event lookup has two levels (:meth:`RuleIndex._nested_plan`): the request kind
(verb, resource, subresource) first, whose entry is either the plan itself (no rule still
undecided reads another slot) or a generated reader of just the slots those rules read,
keying a second memo. Most events read and hash 7-10 slots, not all of them.

Exactness: equal keys mean equal slot values (``1``, ``1.0`` and ``true`` never share a
key; objects never key the memo; string slots are read without a check per event, and a
key holding anything but a string there is never remembered, see :func:`_exact`);
tests/rules/test_engine_index.py compares the engine with brute-force evaluation.

:func:`choose_index_keys` gives a rule's ``index_keys`` (for each disjunct of its condition,
DNF of the positive constraints, the cheapest and most selective key it requires), kept
for tools that describe rules:

- one field constrained to a finite set of plain values (``verb in {create}``),
- a pair of such fields (``(verb, objectRef.resource) in {(create, pods), ...}``) when
  neither alone is selective (``update`` and ``pods`` are both everywhere; together with
  ``create`` far less so),
- or a field that must merely be present (``impersonatedUser.username``).

Selectivity comes from a prior of how often values occur in real audit logs (reads,
lease and status updates dominate); the read cost keeps request bodies and derived
``x.*`` fields out of the keys unless a disjunct has nothing else.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from kubehawk.enrich import DERIVED_DEPS, derived_gates
from kubehawk.event import TOP_FIELDS, AuditEvent, has_body, split_path
from kubehawk.rules.compiler import (
    PRESENT,
    And,
    Leaf,
    Not,
    Test,
    build,
    field_cost,
    leaf_test,
    leaves,
    make_getter,
    presence_screen,
    unknown_test,
)
from kubehawk.rules.model import Rule

__all__ = ["VALUE_FIELDS", "RuleIndex", "ScreenedPlan", "choose_index_keys", "inline_key"]

IndexKey = tuple[tuple[str, ...], frozenset[Any] | None]

# How often a value shows up, roughly, in a cluster's audit log (fraction of events).
_FREQ: dict[str, dict[str, float]] = {
    "verb": {"get": 0.3, "list": 0.1, "watch": 0.15, "update": 0.2, "patch": 0.15, "create": 0.05,
             "delete": 0.03},
    "objectRef.resource": {"leases": 0.2, "pods": 0.15, "nodes": 0.08, "events": 0.05, "endpoints": 0.04,
                           "endpointslices": 0.04, "configmaps": 0.05, "secrets": 0.03, "services": 0.02,
                           "namespaces": 0.02, "deployments": 0.02, "replicasets": 0.02},
    "objectRef.subresource": {"status": 0.15, "log": 0.01},
    "objectRef.namespace": {"kube-system": 0.3, "kube-node-lease": 0.2, "default": 0.1},
    "objectRef.apiGroup": {"": 0.5, "coordination.k8s.io": 0.2, "apps": 0.05},
    "user.groups": {"system:authenticated": 0.95, "system:serviceaccounts": 0.5, "system:nodes": 0.2,
                    "system:masters": 0.05},
    "responseStatus.code": {"200": 0.85, "201": 0.05},
    "stage": {"responsecomplete": 0.9, "responsestarted": 0.05},
    "level": {"metadata": 0.7, "request": 0.2, "requestresponse": 0.2},
}
_DEFAULT_FREQ = {"verb": 0.005, "objectRef.resource": 0.005, "objectRef.subresource": 0.003,
                 "objectRef.namespace": 0.03, "user.username": 0.02, "user.groups": 0.02}
_PRESENT_FREQ = {"objectRef.subresource": 0.2, "impersonatedUser": 0.001, "requestObject": 0.3,
                 "responseObject": 0.3, "objectRef.name": 0.6, "objectRef.namespace": 0.6,
                 "objectRef.resource": 0.95, "user.username": 1.0, "user.groups": 0.95}
for _f in ("verb", "requestURI", "userAgent", "auditID", "stage", "level", "sourceIPs", "stageTimestamp",
           "requestReceivedTimestamp", "responseStatus", "annotations", "user", "objectRef"):
    _PRESENT_FREQ[_f] = 1.0
# A key that nearly every event hits is worse than none: the rule is evaluated always.
_USELESS = 0.9
_PAIR_COST = 0.1  # one more table lookup and a tuple per event
_MAX_PAIR_VALUES = 512


def _read_cost(field: str) -> float:
    top = split_path(field)[0]
    if top in ("requestObject", "responseObject"):
        return 1.0  # reading it decodes the body of every event that has one
    if top == "x":
        return 2.0  # reading it runs the enricher on every event
    return 0.0 if top in TOP_FIELDS else 0.05


def _freq(field: str, value: str) -> float:
    table = _FREQ.get(field)
    if table is None and field.startswith("annotations."):
        return 0.95 if value == "allow" else 0.02
    if table is not None and value in table:
        return table[value]
    return _DEFAULT_FREQ.get(field, 0.05)


def _rate(field: str, values: frozenset[str]) -> float:
    return min(1.0, sum(_freq(field, v) for v in values))


def _present_rate(field: str) -> float:
    if field in _PRESENT_FREQ:
        return _PRESENT_FREQ[field]
    return _PRESENT_FREQ.get(split_path(field)[0], 0.5)


def _best_key(conjunct: dict[str, Any]) -> tuple[float, IndexKey] | None:
    singles: list[tuple[float, IndexKey]] = []
    eq: list[tuple[float, str, frozenset[str]]] = []
    for f, v in conjunct.items():
        if v is PRESENT:
            singles.append((_read_cost(f) + _present_rate(f), ((f,), None)))
        else:
            low = frozenset(x.lower() for x in v)
            rate = _rate(f, low)
            singles.append((_read_cost(f) + rate, ((f,), low)))
            if _read_cost(f) == 0.0:
                eq.append((rate, f, low))
    cands = list(singles)
    for i in range(len(eq)):
        for j in range(i + 1, len(eq)):
            (ra, fa, va), (rb, fb, vb) = sorted((eq[i], eq[j]), key=lambda x: x[1])
            if len(va) * len(vb) <= _MAX_PAIR_VALUES:
                pairs = frozenset((a, b) for a in va for b in vb)
                cands.append((ra * rb + _PAIR_COST, ((fa, fb), pairs)))
    if not cands:
        return None
    best = min(cands, key=lambda c: (c[0], len(c[1][0]), c[1][0]))
    if best[0] >= _USELESS and _read_cost(best[1][0][0]) == 0.0:
        return None
    return best


def choose_index_keys(conjuncts: list[dict[str, Any]] | None) -> tuple[IndexKey, ...] | None:
    """The keys to file a rule under (one per distinct key over its disjuncts), or None."""
    if not conjuncts:
        return None
    chosen: dict[tuple[tuple[str, ...], bool], set[Any] | None] = {}
    for c in conjuncts:
        best = _best_key(c)
        if best is None:
            return None
        fields, values = best[1]
        slot = (fields, values is None)
        if values is None:
            chosen[slot] = None
        else:
            chosen.setdefault(slot, set()).update(values)
    return tuple((fields, None if vals is None else frozenset(vals)) for (fields, _), vals in chosen.items())



# --- the candidate memo ----------------------------------------------------------------------

# Head fields with few distinct values in a cluster's log: their values key the memo.
# (Names, UIDs, URIs, IPs and timestamps are left out: one memo entry per event is no memo.)
VALUE_FIELDS = frozenset({
    "verb", "stage", "level", "userAgent", "apiVersion", "kind",
    "objectRef.resource", "objectRef.subresource", "objectRef.apiGroup", "objectRef.apiVersion",
    "objectRef.namespace",
    "user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups",
    "responseStatus.code", "responseStatus.status", "responseStatus.reason",
    "annotations.authorization.k8s.io/decision",
})
_BODIES = ("requestObject", "responseObject")
# Head fields the typed decoder guarantees to be a string or None.
_STR_FIELDS = frozenset({"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "userAgent",
                         "requestReceivedTimestamp", "stageTimestamp", "timestamp"}) & TOP_FIELDS
_DICT_HEAD = ("user", "impersonatedUser", "objectRef", "responseStatus", "annotations")

VALUE, PRESENT_HEAD, PRESENT_BODY = "value", "present", "body"
_FALSE, _TRUE, _UNKNOWN = 0, 1, 2
_NOT = (_TRUE, _FALSE, _UNKNOWN)


class _Unhashable(list):
    """Stands for a value that cannot key the memo (an object): the lookup raises TypeError."""

    __slots__ = ()


def _odd(v: Any) -> Any:
    """Memo key of a value that is not a list: strings and ints as they are, while 1, 1.0 and
    true stay apart; an object cannot key the memo."""
    t = v.__class__
    if t is str or t is int:
        return v
    if t is float or t is bool:
        return (t, v)
    return _Unhashable()


def _norm(v: Any) -> Any:
    """Memo key of any value: lists as tuples, the rest through :func:`_odd`."""
    return tuple(v) if v.__class__ is list else _odd(v)


# The type a dict-held slot usually has (default str): the extractor reads it as it comes.
_USUAL_TYPE = {"user.groups": "list", "impersonatedUser.groups": "list", "responseStatus.code": "int"}

# How a slot's value is checked before its key is remembered (see _exact):
_K_STR = 0  # read raw: must be a str or None (a value of any other type is never remembered)
_K_STRS = 1  # read raw, a list as a tuple: None, a str or a tuple of str
_K_NORM = 2  # normalised by _norm: a tuple in it (a list, or _odd's wrapper) must hold str only
_K_BOOL = 3  # a presence test: always a bool


def _exact(key: tuple[Any, ...], kinds: tuple[int, ...]) -> bool:
    """May this key be remembered? Only if a key equal to it can only come from equal values.

    Slots read raw hold a str or None in every remembered key: an event whose value compares
    equal must hold that very str (1, 1.0 and true equal no str), so it cannot share the
    plan of another type. A tuple (from a list) must hold strings only, since (1,), (1.0,)
    and (True,) are equal. A key that is not remembered never hits; its event is decided alone.
    """
    for x, k in zip(key, kinds, strict=True):
        c = x.__class__
        if c is tuple:
            if k in (_K_STR, _K_BOOL):
                return False
            for y in x:
                if y.__class__ is not str:
                    return False
        elif k in (_K_STR, _K_STRS) and x is not None and c is not str:
            return False
    return True


def _present(v: Any) -> bool:
    """Same as ``field|exists: true`` (an explicit null, or a list of nulls, is absent)."""
    if v is None:
        return False
    if v.__class__ is list:
        return any(x is not None for x in v)
    return True


class _Slots:
    """The slots of one index: which fields, read how, at which position of the key."""

    def __init__(self, config: Any):
        self.specs: list[tuple[str, str]] = []
        self.pos: dict[tuple[str, str], int] = {}
        self.gates = derived_gates(config)

    def slot(self, path: str, mode: str) -> int:
        k = (path, mode)
        i = self.pos.get(k)
        if i is None:
            i = self.pos[k] = len(self.specs)
            self.specs.append(k)
        return i

    def dep(self, d: str) -> int | None:
        """The slot of a derived field's dependency (``?path``: presence only), or None."""
        if d.startswith("?"):
            path = d[1:]
            if path in _BODIES:
                return self.slot(path, PRESENT_BODY)
            parts = split_path(path)
            return self.slot(path, PRESENT_HEAD) if parts[0] in TOP_FIELDS and _cheap(parts) else None
        return self.slot(d, VALUE) if d in VALUE_FIELDS else None

    def deps(self, ds: tuple[str, ...]) -> tuple[int, ...] | None:
        out = []
        for d in ds:
            i = self.dep(d)
            if i is None:
                return None
            out.append(i)
        return tuple(out)


# How a leaf's outcome is settled by the slots: always, never, or when a check on the key holds.
_ALWAYS = "always"


def _classify(leaf: Leaf, slots: _Slots) -> tuple[Any, tuple[int, ...]]:
    """(``_ALWAYS`` | a check ``(key, event) -> bool`` | None, slots it depends on)."""
    if leaf.kind == "const":
        return _ALWAYS, ()
    f = leaf.field
    if f is None or leaf.kind == "keyword":
        return None, ()
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
    if leaf.kind == "exists":
        return _ALWAYS, (i,)
    return (lambda k, e: not k[i]), (i,)


def _gate_arg(dep: str, i: int) -> Callable[[tuple[Any, ...], AuditEvent], Any]:
    """A gate's argument: presence from the key, a value read from the event itself."""
    if dep.startswith("?"):
        return lambda k, e: k[i]
    get = make_getter(dep)
    return lambda k, e: get(e)


def inline_key(parts: tuple[str, ...]) -> str | None:
    """The key the extractor reads inline in a head mapping for this path (``user.username``:
    ``username``; an annotation: its whole dotted name), or None when it is not read that way.
    The line screen (:mod:`kubehawk.rules.linescreen`) reads the raw text of the same keys."""
    top, rest = parts[0], parts[1:]
    if top in _DICT_HEAD and (len(rest) == 1 or (top == "annotations" and rest)):
        return ".".join(rest)
    return None


def _cheap(parts: tuple[str, ...]) -> bool:
    """A head field read inline by the extractor (a deeper path would cost every event a walk)."""
    return len(parts) == 1 or inline_key(parts) is not None


def _always_present(path: str) -> bool:
    """Fields every audit event has: a presence slot for them would settle nothing."""
    return _PRESENT_FREQ.get(path, 0.0) >= _USELESS


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
        # id(leaf) -> (how the slots settle it, its test, the slots it depends on)
        self.info: dict[int, tuple[Any, Test, tuple[int, ...]]] = {}
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


# Slots with many values (people, ServiceAccounts, namespaces): a new combination of the others
# (the shape of the request) first narrows the rules without them; see RuleIndex._decide.
_FINE = frozenset({"user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups",
                   "objectRef.namespace"})

Plan = list[tuple[Rule, "Test | None"]]


class ScreenedPlan(list):  # type: ignore[type-arg]
    """A plan whose body tests are screened first (:func:`kubehawk.rules.compiler.presence_screen`):
    ``screen(e)`` gives the entries worth testing. Consumers that only list the candidates read it
    as the plan it is; the engine runs the screen."""

    __slots__ = ("screen",)

    def __init__(self, entries: Plan, screen: Callable[[AuditEvent], Plan]):
        super().__init__(entries)
        self.screen = screen


class RuleIndex:
    """Candidate rules for an event, in rule order (see the module docstring)."""

    def __init__(self, rules: Iterable[Rule], config: Any = None):
        self._rules = [r for r in rules if r.predicate is not None]
        slots = _Slots(config)
        self._leaves = lv = _Leaves([r for r in self._rules if r.ir is not None], slots)
        # (rule, its compiled predicate when indexed: a rule whose predicate was replaced since
        # is not described by its condition any more, so it is simply evaluated;
        # and the slots its leaves depend on, with a memo of its outcome per value of those slots)
        self._entries = [(r, r.predicate, *self._projection(r)) for r in self._rules]
        # Rules no slot can ever rule out: evaluated on every event.
        self.always: list[Rule] = [
            r for r in self._rules
            if r.ir is None or all(lv.info[id(lf)][0] is None for lf in leaves(r.ir))
        ]
        self.slots = list(slots.specs)
        coarse = tuple(i for i, (path, _) in enumerate(self.slots) if path not in _FINE)
        self._coarse_known = frozenset(coarse)
        self._coarse_key: Callable[[tuple[Any, ...]], Any] = (
            operator.itemgetter(*coarse) if coarse else (lambda k: ())
        )
        self._memo: dict[tuple[Any, ...], Plan] = {}
        self.extract, self._kinds, plan = make_extractor(self.slots, self._memo, self._miss, self._decide)
        # The per-event entry point (the engine binds it): one generated function reads the
        # slots and looks the key up; only a new or odd key calls back into Python methods.
        self._plan_all = plan
        self.plan: Callable[[AuditEvent], Plan] = self._nested_plan() or plan
        self.field_names = [p if m == VALUE else f"{p}({m})" for p, m in self.slots]
        self._coarse: dict[Any, list[tuple[Rule, Any]]] = {}
        self._residuals: dict[Any, Test] = {}
        self.memo_size = 50_000

    def _nested_plan(self) -> Callable[[AuditEvent], Plan] | None:
        """A two-level plan: (verb, resource, subresource) first, then only the slots that the
        rules this request kind leaves undecided read (often none: a constant plan).

        The plan of a key is a function of the slots the not-yet-FALSE rules read (each rule's
        outcome depends on its own slots only, a rule FALSE on fewer slots stays FALSE), so the
        second-level key (those slots) decides it exactly. Keys are remembered only when exact
        (see :func:`_exact`); anything else is decided alone.
        """
        pos = {(p, m): i for i, (p, m) in enumerate(self.slots)}
        # the key always holds the three values; a field no rule reads has no slot (None)
        self._l1_slots = tuple(pos.get((p, VALUE)) for p in ("verb", "objectRef.resource", "objectRef.subresource"))
        self._l1_known = frozenset(i for i in self._l1_slots if i is not None)
        if not self._l1_known:
            return None
        self._sub_of: dict[int, tuple[int, ...]] = {}
        self._l1: dict[Any, Any] = {}
        self._sub_extractors: dict[tuple[int, ...], tuple[Callable[[AuditEvent], Any], tuple[int, ...]]] = {}
        l1, l1_miss, l2_miss, decide, extract = self._l1, self._l1_miss, self._l2_miss, self._decide, self.extract

        def plan(e: AuditEvent) -> Plan:
            h = e.head
            d = h.objectRef
            k1 = (h.verb, d.get("resource"), d.get("subresource")) if d else (h.verb, None, None)
            try:
                ent = l1[k1]
            except (KeyError, TypeError):
                ent = l1_miss(k1, e)
                if ent is None:
                    return decide(extract(e), e, False)
            if ent.__class__ is list:
                return ent
            ex, m2 = ent[0], ent[1]
            k2 = ex(e)
            try:
                return m2[k2]
            except KeyError:
                return l2_miss(ent, k2, e)
            except TypeError:
                return decide(extract(e), e, False)

        return plan

    def _l1_miss(self, k1: tuple[Any, ...], e: AuditEvent) -> Any:
        """The first-level entry of a new (verb, resource, subresource), or None when not exact."""
        for x in k1:
            if x is not None and x.__class__ is not str:
                return None
        full = self.extract(e)
        lv, known = self._leaves, self._l1_known
        need: set[int] = set()
        alive = []  # the entries this request kind leaves possible: all a second-level miss settles
        for entry in self._entries:
            r, compiled = entry[0], entry[1]
            if r.predicate is not compiled or r.ir is None:
                alive.append(entry)
            elif lv.settle(r.ir, e, full, known)[0] != _FALSE:
                alive.append(entry)
                need.update(i for lf in leaves(r.ir) for i in lv.info[id(lf)][2])
        sub = tuple(sorted(need - known))
        if not sub:
            if not _exact(full, self._kinds):
                return None
            ent: Any = self._decide(full, e, True, alive)
        else:
            got = self._sub_extractors.get(sub)
            if got is None:
                ex, kinds2, _ = make_extractor([self.slots[i] for i in sub])
                got = self._sub_extractors[sub] = (ex, kinds2)
                self._sub_of[id(ex)] = sub
            ent = (got[0], {}, got[1], alive)
        if len(self._l1) >= self.memo_size:
            self._l1.clear()
        self._l1[k1] = ent
        return ent

    def _l2_miss(self, ent: tuple[Any, dict[Any, Plan], tuple[int, ...], list[Any]], k2: tuple[Any, ...],
                 e: AuditEvent) -> Plan:
        full = self.extract(e)
        if not (_exact(k2, ent[2]) and _exact(full, self._kinds)):
            return self._decide(full, e, False, ent[3])
        p = self._decide(full, e, True, ent[3])
        m2 = ent[1]
        if len(m2) >= self.memo_size:
            m2.clear()
        m2[k2] = p
        return p

    def remembered(self) -> list[tuple[dict[int, Any], Plan]]:
        """Every remembered plan with the slot values (by slot position) that key it."""
        if self.plan is self._plan_all:
            return [(dict(enumerate(k)), p) for k, p in self._memo.items()]
        out: list[tuple[dict[int, Any], Plan]] = []
        for k1, ent in self._l1.items():
            head = {i: v for i, v in zip(self._l1_slots, k1, strict=True) if i is not None}
            if ent.__class__ is list:
                out.append((head, ent))
                continue
            sub = self._sub_of[id(ent[0])]
            out += [({**head, **dict(zip(sub, k2, strict=True))}, p) for k2, p in ent[1].items()]
        return out

    def candidates(self, e: AuditEvent) -> list[Rule]:
        """The rules the event's slots do not rule out."""
        return [r for r, _ in self.plan(e)]

    def _miss(self, key: tuple[Any, ...], e: AuditEvent) -> Plan:
        """The plan for a key not in the memo (see :meth:`plan`, generated by :func:`make_extractor`)."""
        if not _exact(key, self._kinds):
            return self._decide(key, e, False)
        hit = self._decide(key, e, True)
        memo = self._memo
        if len(memo) >= self.memo_size:
            memo.clear()  # the generated plan holds this very dict
        memo[key] = hit
        return hit

    def _projection(self, r: Rule) -> tuple[Callable[[tuple[Any, ...]], Any], dict[Any, tuple[int, Any]]]:
        """The getter of the slots a rule's leaves depend on, and its outcome memo.

        Settling a rule reads no slot beyond those, so its outcome (and residual) is the same
        for every key that agrees on them: a new combination (a new user, say) settles again
        only the rules that read the slot that changed.
        """
        if r.ir is None:
            return (lambda k: ()), {}
        idx = sorted({i for lf in leaves(r.ir) for i in self._leaves.info[id(lf)][2]})
        return (operator.itemgetter(*idx) if idx else (lambda k: ())), {}

    def _decide(self, key: tuple[Any, ...], e: AuditEvent, hashable: bool, entries: list[Any] | None = None) -> Plan:
        """The plan for a new combination: the request's shape narrows, then every slot decides.

        ``hashable``: the key is exact (see :func:`_exact`), so outcomes may be remembered.
        ``entries``: the rules still possible, when the caller knows (the first-level plan does:
        those its request kind leaves); otherwise the request's shape narrows them first.
        """
        lv = self._leaves
        if entries is None and hashable:
            entries = self._coarse.get(self._coarse_key(key))
        if entries is None:
            ck = self._coarse_key(key)
            entries = [
                entry for entry in self._entries
                if entry[0].predicate is not entry[1] or entry[0].ir is None
                or lv.settle(entry[0].ir, e, key, self._coarse_known)[0] != _FALSE
            ]
            if hashable:
                if len(self._coarse) >= self.memo_size:
                    self._coarse.clear()
                self._coarse[ck] = entries
        out: Plan = []
        for r, compiled, project, outcomes in entries:
            if r.predicate is not compiled or r.ir is None:
                out.append((r, r.predicate))
                continue
            found = outcomes.get(project(key)) if hashable else None
            if found is None:
                v, rest = lv.settle(r.ir, e, key, None)
                found = (v, self._residual(rest) if v == _UNKNOWN else None)
                if hashable:
                    if len(outcomes) >= self.memo_size:
                        outcomes.clear()
                    outcomes[project(key)] = found
            v, test = found
            if v == _TRUE:
                out.append((r, None))
            elif v == _UNKNOWN:
                out.append((r, test))
        screen = presence_screen(out)
        return out if screen is None else ScreenedPlan(out, screen)

    def _residual(self, node: Any) -> Test:
        sig = _signature(node)
        test = self._residuals.get(sig)
        if test is None:
            if len(self._residuals) >= self.memo_size:
                self._residuals.clear()
            test = self._residuals[sig] = build(node, self._leaves.test)
        return test


def make_extractor(
    slots: list[tuple[str, str]],
    memo: dict[tuple[Any, ...], Plan] | None = None,
    miss: Callable[[tuple[Any, ...], AuditEvent], Plan] | None = None,
    odd: Callable[[tuple[Any, ...], AuditEvent, bool], Plan] | None = None,
) -> tuple[Callable[[AuditEvent], tuple[Any, ...]], tuple[int, ...], Callable[[AuditEvent], Plan] | None]:
    """Generated code reading every slot of an event: (``extract``, the slots' kinds, ``plan``).

    ``extract(e)`` is the memo key. ``plan(e)`` (when ``memo`` is given) is the same code
    followed by the lookup: ``memo[key]``, else ``miss(key, e)``, or ``odd(key, e, False)``
    when the key cannot be hashed (an object where a plain value was expected).

    Head fields are read inline, each head dict once (``d = h.objectRef``; absent: all its
    slots at once). Strings come as they are, unchecked: :func:`_exact` keeps any key with
    another type at such a slot out of the memo, so a hit is exact without a check per
    event. Lists become tuples where a list is usual (``user.groups``); ``responseStatus.code``
    goes through :func:`_norm` unless it is an int; anything else is read with the field
    getter of the compiler (same semantics as the rules) and normalised.
    """
    ns: dict[str, Any] = {"_norm": _norm, "_p": _present, "_hb": has_body, "_memo": memo, "_miss": miss,
                          "_odd_key": odd}
    kinds: list[int] = []
    body = ["    h = e.head"]
    groups: dict[str, list[str]] = {}  # head dict -> lines reading its slots
    absent: dict[str, list[str]] = {}  # head dict -> the slots' values when it is absent

    for i, (path, mode) in enumerate(slots):
        v = f"v{i}"
        parts = split_path(path)
        top, rest = parts[0], parts[1:]
        if mode == PRESENT_BODY:
            kinds.append(_K_BOOL)
            body.append(f"    {v} = h.{top}")
            body.append(f"    {v} = len({v}) > 4 or (len({v}) > 0 and _hb({v}))")  # a call only for tiny bodies
            continue
        key = inline_key(parts)
        if key is not None:
            typed = top == "annotations"  # values are str
            lines = groups.setdefault(top, [])
            absent.setdefault(top, []).append(f"{v} = {'False' if mode == PRESENT_HEAD else 'None'}")
            if mode == PRESENT_HEAD:
                kinds.append(_K_BOOL)
                if typed:
                    lines.append(f"{v} = {key!r} in d")
                else:
                    lines.append(f"{v} = d.get({key!r})")
                    lines.append(f"{v} = {v} is not None and ({v}.__class__ is not list or _p({v}))")
                continue
            usual = "str" if typed else _USUAL_TYPE.get(path, "str")
            lines.append(f"{v} = d.get({key!r})")
            if usual == "list":
                kinds.append(_K_STRS)
                lines.append(f"if {v}.__class__ is list: {v} = tuple({v})")
            elif usual == "int":
                kinds.append(_K_NORM)
                lines.append(f"if {v}.__class__ is not int and {v} is not None: {v} = _norm({v})")
            else:
                kinds.append(_K_STR)
            continue
        if top in TOP_FIELDS and not rest:
            read, typed = f"h.{top}", top in _STR_FIELDS
        else:
            ns[f"_g{i}"] = make_getter(path)
            read, typed = f"_g{i}(e)", False
        body.append(f"    {v} = {read}")
        if mode == PRESENT_HEAD:
            kinds.append(_K_BOOL)
            body.append(f"    {v} = {v} is not None" if typed else
                        f"    {v} = {v} is not None and ({v}.__class__ is not list or _p({v}))")
        elif typed:
            kinds.append(_K_STR)
        else:
            kinds.append(_K_NORM)
            body.append(f"    if {v}.__class__ is not str and {v} is not None: {v} = _norm({v})")
    for top, lines in groups.items():
        body.append(f"    d = h.{top}")
        body.append("    if not d:")
        body.append("        " + "; ".join(absent[top]))
        body.append("    else:")
        body += ["        " + ln for ln in lines]
    body.append("    key = (" + "".join(f"v{i}, " for i in range(len(slots))) + ")")
    code = ["def extract(e):", *body, "    return key"]
    if memo is not None:
        code += ["def plan(e):", *body,
                 "    try:",
                 "        return _memo[key]",
                 "    except KeyError:",
                 "        return _miss(key, e)",
                 "    except TypeError:",
                 "        return _odd_key(key, e, False)"]
    exec("\n".join(code), ns)  # noqa: S102 - code built from field names we chose above
    return ns["extract"], tuple(kinds), ns.get("plan")
