"""detect --workers N: the alerts of one process, whatever the split (kubehawk.scale.local)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.scale import alert_order, results
from kubehawk.scale import local as scale_local
from kubehawk.scale.local import Part, PartMerge, plan_parts, resolve_workers, run_local
from scaletools import CONFIG, cloud_records, key, mixed_lines, one_process, write

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
KUBEHAWK = [sys.executable, "-m", "kubehawk.cli"]


def _config(tmp_path: Path, text: str = CONFIG) -> Config:
    p = tmp_path / "kubehawk.yaml"
    p.write_text(text, encoding="utf-8")
    return Config.load(p)


def _same(paths: list[str], config: Config | None, workers: int = 2, part_bytes: int | None = None):
    """The alerts of one process and of the split run, as multisets; also the split run's order."""
    rules = load_ruleset(config, collect_errors=True)
    single, stats1 = one_process(paths, Detector(rules, config))
    detector = Detector(rules, config)
    split, merged = run_local(paths, detector, workers, part_bytes=part_bytes)
    detector.close()
    assert Counter(map(key, split)) == Counter(map(key, single))
    assert split == sorted(split, key=alert_order)
    for field in ("files", "lines", "events", "bad", "skipped"):
        assert getattr(merged.stats, field) == getattr(stats1, field), field
    return single, split


def test_bundled_sample_in_parts_of_a_few_lines(tmp_path):
    single, split = _same([str(ROOT / "examples" / "sample-audit.log")], Config.load(ROOT / "examples" / "kubehawk.yaml"),
                          part_bytes=8000)
    assert len(single) > 20


def test_correlation_bursts_and_first_seen_values_across_part_boundaries(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(2500))
    config = _config(tmp_path)
    single, _ = _same([str(log)], config, workers=2, part_bytes=3000)  # about four lines a part
    kinds = Counter(a.rule.kind for a in single)
    ids = {a.rule.id for a in single}
    rules = load_ruleset(config)
    correlations = {r.id for r in rules.rules if r.kind == "correlation"}
    baseline = {r.id for r in rules.rules if "baseline" in (r.custom or {})}
    assert kinds["correlation"] >= 5, "the corpus must make correlations fire"
    assert ids & baseline, "the corpus must make first-seen rules fire"
    assert len(ids & correlations) >= 2


def test_a_minimum_level_drops_the_same_alerts(tmp_path):
    """--min-level drops alerts only: the rules under it still feed correlations and baselines,
    in the split run as in one process."""
    log = write(tmp_path / "audit.log", mixed_lines(2500, seed=8))
    config = _config(tmp_path)
    rules = load_ruleset(config)
    for level in ("medium", "high"):
        single, _ = one_process([str(log)], Detector(rules, config, min_level=level))
        detector = Detector(rules, config, min_level=level)
        split, _ = run_local([str(log)], detector, 2, part_bytes=3000)
        detector.close()
        assert Counter(map(key, split)) == Counter(map(key, single))
        assert single and {a.rule.level for a in single} <= {"medium", "high", "critical"}


def test_folder_of_files_compressed_and_plain(tmp_path):
    lines = mixed_lines(1500, seed=3)
    folder = tmp_path / "logs"
    folder.mkdir()
    write(folder / "audit-2026-11-23T09-00-00.000.log", lines[:500])
    with gzip.open(folder / "audit-2026-11-23T10-00-00.000.log.gz", "wt") as fh:
        fh.writelines(line + "\n" for line in lines[500:800])
    (folder / "audit-2026-11-23T11-00-00.000.log.zst").write_bytes(
        zstandard.compress("".join(line + "\n" for line in lines[800:1000]).encode()))
    write(folder / "audit.log", lines[1000:])
    config = _config(tmp_path)
    _same([str(folder)], config, workers=2, part_bytes=4000)
    parts = plan_parts([str(folder)], 2, part_bytes=4000)
    assert [p for p in parts if p.path.endswith((".gz", ".zst"))] == [
        Part(str(folder / "audit-2026-11-23T10-00-00.000.log.gz")),
        Part(str(folder / "audit-2026-11-23T11-00-00.000.log.zst"))]
    assert len(parts) > 50


def test_falco_fixtures():
    folder = CORPUS / "falco"
    if not folder.is_dir():
        pytest.skip(f"no Falco fixtures at {folder} (../shared/corpus)")
    _same([str(folder / "k8s_audit"), str(folder / "psp")], None, workers=2)


def test_external_captures():
    folder = CORPUS / "external-captures"
    if not folder.is_dir():
        pytest.skip(f"no external captures at {folder} (../shared/corpus)")
    _same([str(folder)], None, workers=2, part_bytes=1 << 16)


def test_the_whole_shared_corpus_as_one_input():
    """Every corpus folder at once (kube-audit-rest, PerfSPEC and the rest, thousands of records
    that are not audit events among them): the same alerts, and the same counts of bad records."""
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS} (../shared/corpus)")
    single, _ = _same([str(CORPUS)], None, workers=2, part_bytes=1 << 16)
    assert len(single) > 100


def test_files_named_twice_are_read_once_as_by_one_process(tmp_path):
    """The same file twice, a folder and a file in it, a link and its target: read once each,
    where first named, by the workers as by one process."""
    logs = tmp_path / "logs"
    logs.mkdir()
    a = write(logs / "a.log", mixed_lines(1200, seed=21))
    b = write(tmp_path / "b.log", mixed_lines(600, seed=22))
    os.symlink(b, tmp_path / "current.log")
    paths = [str(a), str(logs), str(b), str(tmp_path / "current.log"), str(a)]
    _same(paths, _config(tmp_path), workers=2, part_bytes=5000)
    assert [p.path for p in plan_parts(paths, 2) if p.first_of_file] == [str(a), str(b)]


def test_managed_clouds_export_records(tmp_path):
    """EKS, GKE and AKS records (Panther's tests), many sharing an auditID, in parts of a few lines."""
    cases = CORPUS / "panther" / "cases.jsonl"
    if not cases.is_file():
        pytest.skip(f"no Panther cases at {cases} (../shared/corpus)")
    log = write(tmp_path / "exports.jsonl", cloud_records(cases))
    single, _ = _same([str(log)], None, workers=2, part_bytes=6000)
    assert len(plan_parts([str(log)], 2, part_bytes=6000)) > 20 and len(single) > 100


def test_parts_start_at_line_starts_and_cover_the_file(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(400))
    data = log.read_bytes()
    parts = plan_parts([str(log)], 2, part_bytes=5000)
    assert parts[0].start == 0 and parts[-1].end == len(data)
    for a, b in zip(parts, parts[1:], strict=False):
        assert a.end == b.start and data[b.start - 1:b.start] == b"\n"
    assert [p.first_of_file for p in parts] == [True] + [False] * (len(parts) - 1)


def test_parts_taper_towards_the_end_so_the_workers_finish_together(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(3000, seed=8) * 12)  # about 20 MB
    data = log.read_bytes()
    parts = plan_parts([str(log)], 2)
    sizes = [p.end - p.start for p in parts]
    assert parts[0].start == 0 and parts[-1].end == len(data) and len(parts) > 8
    for a, b in zip(parts, parts[1:], strict=False):
        assert a.end == b.start and data[b.start - 1:b.start] == b"\n"
    assert sizes[0] >= 4 << 20 > sizes[-2] and sizes[-2] < sizes[0] / 3  # long first, short last
    assert all(x >= y - 1000 for x, y in zip(sizes, sizes[1:-1], strict=False))  # never longer again
    assert all(x >= scale_local.MIN_TAIL - 1000 for x in sizes[:-1])  # none shorter than a MiB but the rest
    even = plan_parts([str(log)], 2, largest=4 << 20, smallest=4 << 20)  # how Spark plans: no short tail
    assert {p.end - p.start for p in even[:-1]} <= set(range((4 << 20) - 2000, (4 << 20) + 2000))


def test_a_document_is_read_whole(tmp_path):
    doc = tmp_path / "events.json"
    doc.write_text(json.dumps([json.loads(line) for line in mixed_lines(300)[1:] if "broken" not in line], indent=2))
    assert plan_parts([str(doc)], 2, part_bytes=1000) == [Part(str(doc))]
    _same([str(doc)], _config(tmp_path), workers=2, part_bytes=1000)


def test_bad_lines_are_named_with_the_line_of_the_whole_file(tmp_path):
    lines = mixed_lines(600, seed=5)
    log = write(tmp_path / "audit.log", lines)
    expected = [f"{log}:{i + 1}" for i, line in enumerate(lines) if "broken" in line]
    assert expected
    seen: list[str] = []
    detector = Detector(load_ruleset(None))
    _, merged = run_local([str(log)], detector, 2, on_warning=seen.append, part_bytes=2000)
    assert [w.split(": ", 1)[0] for w in seen] == expected
    assert merged.stats.bad == len(expected)


lines_pool = mixed_lines(700, seed=9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.sets(st.integers(min_value=1, max_value=len(lines_pool) - 1), max_size=40),
       start=st.integers(min_value=0, max_value=200), length=st.integers(min_value=1, max_value=500))
def test_any_split_gives_the_alerts_of_one_process(tmp_path_factory, cuts, start, length):
    """Random cut points (at line starts) of a random stretch of the mixed log: the parts read in
    this process one after another, then merged, give what one process gives."""
    tmp = tmp_path_factory.mktemp("split")
    log = write(tmp / "audit.log", lines_pool[start:start + length])
    data = log.read_bytes()
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    bounds = sorted({0, len(data), *(offsets[c] for c in cuts if c < len(offsets) - 1)})
    parts = [Part(str(log), a, b, a == 0) for a, b in zip(bounds, bounds[1:], strict=False)]
    config = _config(tmp)
    rules = load_ruleset(config)
    single, _ = one_process([str(log)], Detector(rules, config))
    scale_local._init(rules, config)
    merged = PartMerge(Detector(rules, config))
    for p in parts:
        merged.add(p, scale_local._read_part(p))
    split = merged.finish()
    assert Counter(map(key, split)) == Counter(map(key, single))


def test_persistent_baseline_store_read_before_and_updated_after(tmp_path):
    """Two runs after each other on one store: the second knows what the first learned, with
    --workers as with one process."""
    lines = mixed_lines(2000, seed=4)
    first = write(tmp_path / "day1.log", lines[:1000])
    second = write(tmp_path / "day2.log", lines[1000:])
    results = {}
    for workers in (1, 2):
        store = tmp_path / f"baseline-{workers}.sqlite"
        config = _config(tmp_path, CONFIG + f"  path: {store}\n")
        rules = load_ruleset(config)
        got = []
        for log in (first, second):
            detector = Detector(rules, config)
            if workers == 1:
                alerts, _ = one_process([str(log)], detector)
            else:
                alerts, _ = run_local([str(log)], detector, workers, part_bytes=3000)
                detector.close()
            got.append(Counter(map(key, alerts)))
        results[workers] = got
        results[f"rows{workers}"] = _rows(store)
    assert results[1] == results[2]
    assert results["rows1"] == results["rows2"] and results["rows1"]


def _rows(store: Path) -> list[tuple]:
    import sqlite3

    db = sqlite3.connect(store)
    try:
        return sorted(db.execute("SELECT rule, key, value, first, last FROM seen").fetchall())
    finally:
        db.close()


# --- the command ----------------------------------------------------------------------------


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*KUBEHAWK, *args], capture_output=True, text=True, cwd=ROOT, timeout=240, **kw)


def test_cli_workers_two_writes_what_workers_one_writes_in_event_time_order(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(3000, seed=2) * 4)  # ~5 MB: more than one part
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    one = _cli("detect", "--format", "json", "--config", str(cfg), str(log))
    two = _cli("detect", "--workers", "2", "--format", "json", "--config", str(cfg), str(log))
    assert one.returncode == two.returncode == 0, two.stderr
    assert sorted(one.stdout.splitlines()) == sorted(two.stdout.splitlines())
    assert one.stderr.splitlines()[-1] == two.stderr.splitlines()[-1]  # the summary line
    rows = [json.loads(line) for line in two.stdout.splitlines()]
    assert len(rows) > 50
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def test_cli_workers_take_the_event_filters_and_evidence(tmp_path):
    """The filters reach the workers (applied after reading, as one process applies them) and
    evidence names each alert's line in the whole file, whichever part read it."""
    log = write(tmp_path / "audit.log", mixed_lines(3000, seed=3) * 4)  # more than one part
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    args = ["detect", "--format", "json", "--config", str(cfg), "--evidence", "--since", "2026-11-23T09:04:00Z",
            "--user", "system:serviceaccount:*", "--user", "mallory", str(log)]
    one, two = _cli(*args), _cli(*args, "--workers", "2")
    assert one.returncode == two.returncode == 0, two.stderr
    assert sorted(one.stdout.splitlines()) == sorted(two.stdout.splitlines())
    rows = [json.loads(line) for line in two.stdout.splitlines()]
    users = {r["user"] for r in rows}
    assert len(rows) > 20 and users and all(u == "mallory" or u.startswith("system:serviceaccount:") for u in users)
    assert min(r["time"] for r in rows) >= "2026-11-23T09:04:00"
    lines = log.read_text().splitlines()
    for r in rows[:200]:
        path, _, n = r["evidence"]["origin"].rpartition(":")
        assert path == str(log) and json.loads(lines[int(n) - 1]) == r["evidence"]["event"]
    unfiltered = _cli("detect", "--format", "json", "--config", str(cfg), "--workers", "2", str(log))
    assert len(unfiltered.stdout.splitlines()) > len(rows)


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers: expected a number >= 1 or auto"),
    (["--workers", "many"], "--workers: expected a number >= 1 or auto"),
    (["--workers", "2", "--follow"], "cannot --follow"),
    (["--workers", "2", "-"], "standard input is read by one process"),
])
def test_cli_workers_misuse_is_one_clear_line(tmp_path, args, message):
    log = write(tmp_path / "audit.log", mixed_lines(10))
    if "-" not in args:
        args = [*args, str(log)]
    r = _cli("detect", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_no_more_worker_processes_than_parts(tmp_path, monkeypatch):
    """A forked pool starts every process at its first task: --workers 64 on a file of one part
    starts one."""
    started = []

    class Pool(scale_local.ProcessPoolExecutor):
        def __init__(self, max_workers, **kw):
            started.append(max_workers)
            super().__init__(max_workers, **kw)

    monkeypatch.setattr(scale_local, "ProcessPoolExecutor", Pool)
    log = write(tmp_path / "audit.log", mixed_lines(200, seed=5))
    assert len(plan_parts([str(log)], 64)) == 1
    detector = Detector(load_ruleset(None))
    alerts, _ = run_local([str(log)], detector, 64)
    detector.close()
    assert started == [1] and alerts
    big = write(tmp_path / "big.log", mixed_lines(2000, seed=5))
    detector = Detector(load_ruleset(None))
    run_local([str(big)], detector, 3, part_bytes=3000)
    detector.close()
    assert started[1:] == [3]


def test_auto_is_the_usable_cores():
    assert resolve_workers("auto") == len(os.sched_getaffinity(0))
    assert resolve_workers("3") == 3
    with pytest.raises(ValueError):
        resolve_workers("0")


def test_a_worker_killed_mid_run_fails_the_run_loudly(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(4000, seed=8) * 25)  # ~30 MB: several seconds of work
    proc = subprocess.Popen([*KUBEHAWK, "detect", "--workers", "2", "--format", "json", str(log)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        if pids:
            victim = int(pids[0])
        time.sleep(0.05)
    assert victim is not None, "the run ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)  # at once: its part (or the first) is still pending
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "worker process died" in err and "no alerts were written" in err, err
    assert out == ""


def test_a_worker_killed_while_results_cross_fails_the_run_loudly(tmp_path):
    """Killed just as its first result is written (the moment a result crosses to the parent):
    the run ends with the error, it never hangs. Results used to cross through the pool's pipe, and
    a worker killed inside a message of several megabytes left the parent reading for ever."""
    log = write(tmp_path / "audit.log", mixed_lines(4000, seed=8) * 25)
    proc = subprocess.Popen([*KUBEHAWK, "detect", "--workers", "2", "--format", "json", str(log)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    where = Path(results.MEMORY if os.access(results.MEMORY, os.W_OK) else tempfile.gettempdir())
    victim = folder = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        pids = set(children.read_text().split() if children.exists() else [])
        for f in where.glob("kubehawk-parts-*/*"):
            if f.name.split("-")[0] in pids:
                victim, folder = int(f.name.split("-")[0]), f.parent
    assert victim is not None, "the run ended before a worker wrote a result"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "worker process died" in err and "no alerts were written" in err, err
    assert out == "" and not folder.exists()  # and the results left are removed


def test_ctrl_c_ends_the_run_with_one_line(tmp_path):
    log = write(tmp_path / "audit.log", mixed_lines(4000, seed=8) * 25)
    # SIGINT back to its default in the child: a runner started in the background of a script
    # (as `cmd &` in a non-interactive shell) passes it on ignored, and Python then never raises
    # KeyboardInterrupt, so the test would see a whole run
    proc = subprocess.Popen([*KUBEHAWK, "detect", "--workers", "2", "--format", "json", str(log)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    while time.monotonic() < deadline and proc.poll() is None and not (children.exists() and children.read_text()):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; no alerts were written" in err and "Traceback" not in err
    assert out == ""


def test_progress_on_a_terminal(tmp_path):
    """stderr a terminal: detect's progress line (kubehawk.progress, after its first second): the
    events of the parts merged so far and the alerts by level, rewritten in place; warnings on
    lines of their own."""
    import pty

    log = write(tmp_path / "audit.log", mixed_lines(4000, seed=8) * 100)  # ~120 MB: a few seconds
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    main, tty = pty.openpty()
    alerts = tmp_path / "alerts.json"
    with alerts.open("wb") as stdout:
        proc = subprocess.Popen([*KUBEHAWK, "detect", "--workers", "2", "--format", "json", "--config", str(cfg),
                                 str(log)], cwd=ROOT, stdout=stdout, stderr=tty)
    os.close(tty)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal is closed: the run is over
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=120)
    os.close(main)
    out = alerts.read_bytes()
    assert proc.returncode == 0
    progress = [p for p in seen.decode().split("\r") if " events · " in p and "alerts: " in p]
    assert len(progress) >= 2, seen[-500:]
    assert "low" in progress[-1] or "medium" in progress[-1] or "high" in progress[-1]
    text = seen.decode()
    warnings = [line for line in text.replace("\r", "\n").splitlines() if "warning:" in line]
    assert warnings and not any("alerts:" in w for w in warnings)  # each warning on a line of its own
    assert out.count(b"\n") > 50  # the alerts still go to stdout, after the progress


def test_a_worker_reads_one_enormous_line_in_bounded_memory(tmp_path):
    """A byte range holding a 192 MiB line (no newline inside) costs a worker about the line limit,
    not the line: the reader drops it piece by piece, warns with its line number, and goes on."""
    good = b"".join(json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                                "auditID": f"a-{i}", "stage": "ResponseComplete", "verb": "get",
                                "requestURI": "/api/v1/pods", "stageTimestamp": "2026-11-23T10:00:00Z"}).encode()
                    + b"\n" for i in range(2000))
    log = tmp_path / "audit.log"
    with log.open("wb") as fh:
        fh.write(good)
        fh.write(b'{"kind": "Event", "pad": "' + b"x" * (192 << 20) + b'"}\n')
        fh.write(good)
    probe = ("import json, resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode,\n"
             "                  r.stderr.decode()]))\n")
    out = subprocess.run([sys.executable, "-c", probe, *KUBEHAWK, "detect", "--workers", "2", "--max-line-mib", "4",
                          "--format", "json", str(log)], capture_output=True, timeout=300, cwd=ROOT, check=True)
    rss_kib, code, err = json.loads(out.stdout)
    assert code == 0, err
    lineno = good.count(b"\n") + 1
    assert f"{log}:{lineno}: line longer than 4194304 bytes" in err, err[-2000:]
    assert "4000 events read; 1 bad records" in err, err[-2000:]
    assert rss_kib < 150 << 10, f"a process peaked at {rss_kib >> 10} MiB reading a 192 MiB line"


def test_a_worker_frees_each_part_s_garbage_cycles_with_the_collector_paused(tmp_path):
    """Workers run with Python's cycle collector off (forked inside the run's pause); one young pass
    after each part frees that part's cycles, so memory stays flat however long the input."""
    import gc

    from kubehawk.scale.collector import collector_paused

    log = write(tmp_path / "audit.log", mixed_lines(3000, seed=21))
    rules = load_ruleset(None)
    scale_local._init(rules, None, first_seen=Detector(rules).first_seen_only())
    parts = plan_parts([str(log)], 2, part_bytes=100_000)
    assert len(parts) > 3
    gc.collect()
    with collector_paused():
        for part in parts:
            scale_local._read_part(part)
        assert not gc.isenabled()
        left = gc.collect()
    assert left == 0
