"""The stateful half of a split run: the workers' matches replayed in stream order through one
:class:`Detector` (dedup, first-seen baselines, correlations), and the alerts put in order."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent
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
        self._rid_of = {o: r.id for o, r in self.by_ordinal.items()}
        self._plans: dict[tuple[int, ...], list[tuple[Any, None]]] = {}  # rule ordinals -> replay plan
        self._alerts: list[tuple[tuple[Any, ...], Any]] = []
        self._render = render
        self._seq = 0

    def add(self, part: ChunkResult, line_base: int = 0, fetch: Fetch | None = None) -> list[Alert]:
        """Replay one part's matches; returns the alerts they gave (also kept for :meth:`finish`).
        ``fetch``: reads a line of the part again, by its number in the part, for a first-seen
        record that crossed without it and turns out new (after a dedup the worker could not know).

        Records go in stream order (:meth:`_in_order`), or the first-seen records are judged all
        at once first when that gives the same answer (:meth:`_at_once`)."""
        events = _PartEvents(part, line_base, self.detector.config)
        out: list[Alert] = []
        if not self._at_once(part, events, fetch, out):
            self._in_order(part, events, fetch, out)
        self._keep(out)
        return out

    def _in_order(self, part: ChunkResult, events: _PartEvents, fetch: Fetch | None, out: list[Alert]) -> None:
        """The part's records in stream order: the first-seen records before each replayed
        record, judged in one call, then that record."""
        detector, line_base = self.detector, events.line_base
        first_at = part.first_at if part.first is not None else len(part)
        n = len(part.rules)
        lo = 0  # the first first-seen record not yet judged
        for i in range(n + 1):
            hi = part.first_seen_before(i)
            # first-seen record j is at j + i in stream order, replayed record i at hi + i
            if lo + i <= first_at < hi + i:  # the baselines start learning at the part's first timed event
                self._first_seen(part, lo, first_at - i, events, fetch, out)
                detector.start_baselines(part.first_event(line_base))
                lo = first_at - i
            self._first_seen(part, lo, hi, events, fetch, out)
            lo = hi
            if i == n:
                break
            if hi + i == first_at:
                detector.start_baselines(part.first_event(line_base))
            out.extend(detector.replay(events.replayed(i), self._plan(part.rules[i])))
        if part.first is not None and first_at >= len(part):
            detector.start_baselines(part.first_event(line_base))

    def _at_once(self, part: ChunkResult, events: _PartEvents, fetch: Fetch | None, out: list[Alert]) -> bool:
        """The part's first-seen records admitted and judged all at once (at C speed for the
        dedup, the commonest verdict for all at once: :meth:`Engine.admit_all`,
        :meth:`Baselines.judge_all`), then the replayed records in order, each alerting first-seen
        record shaped at its place; False (nothing done) unless that is provably what the order
        gives: the baselines have started learning (before the part), no first-seen record lacks
        an auditID, the replayed records' dedup keys are not theirs (nor is a rotation of the
        dedup memory due), and the replayed records' first-seen rules judge other (rule, key)
        pairs than theirs (the only state one verdict can change for another)."""
        detector, baselines = self.detector, self.detector.baselines
        if not part.fs_rules or baselines is None or baselines.pending_start or None in part.fs_aids:
            return False
        fs_keys = {(k[0], k[1]) for k in part.entries if k is not None}
        rid_of, specs, entry = self._rid_of, baselines.specs, baselines.entries.entry
        asked: list[tuple[int, str | None]] = []
        for i, ordinals in enumerate(part.rules):
            ev = events.replayed(i)
            aid = ev.head.auditID
            for o in ordinals:
                asked.append((o, aid))
                if rid_of[o] in specs and (k := entry(rid_of[o], ev)) is not None and (k[0], k[1]) in fs_keys:
                    return False
        if not detector.engine.admit_all(part.fs_rules, part.fs_aids, asked):
            return False
        entries = part.entries
        alerting = baselines.judge_all([rid_of[o] for o in part.fs_rules], [entries[e] for e in part.fs_entries],
                                       part.fs_stamps)
        a, n = 0, len(part.rules)
        for i in range(n + 1):
            hi = part.first_seen_before(i)
            while a < len(alerting) and alerting[a] < hi:  # the first-seen alerts before record i
                out.extend(self._alert_of(part, alerting[a], events, fetch))
                a += 1
            if i < n:
                out.extend(detector.replay(events.replayed(i), self._plan(part.rules[i])))
        return True

    def _plan(self, ordinals: tuple[int, ...]) -> list[tuple[Any, None]]:
        plan = self._plans.get(ordinals)
        if plan is None:
            plan = self._plans[ordinals] = [(self.by_ordinal[o], None) for o in ordinals]
        return plan

    def _keep(self, alerts: list[Alert]) -> None:
        render = self._render
        for a in alerts:
            self._alerts.append((alert_order(a, self._seq), a if render is None else render(a)))
            self._seq += 1

    def _first_seen(self, part: ChunkResult, lo: int, hi: int, events: _PartEvents, fetch: Fetch | None,
                    out: list[Alert]) -> None:
        """First-seen records lo..hi-1, judged by entry: what :meth:`Detector.replay` decides for
        them (the engine's dedup and count, the baseline's verdict), without events."""
        if lo >= hi:
            return
        detector, entries, fs_entries, stamps = self.detector, part.entries, part.fs_entries, part.fs_stamps
        ordinals = part.fs_rules[lo:hi]
        judge, rid_of = detector.baselines.judge, self._rid_of
        for i in detector.engine.admit(ordinals, part.fs_aids[lo:hi]):
            j = lo + i
            if judge(rid_of[ordinals[i]], entries[fs_entries[j]], stamps[j]):
                out.extend(self._alert_of(part, j, events, fetch))

    def _alert_of(self, part: ChunkResult, j: int, events: _PartEvents, fetch: Fetch | None) -> list[Alert]:
        """The alert of first-seen record ``j``, judged new."""
        event = events.first_seen(j)
        if event is None:
            event = self._fetch(part, j, events.line_base, fetch)
        return self.detector.alert_of(self.by_ordinal[part.fs_rules[j]], event)

    @staticmethod
    def _fetch(part: ChunkResult, j: int, line_base: int, fetch: Fetch | None) -> AuditEvent:
        n = part.fs_linenos[j]
        if fetch is None:
            raise ScaleError(f"{part.where}: line {n} is needed again and this run cannot read it again")
        return part.line_event(fetch(n), n, line_base)

    def finish(self) -> list[Any]:
        """End of the stream (the baselines write what they learned); every alert (or what
        ``render`` made of it), in order."""
        self._keep(self.detector.flush())
        self._alerts.sort(key=lambda x: x[0])
        return [a for _, a in self._alerts]


class _PartEvents:
    """The events of a part's records, each decoded once: a replayed record's, and a first-seen
    record's that shares its line (the front of that record's rules), so that both rules' alerts
    hold one event, as in one process (a record's odd values are counted once)."""

    def __init__(self, part: ChunkResult, line_base: int, config: Any = None):
        self.part, self.line_base, self.config = part, line_base, config
        self._replayed: dict[int, AuditEvent] = {}

    def replayed(self, i: int) -> AuditEvent:
        """Replayed record ``i``'s event, bound to the run's config (as Detector.replay binds it:
        :meth:`Merge._at_once` reads its entries first, which may read ``x.*`` fields)."""
        ev = self._replayed.get(i)
        if ev is None:
            ev = self._replayed[i] = self.part.event_at(i, self.line_base)
            if self.config is not None:
                ev.bind_context(self.config)
        return ev

    def first_seen(self, j: int) -> AuditEvent | None:
        """First-seen record ``j``'s event, or None if its line did not cross (read it again)."""
        part = self.part
        i = bisect.bisect_right(part.fs_before, j)  # the replayed record after it
        if i < len(part.rules) and i not in part.others and part.linenos[i] == part.fs_linenos[j]:
            return self.replayed(i)
        return part.first_seen_event(j, self.line_base)
