"""The stateful half of a split run: the workers' matches replayed in stream order through one
:class:`Detector` (dedup, first-seen baselines, correlations), and the alerts put in order."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kubehawk.rules.correlation import event_epoch
from kubehawk.scale.records import ChunkResult

if TYPE_CHECKING:
    from kubehawk.alerts import Alert
    from kubehawk.detect import Detector

__all__ = ["Merge", "alert_order"]


def alert_order(alert: Alert, seq: int = 0) -> tuple[Any, ...]:
    """The order alerts of a split run are written in: event time (stage timestamp, as a number;
    an event without one first), then auditID, then rule id, then stream order (``seq``)."""
    t = event_epoch(alert.event)
    return (-math.inf if t is None else t, alert.event.head.auditID or "", alert.rule.id, seq)


class Merge:
    """Feed it each worker's :class:`ChunkResult` in stream order (the parts in reading order);
    :meth:`finish` gives every alert in :func:`alert_order`."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.by_ordinal = {r.ordinal: r for r in detector.rules.rules}
        self._plans: dict[tuple[int, ...], list[tuple[Any, None]]] = {}  # rule ordinals -> replay plan
        self._alerts: list[tuple[tuple[Any, ...], Alert]] = []
        self._seq = 0

    def add(self, part: ChunkResult, line_base: int = 0) -> list[Alert]:
        """Replay one part's matches; returns the alerts they gave (also kept for :meth:`finish`)."""
        detector, plans = self.detector, self._plans
        replay = detector.replay
        out: list[Alert] = []
        first_at = part.first_at if part.first is not None else -1
        for i, (event, ordinals) in enumerate(part.events(line_base)):
            if i == first_at:
                detector.start_baselines(part.first_event(line_base))
            plan = plans.get(ordinals)
            if plan is None:
                plan = plans[ordinals] = [(self.by_ordinal[o], None) for o in ordinals]
            alerts = replay(event, plan)
            if alerts:
                out.extend(alerts)
        if part.first is not None and part.first_at >= len(part):
            detector.start_baselines(part.first_event(line_base))
        for a in out:
            self._alerts.append((alert_order(a, self._seq), a))
            self._seq += 1
        return out

    def finish(self) -> list[Alert]:
        """End of the stream (the baselines write what they learned); every alert, in order."""
        for a in self.detector.flush():
            self._alerts.append((alert_order(a, self._seq), a))
            self._seq += 1
        self._alerts.sort(key=lambda x: x[0])
        return [a for _, a in self._alerts]
