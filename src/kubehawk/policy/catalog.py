"""What the built-in Kubernetes API serves: groups, resources, subresources, scope.

Used to spot policy entries that can never match (``deployments`` in the core
group, ``machineconfig`` singular, ``tokenrequests`` which is not a resource) and to
pick representative requests when probing a policy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiResource:
    group: str
    resource: str
    subresources: tuple[str, ...] = ()
    namespaced: bool = True


def _r(group: str, spec: str, namespaced: bool = True) -> list[ApiResource]:
    out = []
    for item in spec.split():
        name, _, subs = item.partition(":")
        out.append(ApiResource(group, name, tuple(s for s in subs.split(",") if s), namespaced))
    return out


CATALOG: tuple[ApiResource, ...] = tuple(
    _r(
        "",
        "pods:log,exec,attach,portforward,proxy,status,binding,eviction,ephemeralcontainers,resize "
        "services:proxy,status endpoints configmaps secrets serviceaccounts:token "
        "persistentvolumeclaims:status events limitranges:status resourcequotas:status "
        "replicationcontrollers:scale,status podtemplates bindings",
    )
    + _r("", "namespaces:status,finalize nodes:proxy,status persistentvolumes:status componentstatuses", False)
    + _r("apps", "deployments:scale,status statefulsets:scale,status daemonsets:status replicasets:scale,status "
         "controllerrevisions")
    + _r("batch", "jobs:status cronjobs:status")
    + _r("autoscaling", "horizontalpodautoscalers:status")
    + _r("policy", "poddisruptionbudgets:status")
    + _r("policy", "podsecuritypolicies", False)
    + _r("extensions", "deployments:scale,status daemonsets:status replicasets:scale,status ingresses:status "
         "networkpolicies")
    + _r("rbac.authorization.k8s.io", "roles rolebindings")
    + _r("rbac.authorization.k8s.io", "clusterroles clusterrolebindings", False)
    + _r("networking.k8s.io", "networkpolicies:status ingresses:status")
    + _r("networking.k8s.io", "ingressclasses ipaddresses servicecidrs:status", False)
    + _r("storage.k8s.io", "csistoragecapacities")
    + _r("storage.k8s.io", "storageclasses volumeattachments:status csidrivers csinodes volumeattributesclasses",
         False)
    + _r(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations validatingwebhookconfigurations validatingadmissionpolicies:status "
        "validatingadmissionpolicybindings mutatingadmissionpolicies mutatingadmissionpolicybindings",
        False,
    )
    + _r("apiextensions.k8s.io", "customresourcedefinitions:status", False)
    + _r("apiregistration.k8s.io", "apiservices:status", False)
    + _r("authentication.k8s.io", "tokenreviews selfsubjectreviews", False)
    + _r("authorization.k8s.io", "localsubjectaccessreviews")
    + _r("authorization.k8s.io", "subjectaccessreviews selfsubjectaccessreviews selfsubjectrulesreviews", False)
    + _r("certificates.k8s.io", "certificatesigningrequests:approval,status clustertrustbundles", False)
    + _r("coordination.k8s.io", "leases leasecandidates")
    + _r("discovery.k8s.io", "endpointslices")
    + _r("events.k8s.io", "events")
    + _r("node.k8s.io", "runtimeclasses", False)
    + _r("scheduling.k8s.io", "priorityclasses", False)
    + _r("flowcontrol.apiserver.k8s.io", "flowschemas:status prioritylevelconfigurations:status", False)
    + _r("resource.k8s.io", "resourceclaims:status resourceclaimtemplates")
    + _r("resource.k8s.io", "deviceclasses resourceslices", False)
    + _r("metrics.k8s.io", "pods")
    + _r("metrics.k8s.io", "nodes", False)
    + _r("internal.apiserver.k8s.io", "storageversions:status", False)
    # OpenShift API groups that its own audit profiles name.
    + _r("route.openshift.io", "routes:status")
    + _r("oauth.openshift.io", "oauthaccesstokens oauthauthorizetokens oauthclients oauthclientauthorizations "
         "useroauthaccesstokens tokenreviews", False)
    + _r("user.openshift.io", "users identities groups useridentitymappings", False)
    + _r("machineconfiguration.openshift.io", "machineconfigs machineconfigpools:status kubeletconfigs:status "
         "containerruntimeconfigs:status controllerconfigs:status", False)
    + _r("apiserver.openshift.io", "apirequestcounts:status", False)
    + _r("security.openshift.io", "securitycontextconstraints rangeallocations", False)
    + _r("project.openshift.io", "projects projectrequests", False)
)

BY_KEY: dict[tuple[str, str], ApiResource] = {(r.group, r.resource): r for r in CATALOG}
KNOWN_GROUPS: frozenset[str] = frozenset(r.group for r in CATALOG)
GROUPS_OF: dict[str, list[str]] = {}
for _res in CATALOG:
    GROUPS_OF.setdefault(_res.resource, []).append(_res.group)

# The most a policy may record for these without writing secret material into the log:
# secrets (data in bodies), configmaps (CIS 3.2.2 treats them as secrets), token reviews
# (the bearer token is in the request body) stay at Metadata; a TokenRequest's body holds
# no secret, its response holds the token, so serviceaccounts/token may go up to Request.
SENSITIVE_CAPS: dict[tuple[str, str, str], str] = {
    ("", "secrets", ""): "Metadata",
    ("", "configmaps", ""): "Metadata",
    ("authentication.k8s.io", "tokenreviews", ""): "Metadata",
    ("", "serviceaccounts", "token"): "Request",
}

ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def lookup(group: str, resource: str) -> ApiResource | None:
    return BY_KEY.get((group, resource))


def is_namespaced(group: str, resource: str) -> bool:
    """Unknown resources (CRDs) are assumed namespaced, the common case."""
    r = BY_KEY.get((group, resource))
    return r.namespaced if r else True


def check_resource_pattern(group: str, pattern: str) -> str | None:
    """Why a ``resources`` entry in a *known* group cannot match anything, or None if it can."""
    if group not in KNOWN_GROUPS or pattern == "*" or pattern.startswith("*/"):
        return None
    res, _, sub = pattern.partition("/")
    known = BY_KEY.get((group, res))
    gname = "the core group" if group == "" else f"group {group!r}"
    if known is None:
        elsewhere = [g or '""' for g in GROUPS_OF.get(res, [])]
        if elsewhere:
            return f"{res!r} is not served by {gname}; it is in group {', '.join(elsewhere)}"
        plural = _plural_hint(group, res)
        hint = f"; did you mean {plural!r}?" if plural else ""
        if res in _NOT_RESOURCES:
            hint = f" ({_NOT_RESOURCES[res]})"
        return f"{res!r} is not a resource of {gname}{hint}"
    if sub and sub != "*" and sub not in known.subresources:
        return f"{pattern!r}: {res} has no {sub!r} subresource (it has {', '.join(known.subresources) or 'none'})"
    return None


_NOT_RESOURCES = {
    "tokenrequests": "a TokenRequest is the core serviceaccounts/token subresource",
    "exec": "exec is the pods/exec subresource",
    "logs": "logs are the pods/log subresource",
}


def _plural_hint(group: str, res: str) -> str | None:
    import difflib

    names = [r.resource for r in CATALOG if r.group == group]
    for cand in (res + "s", res + "es", res[:-1] + "ies" if res.endswith("y") else ""):
        if cand in names:
            return cand
    m = difflib.get_close_matches(res, names, n=1, cutoff=0.8)
    return m[0] if m else None
