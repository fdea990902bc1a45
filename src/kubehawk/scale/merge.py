"""The stateful half of a split run: the workers' matches replayed in stream order through one
:class:`Detector` (dedup, first-seen baselines, correlations), and the alerts put in order."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent, decode_head
from kubehawk.rules.correlation import event_epoch
from kubehawk.scale.records import ChunkResult

if TYPE_CHECKING:
    from kubehawk.alerts import Alert
    from kubehawk.detect import Detector

__all__ = ["Fetch", "Merge", "ScaleError", "alert_order"]

Fetch = Callable[[int], bytes]  # line number in a part -> that line, read again


class ScaleError(RuntimeError):
    """The split run cannot give the answer of one process (a worker died or failed, a line
    cannot be read again)."""


def alert_order(alert: Alert, seq: int = 0) -> tuple[Any, ...]:
    """The order alerts of a split run are written in: event time (stage timestamp, as a number;
    an event without one first), then auditID, then rule id, then stream order (``seq``)."""
    t = event_epoch(alert.event)
    return (-math.inf if t is None else t, alert.event.head.auditID or "", alert.rule.id, seq)


class Merge:
    """Feed it each worker's :class:`ChunkResult` in stream order (the parts in reading order);
    :meth:`finish` gives every alert in :func:`alert_order`."""

    def __init__(self, detector: Detector, render: Callable[[Alert], Any] | None = None):
        """``render``: what is kept of each alert, made as soon as the alert is (the CLI's output
        line: written at the end in order, made while the workers still read)."""
        self.detector = detector
        self.by_ordinal = {r.ordinal: r for r in detector.rules.rules}
        self._plans: dict[tuple[int, ...], list[tuple[Any, None]]] = {}  # rule ordinals -> replay plan
        self._alerts: list[tuple[tuple[Any, ...], Any]] = []
        self._render = render
        self._seq = 0

    def add(self, part: ChunkResult, line_base: int = 0, fetch: Fetch | None = None) -> list[Alert]:
        """Replay one part's matches; returns the alerts they gave (also kept for :meth:`finish`).
        ``fetch``: reads a line of the part again, by its number in the part, for a first-seen
        record that crossed without it and turns out new (after a dedup the worker could not know).

        Records go in stream order: the first-seen records before each replayed record, judged
        in one call, then that record."""
        detector, plans, by_ordinal, rules = self.detector, self._plans, self.by_ordinal, part.rules
        out: list[Alert] = []
        first_at = part.first_at if part.first is not None else len(part)
        n = len(rules)
        lo = 0  # the first first-seen record not yet judged
        for i in range(n + 1):
            hi = part.fs_before[i] if i < n else len(part.fs_rules)
            # first-seen record j is at j + i in stream order, replayed record i at hi + i
            if lo + i <= first_at < hi + i:  # the baselines start learning at the part's first timed event
                self._first_seen(part, lo, first_at - i, line_base, fetch, out)
                detector.start_baselines(part.first_event(line_base))
                lo = first_at - i
            self._first_seen(part, lo, hi, line_base, fetch, out)
            lo = hi
            if i == n:
                break
            if hi + i == first_at:
                detector.start_baselines(part.first_event(line_base))
            ordinals = rules[i]
            plan = plans.get(ordinals)
            if plan is None:
                plan = plans[ordinals] = [(by_ordinal[o], None) for o in ordinals]
            out.extend(detector.replay(part.event_at(i, line_base), plan))
        if part.first is not None and first_at >= len(part):
            detector.start_baselines(part.first_event(line_base))
        self._keep(out)
        return out

    def _keep(self, alerts: list[Alert]) -> None:
        render = self._render
        for a in alerts:
            self._alerts.append((alert_order(a, self._seq), a if render is None else render(a)))
            self._seq += 1

    def _first_seen(self, part: ChunkResult, lo: int, hi: int, line_base: int, fetch: Fetch | None,
                    out: list[Alert]) -> None:
        """First-seen records lo..hi-1, judged by entry: what :meth:`Detector.replay` decides for
        them (the engine's dedup and count, the baseline's verdict), without events."""
        if lo >= hi:
            return
        detector, entries, fs_entries, stamps = self.detector, part.entries, part.fs_entries, part.fs_stamps
        ordinals = part.fs_rules[lo:hi]
        judge, rule_of = detector.baselines.judge, self.by_ordinal
        for i in detector.engine.admit(ordinals, part.fs_aids[lo:hi]):
            j = lo + i
            rule = rule_of[ordinals[i]]
            if judge(rule.id, entries[fs_entries[j]], stamps[j]):
                event = part.first_seen_event(j, line_base)
                out.extend(detector.alert_of(rule, event if event is not None else self._fetch(part, j, line_base, fetch)))

    @staticmethod
    def _fetch(part: ChunkResult, j: int, line_base: int, fetch: Fetch | None) -> AuditEvent:
        n = part.fs_linenos[j]
        if fetch is None:
            raise ScaleError(f"{part.where}: line {n} is needed again and this run cannot read it again")
        line = fetch(n)
        return AuditEvent(decode_head(line), (part.name, n + line_base), None, line)

    def finish(self) -> list[Any]:
        """End of the stream (the baselines write what they learned); every alert (or what
        ``render`` made of it), in order."""
        self._keep(self.detector.flush())
        self._alerts.sort(key=lambda x: x[0])
        return [a for _, a in self._alerts]
