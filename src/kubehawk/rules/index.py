"""The rule index: an event meets only the rules that could match it.

:class:`RuleIndex` reads a few cheap, low-cardinality fields of each event's head (verb,
resource, subresource, user, user agent, response code, the decision annotation, whether
an annotation or body is present...: the *slots*, chosen from what the rules test) and
keys a memo with their values. The first event with a new combination evaluates every
rule in three-valued (Kleene) logic: a test whose outcome those slots settle (a test on a
slot, on an ``x.*`` field computed only from slots per :data:`kubehawk.xclaims.DERIVED_DEPS`,
on a field whose slot says it is absent, on a derived field whose gate in
:func:`kubehawk.xclaims.derived_gates` says it is absent) is evaluated on that event; any
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

Which slots a rule reads and how they settle it is :mod:`.settle`; reading them, and the
generated extractor, is :mod:`.slots`; the keys a rule is filed under for tools that describe
rules, :mod:`.index_keys`.
"""

import operator
from collections.abc import Callable, Iterable
from typing import Any

from kubehawk.event import AuditEvent
from kubehawk.rules.compiler import build
from kubehawk.rules.guards import presence_screen
from kubehawk.rules.ir import Test, leaves
from kubehawk.rules.model import Rule
from kubehawk.rules.settle import _FALSE, _TRUE, _UNKNOWN, _Leaves, _signature
from kubehawk.rules.slots import VALUE, Plan, _exact, _Slots, make_extractor

__all__ = ["RuleIndex", "ScreenedPlan"]

# Slots with many values (people, ServiceAccounts, namespaces): a new combination of the others
# (the shape of the request) first narrows the rules without them; see RuleIndex._decide.
_FINE = frozenset({"user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups",
                   "objectRef.namespace"})


class ScreenedPlan(list):  # type: ignore[type-arg]
    """A plan whose body tests are screened first (:func:`kubehawk.rules.guards.presence_screen`):
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
