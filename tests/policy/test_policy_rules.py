"""The rule-dependent parts: generate, coverage, simulate (against the real rule engine)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kubehawk.event import event_from_dict
from kubehawk.policy import Policy
from kubehawk.policy.coverage import coverage, scope_requests
from kubehawk.policy.generate import generate
from kubehawk.policy.lint import lint_policy
from kubehawk.policy.simulate import filter_event, simulate
from kubehawk.rules import Scope, load_rules

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "kubehawk" / "policy" / "reference"


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(builtin=True)


@pytest.mark.parametrize("profile", ["minimal", "balanced", "forensic"])
def test_round_trip_generate_validate_lint_coverage(ruleset, profile):
    gen = generate(ruleset, profile)
    text = gen.to_yaml()
    policy = Policy.loads(text, source=f"generated-{profile}.yaml")  # the apiserver's checks
    assert not policy.warnings
    report = lint_policy(policy)
    serious = [(f.id, f.message) for f in report.findings if f.severity in ("medium", "high", "critical")]
    assert serious == []
    cov = coverage(policy, ruleset)
    assert cov.counts()["fed"] == len(ruleset) > 0
    assert cov.fed_fraction == 1.0
    # Comments name the rules each policy rule serves.
    needing = [r for r in ruleset if any(s.level != "Metadata" for s in r.scopes)]
    assert needing
    for r in needing:
        assert r.id[:8] in text, r.title
    # Never secrets above Metadata.
    from kubehawk.policy.request import Request

    for verb in ("get", "list", "create", "update", "patch"):
        for res, group in (("secrets", ""), ("configmaps", ""), ("tokenreviews", "authentication.k8s.io")):
            d = policy.evaluate(Request(user="alice", groups=["system:authenticated"], verb=verb, api_group=group,
                                        resource=res, namespace="default"))
            assert d.level == "Metadata", (verb, res, d)


def test_profiles_differ_in_volume(ruleset):
    from kubehawk.policy.request import Request

    pols = {p: generate(ruleset, p).policy() for p in ("minimal", "balanced", "forensic")}
    req = Request(user="alice", groups=["system:authenticated"], verb="update", api_group="example.com",
                  resource="widgets", namespace="default", name="w")
    assert pols["forensic"].evaluate(req).level == "Request"
    assert pols["balanced"].evaluate(req).level == "Metadata"
    ev = Request(user="system:node:n1", groups=["system:nodes"], verb="create", resource="events", namespace="default")
    assert pols["forensic"].evaluate(ev).level != "None"
    assert pols["balanced"].evaluate(ev).level == "None"
    assert pols["forensic"].omit_managed_fields is False and pols["minimal"].omit_managed_fields is True


SIGMA_RULE = """
title: NetworkPolicy read back in full
id: 7d3c1f2e-0a9b-4c6d-8e1f-2a3b4c5d6e7f
status: experimental
description: test rule reading the response body
logsource:
  product: kubernetes
  service: audit
detection:
  selection:
    verb: get
    objectRef.resource: networkpolicies
    objectRef.apiGroup: networking.k8s.io
    responseObject.spec.podSelector|exists: true
  condition: selection
level: low
"""


def test_generated_policy_grows_with_the_rules(tmp_path):
    (tmp_path / "np.yml").write_text(SIGMA_RULE)
    rs = load_rules(paths=[tmp_path], builtin=False)
    gen = generate(rs, "minimal")
    policy = Policy.loads(gen.to_yaml())
    [detail] = [e for e in gen.entries if e.section == "detail"]
    assert detail.rule.level == "RequestResponse"
    assert detail.rule.verbs == ("get",)
    assert [(g.group, g.resources) for g in detail.rule.resources] == [("networking.k8s.io", ("networkpolicies",))]
    assert any("NetworkPolicy read back in full" in s for s in detail.serves)
    assert coverage(policy, rs).fed_fraction == 1.0
    # Without that rule, the same request is only Metadata.
    base = Policy.loads(generate([], "minimal").to_yaml())
    assert coverage(base, rs).rules[0].status == "blind"


def test_noise_rule_that_would_blind_a_rule_is_left_out(tmp_path):
    (tmp_path / "kp.yml").write_text(SIGMA_RULE.replace("7d3c1f2e", "8d3c1f2e").replace(
        "    verb: get\n    objectRef.resource: networkpolicies\n    objectRef.apiGroup: networking.k8s.io\n"
        "    responseObject.spec.podSelector|exists: true\n",
        "    user.username: system:kube-proxy\n    verb: watch\n    objectRef.resource: endpointslices\n"))
    rs = load_rules(paths=[tmp_path], builtin=False)
    gen = generate(rs, "balanced")
    assert gen.dropped_noise == ["kube-proxy watches"]
    assert coverage(Policy.loads(gen.to_yaml()), rs).fed_fraction == 1.0


# --- coverage --------------------------------------------------------------------------------


@dataclass
class FakeRule:
    id: str
    title: str
    scopes: list
    kind: str = "event"
    audit_level: str = "Metadata"
    extra: dict = field(default_factory=dict)


def pol(*rules, **top):
    return Policy.from_dict({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def test_a_rule_matching_anything_is_fed_only_where_the_policy_keeps_it():
    anything = FakeRule("any", "any request", [Scope()])
    assert coverage(pol({"level": "Metadata"}), [anything]).rules[0].status == "fed"
    dropped = pol({"level": "None", "resources": [{"group": "apps"}]}, {"level": "Metadata"})
    rc = coverage(dropped, [anything]).rules[0]
    assert rc.status == "partial"
    assert all(g.request.api_group == "apps" for g in rc.gaps)
    assert rc.fix.startswith("insert before rules[0]: - {level: Metadata")
    assert coverage(pol({"level": "None"}), [anything]).rules[0].status == "blind"


def test_level_and_stage_requirements():
    needs_body = FakeRule("b", "pod spec", [Scope(verbs=frozenset({"create"}), resources=frozenset({"pods"}),
                                                  level="Request")], audit_level="Request")
    assert coverage(pol({"level": "Metadata"}), [needs_body]).rules[0].status == "blind"
    assert coverage(pol({"level": "Request"}), [needs_body]).rules[0].status == "fed"
    omitted = coverage(pol({"level": "Request", "omitStages": ["ResponseComplete"]}), [needs_body]).rules[0]
    assert omitted.status == "blind" and "stage" in omitted.gaps[0].why
    assert omitted.fix == "remove ResponseComplete from omitStages of rules[0]"
    # Long-running requests are fed by ResponseStarted alone.
    exec_rule = FakeRule("e", "exec", [Scope(verbs=frozenset({"get", "create"}), resources=frozenset({"pods"}),
                                             subresources=frozenset({"exec"}))])
    assert coverage(pol({"level": "Metadata", "omitStages": ["ResponseComplete"]}), [exec_rule]).rules[0].status == "fed"


def test_secret_bodies_are_capped_not_counted_as_gaps():
    secret_body = FakeRule("s", "secret body", [Scope(verbs=frozenset({"create"}), resources=frozenset({"secrets"}),
                                                      level="Request")], audit_level="Request")
    rc = coverage(pol({"level": "Metadata"}), [secret_body]).rules[0]
    assert rc.status == "fed" and len(rc.capped) == 4  # two identities x two namespaces
    assert coverage(pol({"level": "None"}), [secret_body]).rules[0].status == "blind"


def test_scope_requests_use_the_rule_users_and_catalog_groups():
    reqs = list(scope_requests(Scope(users=frozenset({"system:serviceaccount:ci:bot"}), resources=frozenset({"deployments"}),
                                     verbs=frozenset({"patch"}))))
    assert {(r.user, r.api_group, r.verb) for r in reqs} == {("system:serviceaccount:ci:bot", "apps", "patch")}
    assert "system:serviceaccounts:ci" in reqs[0].groups
    assert {r.namespace for r in reqs} == {"default", "kube-system"}


def test_reference_policies_coverage(ruleset):
    gke_policy = Policy.load(REFERENCE / "gke.yaml")
    gke = coverage(gke_policy, ruleset)
    assert gke.counts()["fed"] >= len(ruleset) - 5
    # What GKE does not feed comes from two of its rules only: core events dropped (rules[9]) and
    # serviceaccounts/token kept at Metadata (rules[13]).
    for rc in gke.rules:
        assert {g.decision.rule_index for g in rc.gaps} <= {9, 13}, (rc.title, rc.gaps[0].describe())
    osd = coverage(Policy.load(REFERENCE / "openshift-default.yaml"), ruleset)
    c = osd.counts()
    assert c["blind"] > 0 and c["fed"] > 0 and c["fed"] + c["partial"] + c["blind"] == len(ruleset)
    # Every workload/RBAC body rule is blind under the Default profile (Metadata catch-all).
    body_rules = {r.id for r in ruleset if r.audit_level != "Metadata"}
    blind = {r.id for r in osd.rules if r.status == "blind"}
    assert blind and blind <= body_rules
    # Apply the one-line fix of a blind rule: it becomes fed.
    target = next(r for r in osd.rules if r.status == "blind")
    where, _, rule_text = target.fix.partition(": - ")
    index = int(where.split("rules[")[1].rstrip("]"))
    d = Policy.load(REFERENCE / "openshift-default.yaml").to_dict()
    d["rules"].insert(index, yaml.safe_load(rule_text))
    fixed = coverage(Policy.from_dict(d), [next(r for r in ruleset if r.id == target.id)])
    assert fixed.rules[0].status == "fed"
    wrb = coverage(Policy.load(REFERENCE / "openshift-writerequestbodies.yaml"), ruleset)
    assert wrb.counts()["blind"] < c["blind"]


# --- simulate --------------------------------------------------------------------------------


def _ev(i, stage="ResponseComplete", **kw):
    d = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": f"id-{i}",
         "stage": stage, "requestReceivedTimestamp": "2025-03-14T10:00:00Z", "stageTimestamp": "2025-03-14T10:00:01Z",
         "sourceIPs": ["203.0.113.5"], "userAgent": "kubectl/v1.31"}
    d.update(kw)
    return d


ALICE = {"username": "alice", "groups": ["system:authenticated"]}
POD = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "managedFields": [{"manager": "kubectl"}]},
       "spec": {"hostPID": True, "containers": [{"name": "c", "image": "busybox",
                                                  "securityContext": {"privileged": True}}]}}
LOG = [
    _ev(1, stage="RequestReceived", verb="create", requestURI="/api/v1/namespaces/default/pods", user=ALICE,
        objectRef={"resource": "pods", "namespace": "default", "apiVersion": "v1"}, requestObject=POD),
    _ev(1, verb="create", requestURI="/api/v1/namespaces/default/pods", user=ALICE,
        objectRef={"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"}, requestObject=POD,
        responseObject=POD, responseStatus={"code": 201}),
    _ev(2, level="Metadata", verb="get", user=ALICE,
        requestURI="/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true&tty=true",
        objectRef={"resource": "pods", "namespace": "default", "name": "p", "subresource": "exec", "apiVersion": "v1"},
        responseStatus={"code": 101}, stage="ResponseStarted"),
    _ev(3, level="Metadata", verb="get", requestURI="/healthz", user={"username": "system:anonymous",
                                                                      "groups": ["system:unauthenticated"]},
        responseStatus={"code": 200}),
    _ev(4, verb="list", requestURI="/api/v1/namespaces/default/secrets", user=ALICE,
        objectRef={"resource": "secrets", "namespace": "default", "apiVersion": "v1"},
        responseObject={"kind": "SecretList", "items": [{"data": {"password": "c2VjcmV0"}}]},
        responseStatus={"code": 200}),
]


@pytest.fixture
def log_file(tmp_path):
    f = tmp_path / "audit.log"
    f.write_text("".join(json.dumps(e) + "\n" for e in LOG) + "{broken json\n")
    return f


def test_simulate_counts_bytes_levels_and_missed_alerts(ruleset, log_file):
    from kubehawk.sources.files import ReadStats, read_paths

    metadata_only = pol({"level": "None", "nonResourceURLs": ["/healthz*"]}, {"level": "Metadata"},
                        omitStages=["RequestReceived"])
    stats = ReadStats()
    r = simulate(metadata_only, read_paths([log_file], stats), rules=ruleset)
    assert stats.bad == 1 and r.events == 5
    assert r.events_kept == 3 and r.events_dropped == 2
    assert r.drop_reasons == {"stage RequestReceived omitted": 1, "level None": 1}
    assert r.levels["Metadata"] == 4 and r.levels["None"] == 1
    assert r.by_rule[0].events_dropped == 1 and r.by_rule[1].events_kept == 3
    assert r.bytes_out < r.bytes_in
    missed = {m["title"] for m in r.missed}
    assert "Privileged container in a pod or workload template" in missed
    assert "Interactive shell opened in a pod" not in missed  # Metadata is enough for exec
    assert all(m["auditID"] == "id-1" for m in r.missed)
    out = r.to_dict()
    assert out["alerts"]["missed"] == len(r.missed) > 0
    assert out["by_rule"]["rules[1]"]["events_kept"] == 3

    generated = Policy.loads(generate(ruleset, "balanced").to_yaml())
    r2 = simulate(generated, read_paths([log_file], ReadStats()), rules=ruleset)
    assert r2.missed == [] and sum(r2.alerts_full.values()) == sum(r2.alerts_filtered.values()) > 0
    assert r2.levels["Request"] >= 1  # the pod create


def test_filter_event_cuts_bodies_by_level():
    ev = event_from_dict(LOG[1])
    meta = filter_event(ev, "Metadata")
    assert meta.request_object is None and meta.response_object is None and meta.head.level == "Metadata"
    assert meta.to_dict().keys().isdisjoint({"requestObject", "responseObject"})
    req = filter_event(ev, "Request")
    assert req.request_object["spec"]["hostPID"] is True and req.response_object is None
    assert filter_event(ev, "RequestResponse") is ev


def test_simulate_strips_managed_fields_when_the_policy_says_so(ruleset):
    p = pol({"level": "Request"}, omitManagedFields=True)
    events = [event_from_dict(LOG[1])]
    r = simulate(p, events, detect_alerts=False)
    assert r.events_kept == 1
    q = pol({"level": "Request"})
    r2 = simulate(q, [event_from_dict(LOG[1])], detect_alerts=False)
    assert r.bytes_out < r2.bytes_out
