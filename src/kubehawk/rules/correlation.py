"""Streaming state for Sigma correlation rules.

Windows slide over event time (``stageTimestamp``), per group-by key, in stream order.
Memory stays bounded: events older than the timespan are dropped from a group's
window, groups idle longer than the timespan are dropped (groups are kept in
least-recently-active order so expiry only looks at the front).

One alert per (rule, group) per window: when a correlation fires for a group, that group is
quiet for one timespan after the alert (events are still counted, none alerts). The first
event after the quiet period alerts again only if the condition holds over the events of the
window that ends at it, which by then holds none of the events of the previous alert; so a
continuing burst alerts once per timespan and no event is counted in two alerts.

Supported: ``event_count``, ``value_count`` (gt/gte/eq), ``temporal`` (all referenced
rules seen in the window) and ``temporal_ordered`` (seen in the written order).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import msgspec

from kubehawk.event import AuditEvent
from kubehawk.fieldpath import split_path
from kubehawk.rules.model import Match, Rule

__all__ = ["CorrelationState", "epoch_of", "event_epoch", "event_stamp"]

MAX_LISTED_EVENTS = 20
MAX_GROUPS = 100_000  # per correlation: a hard cap on top of time-based expiry


def event_stamp(e: AuditEvent) -> Any:
    """The timestamp text an event's time is read from (stage time, else receive time)."""
    h = e.head
    return h.stageTimestamp or h.requestReceivedTimestamp or h.timestamp


def event_epoch(e: AuditEvent) -> float | None:
    """Seconds since the epoch of the event (stage time, else receive time)."""
    return epoch_of(event_stamp(e))


def epoch_of(ts: Any) -> float | None:
    """Seconds since the epoch of a timestamp text as :func:`event_stamp` gives it (None: no time)."""
    if not ts:
        return None
    try:
        t = dt.datetime.fromisoformat(ts)
    except (ValueError, TypeError):
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def _expire(seen: dict[Any, float], horizon: float) -> None:
    """Drop the entries seen before ``horizon`` from a dict kept in time order (oldest first)."""
    while seen:
        k = next(iter(seen))
        if seen[k] >= horizon:
            break
        del seen[k]


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def _hashable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return msgspec.json.encode(v).decode()


class _Group:
    __slots__ = ("last", "items", "ids", "chain", "values", "quiet_until")

    def __init__(self) -> None:
        self.last = 0.0
        # the group alerted: no other alert while the event time is at or before this
        self.quiet_until = float("-inf")
        # event_count: auditID -> time (insertion ordered); temporal: rule id -> (time, auditID)
        self.items: dict[Any, Any] = {}
        # value_count: value -> time seen last (moved to the end when seen again)
        self.values: dict[Any, float] = {}
        # (time, auditID) of the events in the window, oldest first (for the alert)
        self.ids: list[tuple[float, str]] = []
        # temporal_ordered: per step, (chain start time, auditIDs) or None
        self.chain: list[Any] = []


class CorrelationState:
    """Windows of one correlation rule; ``feed`` each matching base event."""

    def __init__(self, rule: Rule):
        spec = rule.correlation
        if spec is None:
            raise TypeError(f"{rule.id} is not a correlation")
        self.rule = rule
        self.spec = spec
        self.span = spec.timespan
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self.position = {rid: i for i, rid in enumerate(spec.rules)}
        self._counter = itertools.count()
        op, n = spec.op, spec.count
        if spec.type in ("temporal", "temporal_ordered") and n > len(spec.rules):
            n = len(spec.rules)
        if op == "gt":
            self._ok = lambda c: c > n
        elif op == "eq":
            self._ok = lambda c: c == n
        else:
            self._ok = lambda c: c >= n
        # Per base rule: the field path of each group-by name (aliases rename per rule).
        self._group_paths: dict[str, list[tuple[str, ...]]] = {}
        self._value_path: dict[str, tuple[str, ...] | None] = {}
        for rid in spec.rules:
            self._group_paths[rid] = [split_path(spec.aliases.get(g, {}).get(rid, g)) for g in spec.group_by]
            vf = spec.value_field
            self._value_path[rid] = split_path(spec.aliases.get(vf, {}).get(rid, vf)) if vf else None

    def __len__(self) -> int:
        return len(self.groups)

    # --- persistence (``serve`` keeps windows across restarts); matching never calls these ---

    def fingerprint(self) -> str:
        """What a snapshot is valid for: the correlation as loaded (its type, rules, window, condition)."""
        return repr(self.spec)

    def snapshot(self) -> dict[str, Any]:
        """The open windows as plain JSON-able data, oldest group first (see :meth:`restore`)."""
        n = next(self._counter)
        self._counter = itertools.count(n)
        groups = [[list(key), g.last, [[k, v] for k, v in g.items.items()], [[k, v] for k, v in g.values.items()],
                   g.ids, g.chain, None if g.quiet_until == float("-inf") else g.quiet_until]
                  for key, g in self.groups.items()]
        return {"fingerprint": self.fingerprint(), "counter": n, "groups": groups}

    def restore(self, data: dict[str, Any]) -> bool:
        """Reopen the windows of a :meth:`snapshot`; False (nothing restored) when it was taken for a
        correlation that has changed since."""
        if data.get("fingerprint") != self.fingerprint():
            return False
        temporal = self.spec.type == "temporal"
        self.groups = {}
        for key, last, items, values, ids, chain, *rest in data["groups"]:
            g = _Group()
            g.last = last
            if rest and rest[0] is not None:  # the quiet time after an alert (one per group per window)
                g.quiet_until = rest[0]
            g.items = {k: (tuple(v) if temporal else v) for k, v in items}
            g.values = {k: v for k, v in values}
            g.ids = [tuple(x) for x in ids]
            g.chain = [None if c is None else (c[0], [tuple(x) for x in c[1]]) for c in chain]
            self.groups[tuple(key)] = g
        self._counter = itertools.count(data.get("counter", 0))
        return True

    def _expire_groups(self, now: float) -> None:
        groups = self.groups
        horizon = now - self.span
        while groups:
            key = next(iter(groups))
            if groups[key].last >= horizon and len(groups) <= MAX_GROUPS:
                break
            del groups[key]

    def feed(self, base_id: str, e: AuditEvent, t: float) -> Match | None:
        """Account one event matched by base rule ``base_id`` at time ``t``."""
        paths = self._group_paths[base_id]
        values = tuple(_hashable(e.first(p)) for p in paths)
        self._expire_groups(t)
        g = self.groups.pop(values, None)
        if g is None:
            g = _Group()
            if self.spec.type == "temporal_ordered":
                g.chain = [None] * len(self.spec.rules)
        g.last = max(g.last, t)
        self.groups[values] = g  # most recently active at the end
        aid = e.head.auditID
        if aid is None:
            aid = f"#{next(self._counter)}"
        horizon = t - self.span
        kind = self.spec.type
        if kind == "event_count":
            count = self._event_count(g, aid, t, horizon)
        elif kind == "value_count":
            count = self._value_count(g, base_id, e, aid, t, horizon)
        elif kind == "temporal":
            count = self._temporal(g, base_id, aid, t, horizon)
        else:
            count = self._ordered(g, base_id, aid, t, horizon)
        if count is None or not self._ok(count) or t <= g.quiet_until:
            return None
        ids = g.ids
        start = min((x[0] for x in ids), default=t)
        match = Match(
            rule=self.rule,
            event=e,
            group=dict(zip(self.spec.group_by, values, strict=True)),
            count=count,
            window_start=_iso(start),
            window_end=_iso(t),
            events=[x[1] for x in ids[:MAX_LISTED_EVENTS]],
        )
        g.quiet_until = t + self.span  # one alert per group per window (see the module docstring)
        return match

    @staticmethod
    def _track(g: _Group, aid: str, t: float, horizon: float) -> None:
        ids = g.ids
        while ids and ids[0][0] < horizon:
            ids.pop(0)
        if len(ids) < MAX_LISTED_EVENTS and all(x[1] != aid for x in ids):
            ids.append((t, aid))

    def _event_count(self, g: _Group, aid: str, t: float, horizon: float) -> int | None:
        items = g.items
        _expire(items, horizon)
        if aid in items:
            return None  # the same request (another stage or another base rule): count once
        items[aid] = t
        self._track(g, aid, t, horizon)
        return len(items)

    def _value_count(
        self, g: _Group, base_id: str, e: AuditEvent, aid: str, t: float, horizon: float
    ) -> int | None:
        path = self._value_path[base_id]
        vals = g.values
        _expire(vals, horizon)
        v = e.first(path) if path else None
        if v is None:
            return None  # no value to count
        v = _hashable(v)
        vals.pop(v, None)
        vals[v] = t
        self._track(g, aid, t, horizon)
        return len(vals)

    def _temporal(self, g: _Group, base_id: str, aid: str, t: float, horizon: float) -> int:
        items = g.items
        for k in [k for k, (tt, _) in items.items() if tt < horizon]:
            del items[k]
        items[base_id] = (t, aid)
        g.ids = sorted(items.values())
        return len(items)

    def _ordered(self, g: _Group, base_id: str, aid: str, t: float, horizon: float) -> int | None:
        chain = g.chain
        for i, c in enumerate(chain):
            if c is not None and c[0] < horizon:
                chain[i] = None
        k = self.position[base_id]
        if k == 0:
            chain[0] = (t, [(t, aid)])
        else:
            prev = chain[k - 1]
            if prev is None or any(x[1] == aid for x in prev[1]):
                return None
            chain[k] = (prev[0], [*prev[1], (t, aid)])
        done = chain[-1]
        if done is None:
            return None
        g.ids = list(done[1])
        return len(chain)
