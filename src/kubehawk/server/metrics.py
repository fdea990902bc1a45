"""Prometheus metrics for ``serve``, in the text exposition format (no client library needed).

Counters and histograms are updated from the event loop, the processor and the
output feeders, so every update takes a lock; gauges are read when scraped.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

__all__ = ["Counter", "CountRequests", "Gauge", "Histogram", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, n: float = 1, **labels: str) -> None:
        key = tuple(str(labels.get(k, "")) for k in self.labelnames)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + n

    def value(self, **labels: str) -> float:
        key = tuple(str(labels.get(k, "")) for k in self.labelnames)
        with self._lock:
            return self._values.get(key, 0)

    def total(self) -> float:
        with self._lock:
            return sum(self._values.values())

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.labelnames:
            items = [((), 0)]
        out += [f"{self.name}{_labels(self.labelnames, k)} {v:g}" for k, v in items]
        return out


class Gauge:
    def __init__(self, name: str, help: str, fn: Callable[[], float]) -> None:
        self.name, self.help, self.fn = name, help, fn

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {self.fn():g}"]


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.labelnames, self.buckets = name, help, labels, buckets
        self._data: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., +Inf count, sum
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(str(labels.get(k, "")) for k in self.labelnames)
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            d = self._data.get(key)
            if d is None:
                d = self._data[key] = [0.0] * (len(self.buckets) + 2)
            d[i] += 1
            d[-1] += value

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        for key, d in items:
            cum = 0.0
            for b, c in zip((*self.buckets, float("inf")), d[:-1], strict=True):
                cum += c
                le = "+Inf" if b == float("inf") else f"{b:g}"
                lbl = _labels(self.labelnames, key, 'le="' + le + '"')
                out.append(f"{self.name}_bucket{lbl} {cum:g}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {d[-1]:g}")
            out.append(f"{self.name}_count{_labels(self.labelnames, key)} {cum:g}")
        return out


class Metrics:
    """Every metric ``serve`` exposes at ``GET /metrics``."""

    def __init__(self) -> None:
        p = "kubehawk_"
        self.requests = Counter(p + "http_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "code"))
        self.events_received = Counter(p + "events_received_total", "Events stored in the journal.",
                                       ("endpoint",))
        self.events_duplicate = Counter(p + "events_duplicate_total",
                                        "Events dropped as duplicates of a stored auditID+stage.", ("endpoint",))
        self.bad_requests = Counter(p + "bad_requests_total", "Rejected requests and records, by reason.",
                                    ("endpoint", "reason"))
        self.overload = Counter(p + "overload_rejections_total", "Requests answered 429 (overload).",
                                ("endpoint", "reason"))
        self.admission_dropped = Counter(p + "admission_events_dropped_total",
                                         "Admission events not journaled (overload or journal error).")
        self.admission_trimmed = Counter(p + "admission_reviews_trimmed_total",
                                         "Admission reviews journaled without parts of their objects (size limit).")
        self.events_processed = Counter(p + "events_processed_total", "Events run through detection.")
        self.event_errors = Counter(p + "event_errors_total", "Events detection could not handle.", ("stage",))
        self.alerts = Counter(p + "alerts_total", "Alerts raised, by rule and level.", ("rule", "level"))
        self.alerts_deduplicated = Counter(p + "alerts_deduplicated_total",
                                           "Alerts suppressed because (rule, auditID) had already alerted.")
        self.processing_latency = Histogram(p + "processing_latency_seconds",
                                            "Time from receiving an event to running detection on it.")
        self.alert_latency = Histogram(p + "alert_latency_seconds",
                                       "Time from receiving an event to handing its alert to an output.", ("sink",))
        self.gauges: list[Gauge] = []
        self.sink_stats: Callable[[], dict[str, dict[str, int]]] = dict

    def gauge(self, name: str, help: str, fn: Callable[[], float]) -> None:
        self.gauges.append(Gauge("kubehawk_" + name, help, fn))

    def render(self, *, rules: bool = True) -> str:
        """The exposition text; ``rules=False`` leaves out which rules fired (for anonymous scrapers:
        an intruder must not learn from /metrics whether they were seen)."""
        lines: list[str] = []
        for m in (self.requests, self.events_received, self.events_duplicate, self.bad_requests, self.overload,
                  self.admission_dropped, self.admission_trimmed, self.events_processed, self.event_errors, self.alerts,
                  self.alerts_deduplicated, self.processing_latency, self.alert_latency):
            if m is self.alerts and not rules:
                continue
            lines += m.render()
        for g in self.gauges:
            lines += g.render()
        stats = self.sink_stats()
        if stats:
            lines += ["# HELP kubehawk_output_alerts_total Alerts per output and outcome.",
                      "# TYPE kubehawk_output_alerts_total counter"]
            for sink, counts in sorted(stats.items()):
                for outcome, n in sorted(counts.items()):
                    lines.append(f'kubehawk_output_alerts_total{{output="{_escape(sink)}",outcome="{outcome}"}} {n}')
        return "\n".join(lines) + "\n"


class CountRequests:
    """ASGI middleware: every HTTP response in ``kubehawk_http_requests_total`` by endpoint and status,
    including the 500 of a handler that raised (the error handler outside answers it)."""

    def __init__(self, app: Callable, metrics: Metrics, endpoints: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = scope.get("path", "").strip("/")
        endpoint = name if name in self.endpoints else "other"
        status = 0

        async def send_counted(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except BaseException:
            self.metrics.requests.inc(endpoint=endpoint, code=str(status or 500))
            raise
        self.metrics.requests.inc(endpoint=endpoint, code=str(status or 500))
