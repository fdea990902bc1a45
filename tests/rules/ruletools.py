"""Helpers for the rule tests: build rules from YAML snippets, events from dicts."""

from __future__ import annotations

import textwrap
from typing import Any

from kubehawk.event import AuditEvent, event_from_dict
from kubehawk.rules import Engine, RuleSet

from helpers import audit

HEADER = """\
title: {title}
id: {id}
logsource:
  product: kubernetes
  service: audit
"""

_ids = iter(range(1, 10**9))


def rule_yaml(detection: str, title: str = "test rule", rid: str | None = None, extra: str = "") -> str:
    """A complete Sigma rule around a ``detection:`` body (indented or not)."""
    rid = rid or f"00000000-0000-0000-0000-{next(_ids):012d}"
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "  ")
    return HEADER.format(title=title, id=rid) + "detection:\n" + body + "\n" + textwrap.dedent(extra)


def ruleset(*docs: str, variables: dict[str, list[str]] | None = None) -> RuleSet:
    return RuleSet.from_texts([(f"rule{i}.yml", d) for i, d in enumerate(docs)], variables=variables)


def ev(**kw: Any) -> AuditEvent:
    return event_from_dict(audit(**kw), origin="test")


def matches(detection: str, variables: dict[str, list[str]] | None = None, **event: Any) -> bool:
    """Evaluate one detection on one event, both directly and through the indexed engine."""
    rs = ruleset(rule_yaml(detection), variables=variables)
    rule = rs.rules[0]
    e = ev(**event)
    direct = rule.matches(e)
    via_engine = bool(Engine(rs).process(e))
    assert direct == via_engine, "the index disagrees with direct evaluation"
    return direct
