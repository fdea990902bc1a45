"""The keys a rule is filed under: a prior of how often values occur in audit logs.

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

from typing import Any

from kubehawk.event import TOP_FIELDS
from kubehawk.fieldpath import split_path
from kubehawk.rules.dnf import PRESENT

__all__ = ["IndexKey", "choose_index_keys"]

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
