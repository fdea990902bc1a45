"""`--follow`: tail a live log across appends, rotations, truncation and late creation."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from kubehawk.sources.files import ReadStats
from kubehawk.sources.follow import follow_paths

from helpers import REPO, audit

POLL = 0.02




def line(i: str, **kw) -> bytes:
    return json.dumps(audit(auditID=i, **kw)).encode() + b"\n"


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class Follower:
    """follow_paths running in a thread, collecting events until stopped."""

    def __init__(self, *paths: Path, from_start: bool = False) -> None:
        self.stats = ReadStats()
        self.warnings: list[str] = []
        self.events: list = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.polled = threading.Event()
        gen = follow_paths([str(p) for p in paths], self.stats, on_warning=self.warnings.append,
                           poll_interval=POLL, stop=self.stop, from_start=from_start)

        def run() -> None:
            try:
                for ev in gen:
                    self.events.append(ev)
            except BaseException as e:  # surfaced by the test, not swallowed
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    @property
    def ids(self) -> list[str]:
        return [e.head.auditID for e in self.events]

    def wait_ids(self, expected: list[str], timeout: float = 3.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.events) < len(expected):
            time.sleep(POLL / 2)
        time.sleep(3 * POLL)  # and nothing more arrives
        return self.ids

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        assert not self.thread.is_alive(), "follow_paths did not end when stop was set"
        assert self.error is None, self.error

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_new_lines_only_and_partial_line_waits(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(line("old1") + line("old2"))
    with Follower(log) as f:
        append(log, line("new1"))
        assert f.wait_ids(["new1"]) == ["new1"]
        data = line("new2")
        append(log, data[:30])  # the writer is mid-line
        time.sleep(5 * POLL)
        assert f.ids == ["new1"]
        append(log, data[30:] + line("new3"))
        assert f.wait_ids(["new1", "new2", "new3"]) == ["new1", "new2", "new3"]
        # Line numbers count the lines that were there before following began.
        assert [e.origin for e in f.events] == [f"{log}:3", f"{log}:4", f"{log}:5"]
    assert f.stats.bad == 0 and f.warnings == []


def test_from_start_reads_what_is_there(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(line("a") + b"garbage\n" + line("b"))
    with Follower(log, from_start=True) as f:
        assert f.wait_ids(["a", "b"]) == ["a", "b"]
        append(log, line("c"))
        assert f.wait_ids(["a", "b", "c"]) == ["a", "b", "c"]
    assert f.stats.bad == 1 and f.warnings[0].startswith(f"{log}:2: ")


def test_rename_rotation(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    writer = open(log, "ab", buffering=0)  # noqa: SIM115 - the apiserver's handle
    with Follower(log) as f:
        writer.write(line("before"))
        assert f.wait_ids(["before"]) == ["before"]
        backup = tmp_path / "audit-2024-10-30T11-19-19.911.log"
        os.rename(log, backup)
        writer.write(line("late-in-old"))  # still written through the old handle
        writer.close()
        log.write_bytes(line("first-in-new"))
        append(log, line("second-in-new"))
        expected = ["before", "late-in-old", "first-in-new", "second-in-new"]
        assert f.wait_ids(expected) == expected
        assert f.events[2].origin == f"{log}:1"
    assert f.stats.bad == 0 and f.stats.files == 2


def test_rename_rotation_with_a_gap(tmp_path):
    """The new file shows up only after a few polls without any file at the path."""
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    with Follower(log) as f:
        append(log, line("1"))
        assert f.wait_ids(["1"]) == ["1"]
        os.rename(log, tmp_path / "audit.log.1")
        time.sleep(5 * POLL)
        log.write_bytes(line("2"))
        assert f.wait_ids(["1", "2"]) == ["1", "2"]


def test_copytruncate(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(line("x0") * 3)
    with Follower(log) as f:
        append(log, line("x1") + line("x2"))
        assert f.wait_ids(["x1", "x2"]) == ["x1", "x2"]
        shutil.copyfile(log, tmp_path / "audit.log.1")
        with open(log, "r+b") as fh:
            fh.truncate(0)
        time.sleep(5 * POLL)
        append(log, line("y1"))
        assert f.wait_ids(["x1", "x2", "y1"]) == ["x1", "x2", "y1"]
        assert f.events[-1].origin == f"{log}:1"
    assert f.stats.bad == 0


def test_file_appearing_later(tmp_path):
    log = tmp_path / "later" / "audit.log"
    with Follower(log) as f:
        time.sleep(3 * POLL)
        log.parent.mkdir()
        log.write_bytes(line("a") + line("b"))  # a new file is read from its start
        assert f.wait_ids(["a", "b"]) == ["a", "b"]
    assert f.stats.bad == 0 and f.warnings == []


def test_directory_follows_the_newest_file(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    old = d / "old.log"
    cur = d / "audit.log"
    old.write_bytes(line("o"))
    cur.write_bytes(line("c0"))
    past = time.time() - 100
    os.utime(old, (past, past))
    (d / "audit-2024-10-30T11-19-19.911.log.gz").write_bytes(b"\x1f\x8b")  # a backup: never followed
    with Follower(d) as f:
        append(cur, line("c1"))
        append(old, line("not-followed"))
        assert f.wait_ids(["c1"]) == ["c1"]
        newer = d / "audit2.log"
        newer.write_bytes(line("n1"))
        assert f.wait_ids(["c1", "n1"]) == ["c1", "n1"]
        append(newer, line("n2"))
        assert f.wait_ids(["c1", "n1", "n2"]) == ["c1", "n1", "n2"]


def test_stop_ends_it_promptly_and_closes(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(line("a"))
    stop = threading.Event()
    stats = ReadStats()
    gen = follow_paths([str(log)], stats, poll_interval=5.0, stop=stop)
    threading.Timer(0.2, stop.set).start()
    t = time.monotonic()
    assert list(gen) == []
    assert time.monotonic() - t < 2.0  # the wait is cut short by stop, not a full poll interval


def test_stop_in_the_middle_of_a_backlog(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(line(str(i)) for i in range(1000)))
    stop = threading.Event()
    seen = []
    for ev in follow_paths([str(log)], ReadStats(), stop=stop, from_start=True, poll_interval=POLL):
        seen.append(ev)
        if len(seen) == 10:
            stop.set()
    assert len(seen) == 10


_STDIN_FOLLOW = """
import json, sys
from kubehawk.sources.files import ReadStats
from kubehawk.sources.follow import follow_paths
stats = ReadStats()
for ev in follow_paths(['-'], stats, poll_interval=0.02):
    print(ev.head.auditID, ev.origin, flush=True)
"""


def test_follow_stdin_through_a_pipe():
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-c", _STDIN_FOLLOW], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env)
    try:
        proc.stdin.write(line("p1"))
        proc.stdin.flush()
        assert proc.stdout.readline() == b"p1 <stdin>:1\n"  # delivered while stdin is still open
        proc.stdin.write(line("p2"))
        proc.stdin.flush()
        assert proc.stdout.readline() == b"p2 <stdin>:2\n"
    finally:
        proc.kill()
        proc.wait(5)


def test_a_compressed_file_is_read_once_not_tailed(tmp_path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    with Follower(log) as f:
        append(log, line("plain"))
        assert f.wait_ids(["plain"]) == ["plain"]
        # The path is replaced by a gzip file (a rotation that compresses in place).
        tmp = tmp_path / "next"
        tmp.write_bytes(gzip.compress(line("z1") + line("z2")))
        os.replace(tmp, log)
        assert f.wait_ids(["plain", "z1", "z2"]) == ["plain", "z1", "z2"]
        time.sleep(5 * POLL)
        assert f.ids == ["plain", "z1", "z2"]  # not read again on later polls
    assert f.stats.bad == 0 and f.warnings == []
