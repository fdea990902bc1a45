"""Who a request acts as, and which requests are the cluster's own machinery (issue 13).

- The effective identity: with impersonation (``kubectl --as``) the request is authorised as
  ``impersonatedUser``, so rules about what a ServiceAccount does judge that identity, and
  alerts name both ("alice@corp as system:serviceaccount:monitoring:monitoring").
- Cluster start-up: the installer (kubeadm) and the add-on manager create ServiceAccounts,
  ConfigMaps and pods in kube-system while a cluster comes up. They are recognised from what
  the log shows, never from membership of ``system:masters`` (a stolen admin credential has it
  too): see :func:`is_bootstrap`.
- In-cluster controllers that legitimately write into GitOps-managed namespaces (cert-manager
  renews TLS Secrets, external-secrets and sealed-secrets write Secrets, the VPA evicts and
  resizes pods): :data:`BUILTIN_CONTROLLERS`, plus the config's ``gitops.controllers``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubehawk.event import AuditEvent

__all__ = ["BUILTIN_CONTROLLERS", "Controller", "actor", "effective_groups", "effective_user", "is_bootstrap",
           "is_controller", "parse_controllers"]

SA_PREFIX = "system:serviceaccount:"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def _impersonated(event: AuditEvent) -> dict[str, Any] | None:
    imp = event.head.impersonatedUser
    return imp if isinstance(imp, dict) and isinstance(imp.get("username"), str) and imp["username"] else None


def effective_user(event: AuditEvent) -> str | None:
    """The username the request was authorised as: the impersonated one, else the requester."""
    imp = _impersonated(event)
    return imp["username"] if imp is not None else event.username


def effective_groups(event: AuditEvent) -> list[str]:
    """The groups the request was authorised with (impersonated groups replace the requester's)."""
    imp = _impersonated(event)
    src = imp if imp is not None else event.head.user
    groups = src.get("groups") if isinstance(src, dict) else None
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


def actor(event: AuditEvent) -> str | None:
    """Who did it, as an alert should say it: ``alice as system:serviceaccount:ns:name`` under
    impersonation, else the requester."""
    imp = _impersonated(event)
    user = event.username
    if imp is None:
        return user
    return f"{user or '-'} as {imp['username']}"


# --- cluster start-up ------------------------------------------------------------------------

_INSTALLER_AGENTS = ("kubeadm/",)
# Cluster-scoped objects the control plane owns and the installer writes while it comes up.
_CONTROL_PLANE_CLUSTER_RESOURCES = frozenset({"nodes"})
_CONTROL_PLANE_NAME_PREFIXES = ("kubeadm:", "system:")
_RBAC = frozenset({"clusterroles", "clusterrolebindings"})


def _loopback(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _control_plane_object(event: AuditEvent) -> bool:
    ns = event.ref("namespace")
    if ns is not None:
        return ns in SYSTEM_NAMESPACES
    res = event.ref("resource")
    if res in _CONTROL_PLANE_CLUSTER_RESOURCES:
        return True
    name = event.ref("name")
    return res in _RBAC and isinstance(name, str) and name.startswith(_CONTROL_PLANE_NAME_PREFIXES)


def is_bootstrap(event: AuditEvent) -> bool:
    """Cluster set-up work, as the log shows it (``x.bootstrap``).

    True when a person-type identity (not a ServiceAccount, node or anonymous; impersonation
    never counts) writes or reads an object the control plane owns (kube-system, kube-public,
    kube-node-lease, nodes, ``kubeadm:*``/``system:*`` cluster RBAC), and either
      - the installer does it: user agent ``kubeadm/...`` (init, join and upgrade phases), or
      - the add-on manager does it: the trusted source IP (the last, which the client cannot
        choose) is loopback, i.e. a client on the control-plane node itself (minikube and
        kubeadm-based installers apply their add-ons with kubectl there).
    Membership of ``system:masters`` plays no part: a stolen admin credential used from a laptop
    is never start-up, and neither is the installer's identity writing into an application
    namespace.
    """
    if _impersonated(event) is not None:
        return False
    user = event.username
    if not user or user.startswith((SA_PREFIX, "system:node:", "system:anonymous")):
        return False
    if not _control_plane_object(event):
        return False
    agent = event.head.userAgent or ""
    return agent.startswith(_INSTALLER_AGENTS) or _loopback(event.source_ip)


# --- in-cluster controllers ------------------------------------------------------------------


@dataclass(frozen=True)
class Controller:
    """An identity (a glob over the username) and the resources it legitimately writes."""

    user: str
    resources: frozenset[str]
    what: str = ""

    def matches(self, user: str | None, resource: str | None) -> bool:
        return (user is not None and resource in self.resources
                and (user == self.user or fnmatch.fnmatchcase(user, self.user)))


# Controllers whose writes into GitOps namespaces are their job, under their usual ServiceAccount
# names (any namespace). Each is limited to what it writes: cert-manager never changes a Deployment.
BUILTIN_CONTROLLERS: tuple[Controller, ...] = (
    Controller("system:serviceaccount:*:cert-manager", frozenset({"secrets"}), "cert-manager renews TLS Secrets"),
    Controller("system:serviceaccount:*:external-secrets", frozenset({"secrets"}),
               "external-secrets writes Secrets from an external store"),
    Controller("system:serviceaccount:*:sealed-secrets*", frozenset({"secrets"}),
               "sealed-secrets decrypts SealedSecrets into Secrets"),
    Controller("system:serviceaccount:*:vpa-updater", frozenset({"pods"}), "the VPA updater evicts pods to resize them"),
    Controller("system:serviceaccount:*:vpa-admission-controller", frozenset({"pods"}),
               "the VPA admission controller sets pod resources"),
    Controller("system:serviceaccount:*:keda-operator", frozenset({"deployments", "statefulsets"}),
               "KEDA scales workloads"),
)


def parse_controllers(items: Any, key: str, fail: Any) -> tuple[Controller, ...]:
    """``gitops.controllers`` entries: ``{user: GLOB, resources: [..]}``; ``fail(key, message)`` raises."""
    if not isinstance(items, list):
        fail(key, "expected a list of {user: ..., resources: [...]}")
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict) or set(item) - {"user", "resources"}:
            fail(where, "expected a mapping with the keys user and resources")
        user, resources = item.get("user"), item.get("resources")
        if not isinstance(user, str) or not user:
            fail(f"{where}.user", "expected a username or a glob such as system:serviceaccount:*:my-operator")
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) and r for r in resources):
            fail(f"{where}.resources", "expected a non-empty list of resources (plural, e.g. secrets)")
        out.append(Controller(user, frozenset(resources), "configured"))
    return tuple(out)


def is_controller(event: AuditEvent, controllers: Iterable[Controller]) -> bool:
    """Is the requester an in-cluster controller writing what it is there to write?"""
    user, resource = event.username, event.ref("resource")
    return any(c.matches(user, resource) for c in controllers)


# --- kinds of identity (x.identity, x.sa, x.system read these) ---------------------------------

_CONTROL_PLANE_USERS = frozenset({
    "system:kube-controller-manager", "system:kube-scheduler", "system:apiserver", "system:kube-proxy",
    "kube-apiserver", "kube-apiserver-kubelet-client", "system:volume-scheduler",
})


def _sa_ref(user: Any) -> str | None:
    """``namespace/name`` of a ServiceAccount user name, else None."""
    sa = _sa_of(user) if type(user) is str else None
    return None if sa is None else f"{sa['namespace']}/{sa['name']}"


def _kind(user: str | None, groups: list[str]) -> str:
    if user in (None, "system:anonymous") or "system:unauthenticated" in groups:
        return "anonymous"
    if user.startswith("system:node:"):
        return "node"
    if user.startswith("system:serviceaccount:"):
        return "serviceaccount"
    if user in _CONTROL_PLANE_USERS or user.startswith(("system:", "eks:", "aksService")):
        return "controlplane"
    return "user"


def _system_kind(identity: str, sa: Any) -> bool:
    if identity in ("controlplane", "node"):
        return True
    return identity == "serviceaccount" and sa is not None and sa["namespace"] in SYSTEM_NAMESPACES


def _sa_of(user: str | None) -> Any:
    if not user or not user.startswith(SA_PREFIX):
        return None
    ns, _, name = user[len(SA_PREFIX):].partition(":")
    return {"namespace": ns, "name": name}
