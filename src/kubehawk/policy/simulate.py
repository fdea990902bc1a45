"""Replay a real audit log through a policy: what it keeps, what it costs, what it blinds.

Each event is re-evaluated as the apiserver would have (same authenticated user, verb,
resource...). A kept event is cut down to the decided level (Metadata loses both bodies,
Request loses the response); level None or an omitted stage drops it. Detection runs on
the full stream and on the filtered one in the same pass, so the alerts the policy would
lose -- and any it would newly raise because a body went missing -- come out exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kubehawk.event import AuditEvent, EventHead
from kubehawk.event_schema import has_body
from kubehawk.policy.model import LEVELS, Policy, level_rank

_encoder = msgspec.json.Encoder()


@dataclass
class RuleTraffic:
    """Events and bytes one policy rule (or the default) decided."""

    events_kept: int = 0
    events_dropped: int = 0
    bytes_kept: int = 0
    bytes_dropped: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class SimulationReport:
    policy: str | None
    events: int = 0
    events_kept: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    by_rule: dict[int | None, RuleTraffic] = field(default_factory=dict)
    levels: Counter = field(default_factory=Counter)  # decided level of every event
    source_levels: Counter = field(default_factory=Counter)
    drop_reasons: Counter = field(default_factory=Counter)
    # Events whose source level is below what the policy decides: the log cannot show the difference.
    under_logged: int = 0
    alerts_full: Counter = field(default_factory=Counter)
    alerts_filtered: Counter = field(default_factory=Counter)
    missed: list[dict[str, Any]] = field(default_factory=list)
    new: list[dict[str, Any]] = field(default_factory=list)
    read: dict[str, Any] = field(default_factory=dict)
    rule_titles: dict[str, str] = field(default_factory=dict)

    @property
    def events_dropped(self) -> int:
        return self.events - self.events_kept

    def missed_by_rule(self) -> Counter:
        return Counter(m["rule"] for m in self.missed)

    def to_dict(self) -> dict[str, Any]:
        def key(i: int | None) -> str:
            return "default" if i is None else f"rules[{i}]"

        return {
            "policy": self.policy,
            "events": {"total": self.events, "kept": self.events_kept, "dropped": self.events_dropped},
            "bytes": {"in": self.bytes_in, "out": self.bytes_out, "saved": self.bytes_in - self.bytes_out},
            "by_rule": {key(i): t.to_dict() for i, t in sorted(self.by_rule.items(), key=lambda kv: (
                kv[0] is None, kv[0] if kv[0] is not None else 0))},
            "levels": {lvl: self.levels.get(lvl, 0) for lvl in LEVELS},
            "source_levels": dict(self.source_levels),
            "drop_reasons": dict(self.drop_reasons),
            "under_logged": self.under_logged,
            "alerts": {
                "full": sum(self.alerts_full.values()),
                "filtered": sum(self.alerts_filtered.values()),
                "missed": len(self.missed),
                "new": len(self.new),
                "missed_by_rule": [
                    {"rule": r, "title": self.rule_titles.get(r, ""), "count": n}
                    for r, n in self.missed_by_rule().most_common()
                ],
            },
            "missed": self.missed[:200],
            "new": self.new[:200],
            "read": self.read,
        }


def filter_event(event: AuditEvent, level: str) -> AuditEvent:
    """The event as a policy deciding ``level`` would have written it (bodies cut, level set)."""
    head = event.head
    changes: dict[str, Any] = {}
    if level_rank(level) < level_rank("RequestResponse") and has_body(head.responseObject):
        changes["responseObject"] = msgspec.Raw()
    if level_rank(level) < level_rank("Request") and has_body(head.requestObject):
        changes["requestObject"] = msgspec.Raw()
    if head.level is None or level_rank(level) < level_rank(head.level):
        changes["level"] = level
    if not changes:
        return event
    return AuditEvent(msgspec.structs.replace(head, **changes), event.origin, event._extra)


def _strip_managed_fields(event: AuditEvent) -> AuditEvent:
    head = event.head
    changes: dict[str, Any] = {}
    for name in ("requestObject", "responseObject"):
        raw = getattr(head, name)
        if has_body(raw) and b'"managedFields"' in bytes(raw):
            body = msgspec.json.decode(bytes(raw))
            _drop_managed(body)
            changes[name] = msgspec.Raw(_encoder.encode(body))
    if not changes:
        return event
    return AuditEvent(msgspec.structs.replace(head, **changes), event.origin, event._extra)


def _drop_managed(body: Any) -> None:
    if isinstance(body, dict):
        meta = body.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        for item in body.get("items") or []:
            _drop_managed(item)
        for row in body.get("rows") or []:
            if isinstance(row, dict):
                _drop_managed(row.get("object"))


_FIELDS = tuple(EventHead.__struct_fields__)


def event_size(event: AuditEvent) -> int:
    """Bytes of the event as one compact JSON line, as the apiserver writes it (no null fields).

    Bodies stay raw (no decoding); the ``"name":null,`` of unset fields is not counted.
    """
    head = event.head
    nulls = sum(len(name) + 8 for name in _FIELDS if getattr(head, name) is None)
    return len(_encoder.encode(head)) - nulls + 1


def simulate(
    policy: Policy,
    events: Iterable[AuditEvent],
    rules: Any = None,
    config: Any = None,
    detect_alerts: bool = True,
) -> SimulationReport:
    """Replay ``events`` through ``policy``; ``rules`` is a RuleSet (default: the built-in pack)."""
    report = SimulationReport(policy.source)
    full = filtered = None
    if detect_alerts:
        from kubehawk.detect import Detector

        full = Detector(rules, config)
        filtered = Detector(full.rules, config)
        report.rule_titles = {r.id: r.title for r in full.rules}
    seen_full: dict[tuple[str, str | None], dict[str, Any]] = {}
    seen_filtered: dict[tuple[str, str | None], dict[str, Any]] = {}
    for event in events:
        report.events += 1
        size = event_size(event)
        report.bytes_in += size
        report.source_levels[event.head.level or "unknown"] += 1
        d = policy.evaluate_event(event)
        report.levels[d.level] += 1
        traffic = report.by_rule.setdefault(d.rule_index, RuleTraffic())
        stage = event.head.stage or "ResponseComplete"
        if event.head.level and level_rank(d.level) > level_rank(event.head.level):
            report.under_logged += 1
        if full is not None:
            for a in full.process(event):
                _note(a, report.alerts_full, seen_full)
        if d.level == "None" or d.omits(stage):
            report.drop_reasons["level None" if d.level == "None" else f"stage {stage} omitted"] += 1
            traffic.events_dropped += 1
            traffic.bytes_dropped += size
            continue
        out = filter_event(event, d.level)
        if d.omit_managed_fields:
            out = _strip_managed_fields(out)
        out_size = event_size(out) if out is not event else size
        report.events_kept += 1
        report.bytes_out += out_size
        traffic.events_kept += 1
        traffic.bytes_kept += out_size
        traffic.bytes_dropped += size - out_size
        if filtered is not None:
            for a in filtered.process(out):
                _note(a, report.alerts_filtered, seen_filtered)
    if full is not None and filtered is not None:
        for a in full.flush():
            _note(a, report.alerts_full, seen_full)
        for a in filtered.flush():
            _note(a, report.alerts_filtered, seen_filtered)
        report.missed = [v for k, v in seen_full.items() if k not in seen_filtered]
        report.new = [v for k, v in seen_filtered.items() if k not in seen_full]
    return report


def _note(alert: Any, counter: Counter, seen: dict[tuple[str, str | None], dict[str, Any]]) -> None:
    d = alert.to_dict()
    rid = d["rule"]["id"]
    key = (rid, d.get("auditID"))
    if key in seen:
        return
    counter[rid] += 1
    seen[key] = {
        "rule": rid,
        "title": d["rule"].get("title"),
        "level": d["rule"].get("level"),
        "auditID": d.get("auditID"),
        "time": d.get("time"),
        "user": d.get("user"),
        "verb": d.get("verb"),
        "resource": d.get("resource"),
        "subresource": d.get("subresource"),
        "namespace": d.get("namespace"),
    }
