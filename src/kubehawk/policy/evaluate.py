"""Policy evaluation exactly as kube-apiserver's ``policyRuleEvaluator`` does it (checker.go).

First rule whose every set field matches wins; no match is level None with the
policy-level omitStages/omitManagedFields. All comparisons are exact strings: ``*``
is literal in users, userGroups, verbs, namespaces and resourceNames. In ``resources``
``*`` is any resource or subresource, ``*/x`` any resource's ``x`` subresource and
``r/*`` every subresource of ``r`` *and* ``r`` itself. ``nonResourceURLs`` patterns
ending in ``*`` are plain string prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubehawk.policy.parts import PolicyRule
from kubehawk.policy.request import Request

if TYPE_CHECKING:  # in annotations only: the Policy evaluates itself with this module
    from kubehawk.policy.model import Policy

DEFAULT_LEVEL = "None"


@dataclass(frozen=True)
class Decision:
    """What the apiserver records for one request."""

    level: str
    omit_stages: tuple[str, ...]
    omit_managed_fields: bool
    rule_index: int | None = None

    def omits(self, stage: str) -> bool:
        return stage in self.omit_stages

    def records(self, stage: str) -> bool:
        """Whether an event for ``stage`` reaches the backends."""
        return self.level != "None" and stage not in self.omit_stages

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "omitStages": sorted(self.omit_stages),
            "omitManagedFields": self.omit_managed_fields,
            "rule": self.rule_index,
        }


def evaluate(policy: Policy, request: Request) -> Decision:
    """``EvaluatePolicyRule``: the decision for ``request``."""
    for i, rule in enumerate(policy.rules):
        if rule_matches(rule, request):
            omf = rule.omit_managed_fields if rule.omit_managed_fields is not None else policy.omit_managed_fields
            return Decision(rule.level, policy.effective_omit_stages(i), omf, i)
    return Decision(DEFAULT_LEVEL, tuple(policy.omit_stages), policy.omit_managed_fields, None)


def first_match(policy: Policy, request: Request) -> int | None:
    for i, rule in enumerate(policy.rules):
        if rule_matches(rule, request):
            return i
    return None


def rule_matches(rule: PolicyRule, req: Request) -> bool:
    """``ruleMatches`` (checker.go:95-131)."""
    if rule.users and (req.user is None or req.user not in rule.users):
        return False
    if rule.user_groups:
        if req.user is None:
            return False
        if not any(g in rule.user_groups for g in req.groups):
            return False
    if rule.verbs and req.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return rule_matches_resource(rule, req)
    if rule.non_resource_urls:
        return rule_matches_non_resource(rule, req)
    return True


def rule_matches_non_resource(rule: PolicyRule, req: Request) -> bool:
    if req.resource_request:
        return False
    return any(path_matches(req.path, spec) for spec in rule.non_resource_urls)


def path_matches(path: str, spec: str) -> bool:
    """``pathMatches``: ``*``, exact, or a plain prefix for a trailing ``*`` (not segment-aware)."""
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def rule_matches_resource(rule: PolicyRule, req: Request) -> bool:
    """``ruleMatchesResource`` (checker.go:168-217)."""
    if not req.resource_request:
        return False
    if rule.namespaces and req.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    combined = req.combined_resource
    for gr in rule.resources:
        if gr.group != req.api_group and gr.group != "*":
            continue
        if not gr.resources:
            return True
        if gr.resource_names and req.name not in gr.resource_names:
            continue
        for res in gr.resources:
            if resource_pattern_matches(res, req.resource, req.subresource, combined):
                return True
    return False


def resource_pattern_matches(pattern: str, resource: str, subresource: str, combined: str | None = None) -> bool:
    if combined is None:
        combined = f"{resource}/{subresource}" if subresource else resource
    if pattern == combined or pattern == "*":
        return True
    if subresource and pattern.startswith("*/") and subresource == pattern[2:]:
        return True
    # "pods/*" compares only the part before "/*", so it matches "pods" itself too.
    return pattern.endswith("/*") and resource == pattern[:-2]
