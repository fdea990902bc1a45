"""The numbers and rows of a report, computed from alerts (and the events read, when a log was given).

Kept apart from the HTML so the same data can be tested without a browser.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubehawk.alerts import LEVELS, level_rank
from kubehawk.formats import parse_time

__all__ = ["AlertRow", "Cluster", "ReportData", "build_data"]

# An intrusion's steps: alerts of one identity, each within this gap of the previous one.
CLUSTER_GAP = dt.timedelta(minutes=15)
CLUSTER_MIN_ALERTS = 3
CLUSTER_MIN_RULES = 2


@dataclass
class AlertRow:
    """One alert as the table shows it (and what the row opens: message, triage, raw event)."""

    index: int
    time: str
    when: dt.datetime | None
    level: str
    rule_id: str
    rule_title: str
    user: str
    namespace: str
    verb: str
    target: str
    source_ip: str
    message: str
    techniques: list[str]
    attack: list[str]
    triage: str
    falsepositives: list[str]
    event: Any  # the original event (a dict, or its JSON bytes), None when not known
    cluster: int | None = None

    @property
    def raw(self) -> str | None:
        """The original event, pretty-printed (only the listed rows are ever asked)."""
        ev = self.event
        if ev is None:
            return None
        if isinstance(ev, bytes | str):
            ev = json.loads(ev)
        return json.dumps(ev, indent=2, sort_keys=True)


@dataclass
class Cluster:
    """Consecutive alerts of one identity close in time: the visible steps of one intrusion."""

    id: int
    user: str
    start: dt.datetime
    end: dt.datetime
    rows: list[AlertRow]

    @property
    def rules(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.setdefault(r.rule_title)
        return list(seen)

    @property
    def steps(self) -> list[tuple[AlertRow, int]]:
        """The alerts with consecutive repeats of one rule folded: (first alert, how many)."""
        out: list[tuple[AlertRow, int]] = []
        for r in self.rows:
            if out and out[-1][0].rule_id == r.rule_id:
                out[-1] = (out[-1][0], out[-1][1] + 1)
            else:
                out.append((r, 1))
        return out

    @property
    def top_level(self) -> str:
        return max((r.level for r in self.rows), key=level_rank)


@dataclass
class ReportData:
    title: str
    generated: str
    source: str
    events_read: int | None
    bad_records: int | None
    span: tuple[dt.datetime, dt.datetime] | None
    by_level: dict[str, int]
    top_rules: list[tuple[str, str, int]]  # (title, level, count)
    top_users: list[tuple[str, int]]
    top_namespaces: list[tuple[str, int]]
    rows: list[AlertRow]  # shown in the table (at most ``cap``)
    total_alerts: int
    cap: int
    aggregated: list[dict[str, Any]]  # beyond the cap: (rule, identity, namespace) counts
    clusters: list[Cluster]
    alerts_by_technique: Counter[str]
    timeline_rows: list[AlertRow] = field(default_factory=list)  # every alert with a time (for the chart)
    matrix: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def _target(a: dict[str, Any]) -> str:
    res = a.get("resource") or ""
    if a.get("subresource"):
        res = f"{res}/{a['subresource']}"
    obj = "/".join(p for p in (a.get("namespace"), a.get("name")) if p)
    return f"{res} {obj}".strip()


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


_TEXT_FIELDS = ("auditID", "user", "verb", "resource", "subresource", "namespace", "name", "sourceIP", "userAgent",
                "message")


def _texts(a: dict[str, Any]) -> dict[str, Any]:
    """The alert's text fields as strings (or None), whatever a hand-written line put there."""
    out = dict(a)
    for k in _TEXT_FIELDS:
        v = a.get(k)
        out[k] = None if v is None or v == "" else v if isinstance(v, str) else json.dumps(v)
    return out


def _row(i: int, a: dict[str, Any], event: Any, rules: dict[str, Any]) -> AlertRow:
    """One table row; any field of a hand-written alert line may be missing or of the wrong type."""
    a = _texts(a)
    rule = a.get("rule") if isinstance(a.get("rule"), dict) else {}
    rid = str(rule.get("id") or "")
    known = rules.get(rid)
    level = rule.get("level") if isinstance(rule.get("level"), str) and rule["level"] in LEVELS else "medium"
    return AlertRow(
        index=i, time=a["time"] if isinstance(a.get("time"), str) else "", when=parse_time(a.get("time")),
        level=level, rule_id=rid,
        rule_title=str(rule.get("title") or rid or "?"), user=str(a.get("user") or "-"),
        namespace=str(a.get("namespace") or "-"), verb=str(a.get("verb") or ""), target=_target(a),
        source_ip=str(a.get("sourceIP") or ""), message=str(a.get("message") or ""),
        techniques=_strings(a.get("techniques")), attack=_strings(a.get("attack")),
        triage=(getattr(known, "description", None) or "").strip(),
        falsepositives=list(getattr(known, "falsepositives", None) or []),
        event=event,
    )


def _clusters(rows: list[AlertRow]) -> list[Cluster]:
    """Group each identity's alerts into runs whose consecutive gaps are at most CLUSTER_GAP;
    keep the runs with enough alerts and distinct rules to look like steps of one intrusion."""
    by_user: dict[str, list[AlertRow]] = defaultdict(list)
    for r in rows:
        if r.when is not None and r.user != "-" and level_rank(r.level) >= level_rank("low"):
            by_user[r.user].append(r)
    runs: list[list[AlertRow]] = []
    for user_rows in by_user.values():
        user_rows.sort(key=lambda r: r.when)  # type: ignore[arg-type,return-value]
        run = [user_rows[0]]
        for r in user_rows[1:]:
            if r.when - run[-1].when <= CLUSTER_GAP:  # type: ignore[operator]
                run.append(r)
            else:
                runs.append(run)
                run = [r]
        runs.append(run)
    keep = [r for r in runs if len(r) >= CLUSTER_MIN_ALERTS and len({x.rule_id for x in r}) >= CLUSTER_MIN_RULES]
    keep.sort(key=lambda r: r[0].when)  # type: ignore[arg-type,return-value]
    out = []
    for i, run in enumerate(keep, 1):
        for r in run:
            r.cluster = i
        out.append(Cluster(i, run[0].user, run[0].when, run[-1].when, run))  # type: ignore[arg-type]
    return out


def build_data(alerts: list[tuple[dict[str, Any], Any]], *, rules: dict[str, Any],
               source: str, events_read: int | None = None, bad_records: int | None = None,
               event_span: tuple[dt.datetime, dt.datetime] | None = None, cap: int = 2000,
               title: str = "kubehawk report") -> ReportData:
    """Everything the report shows. ``alerts``: (alert dict, original event as a dict or its JSON
    bytes, or None) in any order;
    ``rules``: rule id -> rule (for triage advice); ``cap``: rows in the table, the rest aggregated."""
    rows = [_row(i, a, ev, rules) for i, (a, ev) in enumerate(alerts)]
    rows.sort(key=lambda r: (r.when is None, r.when or dt.datetime.min.replace(tzinfo=dt.UTC), r.index))
    for i, r in enumerate(rows):
        r.index = i
    timed = [r for r in rows if r.when is not None]
    span = event_span
    if span is None and timed:
        span = (timed[0].when, timed[-1].when)  # type: ignore[assignment]
    by_level = {lvl: 0 for lvl in reversed(LEVELS)}
    rule_count: Counter[tuple[str, str]] = Counter()
    users: Counter[str] = Counter()
    namespaces: Counter[str] = Counter()
    by_tech: Counter[str] = Counter()
    for r in rows:
        by_level[r.level] += 1
        rule_count[(r.rule_title, r.level)] += 1
        users[r.user] += 1
        namespaces[r.namespace] += 1
        for t in r.techniques:
            by_tech[t.upper()] += 1
    clusters = _clusters(rows)
    # The table shows the most severe first when it must cut: keep the cap's worth by level, then time.
    shown = rows
    aggregated: list[dict[str, Any]] = []
    if len(rows) > cap:
        ranked = sorted(rows, key=lambda r: (-level_rank(r.level), r.index))
        keep = {r.index for r in ranked[:cap]}
        shown = [r for r in rows if r.index in keep]
        rest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for r in rows:
            if r.index in keep:
                continue
            key = (r.level, r.rule_title, r.user, r.namespace)
            agg = rest.setdefault(key, {"level": r.level, "rule": r.rule_title, "user": r.user,
                                        "namespace": r.namespace, "count": 0, "first": r.time, "last": r.time})
            agg["count"] += 1
            agg["last"] = r.time or agg["last"]
        aggregated = sorted(rest.values(), key=lambda g: (-level_rank(g["level"]), -g["count"], g["rule"]))
    return ReportData(
        title=title, generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), source=source,
        events_read=events_read, bad_records=bad_records, span=span, by_level=by_level,
        top_rules=[(t, lvl, n) for (t, lvl), n in rule_count.most_common(10)],
        top_users=users.most_common(10), top_namespaces=namespaces.most_common(10), rows=shown,
        total_alerts=len(rows), cap=cap, aggregated=aggregated, clusters=clusters, alerts_by_technique=by_tech,
        timeline_rows=timed,
    )
