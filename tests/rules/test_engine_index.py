"""The index is only an optimisation: the indexed engine must match brute-force evaluation."""

from __future__ import annotations

import random

import pytest
from ruletools import ev, rule_yaml, ruleset

from kubehawk.config import Config
from kubehawk.event import event_from_dict
from kubehawk.rules import Engine
from kubehawk.rules.index_keys import choose_index_keys
from kubehawk.rules.ir import leaves

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
        assert len(eng.index._l1) <= 8
        assert all(ent.__class__ is list or len(ent[1]) <= 8 for ent in eng.index._l1.values())


# --- the slot memo: three-valued decisions on head fields, derived fields, odd values ---------

CFG = Config.from_dict({
    "gitops": {"identities": ["system:serviceaccount:argocd:argocd-application-controller"], "namespaces": ["bank"]},
    "honeytokens": {"serviceaccounts": ["kube-system/backup-operator"], "secrets": ["default/db-admin-credentials"]},
    "allowlists": {"privileged": [{"namespace": "kube-system", "serviceaccount": "*"}]},
})

DETECTIONS_X = [
    "sel: {userAgent|contains: [kube-hunter, peirates]}\ncondition: sel",
    "pt: {user.extra.authentication.kubernetes.io/pod-name|exists: true}\ntool: {userAgent|startswith: [kubectl/, "
    "curl/]}\nsys: {x.system: true}\ncondition: pt and tool and not sys",
    "sel: {verb: [create, update, patch], annotations.pod-security.kubernetes.io/audit-violations|exists: true}\n"
    "sys: {x.system: true}\ncondition: sel and not sys",
    "sel: {verb: [create, update, patch], objectRef.resource: [pods, deployments], "
    "x.containers.securityContext.privileged: true}\nsub: {objectRef.subresource|exists: true}\n"
    "eph: {objectRef.subresource: ephemeralcontainers}\ncondition: sel and not (sub and not eph)",
    "sel: {x.pod_spec.hostPID: true}\ncondition: sel",
    "sel: {x.images|contains: evil}\nsys: {x.allowlisted.privileged: true}\ncondition: sel and not sys",
    "sel: {x.honeytoken: true}\ncondition: sel",
    "sel: {x.honeytoken_kind: secret-list}\ncondition: sel",
    "sel: {verb: list, objectRef.resource: secrets}\nnamed: {objectRef.name|exists: true}\ncondition: sel and not named",
    "sel: {objectRef.name: p1}\ncondition: sel",
    "sel: {objectRef.name: null, verb: [get, delete]}\ncondition: sel",
    "sel: {x.identity: anonymous}\ncondition: sel",
    "sel: {x.exec.shell: true}\ncondition: sel",
    "sel: {x.exec.command_line|contains: secrets}\ncondition: not sel",
    "sel: {requestObject.spec.hostPID: true}\ncondition: sel",
    "sel: {requestObject|exists: true, verb: get}\ncondition: sel",
    "sel: {responseObject.kind: Pod}\ncondition: not sel",
    "sel: {responseStatus.code: 403}\ncondition: sel",
    "sel: {responseStatus.code: true}\ncondition: sel",
    "sel: {responseStatus.code|gte: 400}\ncondition: not sel",
    "sel: {user.groups: '1'}\ncondition: sel",
    "sel: {user.groups: true}\ncondition: sel",
    "sel: {user.groups: system:masters}\ncondition: sel",
    "sel: {x.gitops.namespace: true, verb: delete}\nid: {x.gitops.identity: true}\ncondition: sel and not id",
    "sel: {x.workload: true, verb: delete}\ncondition: sel",
    "sel: {objectRef.namespace|fieldref: x.sa.namespace}\ncondition: sel",
    "sel: {impersonatedUser.username|exists: true}\ncondition: sel",
    "sel: {x.impersonated: true, verb: create}\ncondition: sel",
    "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: not sel",
    "keywords: [evil]\ncondition: keywords",
    "sel: {objectRef.resource: pods}\ncondition: sel",
    "sel: {objectRef.resource: '5'}\ncondition: sel",
    "sel: {x.health_endpoint: true, user.username: system:anonymous}\ncondition: sel",
    "sel: {x.decision: allow, x.identity: anonymous}\nh: {x.health_endpoint: true}\ncondition: sel and not h",
]

USERS_X = ["alice", "system:anonymous", "system:serviceaccount:kube-system:backup-operator",
           "system:serviceaccount:argocd:argocd-application-controller", "system:serviceaccount:bank:app",
           "system:node:n1", "system:kube-scheduler", 5, None]
GROUPS_X = [["system:authenticated"], ["system:masters"], ["system:unauthenticated"], [1], [True], ["1"],
            "system:masters", None, [{"a": 1}]]
CODES_X = [200, 201, 403, "403", 403.0, True, 1, None, [403]]
RESOURCES_X = ["pods", "deployments", "secrets", "serviceaccounts", "configmaps", ["pods"], {"a": 1}, 5, None]
SUBS_X = [None, None, "status", "binding", "exec", "ephemeralcontainers", "attach"]
AGENTS_X = ["kubectl/v1.30", "curl/8.0", "kube-hunter/1", "Go-http-client/2.0", None]


def pod_body(rng: random.Random, kind: str = "Pod") -> dict:
    container = {"name": "c", "image": rng.choice(["nginx", "evil/miner", "registry.k8s.io/pause"]),
                 "securityContext": {"privileged": rng.choice([True, False, "true"])}}
    spec = {"containers": [container], "hostPID": rng.choice([True, False])}
    if kind == "Pod":
        return {"kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    return {"kind": kind, "spec": {"template": {"spec": spec}}}


def random_event_x(rng: random.Random, i: int):
    obj: dict = {}
    for key, choices in (("resource", RESOURCES_X), ("subresource", SUBS_X),
                         ("namespace", ["default", "kube-system", "bank", None]),
                         ("name", [None, "p1", "db-admin-credentials", "backup-operator", [], [None]])):
        v = rng.choice(choices)
        if v is not None or rng.random() < 0.1:
            obj[key] = v
    user: dict = {"username": rng.choice(USERS_X), "groups": rng.choice(GROUPS_X)}
    if rng.random() < 0.3:
        user["extra"] = {"authentication.kubernetes.io/pod-name": [rng.choice(["web-1", None])]}
    d: dict = {
        "auditID": f"x-{i}",
        "verb": rng.choice(VERBS),
        "user": user,
        "objectRef": obj,
        "sourceIPs": ["10.1.2.3"],
        "responseStatus": {"code": rng.choice(CODES_X)},
        "requestURI": rng.choice(["/api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=cat%20"
                                  "/var/run/secrets/x&tty=true", "/healthz", "/api/v1/pods", "/livez?verbose"]),
    }
    ua = rng.choice(AGENTS_X)
    if ua is not None:
        d["userAgent"] = ua
    ann = {}
    if rng.random() < 0.7:
        ann["authorization.k8s.io/decision"] = rng.choice(["allow", "forbid"])
    if rng.random() < 0.3:
        ann["pod-security.kubernetes.io/audit-violations"] = "privileged"
    if ann:
        d["annotations"] = ann
    if rng.random() < 0.1:
        d["impersonatedUser"] = {"username": "bob"}
    r = rng.random()
    if r < 0.3:
        d["requestObject"] = pod_body(rng, rng.choice(["Pod", "Deployment"]))
    elif r < 0.35:
        d["requestObject"] = rng.choice([[], {}, [{"op": "add", "path": "/spec/hostPID", "value": True}], "x"])
    r = rng.random()
    if r < 0.2:
        d["responseObject"] = pod_body(rng)
    elif r < 0.3:  # a logged body that is not a Pod: `not responseObject.kind: Pod` is true only here
        d["responseObject"] = {"kind": "Status", "status": "Success"}
    return event_from_dict(d)


def brute_force(rules, e) -> list[str]:
    out = []
    for r in rules:
        try:
            if r.predicate(e):
                out.append(r.title)
        except Exception:  # noqa: BLE001 - the engine counts such errors and goes on
            pass
    return out


@pytest.mark.parametrize("config", [CFG, None])
def test_slot_memo_equals_brute_force_on_odd_events(config):
    rs = ruleset(*[rule_yaml(d, title=f"x{i}") for i, d in enumerate(DETECTIONS_X)])
    eng = Engine(rs, config)
    assert not eng.index.always or [r.title for r in eng.index.always] == ["x29"]  # the keyword search
    rng = random.Random(11)
    hits = 0
    for i in range(4000):
        e = random_event_x(rng, i)
        got = [m.rule.title for m in eng.process(e)]  # binds the config to the event first
        assert got == brute_force(rs.rules, e), e.to_dict()
        hits += len(got)
    assert hits > 2000
    # every rule fires somewhere, so the comparison covers each of them
    fired = set(eng.stats["matches_by_rule"])
    assert len(fired) >= len(rs.rules) - 3, sorted(set(r.id for r in rs.rules) - fired)


def test_slot_memo_is_used_and_prunes_the_builtin_pack():
    from kubehawk.detect import load_ruleset

    rs = load_ruleset(CFG)
    eng = Engine(rs, CFG)
    shapes = [
        dict(verb="update", objectRef={"resource": "leases", "namespace": "kube-node-lease", "name": "n1",
                                       "apiGroup": "coordination.k8s.io"},
             user={"username": "system:node:n1", "groups": ["system:nodes", "system:authenticated"]}),
        dict(verb="patch", objectRef={"resource": "nodes", "subresource": "status", "name": "n1"},
             user={"username": "system:node:n1", "groups": ["system:nodes"]}),
        dict(verb="update", objectRef={"resource": "deployments", "subresource": "status", "namespace": "default",
                                       "name": "web", "apiGroup": "apps"},
             user={"username": "system:serviceaccount:kube-system:deployment-controller", "groups": []}),
        dict(verb="create", objectRef={"resource": "pods", "subresource": "binding", "namespace": "default",
                                       "name": "web-1"},
             user={"username": "system:kube-scheduler", "groups": ["system:authenticated"]}),
        dict(verb="get", objectRef={"resource": "configmaps", "namespace": "default", "name": "c"}),
    ]
    n = 0
    for rep in range(200):
        for s in shapes:
            n += 1
            e = ev(**s, auditID=f"id-{n}", stageTimestamp=f"2026-11-23T10:{rep % 60:02d}:00Z")
            assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e)
    assert len(eng.index.remembered()) == len(shapes)
    # status updates, bindings and lease renewals meet (almost) no rule of the 100+ in the pack
    # (today: 0.2 per event, a first-seen baseline rule on every ServiceAccount request)
    assert eng.stats["candidates"] / n < 1, eng.stats["candidates"] / n


def test_equal_but_different_values_never_share_a_memo_entry():
    # 1 == 1.0 == True in Python, so a naive memo key would mix these events up
    rs = ruleset(rule_yaml("sel: {user.groups: 'true'}\ncondition: sel", title="g"),
                 rule_yaml("sel: {responseStatus.code: 'true'}\ncondition: sel", title="c"),
                 rule_yaml("sel: {objectRef.resource: '1.0'}\ncondition: sel", title="r"))
    eng = Engine(rs)
    variants = [
        dict(user={"username": "u", "groups": [1]}), dict(user={"username": "u", "groups": [True]}),
        dict(user={"username": "u", "groups": [1.0]}), dict(user={"username": "u", "groups": ["true"]}),
        dict(responseStatus={"code": 1}), dict(responseStatus={"code": True}), dict(responseStatus={"code": 1.0}),
        dict(objectRef={"resource": 1}), dict(objectRef={"resource": 1.0}), dict(objectRef={"resource": True}),
    ]
    for rep in range(3):
        for i, kw in enumerate(variants):
            e = ev(**kw, auditID=f"{rep}-{i}")
            assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e), kw


def test_raw_string_slots_remember_only_strings():
    # Slots read without a type check (names, resources, user agents) put a key in the memo only
    # when they hold a str or None; any other type is decided for its event alone.
    rs = ruleset(rule_yaml("sel: {user.username: '5'}\ncondition: sel", title="u"),
                 rule_yaml("sel: {objectRef.resource: 'true'}\ncondition: sel", title="r"),
                 rule_yaml("sel: {user.groups: ['1', system:masters]}\ncondition: sel", title="g"))
    eng = Engine(rs)
    names = ["5", 5, 5.0, True, "5", ["5"], {"a": 5}, None, "5"]
    resources = ["true", True, 1, "1", ["true"], {"x": 1}, "true"]
    groups = [["1"], [1], [True], [1.0], "1", ["system:masters"], [{"a": 1}], ["1"]]
    n = 0
    for rep in range(2):
        for name in names:
            for res in resources:
                for grp in groups:
                    n += 1
                    e = ev(user={"username": name, "groups": grp}, objectRef={"resource": res}, auditID=f"{rep}-{n}")
                    assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e), e.to_dict()
    idx = eng.index
    pos = {name: i for i, name in enumerate(idx.field_names)}
    kept = idx.remembered()
    for key, _ in kept:
        assert key.get(pos["user.username"]) is None or type(key[pos["user.username"]]) is str
        assert key.get(pos["objectRef.resource"]) is None or type(key[pos["objectRef.resource"]]) is str
        g = key.get(pos["user.groups"])
        assert g is None or type(g) is str or (type(g) is tuple and all(type(x) is str for x in g))
    assert 0 < len(kept) < n / 4  # the plain ones are remembered and hit
    # the plan read for an event is the one remembered under its slot values
    e = ev(user={"username": "alice", "groups": ["a", "b"]}, objectRef={"resource": "pods"})
    plan = idx.plan(e)
    full = idx.extract(e)
    assert plan is idx.plan(e)
    assert any(p is plan and all(full[i] == v for i, v in key.items()) for key, p in idx.remembered())


def test_a_new_user_settles_again_only_the_rules_that_read_users():
    rs = ruleset(*[rule_yaml(d, title=f"r{i}") for i, d in enumerate(DETECTIONS)])
    eng = Engine(rs)
    idx = eng.index
    roots = {id(r.ir): r for r in rs.rules if r.ir is not None}
    settled: list = []
    plain_settle = idx._leaves.settle

    def counting(node, e, k, known):
        if known is None and id(node) in roots:
            settled.append(roots[id(node)])
        return plain_settle(node, e, k, known)

    idx._leaves.settle = counting
    user_slots = {i for i, name in enumerate(idx.field_names) if name.startswith("user.")}
    reads_users = {r.title for r in rs.rules if r.ir is not None
                   and user_slots & {i for lf in leaves(r.ir) for i in idx._leaves.info[id(lf)][2]}}
    assert reads_users and len(reads_users) < len(roots) / 2
    for n in range(30):
        e = ev(verb="create", objectRef={"resource": "pods", "namespace": "default"},
               user={"username": f"user-{n}", "groups": ["system:authenticated"]}, auditID=f"u{n}")
        assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e)
        if n == 0:
            first = len(settled)
            settled.clear()
    assert first > len(reads_users)
    assert {r.title for r in settled} <= reads_users and len(settled) <= 29 * len(reads_users)


def test_two_level_plan_reads_only_the_slots_the_request_kind_needs():
    # verb/resource/subresource first: a request kind no rule can match is one constant plan
    # whatever the user; a kind some rule reads users for keys its second level on users too.
    rs = ruleset(rule_yaml("sel: {verb: create, objectRef.resource: pods, user.username: alice}\ncondition: sel",
                           title="alice-pods"),
                 rule_yaml("sel: {verb: delete, objectRef.namespace: prod}\ncondition: sel", title="del-prod"))
    eng = Engine(rs)
    idx = eng.index
    assert idx.plan is not idx._plan_all
    pos = {name: i for i, name in enumerate(idx.field_names)}
    n = 0
    for rep in range(3):
        for verb in ("create", "delete", "get"):
            for user in ("alice", "bob", "carol"):
                for ns in ("prod", "dev", None):
                    n += 1
                    obj = {"resource": "pods"} | ({"namespace": ns} if ns else {})
                    e = ev(verb=verb, user={"username": user}, objectRef=obj, auditID=f"{rep}-{n}")
                    assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e)
    kept = idx.remembered()
    by_verb: dict[str, list[dict]] = {}
    for key, _ in kept:
        by_verb.setdefault(key[pos["verb"]], []).append(key)
    assert len(by_verb["get"]) == 1 and by_verb["get"][0].keys() == {pos["verb"], pos["objectRef.resource"]}
    assert idx.plan(ev(verb="get", objectRef={"resource": "pods"}, user={"username": "zed"})) == []
    assert {k.get(pos["user.username"]) for k in by_verb["create"]} == {"alice", "bob", "carol"}
    assert {k.get(pos["objectRef.namespace"]) for k in by_verb["delete"]} == {"prod", "dev", None}


def test_flat_memo_when_the_request_kind_is_not_in_the_slots():
    rs = ruleset(rule_yaml("sel: {user.username: alice}\ncondition: sel", title="a"))
    eng = Engine(rs)
    assert eng.index.plan is eng.index._plan_all
    for i, user in enumerate(["alice", "bob", "alice", 5, "5"]):
        e = ev(user={"username": user}, auditID=str(i))
        assert [m.rule.title for m in eng.process(e)] == brute_force(rs.rules, e)
    assert {k[0] for k, _ in eng.index.remembered()} == {"alice", "bob", "5"}
