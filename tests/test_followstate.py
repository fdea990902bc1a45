"""``detect --follow --state``: a follower killed at any moment and restarted resumes exactly where
it stopped, across rotation; no event is missed and none alerted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import test_cli
from kubehawk.followstate import FollowState, Position, StateError
from kubehawk.sources.files import ReadStats
from kubehawk.sources.follow import follow_paths
from test_cli import KUBEHAWK, exec_event, run

rules_dir = test_cli.rules_dir  # the fixture: a folder with one exec rule


def lines(ids: range) -> bytes:
    return b"".join(json.dumps(exec_event(i)).encode() + b"\n" for i in ids)


def alert_ids(path: Path) -> list[str]:
    return [json.loads(x)["auditID"] for x in path.read_bytes().splitlines() if x.strip()]


def wait_for(cond, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)



class Follower:
    """``kubehawk detect --follow --state`` as a real process writing alerts to a file."""

    def __init__(self, rules_dir: Path, log: Path, state: Path, alerts: Path) -> None:
        self.alerts = alerts
        self.proc = subprocess.Popen(
            [str(KUBEHAWK), "detect", "--follow", "--from-start", "--state", str(state), "--no-builtin",
             "--rules", str(rules_dir), "--format", "json", "-o", str(alerts), str(log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def count(self) -> int:
        try:
            return self.alerts.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def kill9(self) -> bytes:
        self.proc.send_signal(signal.SIGKILL)
        _, err = self.proc.communicate(timeout=20)
        return err

    def term(self) -> bytes:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return err


def test_kill_9_in_the_middle_restart_across_rotation_nothing_missed_or_doubled(rules_dir, tmp_path):
    log, state, alerts = tmp_path / "audit.log", tmp_path / "follow.state", tmp_path / "alerts.jsonl"
    log.write_bytes(lines(range(0, 30000)))
    f = Follower(rules_dir, log, state, alerts)
    try:
        wait_for(lambda: f.count() > 3000, what="alerts")
        err = f.kill9()  # in the middle of the backlog, between two saves
        assert f.count() < 30000, "the kill came too late to test anything"
        # While it is down, the log grows and rotates (rename, a new file).
        with log.open("ab") as fh:
            fh.write(lines(range(30000, 30500)))
        log.rename(tmp_path / "audit.log.1")
        log.write_bytes(lines(range(30500, 50000)))

        f = Follower(rules_dir, log, state, alerts)
        wait_for(lambda: f.count() > 33000, what="the second run to get past the rotation")
        err = f.kill9()  # a second kill, now inside the new file
        assert f.count() < 50000, "the second kill came too late to test anything"
        # the alerts written after the first run's last save were cut, and raised again
        assert b"bytes of alerts written after the last saved position" in err
        with log.open("ab") as fh:
            fh.write(lines(range(50000, 50100)))

        f = Follower(rules_dir, log, state, alerts)
        wait_for(lambda: f.count() >= 50100, what="every alert")
        time.sleep(0.5)
        err = f.term()
    finally:
        f.proc.kill()
    ids = alert_ids(alerts)
    assert len(ids) == 50100 and set(ids) == {f"id-{i}" for i in range(50100)}, (len(ids), len(set(ids)))
    assert b"Traceback" not in err
    saved = FollowState.load(str(state)).positions
    assert list(saved) == [str(log)] and saved[str(log)].line == 19600  # 19500 + 100 lines in the new file


def test_restart_after_a_clean_stop_reads_only_what_is_new(rules_dir, tmp_path):
    log, state, alerts = tmp_path / "audit.log", tmp_path / "follow.state", tmp_path / "alerts.jsonl"
    log.write_bytes(lines(range(0, 5)))
    f = Follower(rules_dir, log, state, alerts)
    try:
        wait_for(lambda: f.count() == 5, what="five alerts")
        time.sleep(0.3)
        f.term()
        with log.open("ab") as fh:
            fh.write(lines(range(5, 8)) + b'{"partial line, still being written')
        f = Follower(rules_dir, log, state, alerts)
        wait_for(lambda: f.count() == 8, what="eight alerts")
        time.sleep(0.5)
        f.term()
    finally:
        f.proc.kill()
    assert alert_ids(alerts) == [f"id-{i}" for i in range(8)]
    pos = FollowState.load(str(state)).positions[str(log)]
    assert pos.line == 8 and pos.offset == len(lines(range(0, 8)))  # the partial line is read next time


def test_state_and_from_start_need_follow_and_a_bad_state_is_one_line(rules_dir, tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(lines(range(0, 1)))
    res = run("detect", "--state", str(tmp_path / "s"), str(log))
    assert res.returncode == 2 and b"--follow" in res.stderr and b"Traceback" not in res.stderr
    bad = tmp_path / "bad.state"
    bad.write_text("{not json")
    res = run("detect", "--follow", "--state", str(bad), "--no-builtin", "--rules", str(rules_dir), str(log))
    assert res.returncode == 2 and res.stderr.count(b"\n") == 1 and str(bad).encode() in res.stderr
    res = run("detect", "--follow", "--state", str(tmp_path / "s"), "-")
    assert res.returncode == 2 and b"standard input" in res.stderr
    res = run("detect", "--follow", "--state", str(tmp_path / "nowhere" / "s"), str(log))
    assert res.returncode == 2 and b"no such folder" in res.stderr and b"Traceback" not in res.stderr


def test_a_failing_save_is_reported_once_and_the_follow_goes_on(tmp_path):
    from kubehawk.followstate import Checkpoints

    state = FollowState(str(tmp_path / "gone" / "s"))
    warnings: list[str] = []
    flushed: list[int] = []
    cp = Checkpoints(state, None, lambda: flushed.append(1), warnings.append)
    for n in range(3):
        cp({"/x": Position(1, 2, n, n)})
    assert len(flushed) == 3 and len(warnings) == 1 and "cannot save the follow state" in warnings[0]
    (tmp_path / "gone").mkdir()
    cp({"/x": Position(1, 2, 9, 9)})
    assert FollowState.load(str(tmp_path / "gone" / "s")).positions["/x"].offset == 9


# --- the library: positions handed to the checkpoint say exactly what was consumed ----------


def _follow(paths: list[Path], saved=None, stop_after: int | None = None):
    """Run follow_paths until it is caught up (or ``stop_after`` events); the events and the
    positions of each checkpoint."""
    stop = threading.Event()
    saves: list[dict[str, Position]] = []
    events = []
    gen = follow_paths([str(p) for p in paths], ReadStats(), poll_interval=0.01, stop=stop,
                       from_start=True, saved=saved, checkpoint=saves.append)
    threading.Timer(0.5, stop.set).start()
    for ev in gen:
        events.append(ev.head.auditID)
        if stop_after is not None and len(events) == stop_after:
            stop.set()
    return events, saves


def test_stop_saves_the_position_after_the_last_event_processed(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(lines(range(0, 100)))
    events, saves = _follow([log], stop_after=10)
    assert len(events) == 10
    pos = saves[-1][str(log)]
    assert (pos.offset, pos.line) == (len(lines(range(0, 10))), 10)
    again, _ = _follow([log], saved=saves[-1])
    assert again == [f"id-{i}" for i in range(10, 100)]


def test_resume_finds_the_rotated_file_by_its_inode(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(lines(range(0, 10)))
    _, saves = _follow([log], stop_after=4)
    with log.open("ab") as fh:
        fh.write(lines(range(10, 12)))
    log.rename(tmp_path / "audit-2026-11-23T10-00-00.000.log")
    log.write_bytes(lines(range(12, 15)))
    events, saves = _follow([log], saved=saves[-1])
    assert events == [f"id-{i}" for i in range(4, 15)]
    assert saves[-1][str(log)].ino == os.stat(log).st_ino


def test_resume_after_copytruncate_reads_the_rest_from_the_copy(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(lines(range(0, 10)))
    _, saves = _follow([log], stop_after=4)
    with log.open("ab") as fh:
        fh.write(lines(range(10, 12)))
    (tmp_path / "audit.log.1").write_bytes(log.read_bytes())  # logrotate copytruncate: copy, then empty
    with log.open("r+b") as fh:
        fh.truncate(0)
    with log.open("ab") as fh:
        fh.write(lines(range(12, 15)))
    events, _ = _follow([log], saved=saves[-1])
    assert events == [f"id-{i}" for i in range(4, 15)]


def test_resume_when_the_old_file_is_gone_warns_and_reads_the_new_one(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(lines(range(0, 3)))
    _, saves = _follow([log])
    log.unlink()
    log.write_bytes(lines(range(3, 5)))
    warnings: list[str] = []
    gen = follow_paths([str(log)], ReadStats(), on_warning=warnings.append, saved=saves[-1], poll_interval=0.01)
    assert [next(gen).head.auditID, next(gen).head.auditID] == ["id-3", "id-4"]
    gen.close()
    assert len(warnings) == 1 and "is gone" in warnings[0] and "after line 3" in warnings[0]


def test_directory_resumes_its_file_then_goes_on_with_a_newer_one(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    first = d / "audit-a.log"
    first.write_bytes(lines(range(0, 6)))
    _, saves = _follow([d], stop_after=2)
    assert list(saves[-1]) == [str(first)]
    time.sleep(0.05)
    (d / "audit-b.log").write_bytes(lines(range(6, 8)))
    os.utime(d / "audit-b.log", (time.time() + 5, time.time() + 5))
    events, _ = _follow([d], saved=saves[-1])
    assert events == [f"id-{i}" for i in range(2, 8)]


def test_state_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "s.json"
    assert FollowState.load(str(path)).positions == {}
    st = FollowState(str(path))
    st.save({"/x/audit.log": Position(1, 2, 300, 4)}, ("/x/alerts.jsonl", 99))
    back = FollowState.load(str(path))
    assert back.positions == {"/x/audit.log": Position(1, 2, 300, 4)} and back.output == ("/x/alerts.jsonl", 99)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left behind
    path.write_text(json.dumps({"version": 1, "files": {"/x": {"dev": 1, "ino": -2, "offset": 0, "line": 0}}}))
    with pytest.raises(StateError, match=r"files\['/x'\]"):
        FollowState.load(str(path))


def test_rewind_cuts_only_alerts_written_after_the_save(tmp_path):
    out = tmp_path / "alerts.jsonl"
    out.write_bytes(b"a\nb\n")
    st = FollowState(str(tmp_path / "s"))
    st.save({}, (str(out), 2))
    assert st.rewind_output(str(out)) == 2 and out.read_bytes() == b"a\n"
    assert st.rewind_output(str(tmp_path / "other.jsonl")) == 0


def test_the_alert_file_length_saved_is_its_real_length_after_the_state_cut_it(tmp_path):
    """detect opens the alert file (appending) before the saved state cuts it back; the save made
    at the start, before any alert is written, must record the file's length after the cut, not
    the descriptor's offset from before it, or the next restart cannot cut and alerts come twice."""
    from kubehawk.alertsink import AlertSink

    out = tmp_path / "alerts.jsonl"
    out.write_text("x" * 1000)
    sink = AlertSink("json", str(out), streaming=True)
    try:
        os.truncate(out, 400)  # what FollowState.rewind_output does at a restart
        assert sink.flush() == 400  # the first save, nothing written yet
        sink.fh.write("y" * 10 + "\n")
        assert sink.flush() == out.stat().st_size == 411
    finally:
        sink.close()
