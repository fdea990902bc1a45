"""Lint checks on volume: a None rule that silences almost every identity, and the known
high-volume routine requests a policy still logs (each judged by evaluating the policy on a
synthetic request, :mod:`kubehawk.policy.probes`)."""

from __future__ import annotations

from kubehawk.policy import citations as C
from kubehawk.policy import probes as P
from kubehawk.policy.findings import _Ctx
from kubehawk.policy.request import Request

_BROAD = ("system:authenticated", "system:serviceaccounts", "system:masters", "system:unauthenticated")


def check_broad_none(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if rule.level != "None":
            continue
        broad = [g for g in rule.user_groups if g in _BROAD]
        if not broad:
            continue
        if rule.non_resource_urls:
            continue
        wide = not rule.resources or any(gr.group == "*" or not gr.resources or "*" in gr.resources
                                          for gr in rule.resources)
        if wide:
            ctx.add("POL-BROAD-NONE", "high",
                    f"rules[{rule.index}] drops {'all' if not rule.resources else 'whole groups of'} requests of "
                    f"{', '.join(broad)} (almost every identity)",
                    "Narrow the None rule to specific users and noisy resources.", rule.index, C.AUDIT_POLICY)
    ctx.result("POL-BROAD-NONE", before)


def _noise_probes() -> list[tuple[str, Request]]:
    kp = P.Identity("system:kube-proxy", ("system:authenticated",), "kube-proxy")
    node = P.Identity("system:node:node-1", ("system:nodes", "system:authenticated"), "kubelet")
    kcm = P.Identity("system:kube-controller-manager", ("system:authenticated",), "controller-manager")
    sched = P.Identity("system:kube-scheduler", ("system:authenticated",), "scheduler")
    apis = P.Identity("system:apiserver", ("system:masters", "system:authenticated"), "apiserver")
    mon = P.Identity("system:serviceaccount:monitoring:prometheus",
                     ("system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"), "prom")
    out = [
        ("kube-proxy watches endpoints/services", P.resource_request(kp, "watch", "", "endpoints", namespace="")),
        ("kube-proxy watches endpointslices", P.resource_request(kp, "watch", "discovery.k8s.io", "endpointslices",
                                                                namespace="")),
        ("kubelets read their Node", P.resource_request(node, "get", "", "nodes", name="node-1")),
        ("kubelets update node status", P.resource_request(node, "patch", "", "nodes", "status", name="node-1")),
        ("kubelet heartbeat leases", P.resource_request(node, "update", "coordination.k8s.io", "leases",
                                                        namespace="kube-node-lease", name="node-1")),
        ("leader-election leases", P.resource_request(kcm, "update", "coordination.k8s.io", "leases",
                                                      namespace="kube-system", name="kube-controller-manager")),
        ("scheduler leader election", P.resource_request(sched, "get", "coordination.k8s.io", "leases",
                                                         namespace="kube-system", name="kube-scheduler")),
        ("apiserver reads namespaces", P.resource_request(apis, "get", "", "namespaces", name="default")),
        ("core events", P.resource_request(node, "create", "", "events", namespace="default")),
        ("health checks /healthz", P.non_resource_request(mon, "/healthz")),
        ("health checks /readyz", P.non_resource_request(mon, "/readyz")),
        ("health checks /livez", P.non_resource_request(mon, "/livez")),
        ("metrics scrapes /metrics", P.non_resource_request(mon, "/metrics")),
        ("version checks /version", P.non_resource_request(mon, "/version")),
    ]
    return out


def check_noise(ctx: _Ctx) -> None:
    kept = []
    for label, req in _noise_probes():
        d = ctx.policy.evaluate(req)
        if d.level != "None":
            kept.append((label, d))
    if kept:
        labels = ", ".join(label for label, _ in kept[:6]) + (" ..." if len(kept) > 6 else "")
        ctx.add("POL-NOISE-KEPT", "low", f"{len(kept)} kinds of known high-volume routine requests are logged: {labels}",
                "Drop them with narrow None rules near the top (see 'kubehawk policy generate').",
                kept[0][1].rule_index, C.GCE_POLICY)
    else:
        ctx.ok("POL-NOISE-KEPT")
