"""Collect the events of an investigation, attach their alerts, and fold runs of repeats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubehawk.alerts import level_rank
from kubehawk.formats import parse_time

__all__ = ["Anchor", "Fold", "Step", "Story", "around", "collect", "find_anchor", "fold"]

# Of one request's records, the one that tells how it ended.
_STAGE_RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}
FOLD_MIN = 3  # a run this long or longer shows its first step and "... N more"


@dataclass
class Step:
    """One request as the story tells it."""

    time: str
    when: dt.datetime | None
    user: str
    verb: str
    resource: str  # "pods/exec", or the request URI of a non-resource request
    namespace: str
    name: str
    code: int | None
    source_ip: str
    user_agent: str
    audit_id: str
    stage: str
    alerts: list[dict[str, Any]] = field(default_factory=list)  # {rule, level, message}
    anchor: bool = False  # the event an --alert investigation is centred on

    @property
    def target(self) -> str:
        obj = "/".join(p for p in (self.namespace, self.name) if p)
        return f"{self.resource} {obj}".strip()

    @property
    def fold_key(self) -> tuple[str, str, str, str]:
        return (self.user, self.verb, self.resource, self.namespace)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "user": self.user, "verb": self.verb, "resource": self.resource,
                "namespace": self.namespace or None, "name": self.name or None, "code": self.code,
                "sourceIP": self.source_ip or None, "userAgent": self.user_agent or None, "auditID": self.audit_id,
                "stage": self.stage, "alerts": self.alerts, **({"anchor": True} if self.anchor else {})}


@dataclass
class Fold:
    """A run of the same request (identity, verb, resource, namespace) without alerts."""

    first: Step
    more: list[Step]

    @property
    def text(self) -> str:
        res = self.first.resource or "the API"
        where = f" in {self.first.namespace}" if self.first.namespace else ""
        return f"… {len(self.more)} more {self.first.verb} requests on {res}{where}"


@dataclass
class Story:
    query: dict[str, Any]
    steps: list[Step]
    events_read: int = 0
    bad_records: int = 0

    @property
    def alert_count(self) -> int:
        return sum(len(s.alerts) for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "events_read": self.events_read, "bad_records": self.bad_records,
                "steps": len(self.steps), "alerts": self.alert_count, "events": [s.to_dict() for s in self.steps]}


def _s(value: Any) -> str:
    """A field as text: a malformed record may put a number or a list where a string belongs."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def _step(ev: Any) -> Step:
    h = ev.head
    res = _s(ev.ref("resource"))
    if res and ev.ref("subresource"):
        res += "/" + _s(ev.ref("subresource"))
    status = h.responseStatus if isinstance(h.responseStatus, dict) else {}
    code = status.get("code")
    return Step(time=_s(ev.time), when=parse_time(ev.time), user=_s(ev.username) or "-", verb=h.verb or "?",
                resource=res or _s(h.requestURI), namespace=_s(ev.ref("namespace")),
                name=_s(ev.ref("name") or (ev.body_name() if h.verb == "create" else "")),
                code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                source_ip=_s(ev.source_ip), user_agent=_s(h.userAgent), audit_id=_s(h.auditID), stage=_s(h.stage))


def collect(events: Iterable[Any], keep: Callable[[Any], bool], detector: Any | None = None) -> list[Step]:
    """The steps of the events ``keep`` accepts, one per request (its last stage), in time order,
    each with the alerts the detector raised on it. The detector sees every event, so rules that
    count or correlate across identities still fire."""
    kept: dict[str, Step] = {}
    order: list[Step] = []

    def tap(stream: Iterable[Any]) -> Iterator[Any]:
        for ev in stream:
            if keep(ev):
                step = _step(ev)
                prev = kept.get(step.audit_id) if step.audit_id else None
                if prev is None:
                    order.append(step)
                    if step.audit_id:
                        kept[step.audit_id] = step
                elif _STAGE_RANK.get(step.stage, 0) > _STAGE_RANK.get(prev.stage, 0):
                    prev.__dict__.update({k: v for k, v in step.__dict__.items() if k != "alerts"})
            yield ev

    if detector is None:
        for _ in tap(events):
            pass
    else:
        for alert in detector.alerts(tap(events)):
            target = kept.get(alert.event.head.auditID or "")
            if target is not None:
                target.alerts.append({"rule": alert.rule.title, "level": alert.level, "message": alert.message,
                                      "ruleId": alert.rule.id})
    for s in order:
        s.alerts.sort(key=lambda a: -level_rank(a["level"]))
    order.sort(key=lambda s: (s.when is None, s.when or dt.datetime.min.replace(tzinfo=dt.UTC)))
    return order


def fold(steps: list[Step], minimum: int = FOLD_MIN) -> list[Step | Fold]:
    """Consecutive steps of the same request without alerts, ``minimum`` or more, as one Fold."""
    out: list[Step | Fold] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        j = i + 1
        if not s.alerts and not s.anchor:
            while j < len(steps) and not steps[j].alerts and not steps[j].anchor and steps[j].fold_key == s.fold_key:
                j += 1
        if j - i >= minimum:
            out.append(Fold(s, steps[i + 1:j]))
        else:
            out.extend(steps[i:j])
        i = j
    return out


@dataclass
class Anchor:
    """The event an ``--alert`` investigation is centred on."""

    audit_id: str
    when: dt.datetime
    user: str | None
    source_ip: str | None
    obj: tuple[str, str, str] | None  # (resource, namespace, name)


def find_anchor(events: Iterable[Any], audit_id: str) -> Anchor | None:
    """The record with this auditID (its last stage), or None."""
    found = None
    for ev in events:
        if ev.head.auditID == audit_id:
            when = parse_time(ev.time)
            if when is None:
                continue
            res, name = ev.ref("resource"), ev.ref("name")
            if ev.head.verb == "create" and not name:
                name = ev.body_name()
            found = Anchor(audit_id, when, ev.username, ev.source_ip,
                           (res, ev.ref("namespace") or "", str(name)) if res and name else None)
    return found


def around(anchor: Anchor, window: dt.timedelta) -> Callable[[Any], bool]:
    """Events within ``window`` of the anchor by the same identity, on the same object, or from
    the same source IP."""
    lo, hi = anchor.when - window, anchor.when + window

    def keep(ev: Any) -> bool:
        when = parse_time(ev.time)
        if when is None or not lo <= when <= hi:
            return False
        if anchor.user and ev.username == anchor.user:
            return True
        if anchor.source_ip and ev.source_ip == anchor.source_ip:
            return True
        if anchor.obj is not None:
            res, ns, name = anchor.obj
            return ev.ref("resource") == res and (ev.ref("namespace") or "") == ns and ev.ref("name") == name
        return False

    return keep
