"""What callers may cost `serve`, on real sockets: idle connections cannot exhaust its file
descriptors, slow bodies cannot hold every request slot, and request bodies in memory are bounded
by bytes."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import threading
import time
from pathlib import Path

import httpx
from servetools import event, event_list


def _limit_fds(n: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def _post_until_ok(sp, aid: str, within: float) -> float:
    """Seconds until a legitimate POST succeeded (retrying refused or reset connections)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        try:
            r = httpx.post(sp.url + "/audit", json=event_list([event(aid)]), timeout=3)
            if r.status_code == 200:
                return time.monotonic() - t0
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.2)
    raise AssertionError(f"no successful POST within {within} s; last: {last}\n{sp.log.read_text()[-3000:]}")


def _metric(sp, name: str) -> float:
    total = 0.0
    for line in httpx.get(sp.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_idle_connections_cannot_exhaust_file_descriptors(serve) -> None:
    sp = serve({"header_timeout": 2}).start(preexec_fn=_limit_fds(256))
    idle = []
    try:
        for _ in range(400):  # more than the server may open files, and not one byte sent
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", sp.port))
            except OSError:
                s.close()
                continue
            idle.append(s)
        waited = _post_until_ok(sp, "after-idle-1", within=15)
        assert waited < 10
        _post_until_ok(sp, "after-idle-2", within=5)
    finally:
        for s in idle:
            s.close()
    log = sp.log.read_text()
    assert "Traceback" not in log and len(log) < 20_000, log[-3000:]
    assert sp.proc.poll() is None


def test_slow_bodies_cannot_hold_every_request_slot(serve) -> None:
    sp = serve({"body_timeout": 2}).start()
    slow = []
    try:
        for i in range(150):  # more than the old limit of 128 requests in flight
            s = socket.create_connection(("127.0.0.1", sp.port), timeout=10)
            s.sendall(b"POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b'{"kind": "EventList", ' + b" " * i)
            slow.append(s)
        time.sleep(0.5)
        assert _post_until_ok(sp, "beside-slow", within=5) < 2  # not 429: the slow ones hold no slot it needs
        # The slow ones are answered 408 when their time is up.
        answers = []
        for s in slow[:5]:
            try:
                answers.append(s.recv(200))
            except OSError as e:
                answers.append(repr(e).encode())
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    finally:
        for s in slow:
            s.close()


def _big_body(n_bytes: int) -> bytes:
    items = []
    size = 0
    i = 0
    while size < n_bytes:
        e = event(f"big-{i}")
        e["requestObject"] = {"pad": "x" * 900}
        items.append(e)
        size += 1200
        i += 1
    return json.dumps(event_list(items)).encode()


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_memory_is_bounded_by_bytes_in_flight_not_requests(serve) -> None:
    limit = 16 * 1024 * 1024
    sp = serve({"max_inflight_bytes": limit, "max_body_bytes": 8 * 1024 * 1024}).start()
    body = _big_body(6 * 1024 * 1024)
    half = len(body) // 2
    _post_until_ok(sp, "warm-up", within=5)
    before = _hwm_kib(sp.proc.pid)
    socks = [socket.create_connection(("127.0.0.1", sp.port), timeout=30) for _ in range(6)]
    head = (f"POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()

    def send(s: socket.socket, part: bytes) -> None:
        with contextlib.suppress(OSError):  # refused mid-body: the server answered 429 and closed
            s.sendall(part)

    try:
        for part in (head + body[:half], body[half:]):  # all six half-sent at once, then the rest
            threads = [threading.Thread(target=send, args=(s, part)) for s in socks]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        deadline = time.monotonic() + 30
        while _metric(sp, "kubehawk_inflight_requests ") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    refused = _metric(sp, 'kubehawk_overload_rejections_total{endpoint="audit",reason="memory"}')
    stored = _metric(sp, 'kubehawk_events_received_total{endpoint="audit"}') - 1
    per_body = len(json.loads(body)["items"])
    assert refused >= 1, "six bodies of 6 MiB at once fit in a 16 MiB budget?"
    assert stored % per_body == 0 and 1 <= stored // per_body <= 5
    grew_mib = (_hwm_kib(sp.proc.pid) - before) / 1024
    # At most 16 MiB of bodies in memory, plus their parsed copies while they are stored;
    # without the bound all six (36 MiB of bodies) are held and parsed at once.
    assert grew_mib < 80, f"peak RSS grew by {grew_mib:.0f} MiB"
    print(f"peak RSS grew by {grew_mib:.0f} MiB; {refused:g} of 6 refused")
