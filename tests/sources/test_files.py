"""The file readers: every on-disk layout of the audit log, bad input, order, memory."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import time
import tracemalloc

import pytest
import zstandard

from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.folders import order_files, rotation_of

from helpers import CORPUS, REPO, SAMPLES, audit, need


def jsonl(*events: dict) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def read(*paths, **kw):
    stats = ReadStats(**kw)
    warnings: list[str] = []
    events = list(read_paths([str(p) for p in paths], stats, on_warning=warnings.append))
    return events, stats, warnings


# --- layouts ----------------------------------------------------------------------------------


def test_json_lines(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(jsonl(audit(auditID="a"), audit(auditID="b", verb="create"), audit(auditID="c")))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["a", "b", "c"]
    assert [e.origin for e in events] == [f"{p}:1", f"{p}:2", f"{p}:3"]
    assert events[1].head.verb == "create"
    assert (stats.files, stats.lines, stats.events, stats.bad) == (1, 3, 3, 0)
    assert warnings == []


def test_json_lines_with_bodies(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(jsonl(audit(auditID="a", verb="create", requestObject={"spec": {"hostPID": True}},
                              responseObject={"kind": "Pod"})))
    events, stats, warnings = read(p)
    assert warnings == [] and len(events) == 1
    assert events[0].get("requestObject.spec.hostPID") == [True]


def test_blank_lines_skipped_and_trailing_partial_line_read(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(b"\n" + jsonl(audit(auditID="a")) + b"   \r\n\n" + json.dumps(audit(auditID="z")).encode())
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["a", "z"]
    assert events[1].origin == f"{p}:5"
    assert stats.bad == 0 and warnings == []


def test_crlf_and_bom(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(b"\xef\xbb\xbf" + jsonl(audit(auditID="a")).replace(b"\n", b"\r\n") * 2)
    events, stats, _ = read(p)
    assert [e.head.auditID for e in events] == ["a", "a"] and stats.bad == 0


def test_single_event_document_pretty_printed(tmp_path):
    p = tmp_path / "event.json"
    p.write_text(json.dumps(audit(auditID="doc", verb="delete"), indent=2))
    events, stats, warnings = read(p)
    assert len(events) == 1 and events[0].head.verb == "delete"
    assert events[0].origin == f"{p}:1"
    assert stats.bad == 0 and warnings == []
    assert stats.lines == p.read_text().count("\n") + 1


def test_eventlist_document(tmp_path):
    p = tmp_path / "batch.json"
    doc = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
           "items": [audit(auditID="1"), audit(auditID="2", verb=5), audit(auditID="3")]}
    p.write_text(json.dumps(doc, indent=4))
    events, stats, warnings = read(p)
    # The bad item is reported by itself; its neighbours are still read.
    assert [e.head.auditID for e in events] == ["1", "3"]
    assert [e.origin for e in events] == [f"{p}:1 item 0", f"{p}:1 item 2"]
    assert stats.bad == 1 and len(warnings) == 1
    assert warnings[0].startswith(f"{p}:1 item 1: ") and "verb" in warnings[0]


def test_json_array_document(tmp_path):
    p = tmp_path / "array.json"
    p.write_text(json.dumps([audit(auditID="x"), audit(auditID="y")], indent=1))
    events, stats, _ = read(p)
    assert [e.head.auditID for e in events] == ["x", "y"]
    assert events[1].origin == f"{p}:1[1]"
    assert stats.bad == 0


def test_one_line_eventlist_is_read_as_a_line(tmp_path):
    p = tmp_path / "batches.log"
    p.write_bytes(jsonl({"kind": "EventList", "items": [audit(auditID="1"), audit(auditID="2")]},
                        {"kind": "EventList", "items": [audit(auditID="3")]}))
    events, stats, _ = read(p)
    assert [e.head.auditID for e in events] == ["1", "2", "3"]
    assert events[2].origin.startswith(f"{p}:2")
    assert stats.bad == 0


def test_stream_of_pretty_documents(tmp_path):
    """`jq . audit.log > out.json`: documents one after another, each with its line."""
    p = tmp_path / "jq.json"
    a = json.dumps(audit(auditID="a"), indent=2)
    b = json.dumps(audit(auditID="b"), indent=2)
    p.write_text(a + "\n" + b + "\n")
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["a", "b"]
    assert events[1].origin == f"{p}:{a.count(chr(10)) + 2}"
    assert stats.bad == 0 and warnings == []


def test_malformed_document_gives_one_warning_at_its_line(tmp_path):
    p = tmp_path / "broken.json"
    text = json.dumps(audit(auditID="a"), indent=2).splitlines()
    text[5] = text[5] + " oops"
    p.write_text("\n".join(text))
    events, stats, warnings = read(p)
    assert events == [] and stats.bad == 1 and len(warnings) == 1
    assert warnings[0].startswith(f"{p}:6: malformed JSON")


def test_truncated_document(tmp_path):
    p = tmp_path / "cut.json"
    p.write_text(json.dumps(audit(auditID="a"), indent=2)[:-40])
    events, stats, warnings = read(p)
    assert events == [] and stats.bad == 1
    assert "malformed JSON document" in warnings[0] and "ends before" in warnings[0]


def test_json_lines_whose_first_line_is_broken_stay_json_lines(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(b'{"kind":"Event","auditID":"cut\n' + jsonl(audit(auditID="b"), audit(auditID="c")))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["b", "c"]
    assert stats.bad == 1 and warnings[0].startswith(f"{p}:1: ")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, zstandard.compress],
                         ids=["gzip", "bzip2", "xz", "zstd"])
def test_compressed_by_magic_bytes_not_name(tmp_path, compress):
    p = tmp_path / "audit.log.1"  # no .gz in the name
    p.write_bytes(compress(jsonl(audit(auditID="a"), audit(auditID="b"))))
    events, stats, _ = read(p)
    assert [e.head.auditID for e in events] == ["a", "b"]
    assert events[0].origin == f"{p}:1" and stats.bad == 0


def test_gz_name_with_plain_content_and_gzip_document(tmp_path):
    plain = tmp_path / "misnamed.log.gz"
    plain.write_bytes(jsonl(audit(auditID="plain")))
    doc = tmp_path / "doc.json.gz"
    doc.write_bytes(gzip.compress(json.dumps([audit(auditID="d1")], indent=2).encode()))
    events, stats, _ = read(plain, doc)
    assert [e.head.auditID for e in events] == ["plain", "d1"] and stats.bad == 0


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    p = tmp_path / "audit.log.gz"
    data = gzip.compress(jsonl(*[audit(auditID=str(i), userAgent=os.urandom(8).hex()) for i in range(2000)]))
    p.write_bytes(data[: len(data) // 2])
    events, stats, warnings = read(p)
    assert 0 < len(events) < 2000
    assert stats.bad == 1 and "read error" in warnings[-1] and warnings[-1].startswith(f"{p}:")


def test_v1beta1_legacy_sample():
    path = need(SAMPLES / "kube-apiserver" / "05-event-v1beta1-legacy.json")
    events, stats, warnings = read(path)
    assert len(events) == 1 and warnings == []
    ev = events[0]
    assert ev.head.apiVersion == "audit.k8s.io/v1beta1"
    assert ev.head.timestamp == "2021-06-02T14:11:09Z"  # a v1beta1-only field, kept
    assert ev.time == "2021-06-02T14:11:09.322871Z"
    assert ev.head.verb == "create"


def test_every_kube_apiserver_sample(tmp_path):
    folder = need(SAMPLES / "kube-apiserver")
    total = 0
    for path in sorted(folder.iterdir()):
        events, stats, warnings = read(path)
        total += len(events)
        if path.name == "06-legacy-text-format.txt":
            # Not JSON: the file is skipped with one line saying what the text is.
            assert events == [] and stats.bad == 0 and stats.not_audit == [str(path)]
            assert len(warnings) == 1 and warnings[0].startswith(f"{path}: skipped") and "legacy" in warnings[0]
        else:
            assert events and stats.bad == 0, (path.name, warnings)
    events, stats, _ = read(folder)  # the whole folder at once
    assert len(events) == total and stats.bad == 0 and len(stats.not_audit) == 1


def test_falco_corpus_without_a_crash():
    root = need(CORPUS / "falco")
    files = sorted((root / "k8s_audit").glob("*.json")) + sorted((root / "psp").glob("*.json"))
    events, stats, warnings = read(*files)
    assert stats.files == 79
    assert stats.bad == 1
    assert warnings[0].startswith(f"{root / 'k8s_audit' / 'fal_01_003.json'}:1: ")
    assert len(events) == 83  # the corpus README's count


def test_every_sample_file_without_a_crash():
    root = need(SAMPLES)
    stats = ReadStats()
    for _ in read_paths([str(root)], stats):
        pass
    assert stats.files >= 40 and stats.events > 0


# --- bad input ---------------------------------------------------------------------------------


def test_malformed_and_wrong_typed_lines(tmp_path):
    p = tmp_path / "audit.log"
    p.write_bytes(jsonl(audit(auditID="1")) + b'{"kind":"Event",,}\n' + jsonl(audit(auditID="3", verb=5))
                  + b"[1, 2]\n" + b"not json at all\n" + jsonl(audit(auditID="6")))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["1", "6"]
    assert stats.bad == 4 and stats.events == 2 and stats.lines == 6
    assert [w.split(": ")[0] for w in warnings] == [f"{p}:2", f"{p}:3", f"{p}:4", f"{p}:5"]
    assert "malformed JSON" in warnings[0]
    assert "field verb" in warnings[1] and "int" in warnings[1]
    assert stats.summary()["warnings"] == warnings


def test_missing_path_and_empty_dir_are_warnings_not_tracebacks(tmp_path):
    good = tmp_path / "ok.log"
    good.write_bytes(jsonl(audit()))
    (tmp_path / "empty").mkdir()
    events, stats, warnings = read(tmp_path / "nope.log", tmp_path / "empty", good)
    assert len(events) == 1 and stats.bad == 2
    assert warnings[0].startswith(f"{tmp_path / 'nope.log'}: cannot read")
    assert warnings[1].startswith(f"{tmp_path / 'empty'}: no files")


def test_warning_texts_are_bounded(tmp_path):
    p = tmp_path / "junk.log"
    p.write_bytes(b'{"garbage": 1}\n' * 500)
    events, stats, warnings = read(p, max_warnings=10)
    # shown: the first 5 of the file, then how many more; kept: the first 10 texts
    assert events == [] and stats.bad == 500 and len(warnings) == 6
    assert warnings[-1] == f"… and 495 more in {p}"
    s = stats.summary()
    assert len(s["warnings"]) == 10 and s["warnings_dropped"] == 490 and s["bad_files"] == {str(p): 500}


def test_a_5mb_single_line(tmp_path):
    big = {"kind": "ConfigMap", "data": {"blob": "x" * (5 * 1024 * 1024)}}
    p = tmp_path / "audit.log"
    p.write_bytes(jsonl(audit(auditID="small"), audit(auditID="big", verb="create", requestObject=big),
                        audit(auditID="after")))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["small", "big", "after"] and warnings == []
    assert len(events[1].request_object["data"]["blob"]) == 5 * 1024 * 1024


# --- directories and order ------------------------------------------------------------------------


def test_rotation_names():
    assert rotation_of("audit-2024-10-30T11-19-19.911.log.gz").base == "audit.log"
    assert rotation_of("audit-2024-10-30T11-19-19.911.log").backup
    assert rotation_of("audit.log.2.gz").base == "audit.log"
    assert rotation_of("audit.log-20241030").base == "audit.log"
    assert not rotation_of("audit.log").backup
    assert rotation_of("kubernetes-2024-01-02T03-04-05.006.audit").base == "kubernetes.audit"


def test_order_lumberjack_and_logrotate():
    names = ["d/audit.log", "d/audit-2024-10-30T11-19-19.911.log", "d/audit-2024-10-29T09-00-00.000.log.gz",
             "d/audit-2024-10-31T00-00-00.001.log"]
    assert order_files(names) == ["d/audit-2024-10-29T09-00-00.000.log.gz", "d/audit-2024-10-30T11-19-19.911.log",
                                  "d/audit-2024-10-31T00-00-00.001.log", "d/audit.log"]
    names = ["d/audit.log.1", "d/audit.log", "d/audit.log.10.gz", "d/audit.log.2.gz"]
    assert order_files(names) == ["d/audit.log.10.gz", "d/audit.log.2.gz", "d/audit.log.1", "d/audit.log"]


def test_directory_recursive_in_time_order(tmp_path):
    logs = tmp_path / "logs"
    (logs / "node-b").mkdir(parents=True)
    (logs / ".hidden").mkdir()
    # Rotation family: content order must follow the names, whatever the mtimes say.
    (logs / "audit.log").write_bytes(jsonl(audit(auditID="current")))
    (logs / "audit-2024-10-30T11-19-19.911.log.gz").write_bytes(gzip.compress(jsonl(audit(auditID="backup-2"))))
    (logs / "audit-2024-10-29T08-00-00.000.log").write_bytes(jsonl(audit(auditID="backup-1")))
    (logs / ".audit.log.swp").write_bytes(b"junk\n")
    (logs / ".hidden" / "x.log").write_bytes(jsonl(audit(auditID="hidden")))
    (logs / "node-b" / "other.json").write_text(json.dumps(audit(auditID="other"), indent=2))
    now = time.time()
    os.utime(logs / "audit.log", (now, now))
    os.utime(logs / "audit-2024-10-30T11-19-19.911.log.gz", (now - 50, now - 50))
    os.utime(logs / "audit-2024-10-29T08-00-00.000.log", (now - 10, now - 10))  # touched later than backup-2
    os.utime(logs / "node-b" / "other.json", (now - 100, now - 100))  # older than the whole family
    events, stats, warnings = read(logs)
    assert [e.head.auditID for e in events] == ["other", "backup-1", "backup-2", "current"]
    assert stats.files == 4 and stats.bad == 0 and warnings == []


def test_unrelated_files_by_mtime_then_name(tmp_path):
    now = time.time()
    for name, age in [("b.json", 30), ("a.json", 30), ("c.json", 60)]:
        (tmp_path / name).write_bytes(jsonl(audit(auditID=name)))
        os.utime(tmp_path / name, (now - age, now - age))
    events, _, _ = read(tmp_path)
    assert [e.head.auditID for e in events] == ["c.json", "a.json", "b.json"]


# --- stdin ------------------------------------------------------------------------------------------

_STDIN_SCRIPT = """
import json, sys
from kubehawk.sources.files import ReadStats, read_paths
stats = ReadStats()
out = [[e.head.auditID, e.origin] for e in read_paths(['-'], stats, on_warning=lambda w: print(w, file=sys.stderr))]
print(json.dumps({"events": out, "bad": stats.bad, "lines": stats.lines}))
"""


def run_stdin(data: bytes) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-c", _STDIN_SCRIPT], input=data, capture_output=True, env=env,
                          timeout=60, check=True)
    return json.loads(proc.stdout), proc.stderr.decode()


def test_stdin_json_lines():
    out, err = run_stdin(jsonl(audit(auditID="s1")) + b"{bad\n" + jsonl(audit(auditID="s2")))
    assert out["events"] == [["s1", "<stdin>:1"], ["s2", "<stdin>:3"]]
    assert out["bad"] == 1 and err.startswith("<stdin>:2: ")


def test_stdin_gzip_document():
    doc = {"kind": "EventList", "items": [audit(auditID="g1"), audit(auditID="g2")]}
    out, err = run_stdin(gzip.compress(json.dumps(doc, indent=2).encode()))
    assert [e[0] for e in out["events"]] == ["g1", "g2"] and out["bad"] == 0 and err == ""


# --- memory -----------------------------------------------------------------------------------------


def test_memory_stays_flat_on_a_50mb_log(tmp_path):
    p = tmp_path / "big.log"
    line = json.dumps(audit(requestObject={"kind": "Pod", "spec": {"containers": [{"image": "nginx"}]}})).encode()
    block = (line + b"\n") * 1000
    n_blocks = (50 * 1024 * 1024) // len(block) + 1
    with open(p, "wb") as f:
        for _ in range(n_blocks):
            f.write(block)
    assert p.stat().st_size >= 50 * 1024 * 1024
    stats = ReadStats()
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_paths([str(p)], stats))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n_blocks * 1000 and stats.bad == 0
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while reading a 50 MB log"


def test_a_file_of_one_cut_line_is_a_line_not_a_document(tmp_path):
    p = tmp_path / "cut.log"
    p.write_bytes(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","requestURI":"/api')
    events, stats, warnings = read(p)
    assert events == [] and stats.bad == 1 and stats.lines == 1
    assert warnings[0].startswith(f"{p}:1: malformed JSON")
    assert "document" not in warnings[0]


def test_json_lines_whose_first_two_lines_are_broken(tmp_path):
    """Looks like a document at first sight; one whole line by itself says otherwise."""
    p = tmp_path / "audit.log"
    p.write_bytes(b'{"kind":"Event","au\n{"kind":"Ev\n' + jsonl(audit(auditID="ok1"), audit(auditID="ok2")))
    events, stats, warnings = read(p)
    assert [e.head.auditID for e in events] == ["ok1", "ok2"]
    assert [e.origin for e in events] == [f"{p}:3", f"{p}:4"]
    assert stats.bad == 2 and stats.lines == 4
    assert [w.split(": ")[0] for w in warnings] == [f"{p}:1", f"{p}:2"]


# --- the fast JSON-lines path -------------------------------------------------------------------

FAST_PATH_LINES = [
    json.dumps(audit(auditID="plain")).encode(),
    json.dumps({"apiVersion": "audit.k8s.io/v1beta1", "verb": "get", "auditID": "no-kind"}).encode(),
    json.dumps({"kind": "Event", "requestURI": "/healthz"}).encode(),  # only a URI
    json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1"}).encode(),  # nothing to say what it was
    json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}).encode(),
    json.dumps({"apiVersion": "v1", "verb": "get"}).encode(),  # not an audit apiVersion
    json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [audit(auditID="in-list")]}).encode(),
    json.dumps(audit(auditID="wrong-type", verb=["get"])).encode(),
    json.dumps(audit(auditID="null-kind", kind=None)).encode(),
    b'  {"kind": "Event", "verb": "get", "auditID": "indented"}',
    b'{"kind": "Event", "verb": "get", "auditID": "cut"',
    b'{"kind": "Event", "verb": "get", "auditID": "two"} {"x": 1}',
    b'{"kind": 5, "verb": "get", "auditID": "int-kind"}',
    b'{"kind": "Event", "apiVersion": "audit.k8s.io/v2", "verb": "get", "auditID": "future"}',
    b'[1, 2]',
    # values the fast path's Literals do not list are still Events (read the general way)
    json.dumps(audit(auditID="odd-verb", verb="connect", stage="Panic2", level="Verbose")).encode(),
    b'"a string"',
]


def test_fast_path_agrees_with_the_general_path(tmp_path):
    """Every line gives the events and the warning that kubehawk.sources.normalize.line_to_events gives."""
    from kubehawk.sources.files import emit_line

    p = tmp_path / "audit.log"
    p.write_bytes(b"\n".join(FAST_PATH_LINES) + b"\n")
    events, stats, warnings = read(p, warnings_per_file=1000)
    want_stats = ReadStats()
    want_warnings: list[str] = []
    want = []
    for i, line in enumerate(FAST_PATH_LINES, 1):
        want += list(emit_line(line.strip(), f"{p}:{i}", want_stats, want_warnings.append))
    assert [(e.origin, e.to_dict()) for e in events] == [(e.origin, e.to_dict()) for e in want]
    assert warnings == want_warnings and len(warnings) >= 4
    assert (stats.lines, stats.events, stats.bad, stats.skipped) == (
        len(FAST_PATH_LINES), want_stats.events, want_stats.bad, want_stats.skipped)


def test_counters_are_exact_across_flushes_and_when_abandoned(tmp_path):
    from kubehawk.sources import files

    n = files._FLUSH_EVERY * 2 + 10
    bad_at = files._FLUSH_EVERY + 3  # a bad line in the second block
    lines = [json.dumps(audit(auditID=str(i))).encode() for i in range(1, n + 1)]
    lines[bad_at - 1] = b"garbage"
    p = tmp_path / "audit.log"
    p.write_bytes(b"\n".join(lines) + b"\n")
    events, stats, warnings = read(p)
    assert (stats.lines, stats.events, stats.bad) == (n, n - 1, 1)
    assert warnings == [f"{p}:{bad_at}: " + warnings[0].split(": ", 1)[1]]
    assert events[-1].origin == f"{p}:{n}"

    # Another thread sees counts at most one block behind; a reader stopped early counts what it read.
    stats = ReadStats()
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    it = read_paths([str(p)], stats)
    taken = [next(it) for _ in range(files._FLUSH_EVERY + 100)]
    assert files._FLUSH_EVERY <= stats.lines <= len(taken)
    del it  # abandoned: the file is closed and the counters are brought up to date
    assert (stats.lines, stats.events, stats.bad) == (len(taken) + 1, len(taken), 1)
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds


def test_read_error_names_the_line_after_the_last_one_read(tmp_path):
    p = tmp_path / "audit.log.gz"
    data = gzip.compress(jsonl(*[audit(auditID=str(i), userAgent=os.urandom(8).hex()) for i in range(3000)]))
    p.write_bytes(data[: len(data) // 2])
    events, stats, warnings = read(p)
    assert stats.lines == stats.events == len(events) > 0
    assert warnings == [warnings[0]] and warnings[0].startswith(f"{p}:{len(events) + 1}: read error: ")


def test_files_are_opened_one_at_a_time(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.log")
        paths[-1].write_bytes(jsonl(audit(auditID=f"{i}-a"), audit(auditID=f"{i}-b")))
    stats = ReadStats()
    it = read_paths([str(x) for x in paths], stats)
    assert stats.files == 0  # nothing is read before the first event is asked for
    assert next(it).head.auditID == "0-a" and stats.files == 1
    assert [e.head.auditID for e in it] == ["0-b", "1-a", "1-b", "2-a", "2-b"] and stats.files == 3
