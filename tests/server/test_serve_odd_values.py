"""`kubehawk serve` meets a wrong-typed value in an alerted event: a warning naming the request, the
alert, and the next events alerted too (the default message once crashed on it)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from servetools import event, event_list, read_alerts


def test_wrong_typed_object_ref_is_a_logged_warning_and_alerting_goes_on(serve, tmp_path: Path) -> None:
    srv = serve().start()
    odd = event("odd-1", intruder=True)
    odd["objectRef"]["namespace"] = 5
    batch = event_list([event("ok-1", intruder=True), odd, event("ok-2", intruder=True)])
    assert httpx.post(srv.url + "/audit", json=batch).json()["accepted"] == 3
    alerts = tmp_path / "alerts.jsonl"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(read_alerts(alerts) if alerts.exists() else []) < 3:
        time.sleep(0.1)
    got = read_alerts(alerts)
    assert [a["auditID"] for a in got] == ["ok-1", "odd-1", "ok-2"]
    assert got[1]["namespace"] == 5
    log = srv.log.read_text()
    assert "objectRef.namespace is int 5, not a string" in log and "Traceback" not in log, log
