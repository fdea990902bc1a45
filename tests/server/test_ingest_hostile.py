"""`kubehawk serve` against one deeply nested event: the batch around it is stored and detected, the
bad event is rejected by position, the server stays up (issue 11, item 3)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from servetools import event, event_list, read_alerts

from kubehawk.server.ingest import BadRequest, parse_admission_body, parse_audit_body

DEPTH = 5000  # msgspec raises RecursionError near 1,000 levels


def deep_event(audit_id: str, intruder: bool = True) -> str:
    text = json.dumps(event(audit_id, intruder=intruder) | {"requestObject": "@DEEP@"})
    return text.replace('"@DEEP@"', "[" * DEPTH + "]" * DEPTH)


def _wait(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_deeply_nested_event_costs_that_event_not_the_batch(serve, tmp_path: Path) -> None:
    srv = serve().start()
    url = srv.url + "/audit"
    good = [json.dumps(event("ok-1")), json.dumps(event("ok-2", intruder=True))]
    body = json.dumps(event_list([])).replace('"items": []', f'"items": [{good[0]}, {deep_event("deep-1")}, {good[1]}]')
    r = httpx.post(url, content=body.encode(), timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 2 and out["rejected_count"] == 1
    assert out["rejected"] == [{"item": "POST /audit item 1", "error": "JSON nested too deeply (about 1,000 levels or more)"}]

    r = httpx.post(url, content=f"[{deep_event('deep-2')}, {json.dumps(event('ok-3', intruder=True))}]".encode())
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["rejected"][0]["item"] == "POST /audit[0]"

    r = httpx.post(url, content=deep_event("deep-3").encode())  # alone: nothing valid, a 400 that says why
    assert r.status_code == 400 and "nested too deeply" in r.json()["message"]
    r = httpx.post(srv.url + "/admission", content=b'{"kind": "AdmissionReview", "request": ' + b"[" * DEPTH
                   + b"]" * DEPTH + b"}")
    assert r.status_code == 400 and r.json()["error"] == "too_deep"

    assert httpx.get(srv.url + "/healthz").status_code == 200
    alerts = tmp_path / "alerts.jsonl"
    _wait(lambda: alerts.exists() and len(read_alerts(alerts)) == 2)
    assert sorted(a["auditID"] for a in read_alerts(alerts)) == ["ok-2", "ok-3"]


def test_the_decode_call_sites_never_raise_recursion_error() -> None:
    """Every shape the body parser takes apart, nested past msgspec's limit at each level."""
    deep = "[" * DEPTH + "]" * DEPTH
    bodies = [
        f'{{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{deep}]}}',
        f'{{"kind": "EventList", "items": {deep}}}',
        f"[[{deep_event('a')}]]",
        f'{{"protoPayload": {deep}}}',  # the cloud normaliser's path
        deep,
        f'{{"x": {deep}',  # deep and broken
    ]
    for body in bodies:
        try:
            parse_audit_body(body.encode())
        except BadRequest as e:
            assert e.reason in ("no_valid_event", "malformed_json", "too_deep", "not_audit"), (body[:40], e.reason)
    try:
        parse_admission_body(('{"kind": "AdmissionReview", "request": {"uid": "u", "object": ' + deep + "}}").encode())
    except BadRequest as e:
        assert e.reason == "too_deep"
