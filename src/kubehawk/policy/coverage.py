"""Which detections a policy feeds: for every enabled rule, is the level high enough and
the stage kept for every request the rule can match?

A rule's scopes (from the rule engine) over-approximate the requests it matches; a
dimension left open (``None``) is expanded to representative values (the built-in API
catalog, a custom resource, ordinary human and service-account identities, a couple of
namespaces), and the rule is fed only where the policy keeps *all* of them: a rule that
matches any resource is blind wherever the policy drops one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubehawk.policy import probes as P
from kubehawk.policy.catalog import CATALOG, GROUPS_OF, SENSITIVE_CAPS, lookup
from kubehawk.policy.evaluate import Decision
from kubehawk.policy.model import Policy, level_rank
from kubehawk.policy.request import Request

# Representatives for open dimensions.
REP_RESOURCES: tuple[tuple[str, str], ...] = (
    ("", "pods"), ("", "secrets"), ("", "configmaps"), ("", "services"), ("", "serviceaccounts"),
    ("", "namespaces"), ("", "nodes"), ("", "persistentvolumes"), ("apps", "deployments"), ("apps", "daemonsets"),
    ("batch", "cronjobs"), ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "roles"), ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("apiextensions.k8s.io", "customresourcedefinitions"), ("networking.k8s.io", "networkpolicies"),
    ("certificates.k8s.io", "certificatesigningrequests"), ("widgets.example.com", "widgets"),
)
REP_PATHS = ("/", "/api", "/apis/apps/v1", "/openapi/v2", "/logs/", "/debug/pprof/")
REP_NAMESPACES = ("default", "kube-system")
REP_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
CONNECT_VERBS = ("get", "create")
CONNECT_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
_SECONDARY_GROUPS = ("extensions", "metrics.k8s.io")


def sensitive_cap(req: Request) -> str | None:
    """The highest level this request may be logged at without secrets in the log (None: no cap)."""
    return SENSITIVE_CAPS.get((req.api_group, req.resource, req.subresource))


def identity_for(user: str) -> P.Identity:
    """The groups such a user name carries, so group-keyed policy rules see it right."""
    if user.startswith("system:serviceaccount:"):
        ns = user.split(":")[2] if user.count(":") >= 3 else "default"
        return P.Identity(user, ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"), user)
    if user.startswith("system:node:"):
        return P.Identity(user, ("system:nodes", "system:authenticated"), user)
    if user == "system:anonymous":
        return P.Identity(user, ("system:unauthenticated",), user)
    return P.Identity(user, ("system:authenticated",), user)


def _targets(scope: Any) -> list[tuple[str, str, str]]:
    """(group, resource, subresource) triples a scope stands for."""
    resources = scope.resources
    groups = scope.api_groups
    subs = scope.subresources
    pairs: list[tuple[str, str]] = []
    if resources is None:
        if groups is None:
            pairs = list(REP_RESOURCES)
        else:
            for g in sorted(groups):
                found = [(r.group, r.resource) for r in CATALOG if r.group == g]
                pairs.extend(found[:6] if found else [(g, "widgets")])
    else:
        for res in sorted(resources):
            gs = sorted(groups) if groups is not None else sorted(GROUPS_OF.get(res, [])) or ["*"]
            if groups is None and len(gs) > 1:
                # Legacy/metrics duplicates (extensions, metrics.k8s.io) only when nothing else serves it.
                gs = [g for g in gs if g not in _SECONDARY_GROUPS] or gs
            for g in gs:
                pairs.append((g, res))
    out: list[tuple[str, str, str]] = []
    for g, res in pairs:
        if subs is None:
            # A rule that names no subresource is about the objects themselves.
            out.append((g, res, ""))
        else:
            for s in sorted(subs):
                out.append((g, res, s))
    return out


def scope_requests(scope: Any) -> Iterator[Request]:
    """Representative requests for one rule scope."""
    ids = [identity_for(u) for u in sorted(scope.users)] if scope.users is not None else list(P.ORDINARY)
    targets = _targets(scope)
    for g, res, sub in targets:
        group = "widgets.example.com" if g == "*" else g
        if scope.verbs is not None:
            verbs = sorted(scope.verbs)
        elif sub in CONNECT_SUBRESOURCES:
            verbs = list(CONNECT_VERBS)
        elif sub:
            verbs = ["get", "update", "patch", "create"]
        else:
            verbs = list(REP_VERBS)
        namespaced = lookup(group, res).namespaced if lookup(group, res) else True
        if scope.namespaces is not None:
            nss = sorted(scope.namespaces)
        else:
            nss = list(REP_NAMESPACES) if namespaced else [""]
        for who in ids:
            for verb in verbs:
                for ns in nss:
                    yield P.resource_request(who, verb, group, res, sub, ns)
    if scope.resources is None and scope.api_groups is None and scope.subresources is None \
            and scope.namespaces is None:
        verbs = sorted(scope.verbs) if scope.verbs is not None else ["get"]
        for who in ids:
            for path in REP_PATHS:
                for verb in verbs:
                    if verb in ("get", "post", "put", "delete", "head", "options", "patch"):
                        yield P.non_resource_request(who, path, verb)


def feeds(decision: Decision, request: Request, level: str) -> str | None:
    """None when the decision records what is needed, else why not."""
    if level_rank(decision.level) < level_rank(level):
        return f"level {decision.level} < {level}"
    if decision.records("ResponseComplete"):
        return None
    if request.long_running and decision.records("ResponseStarted"):
        return None
    return "stage ResponseComplete omitted" + (" (and ResponseStarted)" if request.long_running else "")


@dataclass
class Gap:
    request: Request
    decision: Decision
    why: str
    needed: str

    def describe(self) -> str:
        where = f"rules[{self.decision.rule_index}]" if self.decision.rule_index is not None else "no rule"
        return f"{self.request.describe()}: {self.why} ({where})"


@dataclass
class RuleCoverage:
    id: str
    title: str
    kind: str
    level: str
    status: str  # fed | partial | blind
    probes: int
    gaps: list[Gap] = field(default_factory=list)
    fix: str | None = None
    capped: list[Gap] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "level": self.level,
            "status": self.status,
            "probes": self.probes,
            "gaps": [g.describe() for g in self.gaps[:10]],
            "gap_count": len(self.gaps),
            "fix": self.fix,
            "capped": [g.describe() for g in self.capped[:5]],
            "capped_count": len(self.capped),
        }


@dataclass
class CoverageReport:
    policy: str | None
    rules: list[RuleCoverage]

    def counts(self) -> dict[str, int]:
        out = {"rules": len(self.rules), "fed": 0, "partial": 0, "blind": 0, "capped": 0}
        for r in self.rules:
            out[r.status] += 1
            out["capped"] += bool(r.capped)
        return out

    @property
    def fed_fraction(self) -> float:
        return self.counts()["fed"] / len(self.rules) if self.rules else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "summary": self.counts(), "rules": [r.to_dict() for r in self.rules]}


def rule_coverage(policy: Policy, rule: Any, cache: dict[Request, Decision] | None = None) -> RuleCoverage:
    cache = cache if cache is not None else {}
    total = 0
    gaps: list[Gap] = []
    capped: list[Gap] = []
    for scope in rule.scopes or []:
        for req in scope_requests(scope):
            total += 1
            d = cache.get(req)
            if d is None:
                d = cache[req] = policy.evaluate(req)
            why = feeds(d, req, scope.level)
            if why is None:
                continue
            gap = Gap(req, d, why, scope.level)
            cap = sensitive_cap(req)
            if cap is not None and level_rank(scope.level) > level_rank(cap) and feeds(d, req, cap) is None:
                # Secrets stay out of the log by design: the rule sees the request, not the secret.
                capped.append(gap)
            else:
                gaps.append(gap)
    status = "fed" if not gaps else ("blind" if len(gaps) + len(capped) == total else "partial")
    return RuleCoverage(rule.id, rule.title, rule.kind, rule.audit_level, status, total, gaps,
                        fix_for(policy, gaps) if gaps else None, capped)


def coverage(policy: Policy, rules: Iterable[Any]) -> CoverageReport:
    cache: dict[Request, Decision] = {}
    return CoverageReport(policy.source, [rule_coverage(policy, r, cache) for r in rules])


def fix_for(policy: Policy, gaps: list[Gap]) -> str:
    """One line a person can apply: the smallest rule to insert, or the stage to stop omitting."""
    first = gaps[0]
    d = first.decision
    if first.why.startswith("stage"):
        if d.rule_index is not None and "ResponseComplete" in policy.rules[d.rule_index].omit_stages:
            return f"remove ResponseComplete from omitStages of rules[{d.rule_index}]"
        return "remove ResponseComplete from the policy-level omitStages"
    level = max((g.needed for g in gaps), key=level_rank)
    verbs = sorted({g.request.verb for g in gaps if g.request.resource_request})
    res_by_group: dict[str, set[str]] = {}
    urls = sorted({g.request.path for g in gaps if not g.request.resource_request})
    for g in gaps:
        if g.request.resource_request:
            res_by_group.setdefault(g.request.api_group, set()).add(g.request.combined_resource)
    deciding = [g.decision.rule_index for g in gaps if g.decision.rule_index is not None]
    where = f"before rules[{min(deciding)}]" if deciding else "at the end"
    if res_by_group:
        entries = ", ".join(
            f'{{group: "{grp}", resources: [{", ".join(sorted(rs))}]}}' for grp, rs in sorted(res_by_group.items())
        )
        rule = f"{{level: {level}, verbs: [{', '.join(verbs)}], resources: [{entries}]}}"
    else:
        rule = f"{{level: {level}, nonResourceURLs: [{', '.join(urls)}]}}"
    return f"insert {where}: - {rule}"


__all__ = ["CoverageReport", "RuleCoverage", "coverage", "rule_coverage", "scope_requests"]
