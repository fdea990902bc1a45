"""Sigma rules for the Kubernetes audit log: loading, compiling, indexing, correlations.

    from kubehawk.rules import load_rules, Engine
    ruleset = load_rules(paths=["my-rules/"], builtin=True, variables={"admins": ["alice"]})
    engine = Engine(ruleset, config)
    for event in events:
        for match in engine.process(event):
            ...

The engine's stages, in the order a rule passes through them (each module says what it takes
and what it gives):

- :mod:`.loader` reads Sigma YAML (pySigma parses and validates) into a :class:`RuleSet`:
  :mod:`.event_rule` makes each rule (metadata, condition, the audit level it needs),
  :mod:`.correlation_rule` each correlation; :mod:`.cache` keeps what a load built, so the next
  start skips the parsing; :mod:`.schema` warns of a field no audit Event holds.
- :mod:`.ir` turns a pySigma condition into the IR (And/Or/Not over Leaf), placeholders
  expanded; :mod:`.dnf` reads its positive equality constraints (for the index and the policy
  toolkit).
- :mod:`.compiler` builds the IR into one test per rule, from :mod:`.fields` (a dotted path
  becomes a getter), :mod:`.matchers` and :mod:`.regex` (a leaf's values become one predicate
  over a value) and :mod:`.keywords` (field-less values searched in the whole event).
- :mod:`.guards` puts cheap necessary conditions before the tests: the raw bodies
  (:mod:`.body`) and the event as written are asked first, by one-pass literal searches
  (:mod:`.needles`).
- :mod:`.index` gives each event only the rules that could match it, reading a few head fields
  (:mod:`.slots`) and settling rules from them alone (:mod:`.settle`); :mod:`.index_keys` says
  which keys a rule is filed under; :mod:`.linescreen` skips, undecoded, the lines that meet none.
- :mod:`.engine` runs the plan, dedups per (rule, auditID), and feeds the stateful parts:
  :mod:`.correlation` (windows over event time) and :mod:`.baseline` (first-seen values: the
  rule attribute in :mod:`.baseline_spec`, the SQLite file in :mod:`.baseline_store`).
- :mod:`.model` holds what the rest of kubehawk sees: Rule, Scope, Match.
"""

from kubehawk.rules.engine import Dedup, Engine
from kubehawk.rules.event_rule import audit_level_of
from kubehawk.rules.loader import BUILTIN_DIR, RuleSet, load_rules
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
