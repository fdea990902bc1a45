"""State that must outlive a `serve` restart, by SIGTERM or by kill -9: the open correlation windows
and what the first-seen baselines learned. An attack that spans a restart is still caught, a known
value does not alert again."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from servetools import event, event_list, read_alerts

BURST_ID = "33333333-2222-4333-8444-555555555555"
ANY_LIST_ID = "55555555-2222-4333-8444-555555555555"
NEW_IP_ID = "44444444-2222-4333-8444-555555555555"
RULES = {
    "secret.yml": """
title: Secret read (test base rule)
id: 22222222-2222-4333-8444-555555555555
name: secret_read
status: test
logsource: {product: kubernetes, service: audit}
detection:
  sel: {verb: get, objectRef.resource: secrets}
  condition: sel
level: low
""",
    "burst.yml": f"""
title: Three secret reads by one identity (test correlation)
id: {BURST_ID}
name: secret_burst
status: test
level: high
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [user.username]
  timespan: 10m
  condition: {{gte: 3}}
""",
    "newip.yml": f"""
title: Identity from a new address (test baseline)
id: {NEW_IP_ID}
status: test
logsource: {{product: kubernetes, service: audit}}
detection:
  sel: {{verb: list}}
  condition: sel
level: medium
baseline: {{key: [user.username], value: x.source_ip, learn_days: 0}}
""",
    "anylist.yml": f"""
title: Any list by alice (test rule beside the baseline)
id: {ANY_LIST_ID}
status: test
logsource: {{product: kubernetes, service: audit}}
detection:
  sel: {{verb: list, user.username: alice}}
  condition: sel
level: low
""",
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "restart-rules"
    d.mkdir()
    for name, text in RULES.items():
        (d / name).write_text(text)
    return d


def _secret_read(aid: str) -> dict:
    e = event(aid)
    e.update(verb="get", objectRef={"resource": "secrets", "namespace": "default", "name": aid, "apiVersion": "v1"},
             user={"username": "mallory"})
    return e


def _list_from(aid: str, ip: str) -> dict:
    e = event(aid)
    e.update(verb="list", sourceIPs=[ip], user={"username": "alice"})
    return e


def _post(sp, *events: dict) -> None:
    r = httpx.post(sp.url + "/audit", json=event_list(list(events)), timeout=10)
    assert r.status_code == 200, r.text


def _processed(sp) -> float:
    for line in httpx.get(sp.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("kubehawk_events_processed_total "):
            return float(line.split()[1])
    return 0.0


def _wait(cond, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _end(sp, how: str) -> None:
    if how == "SIGKILL":
        sp.kill9()
    else:
        sp.proc.send_signal(signal.SIGTERM)
        sp.proc.wait(30)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_correlation_window_spans_a_restart(serve, rules: Path, tmp_path: Path, how: str) -> None:
    alerts = tmp_path / "alerts.jsonl"
    sp = serve(rules=rules).start()
    _post(sp, _secret_read("s-1"))
    _wait(lambda: _processed(sp) == 1, "detection of the first read")
    # The first commit took a snapshot; this one comes before the next is due: after kill -9 the
    # restart restores the first and detects s-2 again.
    _post(sp, _secret_read("s-2"))
    _wait(lambda: _processed(sp) == 2, "detection of the second read")
    _end(sp, how)
    sp = serve(rules=rules).start()
    _post(sp, _secret_read("s-3"))
    _wait(lambda: alerts.exists() and any(a["rule"]["id"] == BURST_ID for a in read_alerts(alerts)),
          "the correlation alert after the restart")
    assert [a["rule"]["id"] for a in read_alerts(alerts)].count(BURST_ID) == 1


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_first_seen_values_survive_a_restart(serve, rules: Path, tmp_path: Path, how: str) -> None:
    alerts = tmp_path / "alerts.jsonl"
    extra = {"baseline": {"path": str(tmp_path / "state" / "baseline.sqlite")}}

    def new_ip_alerts() -> list[str]:
        return [a["auditID"] for a in read_alerts(alerts) if a["rule"]["id"] == NEW_IP_ID] if alerts.exists() else []

    sp = serve(rules=rules, extra=extra).start()
    _post(sp, _list_from("l-1", "10.0.0.1"))
    _wait(lambda: new_ip_alerts() == ["l-1"], "the first-seen alert")
    _end(sp, how)  # well within the store's 5 s flush interval
    sp = serve(rules=rules, extra=extra).start()
    _post(sp, _list_from("l-2", "10.0.0.1"), _list_from("l-3", "10.9.9.9"))
    _wait(lambda: "l-3" in new_ip_alerts(), "the alert for the address never seen")
    assert new_ip_alerts() == ["l-1", "l-3"]  # 10.0.0.1 was learned before the restart


def test_baseline_store_error_keeps_the_events_other_alerts(serve, rules: Path, tmp_path: Path) -> None:
    """The baseline file refuses every write (a real SQLite error from a trigger another connection
    put there): the event still gets all its alerts, and what was learned is saved once it can be."""
    import sqlite3

    from kubehawk.rules.baseline import BaselineStore

    path = tmp_path / "state" / "baseline.sqlite"
    BaselineStore(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER fail_seen BEFORE INSERT ON seen BEGIN SELECT RAISE(ABORT, 'write refused'); END")
    alerts = tmp_path / "alerts.jsonl"
    sp = serve(rules=rules, extra={"baseline": {"path": str(path), "flush_every": 1}}).start()
    _post(sp, _list_from("e-1", "10.0.0.1"))
    _wait(lambda: alerts.exists() and len(read_alerts(alerts)) == 2, "both alerts of the event")
    assert sorted(a["rule"]["id"] for a in read_alerts(alerts)) == sorted([ANY_LIST_ID, NEW_IP_ID])
    assert "baseline: cannot save" in sp.log.read_text()
    assert httpx.get(sp.url + "/readyz", timeout=5).status_code == 200
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER fail_seen")

    def saved() -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM seen WHERE value = '10.0.0.1'").fetchone()[0]

    deadline = time.monotonic() + 30
    while not saved():  # the retry backoff passes; each new event's commit tries again
        assert time.monotonic() < deadline, sp.log.read_text()
        _post(sp, _list_from(f"e-{time.monotonic()}", "10.0.0.1"))
        time.sleep(0.5)
