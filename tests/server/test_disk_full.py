"""A transient full disk (a real file-size limit on the `serve` process, RLIMIT_FSIZE) stops nothing
for good: detection and the outputs retry with backoff and catch up when space returns; liveness
fails only while they cannot recover."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import httpx
import msgspec
from servetools import RULE_ID, event

from kubehawk.server.journal import Journal, NewAlert, Record

LIMIT = 256 * 1024  # bytes any file of the serve process may reach while the "disk is full"


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def _give_space_back(pid: int) -> None:
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _wait(cond, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


def _alert_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]  # a torn line fails here


def _health(sp) -> int:
    try:
        return httpx.get(sp.url + "/healthz", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_transient_disk_full_does_not_stop_detection(serve, tmp_path: Path) -> None:
    n = 1500
    journal = tmp_path / "journal" / "j.db"
    j = Journal(journal)  # acknowledged events, waiting for detection
    j.append([Record.make(f"full-{i}", "ResponseComplete", "audit", msgspec.json.encode(event(f"full-{i}", intruder=True)))
              for i in range(n)])
    j.close()
    alerts = tmp_path / "alerts.jsonl"
    sp = serve({"liveness_timeout": 3})
    sp.start(wait_for="/healthz", preexec_fn=_limit_file_size)
    # The alerts of a chunk do not fit in the WAL under the limit: the commit fails, again and again.
    _wait(lambda: "detection failed" in sp.log.read_text(), 20, "the first failed commit", sp.log)
    _wait(lambda: _health(sp) == 503, 20, "liveness to fail while detection cannot recover", sp.log)
    assert sp.proc.poll() is None
    _give_space_back(sp.proc.pid)
    _wait(lambda: len(_alert_lines(alerts)) >= n, 60, "detection to catch up", sp.log)
    got = _alert_lines(alerts)
    assert sorted(a["auditID"] for a in got) == sorted(f"full-{i}" for i in range(n))  # each once
    _wait(lambda: _health(sp) == 200, 20, "liveness to recover", sp.log)
    assert "detection stopped" not in sp.log.read_text()
    assert "recovered" in sp.log.read_text()


def test_transient_disk_full_under_an_output_file_delays_but_never_drops(serve, tmp_path: Path) -> None:
    n = 1200
    journal = tmp_path / "journal" / "j.db"
    j = Journal(journal)  # detected alerts, waiting for the output (cursor 0)
    j.append([Record.make(f"out-{i}", "ResponseComplete", "audit", b"{}") for i in range(n)])
    db = j.connect()
    found = [NewAlert(RULE_ID, f"out-{i}", msgspec.json.encode({
        "rule": {"id": RULE_ID, "title": "t", "level": "high"}, "auditID": f"out-{i}", "message": "x" * 800}), 0.0)
        for i in range(n)]
    j.commit_processed(db, j.last_seq, found, n)
    j.set_state(db, "sink:alerts", 0)
    db.close()
    j.close()
    alerts = tmp_path / "alerts.jsonl"
    sp = serve({"liveness_timeout": 3}, outputs=[{"type": "file", "name": "alerts", "path": str(alerts)}])
    sp.start(preexec_fn=_limit_file_size)
    _wait(lambda: "output alerts failed" in sp.log.read_text(), 20, "the output to hit the limit", sp.log)
    _wait(lambda: _health(sp) == 503, 20, "liveness to fail while the output cannot recover", sp.log)
    assert alerts.stat().st_size <= LIMIT and len(_alert_lines(alerts)) < n  # whole lines only
    _give_space_back(sp.proc.pid)
    _wait(lambda: len(_alert_lines(alerts)) >= n, 60, "the output to catch up", sp.log)
    got = [a["auditID"] for a in _alert_lines(alerts)]
    assert sorted(got) == sorted(f"out-{i}" for i in range(n))  # none dropped, none twice
    _wait(lambda: _health(sp) == 200, 20, "liveness to recover", sp.log)
