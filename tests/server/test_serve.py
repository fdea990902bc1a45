"""`kubehawk serve` as a real process on loopback: TLS, client certificates, tokens, bad input, kill -9."""

from __future__ import annotations

import json
import random
import signal
import ssl
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from servetools import RULE_ID, event, event_list, read_alerts

TOKEN = "s3cret-token-for-tests"


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def wait_for(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def metric(url: str, name: str, verify=True, token: str | None = None, **labels: str) -> float:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    text = httpx.get(url + "/metrics", verify=verify, headers=headers).text
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_tls_client_certificates_and_tokens(serve, pki, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# tokens\n{TOKEN}\n")
    srv = serve({"tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key), "client_ca": str(pki.ca),
                 "token_file": str(token_file)}, tls=pki).start()
    body = event_list([event("tls-1", intruder=True), event("tls-2")])
    ca = tls_context(pki.ca)

    with httpx.Client(verify=tls_context(pki.ca, pki.client_cert, pki.client_key)) as c:
        r = c.post(srv.url + "/audit", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0}

    # No certificate and no token: refused, with the reason.
    r = httpx.post(srv.url + "/audit", json=body, verify=ca)
    assert r.status_code == 401
    assert "authentication required" in r.json()["message"]
    # A wrong token: refused. The right one: accepted (the batch is a duplicate now).
    r = httpx.post(srv.url + "/audit", json=body, verify=ca, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "invalid bearer token" in r.json()["message"]
    r = httpx.post(srv.url + "/audit", json=body, verify=ca, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"accepted": 0, "duplicates": 2}

    # A certificate from another CA fails the TLS handshake itself.
    with pytest.raises((httpx.TransportError, ssl.SSLError)), \
            httpx.Client(verify=tls_context(pki.ca, pki.rogue_cert, pki.rogue_key)) as c:
        c.post(srv.url + "/audit", json=body)

    # Probes need no credentials; the client must verify our certificate (plain HTTP is refused).
    assert httpx.get(srv.url + "/healthz", verify=ca).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url.replace("https", "http") + "/healthz", timeout=2)

    alerts = tmp_path / "alerts.jsonl"
    wait_for(lambda: alerts.exists() and read_alerts(alerts), what="the alert")
    [alert] = read_alerts(alerts)
    assert alert["rule"]["id"] == RULE_ID and alert["auditID"] == "tls-1"
    assert metric(srv.url, "kubehawk_bad_requests_total", verify=ca, token=TOKEN, endpoint="audit",
                  reason="unauthenticated") == 2


def test_bad_requests_are_rejected_with_a_reason_and_counted(serve, tmp_path: Path) -> None:
    srv = serve({"max_body_bytes": 20000}).start()
    url = srv.url + "/audit"

    r = httpx.post(url, content=b'{"kind": "EventList", "items": [')
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    r = httpx.post(url, content=b"")
    assert r.status_code == 400 and r.json()["error"] == "empty_body"
    r = httpx.post(url, json="just a string")
    assert r.status_code == 400 and r.json()["error"] == "not_audit"
    r = httpx.post(url, json={"kind": "ConfigMap", "data": {}})
    assert r.status_code == 400 and r.json()["error"] == "no_valid_event"
    r = httpx.post(url, json=event_list([{"kind": "Event", "verb": 42, "auditID": "x"}]))
    assert r.status_code == 400 and "verb" in r.json()["message"]

    # One bad event in a batch: the good ones are stored, the bad one reported by position.
    r = httpx.post(url, json=event_list([event("ok-1"), {"kind": "Event", "auditID": "b", "verb": ["x"]},
                                         event("ok-2", intruder=True)]))
    assert r.status_code == 200
    out = r.json()
    assert out["accepted"] == 2 and out["rejected_count"] == 1
    assert out["rejected"][0]["item"].endswith("item 1") and "verb" in out["rejected"][0]["error"]

    # Oversized, declared by Content-Length or only discovered while streaming.
    big = json.dumps(event_list([event(f"big-{i}") for i in range(60)])).encode()
    assert len(big) > 20000
    r = httpx.post(url, content=big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    r = httpx.post(url, content=chunks())
    assert r.status_code == 413

    # A single Event and a bare JSON array are accepted too (lenient, like Falco).
    assert httpx.post(url, json=event("single-1")).json()["accepted"] == 1
    assert httpx.post(url, json=[event("arr-1"), event("arr-2")]).json()["accepted"] == 2

    counts = {reason: metric(srv.url, "kubehawk_bad_requests_total", endpoint="audit", reason=reason)
              for reason in ("malformed_json", "empty_body", "not_audit", "no_valid_event", "bad_event", "too_large")}
    assert counts == {"malformed_json": 1, "empty_body": 1, "not_audit": 1, "no_valid_event": 2, "bad_event": 1,
                      "too_large": 2}
    assert httpx.get(srv.url + "/audit").status_code == 405


def test_apiserver_retries_are_deduplicated_and_alert_once(serve, tmp_path: Path) -> None:
    srv = serve().start()
    batch = event_list([event("dup-1", intruder=True, stage="RequestReceived"),
                        event("dup-1", intruder=True, stage="ResponseComplete"), event("dup-2")])
    assert httpx.post(srv.url + "/audit", json=batch).json() == {"accepted": 3, "duplicates": 0}
    assert httpx.post(srv.url + "/audit", json=batch).json() == {"accepted": 0, "duplicates": 3}
    alerts = tmp_path / "alerts.jsonl"
    wait_for(lambda: metric(srv.url, "kubehawk_events_processed_total") == 3, what="processing")
    wait_for(lambda: alerts.exists() and read_alerts(alerts), what="alerts")
    time.sleep(0.3)
    # Two stages of one request: one alert per (rule, auditID).
    assert [a["auditID"] for a in read_alerts(alerts)] == ["dup-1"]
    assert metric(srv.url, "kubehawk_alerts_total", rule=RULE_ID, level="high") == 1


def _batches(n: int, size: int) -> list[tuple[dict, set[str]]]:
    out = []
    for b in range(n):
        items, marked = [], set()
        for i in range(size):
            aid = f"k9-{b:03d}-{i:03d}"
            bad = i % 7 == 0
            items.append(event(aid, intruder=bad))
            if bad:
                marked.add(aid)
        out.append((event_list(items), marked))
    return out


def test_kill9_mid_stream_then_restart_processes_every_acked_event_exactly_once(serve, tmp_path: Path) -> None:
    alerts_path = tmp_path / "alerts.jsonl"
    outputs = [{"type": "file", "path": str(alerts_path), "max_bytes": 60000, "backups": 50}]
    batches = _batches(80, 150)
    acked: set[int] = set()

    rng = random.Random(7)
    for _cycle in range(3):
        srv = serve(outputs=outputs).start()
        stop = threading.Event()

        def post_all(srv=srv, stop=stop) -> None:
            with httpx.Client(timeout=10) as c:
                for i, (body, _) in enumerate(batches):
                    if stop.is_set() or i in acked:
                        continue
                    try:
                        r = c.post(srv.url + "/audit", json=body)
                    except httpx.HTTPError:
                        return  # the server died mid-request: this batch was not acknowledged
                    if r.status_code == 200:
                        acked.add(i)

        poster = threading.Thread(target=post_all)
        poster.start()
        # Kill once a good part of the stream is acknowledged and alerts are being written.
        target = len(acked) + rng.randint(5, 15)
        wait_for(lambda target=target: len(acked) >= target, timeout=30, what="acknowledged batches")
        srv.kill9()
        stop.set()
        poster.join(30)

    # Restart; the "apiserver" re-sends everything, acknowledged or not (its retries).
    srv = serve(outputs=outputs).start()
    with httpx.Client(timeout=30) as c:
        for body, _ in batches:
            assert c.post(srv.url + "/audit", json=body).status_code == 200
    expected = set().union(*(m for _, m in batches))
    wait_for(lambda: metric(srv.url, "kubehawk_journal_backlog_events") == 0, timeout=60, what="detection")
    wait_for(lambda: len(read_alerts(alerts_path)) >= len(expected), timeout=30, what="all alerts")
    time.sleep(0.5)
    seen = Counter(a["auditID"] for a in read_alerts(alerts_path))
    assert set(seen) == expected
    repeated = {k: n for k, n in seen.items() if n > 1}
    assert not repeated, f"alerts repeated after kill -9: {repeated}"
    assert len(list(tmp_path.glob("alerts.jsonl.*"))) >= 2  # rotation happened along the way


def test_sigterm_shuts_down_cleanly(serve) -> None:
    srv = serve().start()
    assert httpx.post(srv.url + "/audit", json=event_list([event("t-1")])).status_code == 200
    srv.stop()
    # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM rather than 0.
    assert srv.proc is not None and srv.proc.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in srv.log.read_text()


def test_bad_config_fails_with_the_key(serve, tmp_path: Path) -> None:
    srv = serve(outputs=[{"type": "webhook"}])
    with pytest.raises(RuntimeError, match=r"outputs\[0\]\.url: required"):
        srv.start()
    (tmp_path / "b").mkdir()
    srv2 = serve({"tls_cert": str(tmp_path / "missing.crt"), "tls_key": str(tmp_path / "missing.key")},
                 workdir=tmp_path / "b")
    with pytest.raises(RuntimeError, match=r"server\.tls_cert: file not found"):
        srv2.start()
