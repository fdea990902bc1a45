"""What one caller may cost ``serve``: bytes of request bodies in memory, connections, time.

* :class:`ByteBudget`: request bodies held in memory at once, counted as they arrive (a slow body
  costs what it has sent, not what it announced); a request that would pass the budget is
  answered 429 and its bytes are released. Memory follows bytes, not request counts.
* :func:`read_body`: reads a body within the size limit, the budget and a time limit.
* :func:`guarded_protocol`: uvicorn's HTTP protocol with a cap on open connections (below the
  file-descriptor limit: a flood of idle sockets cannot make ``accept`` fail) and a time limit for
  the request headers (an idle or slow connection is closed, quietly).
* :func:`quiet_accept_errors`: should ``accept`` still run out of descriptors, one warning a minute
  instead of asyncio's traceback per refused connection (megabytes a second under a flood).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from starlette.requests import Request

log = logging.getLogger("kubehawk.server")

__all__ = ["BodyRefused", "ByteBudget", "connection_limits", "guarded_protocol", "quiet_accept_errors", "read_body"]

FD_RESERVE = 64  # descriptors kept for the journal, outputs, logs and the listening socket


class BodyRefused(Exception):
    """The body was not read: ``status`` (408, 413, 429) and why."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class ByteBudget:
    """Bytes of request bodies in memory at once. Used from the event loop only: no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


async def read_body(request: Request, limit: int, budget: ByteBudget, timeout: float, held: list[int]) -> bytes:
    """The body, within ``limit`` bytes, the shared ``budget`` and ``timeout`` seconds.

    ``held[0]`` accumulates the bytes taken from the budget; the caller gives them back when it
    no longer holds the body (after the journal commit), also when this raises.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > limit:
            raise BodyRefused(413, "too_large", f"body of {length} bytes exceeds the limit of {limit} bytes")
        if budget.used + int(length) > budget.limit:
            raise BodyRefused(429, "memory", f"{budget.used} bytes of request bodies in memory; this one "
                                             f"({length}) would pass the limit of {budget.limit}")
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, "too_large", f"body exceeds the limit of {limit} bytes")
                if not budget.take(len(chunk)):
                    raise BodyRefused(429, "memory", f"request bodies in memory would pass the limit of "
                                                     f"{budget.limit} bytes")
                held[0] += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, "body_timeout", f"body not received within {timeout:g} s") from None
    return b"".join(chunks)


def connection_limits(wanted: int, backlog: int = 2048) -> tuple[int, int]:
    """(connections, listen backlog) that fit the process's file-descriptor limit, after raising
    the soft limit to the hard one (a container's default soft limit is often 1024).

    asyncio accepts up to ``backlog`` connections in one go before the protocol can close any, so
    the open connections plus one such burst must fit: otherwise ``accept`` fails with EMFILE and
    asyncio logs a traceback for each failure.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft - FD_RESERVE >= wanted + backlog:
        return wanted, backlog
    room = max(2, soft - FD_RESERVE)
    cap = max(1, min(wanted, room // 2))
    burst = max(1, min(backlog, room - cap))
    log.warning("server.max_connections: %d, but the process may open only %d files: at most %d connections "
                "(listen backlog %d)", wanted, soft, cap, burst)
    return cap, burst


def guarded_protocol(base: type, max_connections: int, header_timeout: float) -> type:
    """uvicorn's HTTP protocol class, closing a connection over the cap at once and one whose first
    request headers do not arrive within ``header_timeout`` seconds (later requests on a kept-alive
    connection are uvicorn's keep-alive timeout's business)."""

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # over the cap: no request is read, nothing is logged
                return
            self._header_timer = asyncio.get_running_loop().call_later(header_timeout, self._headers_late)

        def _headers_late(self) -> None:
            if getattr(self, "cycle", None) is None and not self.transport.is_closing():
                self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

    GuardedProtocol.__name__ = f"Guarded{base.__name__}"
    return GuardedProtocol


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 60.0) -> None:
    """Replace asyncio's traceback per failed ``accept`` (EMFILE under a connection flood: it pauses
    accepting for a second and logs every attempt) by one line per ``every`` seconds, with a count."""
    state = {"last": -every, "suppressed": 0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if now - state["last"] < every:
            state["suppressed"] += 1
            return
        extra = f" ({state['suppressed']} more since the last message)" if state["suppressed"] else ""
        log.warning("cannot accept connections: %s; idle ones are closed after server.header_timeout%s",
                    context.get("exception") or context.get("message"), extra)
        state["last"], state["suppressed"] = now, 0

    loop.set_exception_handler(handler)
