"""Detection quality on real clusters (issue 13): one test per class of false alarm or misjudged identity.

Each test runs the whole pipeline (Detector with the built-in pack) on events shaped like the real
captures in ../shared/corpus/external-captures (minikube start-up, the training incident), so a fix
made for one rule cannot hide the class coming back through another.
"""

from __future__ import annotations

import pytest
from tests.rules.builtin_events import ev, pod, sa

from kubehawk.alerts import level_rank
from kubehawk.config import Config
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import load_rules

KUBEADM = "kubeadm/v1.34.0 (linux/arm64) kubernetes/f28b4c9"
ADMIN_GROUPS = ["kubeadm:cluster-admins", "system:authenticated"]
MASTERS = ["system:masters", "system:authenticated"]
NIGHT = "2026-06-13T02:00:00.000000Z"  # a Saturday night: the off-hours rules are live


@pytest.fixture(scope="module")
def pack():
    return load_rules(builtin=True)


def alerts(pack, *events, config: dict | None = None) -> dict[str, str]:
    """rule name -> level of every alert the events raise (one Detector, in order)."""
    det = Detector(pack, Config.from_dict(config or {}))
    out = {}
    for d in events:
        for a in det.process(event_from_dict(d)):
            out[a.rule.name] = a.level
    return out


def loud(found: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in found.items() if level_rank(v) >= level_rank("medium")}


# --- 2. cluster start-up is not an attack ---------------------------------------------------------------

def _startup():
    coredns = {"kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {"Corefile": "."}}
    storage = pod({"name": "storage-provisioner", "image": "gcr.io/k8s-minikube/storage-provisioner:v5"})
    storage["spec"]["hostNetwork"] = True
    storage["metadata"] = {"name": "storage-provisioner", "namespace": "kube-system"}
    return [
        ev("create", "configmaps", ns="kube-system", name="coredns", user="kubernetes-admin", groups=ADMIN_GROUPS,
           ua=KUBEADM, ip="192.168.49.2", body=coredns, code=201, time=NIGHT),
        ev("create", "serviceaccounts", ns="kube-system", name="kube-proxy", user="kubernetes-admin",
           groups=ADMIN_GROUPS, ua=KUBEADM, ip="192.168.49.2", code=201, time=NIGHT),
        ev("update", "configmaps", ns="kube-system", name="coredns", user="minikube", groups=MASTERS,
           ua="kubectl/v1.34.0 (linux/arm64)", ip="::1", body=coredns, time=NIGHT),
        ev("create", "serviceaccounts", ns="kube-system", name="storage-provisioner", user="minikube", groups=MASTERS,
           ua="kubectl/v1.34.0 (linux/arm64)", ip="::1", code=201, time=NIGHT),
        ev("create", "pods", ns="kube-system", user="minikube", groups=MASTERS, ua="kubectl/v1.34.0 (linux/arm64)",
           ip="::1", body=storage, code=201, time=NIGHT),
    ]


def test_installer_and_addon_manager_are_quiet(pack):
    assert loud(alerts(pack, *_startup())) == {}


def test_startup_recognition_can_be_turned_off(pack):
    found = loud(alerts(pack, *_startup(), config={"bootstrap": {"enabled": False}}))
    assert {"coredns-config-changed", "serviceaccount-created-in-system-namespace", "pod-in-system-namespace",
            "bare-pod-created", "host-network"} <= set(found)


def test_system_masters_from_a_laptop_is_not_startup(pack):
    """The same requests by a system:masters credential from outside the node, as kubectl, are alerts."""
    stolen = []
    for d in _startup():
        d = dict(d, sourceIPs=["192.168.49.1"], userAgent="kubectl/v1.35.0 (darwin/arm64)")
        d["user"] = {"username": "minikube-user", "groups": MASTERS}
        stolen.append(d)
    found = loud(alerts(pack, *stolen))
    assert {"coredns-config-changed", "pod-in-system-namespace", "serviceaccount-created-in-system-namespace"} <= set(found)


def test_installer_identity_outside_control_plane_objects_is_not_startup(pack):
    """kubeadm's user agent writing into an application namespace is judged like anyone else."""
    d = ev("create", "pods", ns="shop", user="kubernetes-admin", groups=ADMIN_GROUPS, ua=KUBEADM, ip="192.168.49.2",
           body=pod({"name": "x", "image": "alpine"}), code=201)
    assert "bare-pod-created" in alerts(pack, d)


# --- 3. in-cluster controllers are not GitOps drift ----------------------------------------------------

GITOPS = {"gitops": {"identities": [sa("argocd", "argocd-application-controller")], "namespaces": ["bank"]}}


@pytest.mark.parametrize("user", [sa("cert-manager", "cert-manager"), sa("external-secrets", "external-secrets"),
                                  sa("kube-system", "sealed-secrets-controller")])
def test_secret_controllers_writing_secrets_are_not_drift(pack, user):
    d = ev("update", "secrets", ns="bank", name="tls", user=user)
    assert "gitops-namespace-drift" not in alerts(pack, d, config=GITOPS)


def test_controllers_only_excused_for_what_they_write(pack):
    d = ev("patch", "deployments", ns="bank", name="web", group="apps", user=sa("cert-manager", "cert-manager"))
    assert "gitops-namespace-drift" in alerts(pack, d, config=GITOPS)


def test_hpa_and_vpa_are_not_drift(pack):
    hpa = ev("update", "deployments", ns="bank", name="web", sub="scale", group="apps",
             user=sa("kube-system", "horizontal-pod-autoscaler"))
    vpa = ev("create", "pods", ns="bank", name="web-1", sub="eviction", user=sa("vpa", "vpa-updater"))
    vpa_patch = ev("patch", "pods", ns="bank", name="web-1", user=sa("vpa", "vpa-updater"))
    assert "gitops-namespace-drift" not in alerts(pack, hpa, vpa, vpa_patch, config=GITOPS)


def test_person_changing_a_workload_is_drift(pack):
    d = ev("patch", "deployments", ns="bank", name="web", group="apps", user="alice@example.com")
    assert alerts(pack, d, config=GITOPS).get("gitops-namespace-drift") == "high"


def test_pods_logged_at_metadata_are_judged_by_who_created_them(pack):
    """Whether a pod is controller-owned is in the body; unlogged, it is unknown. A person creating one
    is drift (and an off-hours change) either way; a workload identity's pod at Metadata is not judged."""
    person = ev("create", "pods", ns="bank", time=NIGHT, level="Metadata")
    operator = ev("create", "pods", ns="bank", time=NIGHT, level="Metadata", user=sa("ops", "rollouts"))
    faked = ev("create", "pods", ns="bank", time=NIGHT, body=pod(owner=True))
    found = alerts(pack, person, config=GITOPS)
    assert {"gitops-namespace-drift", "workload-change-off-hours"} <= set(found)
    assert {"gitops-namespace-drift", "workload-change-off-hours"} & set(alerts(pack, operator, config=GITOPS)) == set()
    assert "gitops-namespace-drift" in alerts(pack, faked, config=GITOPS)  # a person's pod with an ownerReference


def test_users_add_their_own_controllers(pack):
    mine = {"gitops": dict(GITOPS["gitops"], controllers=[
        {"user": "system:serviceaccount:*:my-operator", "resources": ["configmaps"]}])}
    d = ev("update", "configmaps", ns="bank", name="state", user=sa("ops", "my-operator"))
    assert "gitops-namespace-drift" in alerts(pack, d, config=GITOPS)
    assert "gitops-namespace-drift" not in alerts(pack, d, config=mine)


# --- 4. the effective identity ---------------------------------------------------------------------------

MONITORING = {"username": sa("secure-ops", "monitoring"),
              "groups": ["system:serviceaccounts", "system:serviceaccounts:secure-ops", "system:authenticated"]}


def test_impersonated_serviceaccount_is_judged_as_a_serviceaccount(pack):
    """The training incident: minikube-user --as the monitoring ServiceAccount checks its rights, reads secrets."""
    det = Detector(pack, Config.from_dict({}))
    review = event_from_dict(ev("create", "selfsubjectaccessreviews", ns=None, group="authorization.k8s.io",
                                user="minikube-user", groups=MASTERS, imp=MONITORING, code=201))
    found = {a.rule.name: a for a in det.process(review)}
    assert "selfsubject-review-by-serviceaccount" in found
    assert found["selfsubject-review-by-serviceaccount"].message.startswith(
        "minikube-user as system:serviceaccount:secure-ops:monitoring")
    assert found["serviceaccount-impersonated-by-person"].level == "high"


def test_impersonating_a_system_identity_is_never_system(pack):
    d = ev("update", "configmaps", ns="kube-system", name="coredns", user="mallory", imp={"username": "system:kube-controller-manager"})
    e = event_from_dict(d)
    assert e.derived_value("system") is False
    assert e.derived_value("identity") == "controlplane"
    assert "coredns-config-changed" in alerts(pack, d)


def test_a_serviceaccount_impersonating_a_person_is_judged_as_the_person(pack):
    d = ev("create", "selfsubjectrulesreviews", ns=None, group="authorization.k8s.io", user=sa("pinniped", "proxy"),
           imp={"username": "john@example.org", "groups": ["developers"]})
    e = event_from_dict(d)
    assert e.derived_value("identity") == "user"
    assert e.derived_value("sa") is None
    assert "selfsubject-review-by-serviceaccount" not in alerts(pack, d)


# --- 5. network context -----------------------------------------------------------------------------------

NETS = {"networks": {"trusted": ["203.0.113.0/24"], "cluster": ["10.244.0.0/16"]}}


def test_serviceaccount_token_used_outside_the_cluster(pack):
    inside = ev("list", "secrets", ns="shop", user=sa("shop", "web"), ip="10.244.3.4")
    outside = ev("list", "secrets", ns="shop", user=sa("shop", "web"), ip="10.9.9.9")
    assert "cluster-credential-from-outside" not in alerts(pack, inside, config=NETS)
    assert alerts(pack, outside, config=NETS)["cluster-credential-from-outside"] == "high"
    # only the last sourceIPs entry counts (the others are client-written)
    assert "cluster-credential-from-outside" in alerts(pack, dict(outside, sourceIPs=["10.244.3.4", "34.1.2.3"]),
                                                       config=NETS)
    assert "cluster-credential-from-outside" not in alerts(pack, dict(outside, sourceIPs=["34.1.2.3", "10.244.3.4"]),
                                                           config=NETS)
    # silent until the cluster's networks are configured: every such request is then read for its source
    assert "cluster-credential-from-outside" not in alerts(pack, dict(outside, sourceIPs=["34.1.2.3"]))


def test_person_from_untrusted_network_needs_the_networks(pack):
    d = ev("delete", "deployments", ns="shop", name="web", group="apps", ip="34.1.2.3")
    assert "person-from-untrusted-network" not in alerts(pack, d)
    assert alerts(pack, d, config=NETS)["person-from-untrusted-network"] == "medium"
    assert "person-from-untrusted-network" not in alerts(pack, dict(d, sourceIPs=["203.0.113.8"]), config=NETS)


def test_ioc_list_feeds_a_rule(pack, tmp_path):
    ioc = tmp_path / "tor.txt"
    ioc.write_text("# exit nodes\n185.220.101.0/24\n2001:db8::/32  # a range\n")
    cfg = {"networks": {"ioc_file": str(ioc)}}
    hit = ev("get", "pods", ip="185.220.101.9")
    assert alerts(pack, hit, config=cfg)["ioc-source-address"] == "high"
    assert "ioc-source-address" not in alerts(pack, dict(hit, sourceIPs=["185.220.102.9"]), config=cfg)


def test_forbidden_burst_from_one_public_address(pack):
    events = [dict(ev("get", "secrets", ns="shop", name=f"s{i}", code=403, decision="forbid", ip="34.1.2.3",
                      user=f"u{i}"), stageTimestamp=f"2026-06-03T10:{i:02d}:00.000000Z") for i in range(10)]
    assert alerts(pack, *events)["forbidden-burst-from-public-address"] == "medium"


# --- 6. denied access to Secrets by a ServiceAccount is credential access ---------------------------------

def test_one_denied_secret_read_by_a_serviceaccount_is_medium(pack):
    d = ev("get", "secrets", ns="shop", name="db", code=403, decision="forbid", user=sa("shop", "web"))
    found = alerts(pack, d)
    assert found["serviceaccount-secret-access-denied"] == "medium"
    person = ev("get", "secrets", ns="shop", name="db", code=403, decision="forbid")
    assert loud(alerts(pack, person)) == {}
