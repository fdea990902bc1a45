"""The background half of ``serve``: detection over the journal, then delivery to outputs.

:class:`Processor` reads events after the ``processed`` cursor, runs the detector and
commits the alerts together with the new cursor (see :mod:`kubehawk.server.journal`).
One :class:`Feeder` per output reads alerts after that output's cursor and hands them
to the sink; a slow or dead output lags behind on its own and never blocks detection
or the other outputs, and its backlog waits on disk in the journal, not in memory.

Neither gives up on an error (a full disk, a locked or failing journal, an output file that
cannot grow): each keeps its place, waits a growing backoff (:class:`Trouble`) and tries again,
so detection and delivery resume by themselves when space returns. The server's liveness
probe fails when one has been failing for longer than ``server.liveness_timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import msgspec

from kubehawk.event import EventDecodeError, decode_event
from kubehawk.server.journal import Journal, NewAlert
from kubehawk.server.metrics import Metrics
from kubehawk.server.state import (
    SNAPSHOT_NAME,
    SNAPSHOT_SECONDS,
    has_correlations,
    restore_correlations,
    snapshot_correlations,
)
from kubehawk.sinks.base import Sink, alert_key

log = logging.getLogger("kubehawk.server")

__all__ = ["Feeder", "Processor", "Trouble"]


class Trouble:
    """A worker's failing spell: since when, the last error, the backoff before the next try."""

    def __init__(self, what: str, first_delay: float = 0.5, max_delay: float = 30.0) -> None:
        self.what = what
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.since: float | None = None  # monotonic start of the current spell, None when healthy
        self.error: BaseException | None = None
        self.attempts = 0
        self._last_log = 0.0

    def failed(self, e: BaseException) -> float:
        """Note a failure; the seconds to wait before the next try. Logged once per spell and minute."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        self.error = e
        self.attempts += 1
        if self.attempts == 1 or now - self._last_log >= 60:
            self._last_log = now
            log.error("%s failed (attempt %d, retrying with backoff): %s", self.what, self.attempts, e)
        return min(self.max_delay, self.first_delay * 2 ** min(self.attempts - 1, 10))

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s recovered after %d failed attempt(s) in %.0f s", self.what, self.attempts,
                        time.monotonic() - self.since)
        self.since, self.error, self.attempts = None, None, 0

    def failing_for(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

_decode = msgspec.json.Decoder()


class Processor(threading.Thread):
    def __init__(self, journal: Journal, detector: Any, metrics: Metrics, *, config: Any = None,
                 chunk: int = 500, dedup_window: float = 3600.0, alert_window: float = 86400.0,
                 sink_names: list[str] | None = None, on_alerts: Any = None) -> None:
        super().__init__(name="kubehawk-processor", daemon=True)
        self.journal = journal
        self.detector = detector
        self.metrics = metrics
        self.config = config
        self.chunk = chunk
        self.dedup_window = dedup_window
        self.alert_window = alert_window
        self.sink_names = sink_names or []
        self.on_alerts = on_alerts
        self._stop_evt = threading.Event()
        self.error: BaseException | None = None
        self.trouble = Trouble("detection")
        self.position: int | None = None  # last seq run through detection (behind the cursor while replaying)
        self._next_snapshot = 0.0  # monotonic time of the next correlation snapshot (the first commit takes one)

    def stop(self) -> None:
        self._stop_evt.set()
        with self.journal.new_events:
            self.journal.new_events.notify_all()

    def run(self) -> None:
        db: Any = None
        last_prune = time.monotonic()
        # (upto, alerts, metric labels, new events) detected but not yet committed: after a failed commit
        # only the commit is retried; detection must not run twice (its state has moved on).
        result: tuple[int, list[NewAlert], dict[str, tuple[str, str]], int] | None = None
        try:
            while not self._stop_evt.is_set():
                try:
                    if db is None:
                        db = self.journal.connect()
                    if self.position is None:
                        self.position = self._restore(db)
                    if result is None:
                        if time.monotonic() - last_prune > 60:  # also under constant load
                            last_prune = time.monotonic()
                            self._prune(db)
                        rows = self.journal.next_events(db, self.chunk, after=self.position)
                        if not rows:
                            self.trouble.ok()
                            with self.journal.new_events:
                                if self.journal.last_seq <= self.journal.processed and not self._stop_evt.is_set():
                                    self.journal.new_events.wait(0.5)
                            continue
                        result = self._detect(rows)
                    self._commit(db, *result)
                    self.position = result[0]
                    result = None
                    self.trouble.ok()
                except Exception as e:  # a full disk, a journal error: keep the place, back off, retry
                    self.metrics.event_errors.inc(stage="journal")
                    self._stop_evt.wait(self.trouble.failed(e))
                    if db is not None:
                        with contextlib.suppress(Exception):
                            db.close()
                    db = None
            if db is not None and result is None and self.position is not None:
                self._final_snapshot(db)
        except BaseException as e:  # not an error to retry (interpreter exit): not-ready, not alive
            self.error = e
            log.exception("detection stopped: %s", e)
        finally:
            if db is not None:
                db.close()

    def _restore(self, db: Any) -> int:
        """Reopen the correlation windows of the last snapshot; where detection resumes (the
        snapshot's position: the events after it are detected again, their alerts deduplicated)."""
        processed = self.journal.processed
        if not has_correlations(self.detector):
            return processed
        snap = self.journal.load_snapshot(db, SNAPSHOT_NAME)
        if snap is None or snap[0] > processed:
            return processed
        upto, blob = snap
        groups = restore_correlations(self.detector, blob, f"journal {self.journal.path}")
        if processed > upto:
            log.info("correlations: %d open window(s) restored as of event #%d; replaying events #%d-#%d",
                     groups, upto, upto + 1, processed)
        return upto

    def _final_snapshot(self, db: Any) -> None:
        """At shutdown: the windows as of the last committed event, so the next start replays nothing."""
        snap = snapshot_correlations(self.detector)
        if snap is None:
            return
        try:
            self.journal.commit_processed(db, self.position or 0, [], 0, snapshot=(SNAPSHOT_NAME, snap))
        except Exception as e:  # the next start replays from the previous snapshot instead
            log.warning("correlation windows not saved at shutdown: %s", e)

    def _detect(self, rows: list[tuple[int, str, bytes, float]]) -> tuple[int, list[NewAlert], dict[str, tuple[str, str]], int]:
        found: list[NewAlert] = []
        labels: dict[str, tuple[str, str]] = {}  # rule id -> the metric's labels (its name, its level)
        now = time.time()
        for seq, source, payload, received in rows:
            origin = f"journal seq {seq} ({source})"
            try:
                if source == "admission":
                    from kubehawk.sources.admission import admission_review_to_event

                    event = admission_review_to_event(_decode.decode(payload), origin)
                else:
                    event = decode_event(payload, origin)
            except (EventDecodeError, msgspec.DecodeError) as e:  # validated on receipt; count it anyway
                self.metrics.event_errors.inc(stage="decode")
                log.warning("%s: %s", origin, e)
                continue
            if self.config is not None:
                event.bind_context(self.config)
            try:
                alerts = self.detector.process(event)
            except Exception as e:  # one bad rule or event must not stop the server
                self.metrics.event_errors.inc(stage="detect")
                log.error("%s: detection failed: %r", origin, e)
                continue
            self.metrics.processing_latency.observe(now - received)
            for alert in alerts:
                d = alert.to_dict()
                # the event as it was received, for the formats that carry it (ECS event.original,
                # OCSF evidence); the JSON contract leaves it out (kubehawk.formats.render)
                d["event"] = alert.original_event()
                rule_id, audit_id = alert_key(d)
                key = audit_id or f"seq:{seq}"
                found.append(NewAlert(rule_id, key, msgspec.json.encode(d), received))
                rule = d.get("rule", {})
                labels[rule_id] = (rule.get("name") or rule_id, rule.get("level", "unknown"))
        new = sum(1 for r in rows if r[0] > self.journal.processed)  # not replayed after a restart
        return rows[-1][0], found, labels, new

    def _commit(self, db: Any, upto: int, found: list[NewAlert], labels: dict[str, tuple[str, str]],
                count: int) -> None:
        baselines = getattr(self.detector, "baselines", None)
        if baselines is not None:
            baselines.flush()  # learned values on disk before the cursor passes them (never raises)
        snapshot = None
        if time.monotonic() >= self._next_snapshot:
            blob = snapshot_correlations(self.detector)
            if blob is not None:
                snapshot = (SNAPSHOT_NAME, blob)
        fresh = self.journal.commit_processed(db, upto, found, count, snapshot=snapshot)
        if snapshot is not None:
            self._next_snapshot = time.monotonic() + SNAPSHOT_SECONDS
        self.metrics.events_processed.inc(count)
        for a in fresh:
            # the label is the rule's name, the short word users type (`rules show NAME`)
            name, level = labels.get(a.rule_id, (a.rule_id, "unknown"))
            self.metrics.alerts.inc(rule=name, level=level)
        if len(fresh) != len(found):
            self.metrics.alerts_deduplicated.inc(len(found) - len(fresh))
        if fresh and self.on_alerts is not None:
            self.on_alerts()

    def _prune(self, db: Any) -> None:
        try:
            self.journal.recount_backlog(db)
            n = self.journal.prune(db, dedup_window=self.dedup_window, alert_window=self.alert_window,
                                   sinks=self.sink_names)
            if n:
                log.debug("journal: pruned %d old row(s)", n)
        except Exception as e:
            log.warning("journal prune failed (will retry): %s", e)


class Feeder(threading.Thread):
    """Moves alerts from the journal to one sink, in order, at least once (exactly once for files)."""

    def __init__(self, journal: Journal, sink: Sink, metrics: Metrics, batch: int = 200) -> None:
        super().__init__(name=f"feeder-{sink.name}", daemon=True)
        self.journal = journal
        self.sink = sink
        self.metrics = metrics
        self.batch = batch
        self.state_key = f"sink:{sink.name}"
        self.wake = threading.Event()
        self._stop_evt = threading.Event()
        self.cursor = 0
        self.lag = 0
        self.error: BaseException | None = None
        self.trouble = Trouble(f"output {sink.name}")

    def prepare(self) -> None:
        """Load (or create) this output's cursor; call before detection starts."""
        db = self.journal.connect()
        try:
            row = db.execute("SELECT value FROM state WHERE name = ?", (self.state_key,)).fetchone()
            if row is None:
                # A new output starts from now: it does not replay the journal's history.
                self.cursor = self.journal.last_alert_id(db)
                self.journal.set_state(db, self.state_key, self.cursor)
            else:
                self.cursor = row[0]
            key = self.sink.last_delivered_key()
            if key is not None:
                # The sink wrote this alert before a crash stopped us recording it: skip past it.
                ident = self.journal.alert_id(db, key[0], key[1])
                if ident is not None and ident > self.cursor:
                    log.info("output %s: already holds alerts up to #%d (cursor was #%d); resuming after it",
                             self.sink.name, ident, self.cursor)
                    self.cursor = ident
                    self.journal.set_state(db, self.state_key, ident)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop_evt.set()
        self.wake.set()

    def run(self) -> None:
        db: Any = None
        try:
            while not self._stop_evt.is_set():
                try:
                    if db is None:
                        db = self.journal.connect()
                    self._step(db)
                    self.trouble.ok()
                except Exception as e:  # a full disk under the output or the journal: retry, keep the place
                    self._stop_evt.wait(self.trouble.failed(e))
                    if db is not None:
                        with contextlib.suppress(Exception):
                            db.close()
                    db = None
        except BaseException as e:
            self.error = e
            log.exception("output %s: feeder stopped: %s", self.sink.name, e)
        finally:
            if db is not None:
                db.close()

    def _step(self, db: Any) -> None:
        rows = self.journal.alerts_after(db, self.cursor, self.batch)
        if not rows:
            self.lag = 0
            if not self.wake.wait(1.0):
                self.sink.tick()
            self.wake.clear()
            return
        alerts = [_decode.decode(p) for _, p, _ in rows]
        self.sink.deliver(alerts, keep_on_failure=True)  # DeliveryDeferred: nothing written, retry
        now = time.time()
        for _, _, received in rows:
            self.metrics.alert_latency.observe(now - received, sink=self.sink.name)
        self.cursor = rows[-1][0]
        self.journal.set_state(db, self.state_key, self.cursor)
        self.lag = self.journal.last_alert_id(db) - self.cursor
