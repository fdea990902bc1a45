"""Alerts POSTed as JSON to an HTTP endpoint, with retries and a bounded on-disk retry queue.

Per alert: up to ``retries`` quick retries with exponential backoff on connection
errors, 5xx and 429; then the alert goes to the spool (if configured) and is retried
from there with growing backoff while new alerts queue behind it, keeping order and
never hammering a dead endpoint. Other 4xx answers are permanent: dropped, counted,
logged. Each request carries ``Idempotency-Key: <rule id>/<auditID>`` so a receiver
can discard the duplicate that at-least-once delivery may produce after a crash.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from kubehawk.sinks.base import Sink, alert_key
from kubehawk.sinks.spool import Spool

__all__ = ["WebhookSink"]


class _Permanent(Exception):
    pass


class WebhookSink(Sink):
    type_name = "webhook"
    content_type = "application/json"

    def __init__(self, name: str, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0,
                 retries: int = 2, backoff: float = 0.5, max_backoff: float = 300.0,
                 spool: str | Path | None = None, spool_max: int = 10000, verify: bool | str = True,
                 min_level: str = "informational") -> None:
        super().__init__(name, min_level)
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.spool = Spool(spool, spool_max) if spool else None
        self._client = httpx.Client(timeout=timeout, verify=verify,
                                    headers={"Content-Type": self.content_type, "User-Agent": "kubehawk",
                                             **(headers or {})})
        self._spool_failures = 0
        self._next_spool_try = 0.0

    def payload(self, alert: dict[str, Any]) -> bytes:
        """The request body for one alert; subclasses reshape it (falcosidekick)."""
        return msgspec.json.encode(self.shape(alert))

    # --- delivery ------------------------------------------------------------------
    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        self.tick()
        pending = [(self.payload(a), "/".join(alert_key(a))) for a in alerts]
        if self.spool is not None and len(self.spool):
            # The endpoint is failing: queue behind the spooled alerts (order, no hammering).
            self._to_spool([p for p, _ in pending], "endpoint still failing")
            return
        for i, (body, key) in enumerate(pending):
            try:
                self._send_with_retries(body, key)
            except _Permanent as e:
                self.drop(1, str(e))
            except httpx.HTTPError as e:
                rest = [p for p, _ in pending[i:]]
                if self.spool is not None:
                    self._to_spool(rest, _describe(e))
                    self._schedule_spool_retry()
                else:
                    self.drop(len(rest), f"{self.url}: {_describe(e)} after {self.retries + 1} attempts")
                return

    def _send_with_retries(self, body: bytes, key: str) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                self._send(body, key)
                self.stats.add("delivered")
                if attempt:
                    self.stats.add("retried")
                return
            except httpx.HTTPError:
                self.stats.add("failed_attempts")
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    def _send(self, body: bytes, key: str) -> None:
        r = self._client.post(self.url, content=body, headers={"Idempotency-Key": key} if key != "/" else None)
        if r.status_code < 300:
            return
        if r.status_code == 429 or r.status_code >= 500 or r.status_code == 408:
            raise httpx.HTTPStatusError(f"HTTP {r.status_code}", request=r.request, response=r)
        raise _Permanent(f"{self.url} rejected the alert: HTTP {r.status_code} {r.text[:200]!r}")

    # --- the on-disk retry queue -----------------------------------------------------
    def _to_spool(self, bodies: list[bytes], why: str) -> None:
        assert self.spool is not None
        try:
            evicted = self.spool.push(bodies)
        except Exception as e:  # disk full, unwritable path
            self.drop(len(bodies), f"{self.url}: {why}; cannot spool: {e}")
            return
        self.stats.add("spooled", len(bodies))
        self.warn(f"output {self.name}: {why}; {len(bodies)} alert(s) spooled ({len(self.spool)} waiting)")
        if evicted:
            self.drop(evicted, f"retry queue full ({self.spool.max_items}); oldest alerts evicted")

    def _schedule_spool_retry(self) -> None:
        self._spool_failures += 1
        delay = min(self.backoff * (2 ** min(self._spool_failures, 20)), self.max_backoff)
        self._next_spool_try = time.monotonic() + delay

    def tick(self) -> None:
        """Retry the spool, oldest first, when its backoff has elapsed."""
        if self.spool is None or not len(self.spool) or time.monotonic() < self._next_spool_try:
            return
        while True:
            rows = self.spool.peek(100)
            if not rows:
                self._spool_failures = 0
                return
            done: list[int] = []
            for ident, body, _attempts in rows:
                try:
                    self._send(bytes(body), _key_of(body))
                except _Permanent as e:
                    done.append(ident)
                    self.drop(1, str(e))
                    continue
                except httpx.HTTPError as e:
                    self.stats.add("failed_attempts")
                    self.spool.bump(ident)
                    self.spool.remove(done)
                    self._schedule_spool_retry()
                    self.warn(f"output {self.name}: {self.url}: {_describe(e)}; {len(self.spool)} alert(s) "
                              "waiting in the retry queue")
                    return
                done.append(ident)
                self.stats.add("delivered")
                self.stats.add("retried")
            self.spool.remove(done)

    def close(self) -> None:
        self._client.close()
        if self.spool is not None:
            self.spool.close()


def _describe(e: Exception) -> str:
    return str(e) or type(e).__name__


def _key_of(body: bytes) -> str:
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "/"
    if isinstance(obj, dict) and "output_fields" in obj:  # a falcosidekick payload
        f = obj.get("output_fields") or {}
        return f"{f.get('kubehawk.rule.id', '')}/{f.get('ka.auditid', '')}"
    return "/".join(alert_key(obj)) if isinstance(obj, dict) else "/"
