"""The first-seen store when its file fails: rows stay pending until committed, nothing raises,
and every other rule's alerts go on (a real SQLite error, a real file-size limit)."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.rules.builtin_events import ev

from kubehawk.rules.baseline import BaselineStore

KUBEHAWK = Path(sys.executable).with_name("kubehawk")
POD_EXEC = "dbbee962-c197-5421-b4e3-44e948f7e58f"  # builtin pod-exec, an ordinary rule
FAIL_INSERTS = "CREATE TRIGGER fail_seen BEFORE INSERT ON seen BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"


def test_failed_baseline_flush_keeps_pending_rows_until_commit(tmp_path: Path, caplog) -> None:
    path = tmp_path / "baseline.sqlite"
    store = BaselineStore(str(path), flush_every=1000)
    with sqlite3.connect(path) as other:  # another connection makes every insert into seen fail
        other.execute(FAIL_INSERTS)
    store.record("r1", "alice", "10.0.0.0/16", 1000.0)
    store.record("r1", "bob", "10.1.0.0/16", 1001.0)
    assert store.flush() is False  # no exception: the caller's event keeps its other alerts
    assert store.last_seen("r1", "alice", "10.0.0.0/16") == 1000.0  # still known while pending
    assert "cannot save 2 learned value(s)" in caplog.text
    with sqlite3.connect(path) as other:
        other.execute("DROP TRIGGER fail_seen")
    store._retry_at = 0.0  # the backoff is the caller's business; this test retries at once
    assert store.flush() is True
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] == 2  # nothing was dropped


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def test_detect_survives_a_full_disk_under_the_baseline_store(tmp_path: Path) -> None:
    """A file-size limit stops the baseline file from growing: `detect` still reports every
    alert of the other rules, says once why first-seen values were not saved, and exits normally."""
    n = 1500
    log = tmp_path / "audit.log"
    with open(log, "w") as fh:
        for i in range(n):
            e = ev("create", "pods", name="web-1", sub="exec", user=f"user-{i:05d}@example.com",
                   time="2025-06-03T10:00:00.000000Z", code=101,
                   uri="/api/v1/namespaces/default/pods/web-1/exec?command=ls&container=app&stdout=true")
            e["auditID"] = f"exec-{i}"
            fh.write(json.dumps(e) + "\n")
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(json.dumps({"baseline": {"path": str(tmp_path / "state" / "baseline.sqlite"),
                                            "learning_days": 0, "flush_every": 100}}))
    env = {**os.environ, "KUBEHAWK_NO_CACHE": "1"}  # only the baseline store writes a file
    r = subprocess.run([str(KUBEHAWK), "detect", "--format", "json", "--config", str(cfg), str(log)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
                       preexec_fn=_limit_file_size(96 * 1024))
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
    alerts = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    exec_alerts = {a["auditID"] for a in alerts if a["rule"]["id"] == POD_EXEC}
    assert len(exec_alerts) == n  # the ordinary rule lost nothing
    assert "baseline: cannot save" in r.stderr
    assert len([line for line in r.stderr.splitlines() if "baseline: cannot save" in line]) <= 3
