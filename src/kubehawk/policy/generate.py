"""Generate the audit policy the enabled detections need.

The shape security teams recommend, in first-match order:

1. drop known high-volume routine traffic (narrow ``None`` rules: named system
   identities, health probes) -- but never a request an enabled rule reads;
2. keep secrets, configmaps, service-account tokens and token reviews at Metadata, so
   no later rule writes secret material into the log;
3. detail what the rules read: for each rule scope that needs more than Metadata, its
   level for exactly its verbs, resources, namespaces and users (highest level first);
4. keep everything else at Metadata (the catch-all).

The result is checked: it must load under the apiserver's rules and feed every enabled
rule (:mod:`kubehawk.policy.coverage`); a noise rule that would blind a rule is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubehawk.policy.catalog import GROUPS_OF
from kubehawk.policy.coverage import coverage
from kubehawk.policy.model import GroupResources, Policy, PolicyRule, level_rank

PROFILES = ("minimal", "balanced", "forensic")
SENSITIVE_RESOURCES = (
    GroupResources("", ("secrets", "configmaps")),
    GroupResources("authentication.k8s.io", ("tokenreviews",)),
)
TOKEN_REQUEST = ("", "serviceaccounts/token")  # may go to Request (its response holds the token)
_SECONDARY = ("extensions", "metrics.k8s.io")
_SENSITIVE_KEYS = {(gr.group, r) for gr in SENSITIVE_RESOURCES for r in gr.resources}
WORKLOADS = (
    GroupResources("", ("pods", "replicationcontrollers", "podtemplates")),
    GroupResources("apps", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    GroupResources("batch", ("jobs", "cronjobs")),
)
RBAC = (GroupResources("rbac.authorization.k8s.io", ("roles", "rolebindings", "clusterroles", "clusterrolebindings")),)
CLUSTER_CONTROL = (
    GroupResources("admissionregistration.k8s.io", ()),
    GroupResources("apiextensions.k8s.io", ("customresourcedefinitions",)),
    GroupResources("apiregistration.k8s.io", ("apiservices",)),
)


@dataclass
class Entry:
    """One policy rule of the generated policy, with why it is there."""

    rule: PolicyRule
    serves: list[str] = field(default_factory=list)
    section: str = ""
    note: str = ""


@dataclass
class Generated:
    profile: str
    entries: list[Entry]
    omit_stages: tuple[str, ...]
    omit_managed_fields: bool
    dropped_noise: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)
    rule_count: int = 0

    def policy(self) -> Policy:
        return Policy(rules=tuple(_reindex(e.rule, i) for i, e in enumerate(self.entries)),
                      omit_stages=self.omit_stages, omit_managed_fields=self.omit_managed_fields)

    def to_dict(self) -> dict[str, Any]:
        return self.policy().to_dict()

    def to_yaml(self) -> str:
        return render_yaml(self)


def _reindex(rule: PolicyRule, i: int) -> PolicyRule:
    return PolicyRule(**{**rule.__dict__, "index": i, "line": None})


def _noise(profile: str) -> list[tuple[str, PolicyRule]]:
    out = [
        ("health probes", PolicyRule("None", non_resource_urls=("/healthz*", "/readyz*", "/livez*"))),
        ("node heartbeats", PolicyRule("None", user_groups=("system:nodes",), namespaces=("kube-node-lease",),
                                       resources=(GroupResources("coordination.k8s.io", ("leases",)),))),
        ("leader election", PolicyRule(
            "None", users=("system:kube-controller-manager", "system:kube-scheduler",
                           "system:cloud-controller-manager"),
            verbs=("get", "update"), namespaces=("kube-system",),
            resources=(GroupResources("coordination.k8s.io", ("leases",)),))),
        ("kube-proxy watches", PolicyRule(
            "None", users=("system:kube-proxy",), verbs=("watch",),
            resources=(GroupResources("", ("endpoints", "services", "services/status")),
                       GroupResources("discovery.k8s.io", ("endpointslices",))))),
    ]
    if profile == "forensic":
        return out
    out += [
        ("kubelets reading their Node", PolicyRule("None", user_groups=("system:nodes",), verbs=("get",),
                                                   resources=(GroupResources("", ("nodes", "nodes/status")),))),
        ("kubelet status updates", PolicyRule("None", user_groups=("system:nodes",), verbs=("update", "patch"),
                                              resources=(GroupResources("", ("nodes/status",)),))),
        ("apiserver namespace reads", PolicyRule(
            "None", users=("system:apiserver",), verbs=("get",),
            resources=(GroupResources("", ("namespaces", "namespaces/status", "namespaces/finalize")),))),
        # Components write events all the time; deleting them is an intruder's trace, so keep deletes.
        ("core event writes", PolicyRule("None", verbs=("create", "update", "patch"),
                                         resources=(GroupResources("", ("events",)),))),
    ]
    if profile == "minimal":
        out += [
            ("events.k8s.io event writes", PolicyRule("None", verbs=("create", "update", "patch"),
                                                      resources=(GroupResources("events.k8s.io", ("events",)),))),
            ("lease reads", PolicyRule("None", verbs=("get", "list", "watch"),
                                       resources=(GroupResources("coordination.k8s.io", ("leases",)),))),
        ]
    return out


# --- needs from the rules --------------------------------------------------------------------

_Key = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # users, verbs, namespaces


def _scope_resources(scope: Any) -> tuple[GroupResources, ...] | None:
    """The ``resources`` a scope reads; None = any resource (no ``resources`` field)."""
    res, subs, groups = scope.resources, scope.subresources, scope.api_groups
    if res is None and groups is None and subs is None:
        return None
    by_group: dict[str, set[str]] = {}
    if res is None:
        names = {f"*/{s}" for s in subs} if subs is not None else set()
        for g in sorted(groups) if groups is not None else ["*"]:
            by_group.setdefault(g, set()).update(names)
    else:
        for r in sorted(res):
            gs = sorted(groups) if groups is not None else sorted(GROUPS_OF.get(r, [])) or ["*"]
            if groups is None and len(gs) > 1:
                gs = [g for g in gs if g not in _SECONDARY] or gs
            names = {f"{r}/{s}" for s in subs} if subs is not None else {r}
            for g in gs:
                by_group.setdefault(g, set()).update(names)
    return tuple(GroupResources(g, tuple(sorted(n))) for g, n in sorted(by_group.items()))


def _needs(rules: Iterable[Any]) -> dict[tuple[str, _Key], tuple[dict[str, set[str]] | None, list[str]]]:
    """(level, users/verbs/namespaces) -> (resources by group or None=any, rule labels)."""
    needs: dict[tuple[str, _Key], tuple[dict[str, set[str]] | None, list[str]]] = {}
    for rule in rules:
        label = f"{rule.id[:8]} {rule.title}"
        for scope in rule.scopes or []:
            if level_rank(scope.level) <= level_rank("Metadata"):
                continue
            key = (
                tuple(sorted(scope.users)) if scope.users is not None else (),
                tuple(sorted(scope.verbs)) if scope.verbs is not None else (),
                tuple(sorted(scope.namespaces)) if scope.namespaces is not None else (),
            )
            resources = _scope_resources(scope)
            slot = needs.get((scope.level, key))
            if slot is None:
                slot = needs[(scope.level, key)] = ({} if resources is not None else None, [])
            merged, labels = slot
            if resources is None:
                needs[(scope.level, key)] = (None, labels)
            elif merged is not None:
                for gr in resources:
                    merged.setdefault(gr.group, set()).update(gr.resources)
            if label not in labels:
                labels.append(label)
    return needs


def _detail_entries(rules: list[Any], profile: str) -> list[Entry]:
    needs = _needs(rules)
    extras: list[tuple[str, tuple[str, ...], tuple[GroupResources, ...], str]] = []
    if profile in ("balanced", "forensic"):
        lvl = "RequestResponse" if profile == "forensic" else "Request"
        extras.append((lvl, ("create", "update", "patch"), WORKLOADS, "workload specs (privileged, host access, images)"))
        extras.append((lvl, ("create", "update", "patch", "delete"), RBAC, "who was granted what"))
    if profile == "forensic":
        extras.append(("RequestResponse", ("create", "update", "patch", "delete"), CLUSTER_CONTROL,
                       "admission webhooks, CRDs and API services"))
    for lvl, verbs, grs, why in extras:
        slot = needs.setdefault((lvl, ((), verbs, ())), ({}, []))
        if slot[0] is not None:
            for gr in grs:
                slot[0].setdefault(gr.group, set()).update(gr.resources or {"*"})
        slot[1].append(f"profile {profile}: {why}")
    for (level, key), (resources, labels) in list(needs.items()):
        if level == "RequestResponse" and resources and TOKEN_REQUEST[1] in resources.get("", set()):
            resources[""].discard(TOKEN_REQUEST[1])
            slot = needs.setdefault(("Request", key), ({}, []))
            if slot[0] is not None:
                slot[0].setdefault("", set()).add(TOKEN_REQUEST[1])
            slot[1].extend(x for x in labels if x not in slot[1])
    entries = []
    for (level, (users, verbs, namespaces)), (resources, labels) in needs.items():
        grs: tuple[GroupResources, ...] = ()
        if resources is not None:
            # Sensitive resources are decided by the Metadata rule above; listing them here is dead.
            pruned = {g: {n for n in names if (g, n) not in _SENSITIVE_KEYS} for g, names in resources.items()}
            pruned = {g: names for g, names in pruned.items() if names}
            if not pruned:
                continue
            grs = tuple(
                GroupResources(g, () if "*" in names and g != "*" and len(names) == 1 else tuple(sorted(names)))
                for g, names in sorted(pruned.items())
            )
        rule = PolicyRule(level, users=users, verbs=verbs, namespaces=namespaces, resources=grs)
        entries.append(Entry(rule, labels, "detail"))
    if profile == "forensic":
        entries.append(Entry(PolicyRule("Request", verbs=("create", "update", "patch", "delete", "deletecollection")),
                             ["profile forensic: the body of every other write"], "detail"))
    entries.sort(key=lambda e: (-level_rank(e.rule.level), e.rule.users == (), bool(e.rule.namespaces) is False,
                                len(e.serves)))
    return _drop_shadowed(entries)


def _drop_shadowed(entries: list[Entry]) -> list[Entry]:
    """Fold an entry into an earlier one that already decides all of its requests (at >= level)."""
    from kubehawk.policy.lint_structure import shadows

    kept: list[Entry] = []
    for e in entries:
        outer = next((k for k in kept if shadows(k.rule, e.rule)), None)
        if outer is None:
            kept.append(e)
        else:
            outer.serves.extend(x for x in e.serves if x not in outer.serves)
    return kept


def generate(rules: Iterable[Any], profile: str = "balanced") -> Generated:
    """The policy for these (enabled) rules and profile."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    enabled = [r for r in rules if getattr(r, "scopes", None) is not None]
    noise = _noise(profile)
    sensitive = Entry(PolicyRule("Metadata", resources=SENSITIVE_RESOURCES),
                      ["secret material never above Metadata (CIS 3.2.2)"], "sensitive")
    detail = _detail_entries(enabled, profile)
    catch_all = Entry(PolicyRule("Metadata"), ["everything else: who did what, when, from where"], "rest")
    kept_noise = list(noise)
    dropped_for: list[str] = []
    while True:
        entries = [Entry(r, [f"noise: {label}"], "noise") for label, r in kept_noise] + [sensitive, *detail, catch_all]
        gen = Generated(profile, entries, ("RequestReceived",), profile != "forensic", rule_count=len(enabled))
        report = coverage(gen.policy(), enabled)
        blocking = {g.decision.rule_index for rc in report.rules for g in rc.gaps
                    if g.decision.rule_index is not None and g.decision.rule_index < len(kept_noise)}
        if not blocking:
            break
        for i in sorted(blocking, reverse=True):
            label, _ = kept_noise.pop(i)
            dropped_for.append(label)
    gen.dropped_noise = dropped_for
    gen.capped = sorted({f"{rc.id[:8]} {rc.title}" for rc in report.rules if rc.capped})
    return gen


# --- YAML with comments ----------------------------------------------------------------------

_SECTIONS = {
    "noise": "1. Known high-volume routine traffic, dropped (no enabled rule reads it).",
    "sensitive": "2. Secret material stays out of the log: metadata only, before any detailed rule\n"
    "  #    (serviceaccounts/token may be logged at Request: its request body holds no secret).",
    "detail": "3. What the enabled rules read, at the level each needs (highest first).",
    "rest": "4. Everything else at Metadata.",
}


def _flow(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def render_yaml(gen: Generated) -> str:
    out = [
        f"# Audit policy generated by kubehawk (profile: {gen.profile}) for {gen.rule_count} enabled rules.",
        "# Regenerate with `kubehawk policy generate` when rules change; check with `kubehawk policy lint`",
        "# and `kubehawk policy coverage`.",
    ]
    if gen.dropped_noise:
        out.append(f"# Noise rules left out because an enabled rule reads that traffic: {', '.join(gen.dropped_noise)}.")
    if gen.capped:
        out.append("# Capped so no secret reaches the log, although these rules would read more there:")
        out.extend(f"#   {c}" for c in gen.capped)
    out += ["apiVersion: audit.k8s.io/v1", "kind: Policy", f"omitStages: {_flow(gen.omit_stages)}"]
    if gen.omit_managed_fields:
        out.append("omitManagedFields: true")
    out.append("rules:")
    section = None
    for i, e in enumerate(gen.entries):
        if e.section != section:
            section = e.section
            out.append(f"  # {_SECTIONS[section]}")
        out.append(f"  # rules[{i}] serves:")
        for label in e.serves:
            out.append(f"  #   {label}")
        r = e.rule
        out.append(f"  - level: {r.level}")
        if r.users:
            out.append(f"    users: {_flow(r.users)}")
        if r.user_groups:
            out.append(f"    userGroups: {_flow(r.user_groups)}")
        if r.verbs:
            out.append(f"    verbs: {_flow(r.verbs)}")
        if r.namespaces:
            out.append(f"    namespaces: {_flow(r.namespaces)}")
        if r.resources:
            out.append("    resources:")
            for gr in r.resources:
                out.append(f"      - group: {json.dumps(gr.group)}")
                if gr.resources:
                    out.append(f"        resources: {_flow(gr.resources)}")
        if r.non_resource_urls:
            out.append(f"    nonResourceURLs: {_flow(r.non_resource_urls)}")
    return "\n".join(out) + "\n"
