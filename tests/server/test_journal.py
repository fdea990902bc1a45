"""The SQLite journal: dedup on auditID+stage, group commit, cursor and alerts in one transaction."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

from kubehawk.server.journal import Journal, NewAlert, Record


def rec(aid: str, stage: str = "ResponseComplete", source: str = "audit") -> Record:
    return Record.make(aid, stage, source, f'{{"auditID": "{aid}"}}'.encode())


def test_dedup_on_audit_id_and_stage(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    try:
        r = j.append([rec("a"), rec("a", "RequestReceived"), rec("b"), rec("a")])
        assert (r.accepted, r.duplicates) == (3, 1)
        assert j.append([rec("a"), rec("c")]).accepted == 1
        # The same uid from the admission webhook is a different record.
        assert j.append([rec("a", "ResponseComplete", "admission")]).accepted == 1
        # No auditID: the payload hash is the key.
        assert Record.make(None, None, "audit", b"x").audit_id == Record.make("", "", "audit", b"x").audit_id
        assert j.backlog == 5
    finally:
        j.close()


def test_concurrent_appends_share_commits_and_keep_seq_order(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    results = []

    def worker(n: int) -> None:
        results.append(j.append([rec(f"w{n}-{i}") for i in range(50)]))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.close()
    assert sum(r.accepted for r in results) == 800
    db = sqlite3.connect(tmp_path / "j.db")
    seqs = [s for (s,) in db.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, 801))


def test_cursor_and_alerts_commit_together_and_survive_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.append([rec(f"e{i}") for i in range(10)])
    db = j.connect()
    rows = j.next_events(db, 4)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    alerts = [NewAlert("rule-1", "e1", b"{}", 0.0), NewAlert("rule-1", "e1", b"{}", 0.0),
              NewAlert("rule-2", "e1", b"{}", 0.0)]
    fresh = j.commit_processed(db, 4, alerts, 4)
    assert [(a.rule_id, a.audit_key) for a in fresh] == [("rule-1", "e1"), ("rule-2", "e1")]
    # A replay of the same alerts (e.g. ResponseStarted then ResponseComplete) adds nothing.
    assert j.commit_processed(db, 5, [NewAlert("rule-1", "e1", b"{}", 0.0)], 1) == []
    db.close()
    j.close()

    j2 = Journal(tmp_path / "j.db")
    try:
        assert j2.processed == 5 and j2.last_seq == 10 and j2.backlog == 5
        db = j2.connect()
        ids = [a[0] for a in j2.alerts_after(db, 0, 10)]
        assert len(ids) == 2 and ids == sorted(ids)
        assert j2.alert_id(db, "rule-2", "e1") == ids[1]
        db.close()
    finally:
        j2.close()


def test_prune_keeps_the_dedup_window_and_undelivered_alerts(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.append([rec("old")], received=1000.0)
    j.append([rec("new")])
    db = j.connect()
    j.commit_processed(db, 2, [NewAlert("r", "old", b"{}", 1000.0)], 2)
    j.set_state(db, "sink:out", 0)
    j.prune(db, dedup_window=3600, alert_window=0, sinks=["out"])
    assert [a for (a,) in db.execute("SELECT audit_id FROM events")] == ["new"]
    assert len(j.alerts_after(db, 0, 10)) == 1  # the output has not had it yet
    j.set_state(db, "sink:out", j.last_alert_id(db))
    j.prune(db, dedup_window=3600, alert_window=0, sinks=["out"])
    assert j.alerts_after(db, 0, 10) == []
    db.close()
    j.close()



def test_backlog_gauge_does_not_drift_when_detection_overtakes_the_writer(tmp_path: Path, rules_dir: Path) -> None:
    """A batch is visible in SQLite a moment before the writer counts it in the backlog. With
    thread switches forced often, the processor (a real thread) regularly reads such a batch; it
    must not subtract rows the writer has not added yet, or the gauge drifts up for good."""
    from kubehawk.detect import Detector
    from kubehawk.rules import load_rules
    from kubehawk.server.metrics import Metrics
    from kubehawk.server.pipeline import Processor

    j = Journal(tmp_path / "j.db", sync="normal")
    proc = Processor(j, Detector(load_rules(paths=[rules_dir], builtin=False)), Metrics())
    proc.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        futures = []
        for i in range(3000):
            futures.append(j.submit([rec(f"a{i}")]))
            if i % 4 == 0:
                futures[-1].result(10)
        for f in futures:
            f.result(10)
        deadline = time.monotonic() + 20
        while j.processed < j.last_seq and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sys.setswitchinterval(interval)
        proc.stop()
        proc.join(10)
        j.close()
    assert j.processed == j.last_seq
    assert j.backlog == 0  # the journal holds nothing unprocessed: neither may the gauge
