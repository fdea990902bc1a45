"""Evaluation semantics, point by point, as kube-apiserver's checker.go does them."""

from __future__ import annotations

import pytest

from kubehawk.policy import Policy, Request, parse_request, request_from_event


def pol(*rules, **top) -> Policy:
    return Policy.from_dict({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def level(policy: Policy, **req) -> str:
    return policy.evaluate(Request(**req)).level


ALICE = {"user": "alice", "groups": ["devs", "system:authenticated"]}


def test_first_matching_rule_wins_and_default_is_none():
    p = pol({"level": "Metadata", "resources": [{"resources": ["pods"]}]}, {"level": "RequestResponse"})
    d = p.evaluate(Request(verb="get", resource="pods", **ALICE))
    assert (d.level, d.rule_index) == ("Metadata", 0)
    assert p.evaluate(Request(verb="get", resource="secrets", **ALICE)).rule_index == 1
    p2 = pol({"level": "Metadata", "verbs": ["create"]})
    d = p2.evaluate(Request(verb="get", resource="pods", **ALICE))
    assert (d.level, d.rule_index) == ("None", None)


def test_fields_are_anded_and_values_ored():
    p = pol({"level": "Request", "users": ["alice", "bob"], "verbs": ["get", "list"], "namespaces": ["bank"]})
    assert level(p, verb="list", namespace="bank", resource="pods", **ALICE) == "Request"
    assert level(p, user="bob", verb="get", namespace="bank", resource="pods") == "Request"
    assert level(p, verb="list", namespace="other", resource="pods", **ALICE) == "None"
    assert level(p, verb="delete", namespace="bank", resource="pods", **ALICE) == "None"


@pytest.mark.parametrize("field", ["users", "userGroups", "verbs", "namespaces"])
def test_star_is_literal_in_users_groups_verbs_namespaces(field):
    p = pol({"level": "Metadata", field: ["*"]})
    assert level(p, verb="get", namespace="bank", resource="pods", **ALICE) == "None"
    literal = {"users": {"user": "*"}, "userGroups": {"user": "x", "groups": ["*"]}, "verbs": {"verb": "*"},
               "namespaces": {"namespace": "*"}}[field]
    base = {"user": "alice", "verb": "get", "namespace": "bank", "resource": "pods"}
    assert level(p, **{**base, **literal}) == "Metadata"


def test_star_is_literal_in_resource_names():
    p = pol({"level": "Metadata", "resources": [{"resources": ["secrets"], "resourceNames": ["*"]}]})
    assert level(p, verb="get", resource="secrets", name="db", **ALICE) == "None"
    assert level(p, verb="get", resource="secrets", name="*", **ALICE) == "Metadata"


def test_resource_names_never_match_create_list_watch():
    p = pol({"level": "Metadata", "resources": [{"resources": ["secrets"], "resourceNames": ["db"]}]})
    assert level(p, verb="get", resource="secrets", name="db", **ALICE) == "Metadata"
    for verb in ("create", "list", "watch", "deletecollection"):
        assert level(p, verb=verb, resource="secrets", name="", **ALICE) == "None"
    # A metadata.name field selector sets the name of a list/watch.
    req = parse_request("GET", "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb&watch=true", "alice")
    assert (req.verb, req.name) == ("watch", "db")
    assert p.evaluate(req).level == "Metadata"


def test_subresource_patterns():
    def lv(pattern, resource, sub="", group=""):
        return level(pol({"level": "Metadata", "resources": [{"resources": [pattern]}]}),
                     verb="get", api_group=group, resource=resource, subresource=sub, **ALICE)

    assert lv("pods", "pods") == "Metadata"
    assert lv("pods", "pods", "log") == "None"
    assert lv("pods/log", "pods", "log") == "Metadata"
    assert lv("pods/log", "pods") == "None"
    assert lv("*", "pods", "exec") == "Metadata"
    assert lv("*/scale", "deployments", "scale", "apps") == "None"  # group omitted = core only
    assert lv("*/scale", "replicationcontrollers", "scale") == "Metadata"
    assert lv("*/scale", "replicationcontrollers") == "None"
    # pods/* covers pods itself (only the part before /* is compared).
    assert lv("pods/*", "pods") == "Metadata"
    assert lv("pods/*", "pods", "exec") == "Metadata"
    assert lv("pods/*", "services", "proxy") == "None"
    # */* matches nothing real.
    assert lv("*/*", "pods", "log") == "None"
    assert lv("*/*", "pods") == "None"


def test_group_semantics():
    core = pol({"level": "Metadata", "resources": [{"resources": ["deployments"]}]})
    assert level(core, verb="get", api_group="apps", resource="deployments", **ALICE) == "None"
    star = pol({"level": "Metadata", "resources": [{"group": "*", "resources": ["deployments"]}]})
    assert level(star, verb="get", api_group="apps", resource="deployments", **ALICE) == "Metadata"
    assert level(star, verb="get", api_group="", resource="deployments", **ALICE) == "Metadata"
    whole = pol({"level": "Metadata", "resources": [{"group": "apps"}]})
    assert level(whole, verb="get", api_group="apps", resource="deployments", subresource="scale", **ALICE) == "Metadata"
    assert level(whole, verb="get", api_group="batch", resource="jobs", **ALICE) == "None"


def test_non_resource_url_prefix_matching():
    def lv(pattern, path):
        return level(pol({"level": "Metadata", "nonResourceURLs": [pattern]}), verb="get", path=path,
                     resource_request=False, **ALICE)

    assert lv("/healthz*", "/healthz") == "Metadata"
    assert lv("/healthz*", "/healthz/etcd") == "Metadata"
    assert lv("/healthz*", "/healthzfoo") == "Metadata"
    assert lv("/api*", "/apis") == "Metadata"
    assert lv("/apis/*", "/apis") == "None"
    assert lv("/*", "/") == "Metadata"
    assert lv("*", "/anything") == "Metadata"
    assert lv("/healthz", "/healthz/etcd") == "None"


def test_resource_versus_non_resource_branches():
    ns_rule = pol({"level": "Metadata", "namespaces": [""]})
    assert level(ns_rule, verb="get", path="/healthz", resource_request=False, **ALICE) == "None"
    assert level(ns_rule, verb="get", resource="nodes", namespace="", **ALICE) == "Metadata"
    url_rule = pol({"level": "Metadata", "nonResourceURLs": ["/api/*"]})
    # A resource request whose path fits the pattern still does not match a non-resource rule.
    assert level(url_rule, verb="get", resource="pods", path="/api/v1/pods", **ALICE) == "None"
    neither = pol({"level": "Metadata", "verbs": ["get"]})
    assert level(neither, verb="get", resource="pods", **ALICE) == "Metadata"
    assert level(neither, verb="get", path="/version", resource_request=False, **ALICE) == "Metadata"


def test_non_resource_verbs_are_http_methods():
    p = pol({"level": "Metadata", "verbs": ["create"]})
    req = parse_request("POST", "/apis/example.com/v1", "alice")
    assert (req.resource_request, req.verb) == (False, "post")
    assert p.evaluate(req).level == "None"
    assert p.evaluate(parse_request("POST", "/api/v1/namespaces/a/pods", "alice")).level == "Metadata"


def test_user_and_group_matching_without_a_user():
    by_user = pol({"level": "Metadata", "users": ["system:anonymous"]}, {"level": "Request"})
    by_group = pol({"level": "Metadata", "userGroups": ["system:unauthenticated"]}, {"level": "Request"})
    anon = {"user": "system:anonymous", "groups": ["system:unauthenticated"], "verb": "get", "resource": "pods"}
    assert level(by_user, **anon) == "Metadata"
    assert level(by_group, **anon) == "Metadata"
    failed = {"user": None, "verb": "get", "resource": "pods"}
    assert level(by_user, **failed) == "Request"  # falls through to the unconditional rule
    assert level(by_group, **failed) == "Request"
    # A user without groups never matches a userGroups rule.
    assert level(by_group, user="carol", groups=[], verb="get", resource="pods") == "Request"


def test_omit_stages_union_and_default():
    p = pol({"level": "Metadata", "verbs": ["get"], "omitStages": ["ResponseStarted", "RequestReceived"]},
            {"level": "Request", "verbs": ["list"]}, omitStages=["RequestReceived"])
    d = p.evaluate(Request(verb="get", resource="pods", **ALICE))
    assert set(d.omit_stages) == {"RequestReceived", "ResponseStarted"}
    assert len(d.omit_stages) == 2
    assert set(p.evaluate(Request(verb="list", resource="pods", **ALICE)).omit_stages) == {"RequestReceived"}
    d = p.evaluate(Request(verb="delete", resource="pods", **ALICE))
    assert (d.level, d.omit_stages) == ("None", ("RequestReceived",))
    assert d.records("ResponseComplete") is False


def test_omit_managed_fields_precedence():
    p = pol({"level": "Request", "verbs": ["get"], "omitManagedFields": False},
            {"level": "Request", "verbs": ["list"]}, omitManagedFields=True)
    assert p.evaluate(Request(verb="get", resource="pods", **ALICE)).omit_managed_fields is False
    assert p.evaluate(Request(verb="list", resource="pods", **ALICE)).omit_managed_fields is True
    assert p.evaluate(Request(verb="watch", resource="pods", **ALICE)).omit_managed_fields is True
    q = pol({"level": "Request", "omitManagedFields": True})
    assert q.evaluate(Request(verb="get", resource="pods", **ALICE)).omit_managed_fields is True
    assert q.omit_managed_fields is False


def test_impersonation_uses_the_authenticated_user():
    p = pol({"level": "None", "users": ["system:admin"]}, {"level": "RequestResponse", "users": ["alice"]},
            {"level": "Metadata"})
    event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "1", "stage": "ResponseComplete",
             "verb": "list", "requestURI": "/api/v1/namespaces/a/secrets",
             "user": {"username": "alice", "groups": ["system:authenticated"]},
             "impersonatedUser": {"username": "system:admin", "groups": ["system:masters"]},
             "objectRef": {"resource": "secrets", "namespace": "a", "apiVersion": "v1"}}
    assert p.evaluate_event(event).level == "RequestResponse"


def test_namespace_object_addressed_by_name_has_itself_as_namespace():
    req = parse_request("GET", "/api/v1/namespaces/prod", "alice")
    assert (req.resource, req.name, req.namespace, req.verb) == ("namespaces", "prod", "prod", "get")
    listing = parse_request("GET", "/api/v1/namespaces", "alice")
    assert (listing.namespace, listing.verb) == ("", "list")
    fin = parse_request("PUT", "/api/v1/namespaces/prod/finalize", "alice")
    assert (fin.resource, fin.subresource, fin.namespace) == ("namespaces", "finalize", "prod")
    p = pol({"level": "Metadata", "namespaces": [""], "resources": [{"resources": ["namespaces"]}]})
    assert p.evaluate(req).level == "None"
    assert p.evaluate(listing).level == "Metadata"


@pytest.mark.parametrize(
    ("method", "uri", "expect"),
    [
        ("GET", "/api/v1/namespaces/a/pods", (True, "list", "pods", "", "")),
        ("GET", "/api/v1/namespaces/a/pods?watch=1", (True, "watch", "pods", "", "")),
        ("GET", "/api/v1/watch/namespaces/a/pods", (True, "watch", "pods", "", "")),
        ("DELETE", "/api/v1/namespaces/a/pods", (True, "deletecollection", "pods", "", "")),
        ("DELETE", "/api/v1/namespaces/a/pods/x", (True, "delete", "pods", "", "x")),
        ("HEAD", "/api/v1/namespaces/a/pods/x", (True, "get", "pods", "", "x")),
        ("POST", "/api/v1/namespaces/a/pods/x/exec", (True, "create", "pods", "exec", "x")),
        ("GET", "/api/v1/namespaces/a/pods/x/exec", (True, "get", "pods", "exec", "x")),
        ("GET", "/api/v1/namespaces/a/pods/x/proxy/metrics", (True, "get", "pods", "proxy", "x")),
        ("GET", "/api/v1/proxy/namespaces/a/pods/x/metrics", (True, "proxy", "pods", "", "x")),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", (True, "patch", "deployments", "scale", "d")),
        ("GET", "/apis/apps/v1", (False, "get", "", "", "")),
        ("GET", "/api/v1", (False, "get", "", "", "")),
        ("GET", "/healthz", (False, "get", "", "", "")),
        ("OPTIONS", "/openapi/v3", (False, "options", "", "", "")),
    ],
)
def test_request_info_parsing(method, uri, expect):
    r = parse_request(method, uri, "alice")
    assert (r.resource_request, r.verb, r.resource, r.subresource, r.name) == expect


def test_websocket_exec_misses_a_create_only_rule():
    p = pol({"level": "RequestResponse", "verbs": ["create"], "resources": [{"resources": ["pods/exec"]}]},
            {"level": "Metadata"})
    spdy = parse_request("POST", "/api/v1/namespaces/a/pods/x/exec?command=sh", "alice")
    ws = parse_request("GET", "/api/v1/namespaces/a/pods/x/exec?command=sh", "alice")
    assert p.evaluate(spdy).level == "RequestResponse"
    assert p.evaluate(ws).level == "Metadata"
    assert ws.long_running and spdy.long_running


def test_request_from_event_create_has_no_name_and_no_objectref_is_non_resource():
    create = {"verb": "create", "requestURI": "/api/v1/namespaces/a/secrets",
              "user": {"username": "alice", "groups": ["g"]},
              "objectRef": {"resource": "secrets", "namespace": "a", "name": "db", "apiVersion": "v1"}}
    r = request_from_event(create)
    assert (r.name, r.namespace, r.resource_request, r.groups) == ("", "a", True, ("g",))
    nr = request_from_event({"verb": "get", "requestURI": "/version?timeout=32s", "user": {"username": "bob"}})
    assert (nr.resource_request, nr.path) == (False, "/version")
    failed = request_from_event({"verb": "list", "requestURI": "/api/v1/pods", "user": {},
                                 "objectRef": {"resource": "pods"}})
    assert failed.user is None


def test_evaluate_event_accepts_audit_events():
    from kubehawk.event import event_from_dict

    p = pol({"level": "Request", "resources": [{"group": "rbac.authorization.k8s.io"}]}, {"level": "Metadata"})
    ev = event_from_dict({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "x", "verb": "create",
                          "requestURI": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                          "user": {"username": "alice"},
                          "objectRef": {"resource": "clusterrolebindings", "apiGroup": "rbac.authorization.k8s.io"}})
    d = p.evaluate_event(ev)
    assert (d.level, d.rule_index) == ("Request", 0)
