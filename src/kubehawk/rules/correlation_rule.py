"""One Sigma correlation rule becomes a correlation :class:`Rule`, bound to the rules it counts.

Takes a pySigma ``SigmaCorrelationRule`` and gives its head (:func:`_corr_head`), then, once
every rule of the load is known, binds it to its base rules by id or name
(:func:`_bind_correlation`). What runs it is :mod:`.correlation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubehawk.rules.event_rule import _metadata, audit_level_of
from kubehawk.rules.model import AUDIT_LEVELS, CorrelationSpec, Rule, RuleLoadError, Scope

SUPPORTED_CORRELATIONS = ("event_count", "value_count", "temporal", "temporal_ordered")

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule


_OPS = {"GT": "gt", "GTE": "gte", "EQ": "eq"}  # SigmaCorrelationConditionOperator names


def _corr_head(path: str, obj: SigmaCorrelationRule) -> Rule:
    from sigma.correlations import (
        SigmaCorrelationCondition,
        SigmaCorrelationConditionOperator,
        SigmaCorrelationType,
    )

    meta = _metadata(path, obj)
    title = meta["title"]
    ctype = obj.type.name.lower() if isinstance(obj.type, SigmaCorrelationType) else str(obj.type)
    if ctype not in SUPPORTED_CORRELATIONS:
        raise RuleLoadError(
            f"{title!r}: correlation type {ctype} is not supported (use {', '.join(SUPPORTED_CORRELATIONS)})"
        )
    cond = obj.condition
    if not isinstance(cond, SigmaCorrelationCondition):
        raise RuleLoadError(f"{title!r}: extended (boolean) correlation conditions are not supported")
    op = _OPS.get(cond.op.name) if isinstance(cond.op, SigmaCorrelationConditionOperator) else None
    if op is None:
        raise RuleLoadError(
            f"{title!r}: condition {cond.op.name.lower()} cannot be decided as events stream in;"
            " use gt, gte or eq"
        )
    value_field = None
    if ctype == "value_count":
        value_field = cond.fieldref if isinstance(cond.fieldref, str) else (cond.fieldref or [None])[0]
    aliases: dict[str, dict[str, str]] = {}
    for alias in obj.aliases or []:
        aliases[alias.alias] = {ref.reference: str(f) for ref, f in alias.mapping.items()}
    spec = CorrelationSpec(
        type=ctype,
        rules=[r.reference for r in (obj.rules or [])],
        group_by=list(obj.group_by or []),
        timespan=float(obj.timespan.seconds),
        op=op,
        count=cond.count,
        value_field=value_field,
        aliases=aliases,
    )
    meta["custom"]["_generate"] = bool(obj.generate)
    return Rule(kind="correlation", correlation=spec, generate=True, **meta)


def _bind_correlation(rule: Rule, obj: SigmaCorrelationRule, by_key: dict[str, Rule]) -> None:
    spec = rule.correlation
    assert spec is not None
    bound: list[Rule] = []
    ref_to_id: dict[str, str] = {}
    for ref in spec.rules:
        base = by_key.get(ref)
        if base is None:
            raise RuleLoadError(f"references unknown rule {ref!r} (no loaded rule has this id or name)")
        if base.kind != "event":
            raise RuleLoadError(f"references correlation {ref!r}; chained correlations are not supported")
        if base in bound:
            raise RuleLoadError(f"references rule {ref!r} twice")
        bound.append(base)
        ref_to_id[ref] = base.id
    if not bound:
        raise RuleLoadError("references no rules")
    if spec.type in ("temporal", "temporal_ordered") and len(bound) < 2:
        raise RuleLoadError(f"{spec.type} needs at least two rules")
    aliases: dict[str, dict[str, str]] = {}
    for alias, mapping in spec.aliases.items():
        m: dict[str, str] = {}
        for ref, f in mapping.items():
            if ref not in ref_to_id:
                b = by_key.get(ref)
                if b is None or b.id not in [x.id for x in bound]:
                    raise RuleLoadError(f"alias {alias!r} names rule {ref!r}, which the correlation does not use")
                m[b.id] = f
            else:
                m[ref_to_id[ref]] = f
        aliases[alias] = m
    spec.aliases = aliases
    spec.rules = [b.id for b in bound]
    fields: set[str] = set()
    for b in bound:
        fields |= b.fields
    wanted = list(spec.group_by) + ([spec.value_field] if spec.value_field else [])
    for name in wanted:
        if name in aliases:
            fields.update(aliases[name].values())
        else:
            fields.add(name)
    rule.custom["_generate"] = bool(getattr(obj, "generate", False))
    rule.fields = frozenset(fields)
    rule.audit_level = max(
        (audit_level_of(fields), *(b.audit_level for b in bound)), key=AUDIT_LEVELS.index
    )
    scopes: list[Scope] = []
    for b in bound:
        for s in b.scopes:
            s = Scope(
                verbs=s.verbs,
                resources=s.resources,
                subresources=s.subresources,
                api_groups=s.api_groups,
                namespaces=s.namespaces,
                users=s.users,
                level=rule.audit_level,
            )
            if s not in scopes:
                scopes.append(s)
    rule.scopes = scopes
