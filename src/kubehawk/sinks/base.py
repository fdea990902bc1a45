"""What every alert output shares: the delivery contract, counters and level filtering.

A sink's :meth:`Sink.deliver` does the I/O for a batch of alert dicts and never raises:
it retries, spools or drops (counting and logging what it drops). Something else owns
the thread that calls it: :class:`~kubehawk.sinks.runner.QueuedSink` (an in-memory queue,
for ``kubehawk detect``) or the server's journal feeder (the journal is the queue).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubehawk.levels import LEVELS

log = logging.getLogger("kubehawk.sinks")

LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}

__all__ = ["LEVELS", "LEVEL_RANK", "DeliveryDeferred", "Sink", "SinkStats", "alert_key", "alert_level", "as_dict"]


class DeliveryDeferred(Exception):
    """Nothing of the batch was written, for a reason that may pass (a full disk): try it again later."""


class SinkStats:
    """Counters one sink keeps; read by ``SinkSet.stats`` and the server's /metrics."""

    FIELDS = ("delivered", "failed_attempts", "retried", "spooled", "dropped", "filtered")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed_attempts = 0  # one per failed send attempt (each retry counts)
        self.retried = 0  # alerts delivered on a later attempt or from the spool
        self.spooled = 0  # alerts written to the on-disk retry queue
        self.dropped = 0  # alerts given up on (counted and logged, never silent)
        self.filtered = 0  # below the sink's min_level

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + n)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {f: getattr(self, f) for f in self.FIELDS}


def as_dict(alert: Any) -> dict[str, Any]:
    """An alert as the JSON-ready mapping of DESIGN.md (``Alert`` objects or dicts)."""
    if isinstance(alert, dict):
        return alert
    to_dict = getattr(alert, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"cannot emit {type(alert).__name__}: expected an Alert or a dict")
    return to_dict()


def alert_level(alert: dict[str, Any]) -> str:
    rule = alert.get("rule")
    level = rule.get("level") if isinstance(rule, dict) else None
    return level if level in LEVEL_RANK else "medium"


def alert_key(alert: dict[str, Any]) -> tuple[str, str]:
    """(rule id, auditID): the identity of an alert; one alert per pair (DESIGN.md)."""
    rule = alert.get("rule")
    rid = rule.get("id") if isinstance(rule, dict) else None
    return (str(rid or ""), str(alert.get("auditID") or ""))


class Sink:
    """Base class; subclasses implement :meth:`_deliver` (and maybe :meth:`tick`)."""

    type_name = "sink"
    # The alert format this sink writes (``format:`` of the output; kubehawk.formats).
    fmt = "json"

    def __init__(self, name: str, min_level: str = "informational") -> None:
        self.name = name
        self.min_rank = LEVEL_RANK[min_level]
        self.stats = SinkStats()
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def wants(self, alert: dict[str, Any]) -> bool:
        return LEVEL_RANK[alert_level(alert)] >= self.min_rank

    def deliver(self, alerts: list[dict[str, Any]], *, keep_on_failure: bool = False) -> None:
        """Send a batch; returns when each alert is delivered, spooled or counted as dropped.

        ``keep_on_failure``: the caller still holds the batch (the server's journal): a failure
        that may pass raises :class:`DeliveryDeferred`, with nothing of the batch written, so the
        caller tries again later instead of the alerts being dropped.
        """
        batch = [a for a in alerts if self.wants(a)]
        if len(batch) != len(alerts):
            self.stats.add("filtered", len(alerts) - len(batch))
        if not batch:
            return
        try:
            self._deliver(batch)
        except DeliveryDeferred as e:
            self.stats.add("failed_attempts")
            if keep_on_failure:
                raise
            self.drop(len(batch), str(e))
        except Exception as e:  # a bug or an unexpected I/O error must not kill the worker
            self.drop(len(batch), f"unexpected error: {e!r}")

    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def shape(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The alert as this sink writes it: the JSON contract (without the event the server keeps
        beside it for the other formats), or ECS / OCSF / Falco JSON."""
        from kubehawk.formats import alert_parts, render

        d, event = alert_parts(alert)
        return render(d, self.fmt, event)

    def tick(self) -> None:
        """Called when idle (about once a second): retry spooled alerts, flush buffers."""

    def last_delivered_key(self) -> tuple[str, str] | None:
        """The key of the last alert this sink durably wrote, if it can tell (file sink).

        The server uses it after a crash to avoid writing an alert twice.
        """
        return None

    def close(self) -> None:
        """Flush and release resources."""

    def drop(self, n: int, reason: str) -> None:
        self.stats.add("dropped", n)
        self.warn(f"output {self.name}: dropped {n} alert(s): {reason}", kind="drop")

    def warn(self, message: str, kind: str = "retry") -> None:
        """Log, at most once a second per sink and kind, so a dead endpoint does not flood the log.

        Drops have their own kind, so a retry message never hides a drop.
        """
        now = time.monotonic()
        if now - self._last_log.get(kind, -1e9) >= 1.0:
            n = self._suppressed.get(kind, 0)
            extra = f" ({n} similar messages suppressed)" if n else ""
            log.warning("%s%s", message, extra)
            self._last_log[kind] = now
            self._suppressed[kind] = 0
        else:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
