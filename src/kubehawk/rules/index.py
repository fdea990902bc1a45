"""The rule index: an event meets only the rules that could match it.

For each disjunct of a rule's condition (DNF of its positive constraints) the index
picks the cheapest, most selective key that disjunct requires:

- one field constrained to a finite set of plain values (``verb in {create}``),
- a pair of such fields (``(verb, objectRef.resource) in {(create, pods), ...}``) when
  neither alone is selective (``update`` and ``pods`` are both everywhere; together with
  ``create`` far less so),
- or a field that must merely be present (``impersonatedUser.username``).

Selectivity comes from a prior of how often values occur in real audit logs (reads,
lease and status updates dominate); the read cost keeps request bodies and derived
``x.*`` fields out of the index unless a disjunct has nothing else. A rule is a
candidate when any of its keys hits; a rule with a disjunct that offers no key is
evaluated on every event. Per event: one read and a few dict lookups per distinct key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent, split_path
from kubehawk.rules.compiler import PRESENT, _scalar_str, make_getter
from kubehawk.rules.model import Rule

__all__ = ["RuleIndex", "choose_index_keys"]

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


def _key(v: Any) -> str | None:
    if type(v) is str:
        return v.lower()
    return _scalar_str(v)


def _keys(v: Any) -> list[str]:
    if v is None:
        return []
    if type(v) is tuple:
        return [k for k in map(_key, v) if k is not None]
    k = _key(v)
    return [] if k is None else [k]


class RuleIndex:
    """Candidate rules for an event, in rule order."""

    def __init__(self, rules: Iterable[Rule]):
        singles: dict[str, dict[str, list[Rule]]] = {}
        pairs: dict[tuple[str, str], dict[tuple[str, str], list[Rule]]] = {}
        present: dict[str, list[Rule]] = {}
        self.always: list[Rule] = []
        for r in rules:
            if r.predicate is None:
                continue
            if r.index_keys is None:
                self.always.append(r)
                continue
            for fields, values in r.index_keys:
                if values is None:
                    present.setdefault(fields[0], []).append(r)
                elif len(fields) == 1:
                    table = singles.setdefault(fields[0], {})
                    for v in values:
                        table.setdefault(v, []).append(r)
                else:
                    table2 = pairs.setdefault((fields[0], fields[1]), {})
                    for v in values:
                        table2.setdefault(v, []).append(r)
        fields = list(dict.fromkeys([*singles, *(f for ab in pairs for f in ab), *present]))
        pos = {f: i for i, f in enumerate(fields)}
        self.extract = make_extractor(fields)
        self.singles = [(pos[f], t) for f, t in singles.items()]
        self.pairs = [(pos[a], pos[b], t) for (a, b), t in pairs.items()]
        self.present = [(pos[f], rs) for f, rs in present.items()]
        self.field_names = [*singles, *(f"{a}+{b}" for a, b in pairs), *(f"{f}(present)" for f in present)]
        self._memo: dict[tuple[Any, ...], list[Rule]] = {}
        self.memo_size = 50_000

    def candidates(self, e: AuditEvent) -> list[Rule]:
        vals = self.extract(e)
        # Events repeat (the same verb, resource, user...): remember the candidates per
        # combination of the values the index reads. Bounded; unhashable values skip it.
        memo = self._memo
        try:
            hit = memo.get(vals)
        except TypeError:
            return self._lookup(vals)
        if hit is None:
            hit = self._lookup(vals)
            if len(memo) >= self.memo_size:
                memo.clear()
            memo[vals] = hit
        return hit

    def _lookup(self, vals: tuple[Any, ...]) -> list[Rule]:
        hits: list[list[Rule]] = []
        for i, table in self.singles:
            v = vals[i]
            if v is None:
                continue
            if type(v) is tuple:
                for x in v:
                    k = _key(x)
                    if k is not None:
                        h = table.get(k)
                        if h:
                            hits.append(h)
            else:
                k = v.lower() if type(v) is str else _scalar_str(v)
                if k is not None:
                    h = table.get(k)
                    if h:
                        hits.append(h)
        for i, j, table2 in self.pairs:
            a = vals[i]
            if a is None:
                continue
            b = vals[j]
            if b is None:
                continue
            if type(a) is str and type(b) is str:
                h = table2.get((a.lower(), b.lower()))
                if h:
                    hits.append(h)
                continue
            for ka in _keys(a):
                for kb in _keys(b):
                    h = table2.get((ka, kb))
                    if h:
                        hits.append(h)
        for i, rules in self.present:
            v = vals[i]
            if v is not None and (type(v) is not tuple or any(x is not None for x in v)):
                hits.append(rules)
        if not hits:
            return self.always
        if len(hits) == 1 and not self.always:
            return hits[0]
        merged = {r.ordinal: r for h in hits for r in h}
        for r in self.always:
            merged[r.ordinal] = r
        return [merged[k] for k in sorted(merged)]


_DICT_HEAD = ("user", "impersonatedUser", "objectRef", "responseStatus")


def _as_tuple(v: Any) -> Any:
    """Lists become tuples so that the extracted values can key the memo."""
    return tuple(v) if type(v) is list else v


def make_extractor(fields: list[str]) -> Callable[[AuditEvent], tuple[Any, ...]]:
    """One generated function reading every index field of an event (one call per event).

    Head fields are read inline (``head.verb``, ``(head.objectRef or {}).get("resource")``);
    anything else goes through the field getter of the compiler, same semantics.
    """
    ns: dict[str, Any] = {"_E": {}, "_t": _as_tuple}
    lines = ["def extract(e):", "    h = e.head"]
    exprs = []
    for i, f in enumerate(fields):
        parts = split_path(f)
        top, rest = parts[0], parts[1:]
        if top in TOP_FIELDS and top not in ("requestObject", "responseObject") and not rest:
            exprs.append(f"_t(h.{top})" if top == "sourceIPs" else f"h.{top}")
        elif top == "annotations" and rest:
            # annotation values are strings, so only the whole dotted key can match
            exprs.append(f"(h.annotations or _E).get({'.'.join(rest)!r})")
        elif top in _DICT_HEAD and len(rest) == 1:
            exprs.append(f"_t((h.{top} or _E).get({rest[0]!r}))")
        else:
            ns[f"_g{i}"] = make_getter(f)
            exprs.append(f"_t(_g{i}(e))")
    lines.append("    return (" + "".join(x + ", " for x in exprs) + ")")
    exec("\n".join(lines), ns)  # noqa: S102 - code built from field names we generated above
    return ns["extract"]
