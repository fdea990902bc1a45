import pytest

from kubehawk.config import Config
from kubehawk.event import event_from_dict
from kubehawk.workloads import image_registry, pod_spec_of

from helpers import audit

CFG = Config.from_dict({
    "timezone": "Europe/Moscow",
    "business_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "19:00"},
    "gitops": {"identities": ["system:serviceaccount:argocd:argocd-application-controller"], "namespaces": ["bank"]},
    "honeytokens": {"serviceaccounts": ["kube-system/backup-operator"], "secrets": ["default/db-admin-credentials"]},
    "allowlists": {"privileged": [{"namespace": "kube-system", "serviceaccount": "*"}, {"image": "registry.k8s.io/*"}]},
})


def ev(cfg=CFG, **kw):
    e = event_from_dict(audit(**kw))
    e.bind_context(cfg)
    return e


SPEC = {"containers": [{"name": "a", "image": "nginx"}], "initContainers": [{"name": "i", "image": "ghcr.io/x/init:1"}],
        "ephemeralContainers": [{"name": "dbg", "image": "localhost:5000/busybox", "securityContext": {"privileged": True}}]}


@pytest.mark.parametrize("resource, obj", [
    ("pods", {"kind": "Pod", "spec": SPEC}),
    ("deployments", {"kind": "Deployment", "spec": {"template": {"spec": SPEC}}}),
    ("statefulsets", {"spec": {"template": {"spec": SPEC}}}),
    ("daemonsets", {"spec": {"template": {"spec": SPEC}}}),
    ("replicasets", {"spec": {"template": {"spec": SPEC}}}),
    ("jobs", {"spec": {"template": {"spec": SPEC}}}),
    ("cronjobs", {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": SPEC}}}}}),
    ("podtemplates", {"template": {"spec": SPEC}}),
])
def test_pod_spec_everywhere_and_all_containers(resource, obj):
    e = ev(verb="create", objectRef={"resource": resource, "namespace": "web"}, requestObject=obj)
    assert e.get("x.pod_spec.serviceAccountName") == []
    assert e.get("x.containers.name") == ["a", "i", "dbg"]
    assert e.get("x.containers.securityContext.privileged") == [True]
    assert e.get("x.images") == ["nginx", "ghcr.io/x/init:1", "localhost:5000/busybox"]
    assert e.get("x.registry") == ["docker.io", "ghcr.io", "localhost:5000"]
    assert e.get("x.workload") == [True]


def test_json_patch_is_folded_into_an_object():
    patch = [{"op": "add", "path": "/spec/template/spec/containers/0/securityContext",
              "value": {"privileged": True}},
             {"op": "remove", "path": "/spec/template/spec/hostPID"}]
    e = ev(verb="patch", objectRef={"resource": "deployments", "namespace": "web", "apiGroup": "apps"},
           requestObject=patch)
    assert e.get("x.containers.securityContext.privileged") == [True]
    assert pod_spec_of([{"op": "add", "path": "/spec/hostPID", "value": True}], "pods") == {"hostPID": True}


def test_response_object_used_when_no_request_body():
    e = ev(verb="create", objectRef={"resource": "pods", "namespace": "web"}, responseObject={"spec": SPEC})
    assert len(e.get("x.containers")) == 3
    assert ev(objectRef={"resource": "secrets"}).get("x.pod_spec") == []


@pytest.mark.parametrize("uri, command, shell, tty", [
    ("/api/v1/namespaces/ns/pods/p/exec?command=%2Fbin%2Fbash&container=c&stdin=true&tty=true", ["/bin/bash"], True, True),
    ("/api/v1/namespaces/ns/pods/p/exec?command=ls&command=-la&stdout=true", ["ls", "-la"], False, False),
    ("/api/v1/namespaces/ns/pods/p/exec?command=env&command=sh", ["env", "sh"], True, False),
])
def test_exec_command_decoded(uri, command, shell, tty):
    e = ev(verb="get", requestURI=uri, objectRef={"resource": "pods", "subresource": "exec", "namespace": "ns", "name": "p"})
    assert e.get("x.exec.command") == command
    assert e.get("x.exec.command_line") == [" ".join(command)]
    assert e.get("x.exec.shell") == [shell]
    assert e.get("x.exec.tty") == [tty]
    assert ev().get("x.exec.command") == []  # not an exec


@pytest.mark.parametrize("user, groups, identity, system", [
    ("system:anonymous", ["system:unauthenticated"], "anonymous", False),
    ("system:node:n1", ["system:nodes"], "node", True),
    ("system:serviceaccount:kube-system:coredns", [], "serviceaccount", True),
    ("system:serviceaccount:web:frontend", [], "serviceaccount", False),
    ("system:kube-controller-manager", [], "controlplane", True),
    ("alice", ["devs"], "user", False),
])
def test_identity(user, groups, identity, system):
    e = ev(user={"username": user, "groups": groups})
    assert e.get("x.identity") == [identity]
    assert e.get("x.system") == [system]


def test_serviceaccount_and_node_names():
    e = ev(user={"username": "system:serviceaccount:web:frontend"})
    assert (e.get("x.sa.namespace"), e.get("x.sa.name")) == (["web"], ["frontend"])
    assert ev(user={"username": "system:node:ip-1"}).get("x.node") == ["ip-1"]
    assert ev().get("x.sa.name") == []


@pytest.mark.parametrize("utc, inside", [
    ("2026-11-23T06:30:00Z", True),    # Monday 09:30 in Moscow
    ("2026-11-23T05:59:59Z", False),   # Monday 08:59:59
    ("2026-11-23T16:00:00Z", False),   # Monday 19:00 (end is exclusive)
    ("2026-11-28T10:00:00Z", False),   # Saturday
])
def test_business_hours_in_config_timezone(utc, inside):
    e = ev(stageTimestamp=utc)
    assert e.get("x.business_hours") == [inside]
    assert e.get("x.off_hours") == [not inside]


def test_gitops_and_honeytokens():
    argo = ev(user={"username": "system:serviceaccount:argocd:argocd-application-controller"},
              objectRef={"resource": "deployments", "namespace": "bank"})
    assert argo.get("x.gitops.identity") == [True] and argo.get("x.gitops.namespace") == [True]
    secret = ev(objectRef={"resource": "secrets", "namespace": "default", "name": "db-admin-credentials"})
    assert secret.get("x.honeytoken") == [True] and secret.get("x.honeytoken_kind") == ["secret"]
    listing = ev(verb="list", objectRef={"resource": "secrets", "namespace": "default"})
    assert listing.get("x.honeytoken_kind") == ["secret-list"]
    denied = ev(verb="list", objectRef={"resource": "secrets", "namespace": "default"},
                responseStatus={"code": 403}, annotations={"authorization.k8s.io/decision": "forbid"})
    assert denied.get("x.honeytoken") == [False]
    used = ev(user={"username": "system:serviceaccount:kube-system:backup-operator"})
    assert used.get("x.honeytoken_kind") == ["serviceaccount-token-used"]
    other = ev(objectRef={"resource": "secrets", "namespace": "default", "name": "other"})
    assert other.get("x.honeytoken") == [False]
    assert ev(cfg=None, objectRef={"resource": "secrets", "namespace": "default",
                                   "name": "db-admin-credentials"}).get("x.honeytoken") == [False]


def test_allowlists():
    def pod(ns, image):
        return ev(verb="create", objectRef={"resource": "pods", "namespace": ns},
                  requestObject={"metadata": {"namespace": ns}, "spec": {"containers": [{"image": image}]}})
    assert pod("kube-system", "evil.io/x").get("x.allowlisted.privileged") == [True]
    assert pod("web", "registry.k8s.io/pause:3.9").get("x.allowlisted.privileged") == [True]
    assert pod("web", "registry.k8s.io:5000/pause").get("x.allowlisted.privileged") == [False]
    assert pod("web", "nginx").get("x.allowlisted.nothing") == []


def test_health_endpoints_and_misc():
    assert ev(requestURI="/healthz/etcd", objectRef=None).get("x.health_endpoint") == [True]
    assert ev(requestURI="/readyzz", objectRef=None).get("x.health_endpoint") == [False]
    assert ev().get("x.decision") == ["allow"]
    assert ev(impersonatedUser={"username": "bob"}).get("x.impersonated") == [True]


_SHAPES = [
    {"requestURI": uri} for uri in ["/healthz", "/healthz/etcd", "/livez?verbose", "/readyzz", "/version", "/versions",
                                    "/api/v1/pods", "", None, "/readyz/"]
] + [
    {"objectRef": {"resource": "secrets", "namespace": "default", "name": "db-admin-credentials"}},
    {"objectRef": {"resource": "secrets", "namespace": "default", "name": "other"}},
    {"objectRef": {"resource": "secrets", "namespace": "default"}, "verb": "list"},
    {"objectRef": {"resource": "secrets"}, "verb": "watch"},
    {"objectRef": {"resource": "secrets", "namespace": "shop"}, "verb": "list"},
    {"objectRef": {"resource": "secrets", "namespace": "default"}, "verb": "list", "responseStatus": {"code": 403}},
    {"objectRef": {"resource": "secrets", "namespace": "default"}, "verb": "list",
     "annotations": {"authorization.k8s.io/decision": "forbid"}},
    {"objectRef": {"resource": "secrets", "namespace": "default"}, "verb": "list",
     "user": {"username": "system:serviceaccount:kube-system:generic", "groups": []}},
    {"objectRef": {"resource": "serviceaccounts", "namespace": "kube-system", "name": "backup-operator"}},
    {"user": {"username": "system:serviceaccount:kube-system:backup-operator"}},
    {"user": {"username": None}, "objectRef": None},
    {"user": {"username": "system:node:ip-10-0-0-1", "groups": ["system:nodes"]}},
    {"user": {"username": "system:kube-controller-manager"}},
    {"user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]}},
    {"user": {"username": "mallory", "groups": ["system:unauthenticated"]}},
    {"user": {"username": "system:serviceaccount:shop:api"}, "annotations": {"authorization.k8s.io/decision": "allow"}},
    {"user": {"username": "eks:node-manager"}, "annotations": {}},
    {"sourceIPs": ["203.0.113.9", "10.0.0.7"], "impersonatedUser": {"username": "system:admin"},
     "objectRef": {"resource": "deployments", "namespace": "web"}},
    {"sourceIPs": [], "objectRef": {"resource": "pods", "subresource": "exec"}},
]


@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("cfg", [CFG, None, Config.from_dict({"honeytokens": {"secrets": ["default/db-admin-credentials"]}})])
def test_event_only_fields_answer_like_the_view(shape, cfg):
    """x.* fields computed without the Derived view (EVENT_ONLY) give the view's answers."""
    from kubehawk.enrich import EVENT_ONLY, Derived

    assert {"health_endpoint", "honeytoken", "honeytoken_kind", "identity", "sa", "system", "decision", "node",
            "source_ip", "impersonated", "workload"} <= set(EVENT_ONLY)
    for name in EVENT_ONLY:
        fast = ev(cfg, **shape)
        view = ev(cfg, **shape)
        assert fast.derived_value(name) == Derived(view, view._ctx).get(name)
        assert fast.derived_value(name) == fast.derived.get(name)  # cached once, read by both paths


def test_image_registry():
    assert image_registry("nginx:1.25") == "docker.io"
    assert image_registry("library/nginx") == "docker.io"
    assert image_registry("quay.io/x/y") == "quay.io"
    assert image_registry("10.0.0.1:5000/x") == "10.0.0.1:5000"
