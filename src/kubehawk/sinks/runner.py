"""A bounded in-memory queue and a worker thread in front of a sink, so detection never waits.

Used by ``kubehawk detect --output``; the server feeds sinks from its journal instead.
A full queue drops the alert, counts it and logs it: blocking detection would be worse.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from kubehawk.sinks.base import Sink, as_dict

log = logging.getLogger("kubehawk.sinks")

__all__ = ["QueuedSink", "SinkSet"]

_STOP = object()


class QueuedSink:
    def __init__(self, sink: Sink, maxsize: int = 10000, batch: int = 256) -> None:
        self.sink = sink
        self.batch = batch
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self.sink.name

    def emit(self, alert: dict[str, Any]) -> None:
        if not self.sink.wants(alert):
            self.sink.stats.add("filtered")
            return
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.sink.drop(1, f"in-memory queue full ({self._q.maxsize} alerts waiting)")

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._q.get(timeout=1.0)
            except queue.Empty:
                self.sink.tick()
                continue
            items = []
            if first is _STOP:
                stopping = True
            else:
                items.append(first)
            while len(items) < self.batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                items.append(nxt)
            if items:
                self.sink.deliver(items)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then release the sink."""
        self._q.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            left = self._q.qsize()
            log.warning("output %s: still busy after %.0fs at shutdown; %d queued alert(s) abandoned",
                        self.name, timeout, left)
            self.sink.stats.add("dropped", left)
        self.sink.close()


class SinkSet:
    """All configured outputs; ``emit`` hands an alert to each without waiting."""

    def __init__(self, sinks: list[Sink], maxsize: int = 10000) -> None:
        self.sinks = sinks
        self._queued = [QueuedSink(s, maxsize=maxsize) for s in sinks]

    def emit(self, alert: Any) -> None:
        d = as_dict(alert)
        for q in self._queued:
            q.emit(d)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {s.name: s.stats.as_dict() for s in self.sinks}

    def close(self, timeout: float = 30.0) -> None:
        for q in self._queued:
            q.close(timeout)

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.sinks)
