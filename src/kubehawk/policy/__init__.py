"""The audit-policy toolkit: evaluate, validate, lint, generate, coverage, simulate.

    from kubehawk.policy import Policy, Request, PolicyError
    decision = Policy.load("audit-policy.yaml").evaluate(Request(user="alice", verb="get", resource="pods"))
"""

from kubehawk.policy.evaluate import Decision, evaluate, rule_matches
from kubehawk.policy.model import (
    LEVELS,
    STAGES,
    GroupResources,
    Policy,
    PolicyError,
    PolicyRule,
    PolicyWarning,
    level_rank,
)
from kubehawk.policy.request import Request, parse_request, request_from_event
from kubehawk.policy.validate import validate_policy

__all__ = [
    "LEVELS",
    "STAGES",
    "Decision",
    "GroupResources",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "PolicyWarning",
    "Request",
    "evaluate",
    "level_rank",
    "parse_request",
    "request_from_event",
    "rule_matches",
    "validate_policy",
]
