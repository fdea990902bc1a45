"""Sigma rules for the Kubernetes audit log: loading, compiling, indexing, correlations.

    from kubehawk.rules import load_rules, Engine
    ruleset = load_rules(paths=["my-rules/"], builtin=True, variables={"admins": ["alice"]})
    engine = Engine(ruleset, config)
    for event in events:
        for match in engine.process(event):
            ...
"""

from kubehawk.rules.engine import Dedup, Engine
from kubehawk.rules.loader import BUILTIN_DIR, RuleSet, audit_level_of, load_rules
from kubehawk.rules.model import AUDIT_LEVELS, LEVELS, CorrelationSpec, Match, Rule, RuleLoadError, Scope

__all__ = [
    "AUDIT_LEVELS",
    "BUILTIN_DIR",
    "LEVELS",
    "CorrelationSpec",
    "Dedup",
    "Engine",
    "Match",
    "Rule",
    "RuleLoadError",
    "RuleSet",
    "Scope",
    "audit_level_of",
    "load_rules",
]
