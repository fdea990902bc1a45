"""Benign real-cluster traffic must not raise alerts of level medium or higher from system identities.

Corpora (read from ../shared/corpus at run time, skipped when absent):
- perfspec_k8s_event_dataset/audit-logs.csv: about 4 minutes of a kubeadm cluster's real audit log
  (Metadata level) while kubernetes-admin installs and uninstalls Helm charts. CC-BY-4.0, Kermabon-Bobinnec
  et al., "PerfSPEC: Performance Profiling-based Proactive Security Policy Enforcement for Containers",
  IEEE TDSC 2024, doi:10.1109/TDSC.2024.3420712.
- kube-audit-rest/kube-audit-rest.log: AdmissionReviews from a Rancher Desktop cluster.

Control-plane, kubelet and kube-system traffic must be silent at medium+. The human admin's Helm
installs/uninstalls are real changes; the alerts they raise are bounded and listed in the report.

At the end, the gate over every corpus (issue 13): external captures (minikube labs, Sekoia), Falco,
Panther, kube-audit-rest and PerfSPEC; a high or critical alert on an event a reviewed allowlist does not
name fails the suite.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from corpora import CORPORA, PANTHER, perfspec_events

from kubehawk.alerts import level_rank
from kubehawk.config import Config
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import load_rules

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
PERFSPEC = SHARED / "perfspec_k8s_event_dataset" / "audit-logs.csv"
KAR = SHARED / "kube-audit-rest" / "kube-audit-rest.log"

MEDIUM = level_rank("medium")


def _run(events):
    detector = Detector(load_rules(builtin=True), Config.from_dict({}))  # the whole pipeline, baselines included
    loud, total, n = [], Counter(), 0
    for e in events:
        n += 1
        for m in detector.process(e):
            total[m.rule.level] += 1
            if level_rank(m.rule.level) >= MEDIUM:
                loud.append((m.rule.name, m.rule.level, e.username, e.head.verb, e.ref("resource"), e.ref("name")))
    return n, loud, total


def test_perfspec_system_traffic_is_quiet():
    if not PERFSPEC.is_file():
        pytest.skip(f"PerfSPEC corpus not found at {PERFSPEC}")
    n, loud, total = _run(perfspec_events())
    assert n > 16000
    system = [a for a in loud if a[2] != "kubernetes-admin"]
    assert system == [], system[:20]
    # The admin's Helm installs and uninstalls of real charts are changes a SOC may want to see; keep
    # them few. Measured: see the rulepack report.
    by_rule = Counter(a[0] for a in loud)
    print(f"perfspec: {n} events, alerts by level {dict(total)}, medium+ by rule {dict(by_rule)}")
    assert len(loud) <= 10, by_rule


def test_kube_audit_rest_is_quiet():
    if not KAR.is_file():
        pytest.skip(f"kube-audit-rest corpus not found at {KAR}")
    from kubehawk.sources.normalize import line_to_events

    events = []
    for i, line in enumerate(KAR.read_bytes().splitlines(), 1):
        if line.strip():
            events.extend(line_to_events(line, f"kube-audit-rest.log:{i}"))
    assert len(events) >= 50
    n, loud, total = _run(events)
    print(f"kube-audit-rest: {n} events, alerts by level {dict(total)}")
    assert loud == []


# --- the bench corpus generator and the bundled demo log ------------------------------------------

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "kubehawk.yaml"
SAMPLE_LOG = REPO / "examples" / "sample-audit.log"


def _bench_corpus():
    """bench/corpus.py is a script folder, not a package: import it by path."""
    import importlib.util

    path = REPO / "bench" / "corpus.py"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    spec = importlib.util.spec_from_file_location("kubehawk_bench_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("seed", "start_hour", "config"), [
    (1, 8, "example"),    # 11:00 in Moscow: business hours
    (2, 21, "example"),   # 00:00 in Moscow: off hours, the off-hours rules are live
    (3, 14, "example"),
    (4, 8, "default"),    # no business context at all
])
def test_bench_corpus_is_quiet(seed, start_hour, config):
    """20,000 events of ordinary traffic per seed: nothing medium or higher (the baselines still learn)."""
    import datetime as dt

    corpus = _bench_corpus()
    cfg = Config.load(EXAMPLE_CONFIG) if config == "example" else Config.from_dict({})
    start = dt.datetime(2026, 11, 23, start_hour, 0, tzinfo=dt.UTC)
    events = (event_from_dict(d, f"bench:{seed}:{i}") for i, d in enumerate(corpus.generate(20_000, seed, start)))
    detector = Detector(load_rules(builtin=True), cfg)
    loud, total, n = [], Counter(), 0
    for e in events:
        n += 1
        for a in detector.process(e):
            total[a.level] += 1
            if level_rank(a.level) >= MEDIUM:
                loud.append((a.rule.name, a.level, e.username, e.head.verb, e.ref("resource"), e.ref("namespace")))
    print(f"bench seed {seed} ({config}, {start_hour}:00 UTC): {n} events, alerts by level {dict(total)}")
    assert n == 20_000
    assert loud == [], Counter(x[0] for x in loud)


# Each step of bench/corpus.py attacks(): (what, rule name, auditID selector) -> the alert it must raise.
def _step(verb, resource, *, ns=None, name=None, sub=None, user=None):
    def match(d):
        ref = d.get("objectRef") or {}
        return (d["verb"] == verb and ref.get("resource") == resource and (ns is None or ref.get("namespace") == ns)
                and (name is None or ref.get("name") == name) and ref.get("subresource") == sub
                and (user is None or d["user"]["username"] == user))
    return match


ATTACK_STEPS = [
    ("SelfSubjectRulesReview probe by a workload token", "selfsubject-review-by-serviceaccount",
     _step("create", "selfsubjectrulesreviews")),
    ("burst of forbidden requests", "forbidden-burst", _step("list", "secrets", user="system:serviceaccount:web:frontend")),
    ("denied secret reads", "secret-access-denied-burst", _step("list", "secrets", user="system:serviceaccount:web:frontend")),
    ("privileged bare pod", "privileged-container", _step("create", "pods", ns="default", user="mallory")),
    ("host PID pod", "host-pid-ipc", _step("create", "pods", ns="default", user="mallory")),
    ("bare pod", "bare-pod-created", _step("create", "pods", ns="default", user="mallory")),
    ("pod created off hours", "workload-change-off-hours", _step("create", "pods", ns="default", user="mallory")),
    ("shell exec into kube-system", "pod-exec-kube-system", _step("create", "pods", ns="kube-system", sub="exec")),
    ("honeytoken secret read", "honeytoken-used", _step("get", "secrets", name="db-admin-credentials")),
    ("cluster-admin binding", "cluster-admin-binding", _step("create", "clusterrolebindings")),
    ("NetworkPolicy deleted", "networkpolicy-deleted", _step("delete", "networkpolicies")),
    ("GitOps drift in bank", "gitops-namespace-drift", _step("patch", "deployments", ns="bank")),
    ("anonymous secrets list", "anonymous-request-allowed", _step("list", "secrets", user="system:anonymous")),
]
MIN_LEVEL = {"pod-exec-kube-system": "high", "honeytoken-used": "critical", "cluster-admin-binding": "high",
             "privileged-container": "high", "anonymous-request-allowed": "high", "gitops-namespace-drift": "high"}


def test_demo_log_raises_every_attack_step_and_nothing_loud_on_benign_traffic():
    import json

    corpus = _bench_corpus()
    attack_ids = {d["auditID"] for d in corpus.attacks()}
    records = [json.loads(line) for line in SAMPLE_LOG.read_text().splitlines() if line.strip()]
    in_log = {d["auditID"] for d in records}
    assert attack_ids <= in_log, "examples/sample-audit.log is not built from bench/corpus.py attacks()"
    detector = Detector(load_rules(builtin=True), Config.load(EXAMPLE_CONFIG))
    by_id: dict[str, list] = {}
    for i, d in enumerate(records, 1):
        for a in detector.process(event_from_dict(d, f"sample-audit.log:{i}")):
            by_id.setdefault(d["auditID"], []).append(a)
    attacks = [d for d in records if d["auditID"] in attack_ids]
    missing = []
    for what, rule_name, select in ATTACK_STEPS:
        steps = [d for d in attacks if select(d)]
        assert steps, f"no attack event for step {what!r}"
        hits = [a for d in steps for a in by_id.get(d["auditID"], []) if a.rule.name == rule_name]
        if not hits:
            missing.append(f"{what}: {rule_name}")
            continue
        floor = MIN_LEVEL.get(rule_name, "medium")
        assert all(level_rank(a.level) >= level_rank(floor) for a in hits), (rule_name, hits[0].level)
    assert missing == []
    benign_loud = [(a.rule.name, a.level, aid) for aid, alerts in by_id.items() if aid not in attack_ids
                   for a in alerts if level_rank(a.level) >= MEDIUM]
    assert benign_loud == []


# --- every corpus: no high or critical alert that a reviewed allowlist does not name (issue 13) ------------
#
# Every built-in rule runs over every corpus under ../shared/corpus (one Detector per log file, one per
# Panther case). A high or critical alert must be on an event named below, with the reason it is right:
# the real attack steps of those logs. Cluster start-up, add-on installs, controllers and the like must
# never appear here; a new entry is a reviewed decision, not a way to make the test pass.

_INCIDENT = "the training incident's attack steps (all four minikube labs run the same script)"
_IMPERSONATE = _INCIDENT + ": minikube-user acts as the monitoring ServiceAccount (kubectl --as)"
ALLOWED_HIGH: dict[tuple[str, str, str], tuple[set[str], str]] = {
    # (corpus, log file, auditID): (rules, why)
    **{("minikube-labs", f, aid): ({"serviceaccount-impersonated-by-person"}, _IMPERSONATE) for f, aid in [
        ("EkaterinaChuvakhina.audit.log", "99b2c1bf-aef2-4721-ba6d-ba00509b7400"),
        ("Factotum8.audit.log", "51f1c9a1-1741-4fc3-86f4-2a6ded0ae2a7"),
        ("PostScripton.audit.log", "4ed9fd82-8589-4f26-a955-ca5ca6f63af5"),
        ("PostScripton.audit.log", "ff4adf08-8978-4695-bc86-596f76d8fd22"),
        ("PostScripton.audit.log", "4e076d61-fa07-40e8-896c-28b5f4da6c10"),
        ("PostScripton.audit.log", "212317e7-1c8f-4c85-9125-5e4557547393"),
        ("shadowonyx92-afk.audit.log", "3661dcef-021e-4d3b-ab7a-aae742317c75"),
        ("shadowonyx92-afk.audit.log", "ec4bd0fd-1e90-4c17-b584-597cc594d14c"),
        ("shadowonyx92-afk.audit.log", "7d355716-0771-4332-9a69-a65c6955b26b")]},
    **{("minikube-labs", f, aid): ({"privileged-container"}, _INCIDENT + ": the privileged-pod") for f, aid in [
        ("EkaterinaChuvakhina.audit.log", "d0aa287a-e172-4cb6-968e-3a535e18791f"),
        ("Factotum8.audit.log", "73d3c942-5543-4ac4-8d54-649204149c59"),
        ("PostScripton.audit.log", "ef2d3872-5074-415a-b714-0f96c902952f"),
        ("shadowonyx92-afk.audit.log", "fa0bff07-fde9-419d-90e7-97c4ea1ce0e6")]},
    **{("minikube-labs", f, aid): ({"pod-exec-kube-system"}, _INCIDENT + ": exec into the CoreDNS pod") for f, aid in [
        ("EkaterinaChuvakhina.audit.log", "b6b2c08d-9fa3-4ecf-b477-d42697063b86"),
        ("Factotum8.audit.log", "ae0a6be3-0279-49b0-9f02-3220cc9605fd"),
        ("PostScripton.audit.log", "e54da27f-770c-47c9-ba0a-57fd7ac4ec1b")]},
    **{("minikube-labs", "PostScripton.audit.log", aid): (
        {"privileged-impersonation"}, _INCIDENT + ": --as admin --as-group system:masters to delete the audit policy")
       for aid in ("eccb5230-59d8-49bd-a60a-8480e7af11dc", "996618c5-86b6-4cae-a5c4-e4c226558e4a")},
    ("minikube-labs", "PostScripton.audit.log", "eb480e45-e996-41cd-9f51-6bcc7eb80002"): (
        {"cluster-admin-binding"}, _INCIDENT + ": cluster-admin bound to the monitoring ServiceAccount"),
    **{("sekoia", "events.jsonl", aid): ({"cluster-admin-binding"}, "fixture: cluster-admin bound to a ServiceAccount")
       for aid in ("cc1dcb56-f0e4-4720-bad1-433ce652add7", "2028e1f9-4561-4668-9df4-bc0dcd3ae11b")},
    ("sekoia", "events.jsonl", "8cb523a6-0be6-4198-8886-ed4fa57bd375"): (
        {"privileged-container"}, "fixture: a privileged ubuntu pod named priv-shell"),
    ("sekoia", "events.jsonl", "91afc40c-f1ef-4956-b85a-7e12d09511e9"): ({"pod-exec-shell"}, "fixture: exec sh into a pod"),
    ("falco", "k8s_audit/anonymous_creates_namespace_foo.json", "841d3e6d-90d2-43df-8da4-684738bee3d5"): (
        {"anonymous-write-allowed"}, "Falco positive fixture: anonymous user allowed to create a namespace"),
    ("falco", "k8s_audit/attach_cluster_admin_role.json", "c97244c7-4aec-4714-946a-8204d00ecdca"): (
        {"cluster-admin-binding"}, "Falco positive fixture: cluster-admin binding"),
    ("falco", "k8s_audit/create_cluster_role_wildcard_resources.json", "d8964c73-0042-4f35-b253-4711092185a1"): (
        {"wildcard-role"}, "Falco positive fixture: ClusterRole with wildcard resources"),
    ("falco", "k8s_audit/create_cluster_role_wildcard_verbs.json", "0dc97dd4-aa34-4071-b8cc-e1a1036c9ae9"): (
        {"wildcard-role"}, "Falco positive fixture: ClusterRole with wildcard verbs"),
    ("falco", "k8s_audit/delete_cluster_role_kube_aggregator.json", "5bc4e194-a14b-4ed6-af2c-0583224eb55f"): (
        {"system-rbac-modified"}, "Falco positive fixture: a built-in system: ClusterRole deleted"),
    ("falco", "k8s_audit/modify_cluster_role_node_problem_detector.json", "0eaf743e-1668-4de5-940b-0bb5d79aa4c9"): (
        {"system-rbac-modified"}, "Falco positive fixture: a built-in system: ClusterRole patched"),
    ("falco", "k8s_audit/exec_pod.json", "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6"): (
        {"pod-exec-shell"}, "Falco positive fixture: exec bash into a pod"),
}

# Panther's cases are labelled fixtures: high alerts are expected on the cases Panther itself labels as
# a match. On the cases it labels "no match" for its rule, each high alert is named here with the reason
# kubehawk still raises it (tests/rules/test_conformance_panther.py DELIBERATE has the long form).
_SYSTEM_NOT_EXCUSED = "a privileged/host/exec finding no controller owns alerts whoever makes it (stolen tokens)"
_SHELL = "an interactive shell in a pod is a finding of its own; Panther's negative is for another rule"
PANTHER_ALLOWED_HIGH: dict[str, tuple[set[str], str]] = {
    "GCP.K8S.Pod.Create.Or.Modify.Host.Path.Volume.Mount: Pod Not Created": (
        {"sensitive-hostpath"}, "the fixture's failure carries no status code; the converter reads it as created"),
    "GCP.K8S.Privileged.Pod.Created: GCP Service Account Creating Privileged Pod (Excluded)": (
        {"pod-in-system-namespace", "privileged-container"}, _SYSTEM_NOT_EXCUSED),
    "GCP.K8S.Privileged.Pod.Created: Privileged Pod in System Namespace (Excluded)": (
        {"privileged-container"}, _SYSTEM_NOT_EXCUSED),
    "Kubernetes.Pod.Privileged.Created: Privileged Pod in System Namespace (Excluded)": (
        {"privileged-container"}, _SYSTEM_NOT_EXCUSED),
    "Kubernetes.Pod.Host.IPC: System Namespace with HostIPC (Excluded)": ({"host-pid-ipc"}, _SYSTEM_NOT_EXCUSED),
    "Kubernetes.Pod.StealServiceAccountToken: System principal in system namespace (excluded)": (
        {"exec-credential-files", "pod-exec-kube-system"}, "workloads do not exec; kube-proxy reading a token is not excused"),
    "Kubernetes.Kubectl.CP.Operation: EKS system namespace (excluded)": (
        {"pod-exec-kube-system"}, "workloads do not exec into kube-system pods"),
    "Kubernetes.Kubectl.CP.Operation: EKS regular exec without tar": ({"pod-exec-shell"}, _SHELL),
    "Kubernetes.Pod.StealServiceAccountToken: Regular exec without token access": ({"pod-exec-shell"}, _SHELL),
    "Kubernetes.ClusterRoleBinding.Privileged: RoleBinding (not ClusterRoleBinding)": (
        {"cluster-admin-binding"}, "a RoleBinding to cluster-admin gives full control of its namespace"),
    "Kubernetes.Pod.SystemNamespace: Deployment creating pod (not direct pod creation)": (
        {"pod-in-system-namespace"}, "every workload kind in a system namespace is the same hiding place"),
    "Kubernetes.Role.NodeProxyPermissions: Updating existing role (not creating)": (
        {"role-grants-nodes-proxy"}, "update grants the same rights as create"),
    "Kubernetes.Role.Wildcard: Updating existing role (not creating)": (
        {"wildcard-role"}, "update grants the same rights as create"),
}


def _panther_labels() -> dict[str, bool]:
    out = {}
    for line in PANTHER.read_text().splitlines():
        if line.strip():
            c = json.loads(line)
            out[f"{c['rule_id']}: {c['test_name']}"] = c["expected"]
    return out


@pytest.fixture(scope="module")
def pack():
    return load_rules(builtin=True)


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_no_unreviewed_high_alert_on_any_corpus(corpus, pack):
    streams = list(CORPORA[corpus]())
    if not streams:
        pytest.skip(f"corpus {corpus} is absent under ../shared/corpus")
    labels = _panther_labels() if corpus == "panther" else {}
    config = Config.from_dict({})
    unreviewed, seen, total, n = [], set(), Counter(), 0
    for stream, events in streams:
        det = Detector(pack, config)
        found: dict[str, set[str]] = {}
        for e in events:
            n += 1
            for a in det.process(e):
                total[a.level] += 1
                if level_rank(a.level) >= level_rank("high"):
                    found.setdefault(e.head.auditID or "", set()).add(a.rule.name)
        for a in det.flush():
            total[a.level] += 1
            if level_rank(a.level) >= level_rank("high"):
                found.setdefault("flush", set()).add(a.rule.name)
        for aid, rules in found.items():
            if corpus == "panther":
                if labels.get(stream):
                    continue
                key: object = stream
                allowed = PANTHER_ALLOWED_HIGH.get(stream, (set(), ""))[0]
            else:
                key = (corpus, stream, aid)
                allowed = ALLOWED_HIGH.get(key, (set(), ""))[0]
            seen.add(key)
            unreviewed += [f"{stream} {aid}: {r}" for r in sorted(rules - allowed)]
    print(f"{corpus}: {n} events, alerts by level {dict(total)}")
    assert unreviewed == [], unreviewed
    # the allowlist must not go stale: every entry of this corpus still fires
    listed = ({k for k in PANTHER_ALLOWED_HIGH} if corpus == "panther"
              else {k for k in ALLOWED_HIGH if k[0] == corpus})
    assert listed - seen == set()
