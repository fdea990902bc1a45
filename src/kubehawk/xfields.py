"""The derived fields (``x.*``): one table of what each is, and the audit level it needs.

Each field is declared once here, with the level of audit logging a rule needs to see it and
what it means. The rest reads this table: the rule loader infers a rule's audit level from it
(:func:`kubehawk.rules.event_rule.audit_level_of`), ``kubehawk rules fields`` prints it, and the
README's "Derived fields" section is this table (tests/test_xfields.py checks that they agree).
How each value is computed is :mod:`kubehawk.enrich`.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DERIVED", "DerivedField", "descriptions", "levels", "markdown_table"]


class DerivedField(NamedTuple):
    path: str  # x.<key>[.<sub>]; NAME stands for a name the config gives (an allowlist)
    level: str  # the audit level a rule needs to see it: Metadata, or Request (read from a body)
    meaning: str


_M, _R = "Metadata", "Request"

DERIVED: tuple[DerivedField, ...] = (
    DerivedField("x.pod_spec", _R, "the pod spec wherever it lives: Pod, the template of Deployment/StatefulSet/"
                 "DaemonSet/ReplicaSet/ReplicationController/Job/PodTemplate, CronJob `jobTemplate`; also from patch "
                 "bodies (merge patches and JSON-patch operations)"),
    DerivedField("x.containers", _R, "every container of `x.pod_spec`: `containers` + `initContainers` + "
                 "`ephemeralContainers`"),
    DerivedField("x.images", _R, "the image of every container"),
    DerivedField("x.registry", _R, "the registry host of every image (`docker.io` when none is named; a port is kept)"),
    DerivedField("x.allowlisted.NAME", _R, "true when the event matches an entry of the config allowlist `NAME`"),
    DerivedField("x.labels_removed", _R, "the label keys a patch removes: written as null (merge patch) or a "
                 "JSON-patch `remove` of `/metadata/labels/KEY` (a label merely absent from a body is not removed)"),
    DerivedField("x.workload", _M, "true when `objectRef.resource` is pods or a workload kind"),
    DerivedField("x.exec.command", _M, "the command of an exec request, decoded from the requestURI (a list)"),
    DerivedField("x.exec.command_line", _M, "the same, joined with spaces"),
    DerivedField("x.exec.container", _M, "the container an exec or attach targets"),
    DerivedField("x.exec.shell", _M, "true when the command starts an interactive shell (sh, bash, …, also via "
                 "env or busybox)"),
    DerivedField("x.exec.tty", _M, "true when a TTY was requested"),
    DerivedField("x.exec.stdin", _M, "true when stdin was attached"),
    DerivedField("x.user", _M, "the effective username: the impersonated user when the request used "
                 "impersonation, else `user.username` (the request is authorised as this identity)"),
    DerivedField("x.actor", _M, "who did it, as alerts say it: `alice@corp as system:serviceaccount:monitoring:"
                 "monitoring` under impersonation, else `user.username`"),
    DerivedField("x.sa.namespace", _M, "the namespace of the effective ServiceAccount "
                 "(`system:serviceaccount:NS:NAME`, impersonated or not)"),
    DerivedField("x.sa.name", _M, "the name of that ServiceAccount"),
    DerivedField("x.node", _M, "the node name of an effective kubelet identity (`system:node:NAME`)"),
    DerivedField("x.identity", _M, "the effective identity's kind: `anonymous`, `node`, `serviceaccount`, "
                 "`controlplane` or `user`"),
    DerivedField("x.system", _M, "true for control-plane components, kubelets and kube-system ServiceAccounts "
                 "(requester and effective identity both: impersonating one never makes a request system)"),
    DerivedField("x.bootstrap", _M, "cluster set-up work: the installer (user agent `kubeadm/`) or the add-on "
                 "manager (a client on the control-plane node: loopback source) on an object the control plane "
                 "owns (see Cluster context; `bootstrap.enabled`)"),
    DerivedField("x.source_ip", _M, "the trusted source IP: the last `sourceIPs` entry (the others are "
                 "client-controlled)"),
    DerivedField("x.source.public", _M, "the trusted source IP is globally routable"),
    DerivedField("x.source.cluster", _M, "it is in `networks.cluster` (absent when none is configured)"),
    DerivedField("x.source.trusted", _M, "it is loopback or in `networks.trusted` / `networks.cluster` (absent "
                 "when neither is configured)"),
    DerivedField("x.source.ioc", _M, "it is in the `networks.ioc_file` list (absent without one)"),
    DerivedField("x.decision", _M, "the authorization decision annotation: `allow` or `forbid`"),
    DerivedField("x.impersonated", _M, "true when the request used impersonation"),
    DerivedField("x.business_hours", _M, "true when the event time falls in the configured `business_hours` "
                 "(in `timezone`)"),
    DerivedField("x.off_hours", _M, "true when it falls outside them"),
    DerivedField("x.gitops.identity", _M, "true when the requester is one of the configured GitOps identities"),
    DerivedField("x.gitops.namespace", _M, "true when the object's namespace is GitOps-managed"),
    DerivedField("x.gitops.controller", _M, "true when an in-cluster controller writes what it is there to write "
                 "(cert-manager, external-secrets, sealed-secrets: Secrets; the VPA: pods; KEDA: workloads; plus "
                 "`gitops.controllers`)"),
    DerivedField("x.honeytoken", _M, "true when the request touches or uses a configured honeytoken Secret or "
                 "ServiceAccount"),
    DerivedField("x.honeytoken_kind", _M, "`secret`, `secret-list` (a list by a non-system identity that returns "
                 "it), `serviceaccount` (the object) or `serviceaccount-token-used`"),
    DerivedField("x.health_endpoint", _M, "true for `/healthz`, `/livez`, `/readyz` (and sub-paths) and "
                 "`/version`"),
)


def levels() -> dict[str, str]:
    """The audit level per derived key (``exec`` for every ``x.exec.*``): what a rule reading it needs.
    The fields of one key must need the same level (a ValueError otherwise: the table is wrong)."""
    out: dict[str, str] = {}
    for f in DERIVED:
        key = f.path.split(".")[1]
        if out.setdefault(key, f.level) != f.level:
            raise ValueError(f"{f.path}: level {f.level}, but another x.{key} field needs {out[key]}")
    return out


def descriptions() -> dict[str, str]:
    """``x.path`` -> what it means."""
    return {f.path: f.meaning for f in DERIVED}


def markdown_table() -> str:
    """The README's table of derived fields."""
    rows = ["| field | meaning | level needed |", "|---|---|---|"]
    rows += [f"| `{f.path}` | {f.meaning} | {f.level} |" for f in DERIVED]
    return "\n".join(rows)
