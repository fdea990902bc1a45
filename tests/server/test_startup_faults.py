"""What `serve` (and `detect`) say at start when their files are unusable, and who may read /metrics:
a damaged journal or baseline file is one clear line, not a traceback; a journal in use by another
server is refused; /metrics asks for the /audit credentials or shows no rule names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from servetools import RULE_ID, event, event_list

from kubehawk.server.journal import Journal, Record

TOKEN = "metrics-test-token"


def _run_serve(sp, timeout: float = 60) -> subprocess.CompletedProcess:
    """`serve` to its exit (it must refuse to start)."""
    return subprocess.run([sys.executable, "-c", "from kubehawk.cli import main; main()", "serve", "--config",
                           str(sp.config), "--no-builtin", "--rules", str(sp.rules_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=sp.workdir)


def _damage(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)


def _assert_one_clear_line(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("kubehawk")]
    for w in words:
        assert w in line, line


def _wait_for_alert(alerts: Path) -> None:
    deadline = time.monotonic() + 20
    while not (alerts.exists() and alerts.read_text()):
        assert time.monotonic() < deadline, "no alert"
        time.sleep(0.1)


def _journal_with_events(path: Path, n: int = 300) -> None:
    j = Journal(path)
    j.append([Record.make(f"c-{i}", "ResponseComplete", "audit", msgspec.json.encode(event(f"c-{i}")))
              for i in range(n)])
    j.close()


@pytest.mark.parametrize("damage", ["not-sqlite", "damaged-page"])
def test_corrupt_journal_is_one_clear_line(serve, tmp_path: Path, damage: str) -> None:
    sp = serve()
    journal = tmp_path / "journal" / "j.db"
    journal.parent.mkdir()
    if damage == "not-sqlite":
        journal.write_bytes(os.urandom(20000))
    else:
        _journal_with_events(journal)
        _damage(journal, 4096 * 5)
    r = _run_serve(sp)
    _assert_one_clear_line(r, "kubehawk serve: journal:", str(journal), "move it aside")


def test_corrupt_baseline_file_is_one_clear_line(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "baseline.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE seen (rule TEXT, key TEXT, value TEXT, first REAL, last REAL, "
               "PRIMARY KEY (rule, key, value)) WITHOUT ROWID")
    db.executemany("INSERT INTO seen VALUES (?, ?, ?, 0, 0)", [("r", f"k{i}", "v" * 200) for i in range(400)])
    db.commit()
    db.close()
    _damage(path, 4096 * 3)
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(json.dumps({"baseline": {"path": str(path)}}))
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(event("b-1")) + "\n")
    kubehawk = Path(sys.executable).with_name("kubehawk")
    r = subprocess.run([str(kubehawk), "detect", "--config", str(cfg), str(log)], capture_output=True, text=True,
                       timeout=120)
    _assert_one_clear_line(r, "baseline.path", str(path))


def test_two_serve_processes_cannot_share_a_journal(serve, tmp_path: Path) -> None:
    first = serve().start()
    for d in ("second", "third"):
        (tmp_path / d).mkdir()
    second = serve(workdir=tmp_path / "second", server={"journal": str(tmp_path / "journal" / "j.db")})
    r = _run_serve(second)
    _assert_one_clear_line(r, "is in use by another kubehawk serve", f"pid {first.proc.pid}")
    # The first one is untouched and still the only one processing.
    assert httpx.post(first.url + "/audit", json=event_list([event("lock-1")])).json()["accepted"] == 1
    first.stop()
    serve(workdir=tmp_path / "third", server={"journal": str(tmp_path / "journal" / "j.db")}).start()


def test_metrics_ask_for_the_audit_credentials_by_default(serve, tmp_path: Path) -> None:
    sp = serve({"tokens": [TOKEN]}).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(sp.url + "/audit", json=event_list([event("m-1", intruder=True)]), headers=auth).status_code == 200
    r = httpx.get(sp.url + "/metrics")
    assert r.status_code == 401
    _wait_for_alert(tmp_path / "alerts.jsonl")
    assert RULE_ID in httpx.get(sp.url + "/metrics", headers=auth).text


def test_anonymous_metrics_show_no_rule_names(serve, tmp_path: Path) -> None:
    sp = serve({"tokens": [TOKEN], "metrics_auth": False}).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    httpx.post(sp.url + "/audit", json=event_list([event("m-2", intruder=True)]), headers=auth)
    _wait_for_alert(tmp_path / "alerts.jsonl")
    anonymous = httpx.get(sp.url + "/metrics")
    assert anonymous.status_code == 200
    assert RULE_ID not in anonymous.text and "kubehawk_alerts_total" not in anonymous.text
    assert "kubehawk_events_processed_total 1" in anonymous.text  # the rule-free counters are there
    assert RULE_ID in httpx.get(sp.url + "/metrics", headers=auth).text
