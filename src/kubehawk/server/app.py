"""``kubehawk serve``: the audit webhook receiver, the admission webhook and the pipeline behind them.

Request path (event loop): authenticate, admission control (429 when the journal or
detection is behind, so the apiserver retries instead of dropping), read the body
within the size limit, parse and validate (thread), journal commit (writer thread),
then 2xx. Detection and delivery run in background threads (:mod:`.pipeline`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from kubehawk.server.auth import Authenticator
from kubehawk.server.ingest import Admission, BadRequest, parse_audit_body, prepare_admission
from kubehawk.server.journal import Journal
from kubehawk.server.limits import BodyRefused, ByteBudget, quiet_accept_errors, read_body
from kubehawk.server.metrics import CountRequests, Metrics
from kubehawk.server.pipeline import Feeder, Processor
from kubehawk.server.settings import ServerSettings
from kubehawk.sinks.base import Sink

log = logging.getLogger("kubehawk.server")

__all__ = ["Service", "create_app"]


class Service:
    """Everything ``serve`` runs: journal, processor, feeders, sinks, metrics."""

    def __init__(self, settings: ServerSettings, detector: Any, sinks: list[Sink], config: Any = None) -> None:
        self.settings = settings
        self.detector = detector
        self.sinks = sinks
        self.config = config
        self.metrics = Metrics()
        self.journal = Journal(settings.journal, sync=settings.journal_sync)
        self.auth = Authenticator(settings.all_tokens(), bool(settings.client_ca), settings.client_names)
        self.feeders = [Feeder(self.journal, s, self.metrics) for s in sinks]
        self.processor = Processor(self.journal, detector, self.metrics, config=config,
                                   dedup_window=settings.dedup_window, alert_window=settings.alert_window,
                                   sink_names=[s.name for s in sinks], on_alerts=self._wake_feeders)
        self.inflight = 0
        self.budget = ByteBudget(settings.max_inflight_bytes)  # request bodies in memory at once
        self.started = False
        m = self.metrics
        m.gauge("journal_backlog_events", "Events stored but not yet through detection.", lambda: self.journal.backlog)
        m.gauge("journal_pending_batches", "Batches waiting for the journal writer.",
                lambda: self.journal.pending_appends)
        m.gauge("inflight_requests", "Requests being handled.", lambda: self.inflight)
        m.gauge("inflight_body_bytes", "Bytes of request bodies in memory.", lambda: self.budget.used)
        m.gauge("output_backlog_alerts", "Alerts not yet handed to the slowest output.",
                lambda: max((f.lag for f in self.feeders), default=0))
        m.sink_stats = lambda: {s.name: s.stats.as_dict() for s in self.sinks}

    def _wake_feeders(self) -> None:
        for f in self.feeders:
            f.wake.set()

    def start(self) -> None:
        for f in self.feeders:
            f.prepare()  # before detection: cursors must exist before new alerts appear
        for f in self.feeders:
            f.start()
        self.processor.start()
        self.started = True
        log.info("kubehawk serve: journal %s (backlog %d events), %d output(s)",
                 self.settings.journal, self.journal.backlog, len(self.sinks))

    def stop(self) -> None:
        self.journal.close(release=False)  # no new batches; detection may still commit
        if self.started:
            self.processor.stop()
            self.processor.join(30)
            for f in self.feeders:
                f.stop()
            for f in self.feeders:
                f.join(30)
        for s in self.sinks:
            with contextlib.suppress(Exception):
                s.close()
        if self.started and not self.processor.is_alive():
            close = getattr(self.detector, "close", None)
            if close is not None:
                close()  # the baselines learned since the last commit go to disk (SIGTERM, not only exit)
        self.journal.release()

    def alive(self) -> str | None:
        """None while detection and delivery run or may still recover; else why not (liveness fails).

        A worker that keeps failing (a full disk) retries by itself; past ``liveness_timeout``
        seconds the probe fails so that the orchestrator restarts the process and says so.
        """
        if not self.started:
            return None
        limit = self.settings.liveness_timeout
        for worker in (self.processor, *self.feeders):
            if not worker.is_alive():
                return f"{worker.trouble.what} stopped: {worker.error!r}"
            if worker.trouble.failing_for() > limit:
                return (f"{worker.trouble.what} failing for {worker.trouble.failing_for():.0f} s "
                        f"(limit {limit:g} s): {worker.trouble.error}")
        return None

    def ready(self) -> str | None:
        """None when ready, else why not."""
        why = self.alive()
        if why is not None:
            return why
        if self.processor.trouble.since is not None:
            return f"detection failing, retrying: {self.processor.trouble.error}"
        if self.journal.backlog > self.settings.max_backlog:
            return f"journal backlog {self.journal.backlog} events exceeds {self.settings.max_backlog}"
        return None

    def overloaded(self) -> tuple[str, str] | None:
        s = self.settings
        if self.journal.backlog >= s.max_backlog:
            return "backlog", f"detection is {self.journal.backlog} events behind (limit {s.max_backlog})"
        if self.journal.pending_appends >= s.max_pending_batches:
            return "journal_busy", f"{self.journal.pending_appends} batches waiting for the journal"
        if self.inflight >= s.max_inflight:
            return "inflight", f"{self.inflight} requests in progress (limit {s.max_inflight})"
        return None


def _error(endpoint: str, metrics: Metrics, code: int, reason: str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    if code == 429:
        metrics.overload.inc(endpoint=endpoint, reason=reason)
    else:
        metrics.bad_requests.inc(endpoint=endpoint, reason=reason)
    return JSONResponse({"error": reason, "message": message}, status_code=code, headers=headers)


def create_app(service: Service, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. ``manage_lifecycle``: start/stop the service with the app's lifespan."""
    s = service.settings
    m = service.metrics

    async def audit(request: Request) -> Response:
        ep = "audit"
        why = service.auth.check(request.scope)
        if why is not None:
            return _error(ep, m, 401, "unauthenticated", why, {"WWW-Authenticate": "Bearer"})
        busy = service.overloaded()
        if busy is not None:
            return _error(ep, m, 429, busy[0], busy[1], {"Retry-After": "5"})
        service.inflight += 1
        held = [0]  # body bytes taken from the memory budget, given back when the batch is stored
        try:
            received = time.time()
            try:
                body = await read_body(request, s.max_body_bytes, service.budget, s.body_timeout, held)
            except BodyRefused as e:
                return _error(ep, m, e.status, e.reason, e.message, {"Retry-After": "5"} if e.status == 429 else None)
            except ClientDisconnect:
                m.bad_requests.inc(endpoint=ep, reason="client_disconnect")
                return Response(status_code=400)
            try:
                parsed = await run_in_threadpool(parse_audit_body, body)
            except BadRequest as e:
                return _error(ep, m, 400, e.reason, e.message)
            if parsed.rejected_count:
                m.bad_requests.inc(parsed.rejected_count, endpoint=ep, reason="bad_event")
                log.warning("POST /audit from %s: %d event(s) rejected, first: %s: %s",
                            request.client.host if request.client else "?", parsed.rejected_count,
                            parsed.rejected[0]["item"], parsed.rejected[0]["error"])
            try:
                result = await asyncio.wrap_future(service.journal.submit(parsed.records, received))
            except Exception as e:
                log.error("POST /audit: journal error: %s", e)
                return _error(ep, m, 503, "journal_error", f"could not store the batch: {e}", {"Retry-After": "10"})
            m.events_received.inc(result.accepted, endpoint=ep)
            if result.duplicates:
                m.events_duplicate.inc(result.duplicates, endpoint=ep)
            body_out: dict[str, Any] = {"accepted": result.accepted, "duplicates": result.duplicates}
            if parsed.rejected_count:
                body_out["rejected_count"] = parsed.rejected_count
                body_out["rejected"] = parsed.rejected
            return JSONResponse(body_out)
        finally:
            service.inflight -= 1
            service.budget.give(held[0])

    async def admission(request: Request) -> Response:
        ep = "admission"
        why = service.auth.check(request.scope) if s.admission_auth else None
        if why is not None:
            return _error(ep, m, 401, "unauthenticated", why, {"WWW-Authenticate": "Bearer"})
        if service.inflight >= s.max_inflight:  # the apiserver's failurePolicy (Ignore) lets the request pass
            return _error(ep, m, 429, "inflight", f"{service.inflight} requests in progress (limit {s.max_inflight})")
        service.inflight += 1
        held = [0]
        try:
            body = await read_body(request, s.max_body_bytes, service.budget, s.body_timeout, held)
            # Decoding a large review takes time: off the event loop, like /audit's batches.
            ready = await run_in_threadpool(prepare_admission, body, s.admission_max_bytes, s.admission)
        except BodyRefused as e:
            return _error(ep, m, e.status, e.reason, e.message)
        except BadRequest as e:
            return _error(ep, m, 400, e.reason, e.message)
        except ClientDisconnect:
            m.bad_requests.inc(endpoint=ep, reason="client_disconnect")
            return Response(status_code=400)
        finally:
            service.inflight -= 1
            service.budget.give(held[0])
        # Always allow, and never wait for the disk: journal in the background.
        _journal_admission(service, ready)
        return JSONResponse(ready.response)

    async def healthz(request: Request) -> Response:
        why = service.alive()
        if why is None:
            return PlainTextResponse("ok\n")
        return PlainTextResponse(f"not alive: {why}\n", status_code=503)

    async def readyz(request: Request) -> Response:
        why = service.ready()
        if why is None:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {why}\n", status_code=503)

    async def metrics(request: Request) -> Response:
        why = service.auth.check(request.scope)
        if why is not None and s.metrics_auth:
            return _error("metrics", m, 401, "unauthenticated", why, {"WWW-Authenticate": "Bearer"})
        # Callers who may post events see everything; anonymous ones (metrics_auth: false) no rule names.
        return PlainTextResponse(m.render(rules=why is None), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        quiet_accept_errors(asyncio.get_running_loop())
        if manage_lifecycle:
            service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(service.stop)

    routes = [
        Route("/audit", audit, methods=["POST"]),
        Route("/admission", admission, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     middleware=[Middleware(CountRequests, metrics=m, endpoints={"audit", "admission", "healthz",
                                                                                  "readyz", "metrics"})])


def _journal_admission(service: Service, ready: Admission) -> None:
    m = service.metrics
    uid = ready.uid
    if ready.trimmed:
        m.admission_trimmed.inc()
    if ready.problem == "unconvertible":  # still allowed; counted and logged
        m.bad_requests.inc(endpoint="admission", reason="unconvertible")
        log.warning("admission request %s: %s", uid, ready.detail)
        return
    if ready.problem is not None:
        m.admission_dropped.inc()
        log.warning("admission request %s not journaled: %s", uid, ready.detail)
        return
    if ready.record is None:  # server.admission: false
        return
    if service.journal.pending_appends >= service.settings.max_pending_batches:
        m.admission_dropped.inc()
        log.warning("admission request %s not journaled: journal busy", uid)
        return
    records = [ready.record]
    fut = service.journal.submit(records)

    def done(f: Any) -> None:
        if f.exception() is not None:
            m.admission_dropped.inc(len(records))
            log.warning("admission request %s not journaled: %s", uid, f.exception())
        else:
            r = f.result()
            m.events_received.inc(r.accepted, endpoint="admission")
            if r.duplicates:
                m.events_duplicate.inc(r.duplicates, endpoint="admission")

    fut.add_done_callback(done)
