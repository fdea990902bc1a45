"""Synthetic requests to ask a policy "what would you record for this?".

Policies are checked by evaluating them on representative requests (the way the
compliance checks of policy.md section d describe it) rather than by reading rule
text: the first-match order, literal ``*`` and the other surprises are then
accounted for exactly by the evaluator.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kubehawk.policy.catalog import is_namespaced
from kubehawk.policy.evaluate import Decision, rule_matches
from kubehawk.policy.model import Policy, PolicyRule, level_rank
from kubehawk.policy.request import Request


@dataclass(frozen=True)
class Identity:
    user: str | None
    groups: tuple[str, ...]
    label: str


HUMAN = Identity("alice@example.com", ("developers", "system:authenticated"), "a human user")
SERVICE_ACCOUNT = Identity(
    "system:serviceaccount:team-a:app",
    ("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"),
    "a service account",
)
ADMIN = Identity("admin@example.com", ("system:masters", "system:authenticated"), "a cluster admin")
ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",), "an anonymous request")
UNAUTHENTICATED = Identity(None, (), "a failed-authentication request")
ORDINARY = (HUMAN, SERVICE_ACCOUNT)
NAMESPACES = ("default", "team-a", "kube-system")


def resource_request(
    who: Identity,
    verb: str,
    group: str,
    resource: str,
    subresource: str = "",
    namespace: str | None = None,
    name: str | None = None,
) -> Request:
    """A request as the apiserver's RequestInfo would describe it."""
    if namespace is None:
        namespace = "default" if is_namespaced(group, resource) else ""
    if name is None:
        # create/list/watch/deletecollection carry no name unless a subresource is addressed.
        name = "" if verb in ("create", "list", "watch", "deletecollection") and not subresource else "probe-1"
    if resource == "namespaces" and name:
        namespace = name  # /api/v1/namespaces/<ns> has namespace <ns>
    return Request(
        user=who.user,
        groups=who.groups,
        verb=verb,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=subresource,
        name=name,
        resource_request=True,
    )


def non_resource_request(who: Identity, path: str, verb: str = "get") -> Request:
    return Request(user=who.user, groups=who.groups, verb=verb, path=path, resource_request=False)


@dataclass(frozen=True)
class Probe:
    request: Request
    decision: Decision

    @property
    def level(self) -> str:
        return self.decision.level

    def describe(self) -> str:
        where = f"rules[{self.decision.rule_index}]" if self.decision.rule_index is not None else "no rule (default)"
        return f"{self.request.describe()} -> {self.decision.level} ({where})"


def run(policy: Policy, requests: Iterable[Request]) -> list[Probe]:
    return [Probe(r, policy.evaluate(r)) for r in requests]


def matrix(
    identities: Iterable[Identity],
    verbs: Iterable[str],
    targets: Iterable[tuple[str, str] | tuple[str, str, str]],
    namespaces: Iterable[str] | None = None,
) -> Iterator[Request]:
    """Every identity x verb x (group, resource[, subresource]) x namespace."""
    ids, vs, ts = list(identities), list(verbs), list(targets)
    nss = list(namespaces) if namespaces is not None else [None]
    for who in ids:
        for t in ts:
            group, resource = t[0], t[1]
            sub = t[2] if len(t) > 2 else ""
            for verb in vs:
                for ns in nss if is_namespaced(group, resource) else [None]:
                    yield resource_request(who, verb, group, resource, sub, ns)


def below(probes: Iterable[Probe], level: str) -> list[Probe]:
    return [p for p in probes if level_rank(p.level) < level_rank(level)]


def above(probes: Iterable[Probe], level: str) -> list[Probe]:
    return [p for p in probes if level_rank(p.level) > level_rank(level)]


def witness(
    rule: PolicyRule,
    group: str,
    resource: str,
    subresource: str = "",
    verbs: Iterable[str] = ("get",),
) -> Request | None:
    """A concrete request that ``rule`` matches for this resource, or None if it cannot."""
    user = rule.users[0] if rule.users else HUMAN.user
    groups = (rule.user_groups[0], "system:authenticated") if rule.user_groups else HUMAN.groups
    wanted = [v for v in verbs if not rule.verbs or v in rule.verbs]
    for verb in wanted:
        ns_choices: list[str | None] = list(rule.namespaces) if rule.namespaces else [None]
        for ns in ns_choices:
            names: list[str | None] = [None]
            for gr in rule.resources:
                names.extend(gr.resource_names)
            for name in names:
                req = resource_request(Identity(user, groups, "rule"), verb, group, resource, subresource, ns, name)
                if rule_matches(rule, req):
                    return req
    return None
