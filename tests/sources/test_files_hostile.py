"""The reader against hostile and broken input: deep nesting, decompression bombs, invalid UTF-8, files
that are not audit logs, unreadable paths. Each costs its record (or its file), never the run."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.follow import follow_paths

from helpers import REPO, audit

KUBEHAWK = Path(sys.executable).with_name("kubehawk")
DEEP = 5000  # msgspec gives up near 1,000 levels (RecursionError)
RULE = """
title: Exec into a pod (test rule)
id: 0b4a3f7e-8a7d-4c1e-9d55-1f1f00000099
status: test
level: high
logsource: {product: kubernetes, service: audit}
detection:
  sel:
    objectRef.subresource: exec
  condition: sel
"""


def line(**kw) -> bytes:
    return json.dumps(audit(**kw)).encode() + b"\n"


def nested(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_line(audit_id: str, field: str = "requestObject", depth: int = DEEP) -> bytes:
    """An audit Event whose ``field`` holds ``depth`` nested objects."""
    text = json.dumps(audit(auditID=audit_id, **{field: "@DEEP@"}))
    return text.replace('"@DEEP@"', '{"a":' * depth + "1" + "}" * depth).encode() + b"\n"


def exec_line(audit_id: str) -> bytes:
    return line(auditID=audit_id, verb="create", requestURI="/api/v1/namespaces/web/pods/api/exec?command=sh",
                objectRef={"resource": "pods", "subresource": "exec", "namespace": "web", "name": "api"})


def read(*paths, **kw):
    stats = ReadStats(**kw)
    warnings: list[str] = []
    events = list(read_paths([str(p) for p in paths], stats, on_warning=warnings.append))
    return events, stats, warnings


def run(*args: str, stdin: bytes | None = None, env: dict | None = None,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, str(KUBEHAWK), *args], input=stdin, capture_output=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "exec.yml").write_text(RULE)
    return d


# --- deep nesting (issue 11, item 3) ----------------------------------------------------------


def test_a_deeply_nested_line_costs_that_line_only(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(line(auditID="a") + deep_line("b") + line(auditID="c") + deep_line("d", field="user")
                  + (nested() + "\n").encode() + (nested(900) + "\n").encode() + line(auditID="g"))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["a", "c", "g"]
    assert stats.bad == 4 and stats.lines == 7
    assert [w.split(": ")[0] for w in warnings] == [f"{p}:{i}" for i in (2, 4, 5, 6)]
    assert all("nested too deeply" in w or "nested more than" in w for w in warnings), warnings


def test_a_deeply_nested_member_of_a_document_costs_that_member_only(tmp_path):
    good = [json.dumps(audit(auditID=i)) for i in ("a", "c")]
    bad = deep_line("b").decode().strip()
    array = tmp_path / "array.json"
    array.write_text(f"[\n{good[0]},\n{bad},\n{good[1]}\n]\n")
    events, stats, warnings = read(array)
    assert [e.head.auditID for e in events] == ["a", "c"] and stats.bad == 1
    assert warnings == [f"{array}:1[1]: JSON nested too deeply (about 1,000 levels or more)"]

    eventlist = tmp_path / "eventlist.json"
    eventlist.write_text('{\n"kind": "EventList", "apiVersion": "audit.k8s.io/v1",\n'
                         f'"items": [{good[0]}, {bad}, {good[1]}]\n}}\n')
    events, stats, warnings = read(eventlist)
    assert [e.head.auditID for e in events] == ["a", "c"] and stats.bad == 1
    assert warnings[0].startswith(f"{eventlist}:1 item 1: JSON nested too deeply")

    lone = tmp_path / "lone.json"  # one pretty-printed Event, deep: that record, and the next file is read
    lone.write_text('{\n"kind": "Event",\n"requestObject": ' + nested() + "\n}\n")
    events, stats, warnings = read(lone, array)
    assert [e.head.auditID for e in events] == ["a", "c"] and stats.bad == 2
    assert warnings[0] == f"{lone}:1: JSON nested too deeply (about 1,000 levels or more)"


def test_a_deeply_nested_record_in_a_cloud_export_line_costs_that_record(tmp_path):
    p = tmp_path / "export.log"  # CloudWatch export to S3: "<time> <event>" per line
    p.write_bytes(b"2024-10-30T11:19:19.911Z " + line(auditID="a") + b"2024-10-30T11:19:20.000Z " + deep_line("b")
                  + b"2024-10-30T11:19:21.000Z " + line(auditID="c"))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["a", "c"] and stats.bad == 1
    assert warnings[0].startswith(f"{p}:2: ") and "nested too deeply" in warnings[0]


def test_stdin_with_a_deeply_nested_line_goes_on(rules_dir):
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), "--format", "json", "-",
              stdin=exec_line("x1") + deep_line("deep") + exec_line("x2"))
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert [json.loads(a)["auditID"] for a in res.stdout.splitlines()] == ["x1", "x2"]
    assert "<stdin>:2: JSON nested too deeply" in err and "Traceback" not in err
    assert "2 events read; 1 bad records" in err


def follow(p: Path, appended: bytes, stats: ReadStats, want: int, linger: float = 0.0) -> tuple[list, list[str]]:
    """Follow ``p`` (a file or folder) from its start while ``appended`` is written to it (a file),
    until ``want`` events came, then ``linger`` seconds more (several polls)."""
    warnings: list[str] = []
    events: list = []
    stop = threading.Event()
    gen = follow_paths([str(p)], stats, on_warning=warnings.append, poll_interval=0.02, stop=stop, from_start=True)
    thread = threading.Thread(target=lambda: events.extend(gen), daemon=True)
    thread.start()
    if appended:
        with open(p, "ab") as f:
            f.write(appended)
    deadline = time.monotonic() + 10
    while len(events) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(linger)
    stop.set()
    thread.join(5)
    return events, warnings


def test_follow_with_a_deeply_nested_line_goes_on(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(line(auditID="a"))
    stats = ReadStats()
    events, warnings = follow(p, deep_line("b") + line(auditID="c"), stats, 2)
    assert [e.head.auditID for e in events] == ["a", "c"]
    assert stats.bad == 1 and warnings[0].startswith(f"{p}:2: JSON nested too deeply")


# --- bounded memory (issue 11, item 5) -----------------------------------------------------------

GOOD = json.dumps(audit(auditID="before-the-bomb")).encode() + b"\n"
BOMB_MIB = 128  # inflated size of each bomb; the run reads it with --max-line-mib 4


def _bomb(compress, piece: bytes, copies: int) -> bytes:
    """Concatenated members (gzip, bzip2 and xz readers all read on after the first): a good line,
    then ``copies`` times ``piece``, each compressed once: a few KB that inflate to BOMB_MIB MiB."""
    once = compress(piece)
    return compress(GOOD) + once * copies


BOMBS = {
    "gzip": lambda piece, n: _bomb(lambda d: gzip.compress(d, 9), piece, n),
    "bzip2": lambda piece, n: _bomb(bz2.compress, piece, n),
    "xz": lambda piece, n: _bomb(lambda d: lzma.compress(d, preset=1), piece, n),
}


def _max_rss_mib(args: list[str]) -> tuple[int, subprocess.CompletedProcess]:
    """Peak resident memory of ``kubehawk ARGS``, measured by a parent of its own (RUSAGE_CHILDREN
    of this test process would include every child the suite started before)."""
    probe = ("import json, resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode,\n"
             "                  r.stdout.decode(), r.stderr.decode()]))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(KUBEHAWK), *args], capture_output=True, timeout=300,
                         check=True)
    rss_kib, code, stdout, stderr = json.loads(out.stdout)
    return rss_kib // 1024, subprocess.CompletedProcess(args, code, stdout, stderr)


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory) -> int:
    p = tmp_path_factory.mktemp("rss") / "one.log"
    p.write_bytes(GOOD)
    rss, res = _max_rss_mib(["detect", "--no-builtin", "--format", "json", str(p)])
    assert res.returncode == 0, res.stderr
    return rss


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_decompression_bomb_of_one_endless_line_stays_in_bounded_memory(kind, tmp_path, baseline_rss):
    piece = b"\x00" * (16 << 20)
    p = tmp_path / f"bomb.{kind}"
    p.write_bytes(BOMBS[kind](piece, BOMB_MIB // 16))
    assert p.stat().st_size < 256 * 1024
    rss, res = _max_rss_mib(["detect", "--no-builtin", "--format", "json", "--max-line-mib", "4", str(p)])
    assert res.returncode == 0, res.stderr
    assert f"{p}:2: line longer than 4194304 bytes" in res.stderr
    assert "1 events read; 1 bad records" in res.stderr
    # read whole, the line alone would be 128 MiB (and a copy or two of it)
    assert rss < baseline_rss + 48, (rss, baseline_rss)


def test_a_document_bomb_is_bounded_too(tmp_path, baseline_rss):
    """A file that opens a JSON document and then never ends (blanks here) is read up to the limit."""
    p = tmp_path / "doc.json.gz"
    p.write_bytes(gzip.compress(b"[\n" + b" " * (BOMB_MIB << 20) + b"]\n", 9))
    rss, res = _max_rss_mib(["detect", "--no-builtin", "--format", "json", "--max-line-mib", "4", str(p)])
    assert res.returncode == 2, res.stderr  # the run went through; nothing in it was an audit event
    assert f"{p}: a JSON document longer than 4194304 bytes" in res.stderr
    assert "no audit event was recognised" in res.stderr
    assert rss < baseline_rss + 48, (rss, baseline_rss)


def test_a_file_of_blank_lines_costs_no_memory_per_line(tmp_path):
    """Blank lines read while deciding the layout are counted, not kept."""
    p = tmp_path / "blank.log.gz"
    p.write_bytes(gzip.compress(b"\n" * (1 << 20) + GOOD, 9))
    events, stats, warnings = read(p)
    assert [e.origin for e in events] == [f"{p}:{(1 << 20) + 1}"] and warnings == []


def test_the_line_limit_is_a_setting_and_the_lines_after_a_long_one_are_read(tmp_path):
    p = tmp_path / "audit.log"
    big = line(auditID="big", requestObject={"blob": "x" * 3000})
    p.write_bytes(line(auditID="a") + big + line(auditID="c"))
    events, stats, warnings = read(p, max_line_bytes=2048)
    assert [e.head.auditID for e in events] == ["a", "c"] and stats.lines == 3 and stats.bad == 1
    assert warnings == [f"{p}:2: line longer than 2048 bytes (--max-line-mib); skipped"]
    events, _, _ = read(p)  # the default (64 MiB) reads it
    assert [e.head.auditID for e in events] == ["a", "big", "c"]


def test_follow_bounds_a_line_that_never_ends(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(line(auditID="a"))
    events, warnings = follow(p, b'{"x": "' + b"y" * (5 << 20) + b'"}\n' + line(auditID="c"),
                              ReadStats(max_line_bytes=1 << 20), 2)
    assert [e.head.auditID for e in events] == ["a", "c"]
    assert warnings == [f"{p}:2: line longer than 1048576 bytes (--max-line-mib); skipped"]


# --- invalid UTF-8 (issue 15, item 8) ------------------------------------------------------------

ANONYMOUS_ID = "14186ebf-9a81-37e9-7b86-2eace1d7300f"  # "Anonymous request allowed", high, in the sample


@pytest.mark.parametrize("native", ["1", "0"])
def test_invalid_utf8_in_a_string_keeps_the_event_and_its_alert(native, tmp_path):
    sample = (REPO / "examples" / "sample-audit.log").read_bytes().splitlines(keepends=True)
    [anon] = [x for x in sample if ANONYMOUS_ID.encode() in x]
    broken = anon.replace(b'"curl/8.5.0"', b'"curl/8.5\xff.0"')
    assert broken != anon
    p = tmp_path / "audit.log"
    p.write_bytes(b"".join(x for x in sample if x is not anon) + broken
                  + broken.replace(ANONYMOUS_ID.encode(), b"second-" + ANONYMOUS_ID[7:].encode()))
    res = run("detect", "--format", "json", str(p), env={"KUBEHAWK_NATIVE": native})
    err = res.stderr.decode()
    assert res.returncode == 0, err
    alerts = [json.loads(a) for a in res.stdout.splitlines()]
    hits = [a for a in alerts if a["auditID"] == ANONYMOUS_ID and a["rule"]["level"] == "high"]
    assert hits and hits[0]["userAgent"] == "curl/8.5\ufffd.0"
    assert err.count("invalid UTF-8 replaced with U+FFFD") == 1  # once per file
    assert "2 record(s) with invalid UTF-8 kept" in err and "0 bad records" in err


def test_invalid_utf8_in_a_document_is_replaced_too(tmp_path):
    p = tmp_path / "list.json"
    p.write_bytes(b"[\n" + json.dumps(audit(auditID="a", userAgent="@UA@")).encode().replace(b"@UA@", b"k\xc3(")
                  + b"\n]\n")
    events, stats, warnings = read(p)
    assert [e.head.userAgent for e in events] == ["k\ufffd("] and stats.invalid_utf8 == 1 and stats.bad == 0
    assert len(warnings) == 1 and "invalid UTF-8" in warnings[0]


# --- not audit logs, and warnings capped per file (issue 15, item 5) -----------------------------


def test_files_that_are_plainly_not_audit_logs_are_skipped_with_one_line(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "users.csv").write_text("name,role\n" + "alice,admin\n" * 200)
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    (d / "audit.log.lz4").write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 100)  # zstd: test_compression.py
    (d / "audit.log").write_bytes(line(auditID="a"))
    (d / "rotated.log").write_bytes(b'"}, "stage": "ResponseComplete"}\n' + line(auditID="b"))  # first line cut
    (d / "export.log").write_bytes(b"2024-10-30T11:19:19.911Z " + line(auditID="c"))
    # a README beside the logs, with a JSON example further down: still not a log
    (d / "README.md").write_bytes(b"# Our audit logs\n\nKept 90 days. An event looks like:\n\n    "
                                  + line(auditID="example") + b"\nAsk the platform team.\n" * 50)
    events, stats, warnings = read(d)
    assert sorted(e.head.auditID for e in events) == ["a", "b", "c"]
    skipped = {w.split(": ")[0]: w for w in warnings if ": skipped, not an audit log: " in w}
    assert sorted(skipped) == sorted(str(d / n) for n in ("users.csv", "logo.png", "audit.log.lz4", "README.md"))
    assert "lz4" in skipped[str(d / "audit.log.lz4")] and "binary" in skipped[str(d / "logo.png")]
    assert "'name,role'" in skipped[str(d / "users.csv")]
    assert sorted(stats.not_audit) == sorted(skipped) and stats.summary()["not_audit"] == stats.not_audit
    assert stats.bad == 1 and stats.bad_files == {str(d / "rotated.log"): 1}  # the cut line, nothing else


def test_repeated_warnings_are_capped_per_file_and_the_summary_names_the_files(tmp_path):
    noisy, quiet = tmp_path / "noisy.log", tmp_path / "quiet.log"
    noisy.write_bytes(b'{"not": "an event"}\n' * 162 + line(auditID="n"))
    quiet.write_bytes(b'{"kind": "Event",,}\n' * 2 + line(auditID="q"))
    events, stats, warnings = read(noisy, quiet)
    assert [e.head.auditID for e in events] == ["n", "q"]
    assert [w.split(": ")[0] for w in warnings] == [f"{noisy}:{i}" for i in range(1, 6)] + [
        f"… and 157 more in {noisy}", f"{quiet}:1", f"{quiet}:2"]
    assert stats.bad == 164 and stats.bad_files == {str(noisy): 162, str(quiet): 2}

    res = run("detect", "-q", "--no-builtin", "--format", "json", str(noisy), str(quiet))
    err = res.stderr.decode()
    assert "kubehawk: warning:" not in err  # -q: no per-record lines, but the files are named
    assert f"bad records in {noisy} (162), {quiet} (2)" in err


# --- unreadable paths (issue 11, item 11) --------------------------------------------------------


def test_a_dangling_link_in_a_folder_is_a_warning_not_silence(tmp_path):
    """A dangling symbolic link cannot be opened, even by root: a real failure wherever tests run."""
    (tmp_path / "audit.log").write_bytes(line(auditID="a"))
    (tmp_path / "gone.log").symlink_to(tmp_path / "deleted.log")
    events, stats, warnings = read(tmp_path)
    assert [e.head.auditID for e in events] == ["a"]
    assert warnings == [f"{tmp_path / 'gone.log'}: cannot read: No such file or directory"] and stats.bad == 1


def _without_root_powers() -> tuple[str, ...]:
    """A prefix that runs a command without the capabilities that let root read anything."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): chmod 000 would not stop reads")
    drop = "-dac_override,-dac_read_search"
    return (setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", "--")


def test_an_unreadable_file_argument_and_subfolder_are_one_warning_each(tmp_path):
    """chmod 000 on a file and on a folder, and the run goes on. Root reads through chmod 000 (the
    DAC override capabilities), so as root the CLI runs with those capabilities dropped (setpriv):
    the kernel then refuses the reads for real, as it would for any other user."""
    prefix = _without_root_powers()
    (tmp_path / "good.log").write_bytes(line(auditID="a"))
    locked_file = tmp_path / "locked.log"
    locked_file.write_bytes(line(auditID="secret-1"))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "inner.log").write_bytes(line(auditID="secret-2"))
    locked_file.chmod(0)
    sub.chmod(0)
    try:
        res = run("detect", "--no-builtin", "--format", "json", str(tmp_path), str(locked_file), prefix=prefix)
    finally:
        sub.chmod(stat.S_IRWXU)
        locked_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    err = res.stderr.decode()
    assert res.returncode == 0 and "Traceback" not in err, err
    assert err.count(f"{sub}: cannot read: Permission denied") == 1
    # named twice (in the folder, and as an argument): one file, read once, one warning
    assert err.count(f"{locked_file}: cannot read: Permission denied") == 1
    assert "1 events read; 2 bad records" in err


def test_logs_that_only_look_odd_at_the_start_are_still_read(tmp_path):
    """Not skipped as "not an audit log": the NUL hole logrotate's copytruncate leaves at the start
    of a file, a first line cut by rotation longer than the bytes looked at, a BOM."""
    hole = tmp_path / "hole.log"
    hole.write_bytes(b"\x00" * 300_000 + line(auditID="a"))
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(b"A" * 200_000 + b'"}}\n' + line(auditID="b")))
    bom = tmp_path / "bom.log"
    bom.write_bytes(b"\xef\xbb\xbf" + line(auditID="c"))
    events, stats, warnings = read(hole, cut, bom)
    assert [e.head.auditID for e in events] == ["a", "b", "c"] and stats.not_audit == []
    assert stats.bad == 1 and warnings[0].startswith(f"{cut}:1: ")  # the cut line, as before


def test_follow_of_a_folder_warns_once_about_what_it_cannot_read(tmp_path):
    (tmp_path / "gone.log").symlink_to(tmp_path / "deleted.log")
    p = tmp_path / "audit.log"
    p.write_bytes(line(auditID="a"))
    events, warnings = follow(tmp_path, b"", ReadStats(), 1, linger=0.3)
    assert [e.head.auditID for e in events] == ["a"]
    assert warnings == [f"{tmp_path / 'gone.log'}: cannot read: No such file or directory"]
