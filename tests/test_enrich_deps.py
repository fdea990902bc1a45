"""The rule index trusts two claims of kubehawk.enrich; check them on random events.

DERIVED_DEPS: two events that agree on the listed head fields agree on the derived value.
derived_gates: when a gate says "not possible", the derived value is absent (false).
"""

from __future__ import annotations

import copy
import random

import pytest

from kubehawk.config import Config
from kubehawk.event import event_from_dict
from kubehawk.event_schema import has_body
from kubehawk.fieldpath import split_path
from kubehawk.xclaims import DERIVED_DEPS, derived_gates

CFG = Config.from_dict({
    "gitops": {"identities": ["system:serviceaccount:argocd:argocd-application-controller"], "namespaces": ["bank"]},
    "honeytokens": {"serviceaccounts": ["kube-system/backup-operator"], "secrets": ["default/db-admin-credentials"]},
    "allowlists": {"privileged": [{"namespace": "kube-system", "serviceaccount": "*"}]},
})
NO_HONEY = Config.from_dict({"gitops": {"namespaces": ["bank"]}})

USERS = ["alice", "system:anonymous", "system:serviceaccount:kube-system:backup-operator",
         "system:serviceaccount:argocd:argocd-application-controller", "system:serviceaccount:bank:app",
         "system:node:n1", "system:kube-scheduler", "eks:addon", None]
GROUPS = [["system:authenticated"], ["system:unauthenticated"], ["system:masters"], [], None]
RESOURCES = ["pods", "deployments", "cronjobs", "podtemplates", "secrets", "serviceaccounts", "configmaps", None]
SUBS = [None, None, "status", "binding", "exec", "attach", "portforward", "ephemeralcontainers", "log"]
URIS = ["/api/v1/namespaces/default/pods/p/exec?command=sh&tty=true&stdin=1", "/healthz", "/livez/etcd",
        "/version", "/api/v1/pods?watch=1", "/api/v1/namespaces/default/pods/p/attach?container=c"]


def body(rng: random.Random) -> object:
    spec = {"containers": [{"name": "c", "image": rng.choice(["nginx", "quay.io/x/y:1"])}], "hostPID": True}
    return rng.choice([
        {"kind": "Pod", "spec": spec},
        {"kind": "Deployment", "spec": {"template": {"spec": spec}}},
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}},
        {"template": {"spec": spec}},
        [{"op": "add", "path": "/spec/containers/0", "value": {"name": "d", "image": "busybox"}}],
        {"kind": "Binding"},
        [],
    ])


def random_event(rng: random.Random) -> dict:
    obj = {k: v for k, v in (("resource", rng.choice(RESOURCES)), ("subresource", rng.choice(SUBS)),
                            ("namespace", rng.choice(["default", "kube-system", "bank", None])),
                            ("name", rng.choice(["db-admin-credentials", "backup-operator", "p", None])))
           if v is not None}
    d: dict = {
        "auditID": str(rng.random()), "verb": rng.choice(["get", "list", "watch", "create", "patch", "delete"]),
        "user": {"username": rng.choice(USERS), "groups": rng.choice(GROUPS)},
        "objectRef": obj, "requestURI": rng.choice(URIS), "sourceIPs": [rng.choice(["10.0.0.1", "192.168.1.1"])],
        "responseStatus": {"code": rng.choice([200, 403])},
        "stageTimestamp": rng.choice(["2026-11-23T10:00:00Z", "2026-11-22T23:00:00Z"]),
    }
    if rng.random() < 0.6:
        d["annotations"] = {"authorization.k8s.io/decision": rng.choice(["allow", "forbid"])}
    if rng.random() < 0.2:
        d["impersonatedUser"] = {"username": rng.choice(["bob", "carol"])}
    if rng.random() < 0.5:
        d["requestObject"] = body(rng)
    if rng.random() < 0.3:
        d["responseObject"] = body(rng)
    return d


def _set(d: dict, path: str, value: object) -> None:
    parts = split_path(path)
    if parts[0] == "annotations":
        parts = ("annotations", ".".join(parts[1:]))
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _get(d: dict, path: str) -> object:
    parts = split_path(path)
    if parts[0] == "annotations":
        parts = ("annotations", ".".join(parts[1:]))
    node: object = d
    for p in parts:
        node = node.get(p) if isinstance(node, dict) else None
    return node


def x(d: dict, cfg: Config | None, key: str) -> object:
    e = event_from_dict(d)
    e.bind_context(cfg)
    return e.derived.get(key)


@pytest.mark.parametrize("cfg", [CFG, NO_HONEY, None])
@pytest.mark.parametrize("key", sorted(DERIVED_DEPS))
def test_derived_value_depends_only_on_its_listed_fields(key, cfg):
    rng = random.Random(hash(key) & 0xFFFF)
    same = 0
    for _ in range(400):
        a, b = random_event(rng), random_event(rng)
        for dep in DERIVED_DEPS[key]:
            if dep.startswith("?"):  # presence only: b keeps its own content
                path = dep[1:]
                if _get(a, path) is None:
                    _set(b, path, None)
                elif _get(b, path) is None:
                    _set(b, path, copy.deepcopy(_get(a, path)) if not isinstance(_get(a, path), dict)
                         else {"username": "someone-else"})
            else:
                _set(b, path := dep, copy.deepcopy(_get(a, path)))
        va, vb = x(a, cfg, key), x(b, cfg, key)
        assert va == vb, (key, a, b)
        same += va is not None
    assert same > 0  # the value was computed, not merely absent on both sides


@pytest.mark.parametrize("cfg", [CFG, NO_HONEY, None])
def test_closed_gate_means_absent(cfg):
    gates = derived_gates(cfg)
    rng = random.Random(5)
    closed = opened = 0
    for _ in range(1500):
        d = random_event(rng)
        e = event_from_dict(d)
        e.bind_context(cfg)
        for key, (fields, possible) in gates.items():
            args = []
            for f in fields:
                if f.startswith("?"):
                    raw = getattr(e.head, f[1:])
                    args.append(has_body(raw))
                else:
                    args.append(_get(d, f))
            name, _, sub = key.partition(".")  # "source.ioc": one key of a mapping
            value = e.derived.get(name)
            if sub:
                value = value.get(sub) if isinstance(value, dict) else None
            if possible(*args):
                opened += value not in (None, False)
            else:
                closed += 1
                assert value in (None, False), (key, d)
    assert closed > 1000 and opened > 50


def test_uri_path_matches_urlsplit():
    from urllib.parse import urlsplit

    from kubehawk.workloads import _uri_path

    rng = random.Random(3)
    alphabet = "/?#:ab\t\n\r %.hz"
    uris = ["/healthz", "/livez?verbose", "/readyz/etcd#x", "//host/healthz", "http://a/healthz", " /healthz", ""]
    uris += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(20000)]
    for u in uris:
        assert _uri_path(u) == urlsplit(u).path, repr(u)
