"""The progress line of a long `detect` and the stdin notice: shown on a terminal (a real pty),
never in a pipe or with -q."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import test_cli
from kubehawk.progress import Progress
from test_cli import KUBEHAWK, exec_event

from helpers import audit

rules_dir = test_cli.rules_dir  # the fixture: a folder with one exec rule


def batch(start: int, n: int) -> bytes:
    """``n`` events, one in a hundred an exec (an alert)."""
    out = []
    for i in range(start, start + n):
        ev = exec_event(i) if i % 100 == 0 else audit(auditID=f"q-{i}")
        out.append(json.dumps(ev))
    return ("\n".join(out) + "\n").encode()


def read_all(fd: int, proc: subprocess.Popen, timeout: float = 60) -> bytes:
    """Everything written to the pty until the process has ended and the pty is drained."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def run_slowly(rules_dir: Path, tmp_path: Path, *extra: str, stderr_tty: bool = True) -> bytes:
    """detect reading stdin fed over ~2.5 s, its alerts to a file, its stderr on a pty (or a pipe)."""
    master, slave = pty.openpty() if stderr_tty else (None, None)
    proc = subprocess.Popen([str(KUBEHAWK), "detect", "--no-builtin", "--rules", str(rules_dir), "-o",
                             str(tmp_path / "alerts.jsonl"), *extra, "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=slave if stderr_tty else subprocess.PIPE)
    if slave is not None:
        os.close(slave)
    chunks: list[bytes] = []
    try:
        for k in range(10):
            proc.stdin.write(batch(k * 2000, 2000))
            proc.stdin.flush()
            if master is not None:  # keep the pty drained so the writer never blocks
                while select.select([master], [], [], 0)[0]:
                    chunks.append(os.read(master, 65536))
            time.sleep(0.25)
        proc.stdin.close()
        if master is not None:
            chunks.append(read_all(master, proc))
            err = b"".join(chunks)
        else:
            err = proc.stderr.read()
        proc.wait(30)
    finally:
        proc.kill()
        if master is not None:
            os.close(master)
    assert proc.returncode == 0, err
    return err


def test_progress_on_a_terminal_then_erased_before_the_summary(rules_dir, tmp_path):
    err = run_slowly(rules_dir, tmp_path)
    text = err.decode()
    assert "\r" in text and " events · " in text and " MB/s" in text and "alerts: " in text and " high" in text
    # the last progress line is erased, and the summary starts on a clean line
    summary_at = text.index("kubehawk: 20000 events read")
    assert text[:summary_at].endswith("\r\x1b[K")
    assert (tmp_path / "alerts.jsonl").read_text().count("\n") == 200


def test_no_progress_with_quiet_or_in_a_pipe(rules_dir, tmp_path):
    quiet = run_slowly(rules_dir, tmp_path, "-q").decode().replace("\r\n", "\n")  # the pty's own line ends
    assert "MB/s" not in quiet and "\r" not in quiet and "20000 events read" in quiet
    piped = run_slowly(rules_dir, tmp_path, stderr_tty=False).decode()
    assert "MB/s" not in piped and "\r" not in piped and "20000 events read" in piped


def test_the_line_counts_alerts_by_level_most_severe_first():
    p = Progress(lambda: 12345, {"low": 3, "critical": 1}, ("critical", "high", "medium", "low"))
    line = p.line()
    assert line.startswith("kubehawk: 12,345 events · ") and line.endswith("alerts: 1 critical, 3 low")


def test_detect_without_a_path_on_a_terminal_says_it_reads_stdin(rules_dir):
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(KUBEHAWK), "detect", "--no-builtin", "--rules", str(rules_dir)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        first = proc.stderr.readline()
        assert b"reading audit events from standard input" in first and b"Ctrl-D" in first
        os.write(master, b"\x04")  # Ctrl-D on an empty line: end of input
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    assert proc.returncode == 0 and b"0 events read" in rest


def test_no_stdin_notice_when_stdin_is_a_pipe(rules_dir):
    res = subprocess.run([str(KUBEHAWK), "detect", "--no-builtin", "--rules", str(rules_dir)], input=b"",
                         capture_output=True, timeout=60)
    assert b"standard input" not in res.stderr
