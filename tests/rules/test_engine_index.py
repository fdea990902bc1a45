"""The index is only an optimisation: the indexed engine must match brute-force evaluation."""

from __future__ import annotations

import random

from ruletools import rule_yaml, ruleset

from kubehawk.event import event_from_dict
from kubehawk.rules import Engine
from kubehawk.rules.index import choose_index_keys

VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "GET", "Create"]
RESOURCES = ["pods", "secrets", "configmaps", "nodes", "deployments", "clusterrolebindings", "Pods", None]
SUBS = [None, None, "exec", "attach", "log", "proxy", "token", "status"]
USERS = ["alice", "bob", "system:anonymous", "system:serviceaccount:kube-system:default",
         "system:node:n1", "system:kube-controller-manager", "ALICE"]
GROUPS = [["system:authenticated"], ["system:masters", "system:authenticated"], ["system:unauthenticated"], []]
NAMESPACES = ["default", "kube-system", "prod", None]
DECISIONS = ["allow", "forbid", None]

DETECTIONS = [
    "sel: {verb: create}\ncondition: sel",
    "sel: {verb: [create, update, patch]}\ncondition: sel",
    "sel: {verb: [get, list], objectRef.resource: secrets}\ncondition: sel",
    "sel: {objectRef.subresource: [exec, attach]}\nf: {user.username|startswith: 'system:'}\ncondition: sel and not f",
    "a: {verb: create, objectRef.resource: pods}\nb: {verb: delete, objectRef.resource: secrets}\ncondition: a or b",
    "a: {verb: create}\nb: {objectRef.resource: nodes}\ncondition: a or b",  # no common field: always
    "sel: {user.username: 'system:anonymous'}\ncondition: sel",
    "sel: {user.groups: system:masters}\ncondition: sel",
    "sel: {user.groups|all: [system:masters, system:authenticated]}\ncondition: sel",
    "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: sel",
    "sel: {annotations.authorization.k8s.io/decision: forbid, verb: [create, delete]}\ncondition: sel",
    "sel: {objectRef.namespace: kube-system}\nf: {verb: [get, list, watch]}\ncondition: sel and not f",
    "sel: {objectRef.namespace: null, verb: delete}\ncondition: sel",
    "sel: {objectRef.resource|contains: role}\ncondition: sel",
    "sel: {verb: watch}\ncondition: not sel",
    "s1: {verb: create}\ns2: {objectRef.resource: pods}\ns3: {objectRef.subresource: exec}\ncondition: 1 of s*",
    "s1: {verb: create}\ns2: {objectRef.resource: pods}\ns3: {objectRef.subresource: exec}\ncondition: all of s*",
    "sel: {responseStatus.code|gte: 400, verb: [create, patch]}\ncondition: sel",
    "sel: {responseStatus.code: 403}\ncondition: sel",
    "sel: {sourceIPs|cidr: 10.0.0.0/8, user.username: alice}\ncondition: sel",
    "sel:\n  - verb: create\n    objectRef.resource: pods\n  - objectRef.subresource: token\ncondition: sel",
    "sel: {user.username|cased: ALICE}\ncondition: sel",
    "sel: {requestObject.spec.hostPID: true}\ncondition: sel",
    "sel: {requestObject.spec.hostPID: true, verb: create}\ncondition: sel",
    "sel: {verb: get, objectRef.resource: pods, objectRef.subresource: [log, exec]}\ncondition: sel",
]


def random_event(rng: random.Random, i: int):
    obj = {}
    for key, choices in (("resource", RESOURCES), ("subresource", SUBS), ("namespace", NAMESPACES)):
        v = rng.choice(choices)
        if v is not None:
            obj[key] = v
    d = {
        "auditID": f"id-{i}",
        "verb": rng.choice(VERBS),
        "user": {"username": rng.choice(USERS), "groups": rng.choice(GROUPS)},
        "objectRef": obj,
        "sourceIPs": [rng.choice(["10.1.2.3", "192.168.0.1", "bogus"])],
        "responseStatus": {"code": rng.choice([200, 201, 403, "403", 404, 500])},
    }
    dec = rng.choice(DECISIONS)
    if dec:
        d["annotations"] = {"authorization.k8s.io/decision": dec}
    if rng.random() < 0.3:
        d["requestObject"] = {"spec": {"hostPID": rng.choice([True, False, "true"])}}
    return event_from_dict(d)


def test_indexed_engine_equals_brute_force():
    rs = ruleset(*[rule_yaml(d, title=f"r{i}") for i, d in enumerate(DETECTIONS)])
    eng = Engine(rs)
    # most rules are indexed; the ones that cannot be are evaluated always
    assert len(eng.index.always) < len(rs.rules) / 3
    rng = random.Random(7)
    hits = 0
    for i in range(3000):
        e = random_event(rng, i)
        expected = [r.title for r in rs.rules if r.predicate(e)]
        got = [m.rule.title for m in eng.process(e)]
        assert got == expected, (e.to_dict(), got, expected)
        hits += len(got)
    assert hits > 1000  # the generator exercises the rules
    assert eng.stats["candidates"] < 3000 * len(rs.rules) / 2


def test_index_key_choice():
    def keys_of(d):
        return ruleset(rule_yaml(d)).rules[0].index_keys

    def one(fields, *values):
        return ((tuple(fields.split("+")), frozenset(values)),)

    # subresource is the most selective field
    assert keys_of("sel: {verb: create, objectRef.resource: pods, objectRef.subresource: exec}\ncondition: sel") == one(
        "objectRef.subresource", "exec"
    )
    # read verbs are a poor filter: prefer the resource
    assert keys_of("sel: {verb: [get, list], objectRef.resource: Secrets}\ncondition: sel") == one(
        "objectRef.resource", "secrets"
    )
    # two common values: the pair is far more selective than either
    assert keys_of("sel: {verb: [update, patch], objectRef.resource: leases}\ncondition: sel") == one(
        "objectRef.resource+verb", ("leases", "update"), ("leases", "patch")
    )
    # a field constrained in every disjunct, values unioned
    assert keys_of("a: {verb: create, userAgent|contains: x}\nb: {verb: delete}\ncondition: a or b") == one(
        "verb", "create", "delete"
    )
    # each disjunct may use its own key
    keys = keys_of("a: {user.username: 'system:anonymous'}\nb: {user.groups: system:unauthenticated}\ncondition: a or b")
    assert set(keys) == {(("user.username",), frozenset({"system:anonymous"})),
                         (("user.groups",), frozenset({"system:unauthenticated"}))}
    # a field that only has to be present
    assert keys_of("sel: {impersonatedUser.username|startswith: 'system:'}\ncondition: sel") == (
        (("impersonatedUser.username",), None),
    )
    # nothing required, or only negations: evaluated always
    assert keys_of("a: {verb: create}\nb: {objectRef.resource: null}\ncondition: a or b") is None
    assert keys_of("sel: {verb: create}\ncondition: not sel") is None
    # derived fields only when there is nothing else
    assert keys_of("sel: {x.identity: anonymous, verb: create}\ncondition: sel")[0][0] == ("verb",)
    assert keys_of("sel: {x.identity: anonymous}\ncondition: sel")[0][0] == ("x.identity",)
    assert choose_index_keys(None) is None and choose_index_keys([]) is None


def test_candidate_memo_is_bounded_and_stays_correct():
    rs = ruleset(*[rule_yaml(d, title=f"r{i}") for i, d in enumerate(DETECTIONS)])
    eng = Engine(rs)
    eng.index.memo_size = 8
    rng = random.Random(3)
    for i in range(500):
        e = random_event(rng, i)
        assert [m.rule.title for m in eng.process(e)] == [r.title for r in rs.rules if r.predicate(e)]
        assert len(eng.index._memo) <= 8
