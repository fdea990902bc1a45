"""Scaling out: ``detect --workers 2`` and Spark ``local[2]`` against ``detect --workers 1``.

Same corpus (bench/corpus.py, 1M events by default), same machine, ratios measured in the same
run (the machines are shared: absolute figures move with the neighbours, ratios less). The cores
the run could really have are measured before and after (two pure-Python loops at once against
one alone): a speedup cannot pass them. Each
``detect`` runs in a fresh process, the runs alternate, the median is reported. Spark's JVM
start-up is reported apart from its detection time, and its detection time is taken apart:
reading the lines and handing them to Python (transfer), decoding them (the reader, no rules),
the executors' whole part (rules in split mode, results collected) and the driver's merge.
``detect_files`` on local files (what ``kubehawk spark`` runs there) reads the parts of
``--workers`` in its Python tasks, no line crossing the JVM; it is measured against a
``--workers 1`` run alternating with it in the same bench run (``detection_s``: until it returns
the alerts as a DataFrame; a first action on that DataFrame, ``count()``, is timed apart), and
its executors once more without sending their results (``scan_only_s``). The textFile route
(``local_read=False``, what other storage takes) and ``detect_dataframe`` are measured after it,
with the transfer and decode costs apart.

The ``--workers`` comparison is also run without the built-in first-seen rules, whose matches
(a fifth of this corpus's events) the serial merge replays one by one.

    python bench/bench_scale.py [--events 1000000] [--repeat 3] [--no-spark | --no-local] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from installed import as_installed  # noqa: E402
from kubehawk.rules import BUILTIN_DIR  # noqa: E402


def _detect(path: Path, workers: int, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (the command and its workers) of one ``kubehawk detect``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kubehawk.cli", "detect", "--workers", str(workers), "--format", "json",
                    *extra, str(path)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _spin(n: int = 5_000_000) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t


def capacity() -> float:
    """The cores this run can have now: one pure-Python loop alone, then two at once in two
    processes (2.0 on an idle 2-core machine; 1.0 when the neighbours hold the other core)."""
    alone = min(_spin() for _ in range(3))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        t = time.perf_counter()
        pool.map(_spin, [5_000_000] * 2)
        both = time.perf_counter() - t
    return 2 * alone / both


def local(path: Path, repeat: int, extra: list[str] = ()) -> dict:
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(repeat):
        for n in (1, 2):
            runs[n].append(_detect(path, n, list(extra)))
    wall = {n: statistics.median(w for w, _ in r) for n, r in runs.items()}
    cpu = {n: statistics.median(c for _, c in r) for n, r in runs.items()}
    return {"wall_s": wall, "cpu_s": cpu, "speedup_workers2": wall[1] / wall[2], "all_runs": runs}


def spark(path: Path, repeat: int) -> dict:
    """Spark ``local[2]``: start-up apart; ``detect_files`` on its local-read route (what
    ``kubehawk spark`` runs on local files) against ``detect --workers 1``, the runs alternating;
    then the textFile route's costs taken apart (transfer, decode, the whole route) and
    ``detect_dataframe``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    t = time.perf_counter()
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("kubehawk-bench").config("spark.ui.enabled", "false")
               .config("spark.driver.memory", "3g").config("spark.driver.maxResultSize", "0")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    session.range(1).count()  # the JVM is up
    session.sparkContext.parallelize(range(2), 2).map(lambda x: x).count()  # and two Python workers
    startup = time.perf_counter() - t
    from kubehawk.sources.files import ReadStats, read_lines_of
    from kubehawk.spark import SparkRun, detect_dataframe, detect_files, read_lines

    workers1: list[float] = []
    local_read: list[dict] = []
    for _ in range(repeat + 1):
        workers1.append(_detect(path, 1, [])[0])
        run = SparkRun()
        t = time.perf_counter()
        alerts = detect_files(session, str(path), run=run)  # the alerts made, handed to Spark
        took = time.perf_counter() - t
        t = time.perf_counter()
        n = alerts.count()  # a first action on them: Spark reads the rows back
        local_read.append({"detection_s": took, "first_action_s": time.perf_counter() - t,
                           "executors_s": run.scan_seconds, "driver_merge_s": run.merge_seconds,
                           "records_to_driver": run.records, "alerts": n, "events": run.stats.events})
    # the first run builds each Python worker's engine from the broadcast rule set (and warms the
    # JVM's file listing and DataFrame code): reported apart, the ratio is the later runs' median
    w1 = statistics.median(workers1)
    warm = local_read[1:] or local_read
    det = statistics.median(r["detection_s"] for r in warm)
    with_action = statistics.median(r["detection_s"] + r["first_action_s"] for r in warm)
    out: dict = {"startup_s": startup, "workers1_wall_s": w1, "workers1_runs": workers1,
                 "local_read": {"detection_s": det, "speedup_vs_workers1": w1 / det,
                                "with_first_action_s": with_action,
                                "with_first_action_speedup": w1 / with_action,
                                "first_run_s": local_read[0]["detection_s"],
                                "first_run_speedup": w1 / local_read[0]["detection_s"], "runs": local_read}}

    sc = session.sparkContext
    out["local_read"]["scan_only_s"] = _scan_only(sc, path)
    text = sc.textFile(str(path), use_unicode=False)
    t = time.perf_counter()
    text.mapPartitions(lambda lines: [sum(len(x) for x in lines)]).sum()
    transfer = time.perf_counter() - t

    def decode(lines):
        return [sum(1 for _ in read_lines_of(lines, "x", ReadStats()))]

    t = time.perf_counter()
    text.mapPartitions(decode).sum()
    decoded = time.perf_counter() - t
    run = SparkRun()
    t = time.perf_counter()
    n = detect_files(session, str(path), run=run, local_read=False).count()
    detection = time.perf_counter() - t
    rows = SparkRun()
    t = time.perf_counter()
    detect_dataframe(session, read_lines(session, str(path)), run=rows).count()
    dataframe = time.perf_counter() - t
    out["textfile"] = {"splits": text.getNumPartitions(), "transfer_s": transfer, "transfer_and_decode_s": decoded,
                       "executors_s": run.scan_seconds, "driver_merge_s": run.merge_seconds,
                       "records_to_driver": run.records, "detection_s": detection, "alerts": n,
                       "speedup_vs_workers1": w1 / detection, "detect_dataframe_s": dataframe}
    session.stop()
    return out


def _scan_only(sc, path: Path) -> float:
    """The local-read route's executors without sending their results (a count of records
    comes back instead): the difference to ``executors_s`` is the results' way to the driver."""
    from functools import partial

    from kubehawk.detect import Detector, load_ruleset
    from kubehawk.scale.local import plan_parts
    from kubehawk.sources.readstats import DEFAULT_MAX_LINE_BYTES
    from kubehawk.spark.executors import scan_parts
    from kubehawk.spark.job import SPARK_PART

    parts = plan_parts([str(path)], sc.defaultParallelism, largest=SPARK_PART, smallest=SPARK_PART)
    rules = load_ruleset(None, collect_errors=True)
    payload = sc.broadcast((rules, None, Detector(rules).first_seen_only()))  # as detect_files sends it
    scan = sc.parallelize(parts, len(parts)).mapPartitions(partial(scan_parts, id(payload), payload,
                                                                   DEFAULT_MAX_LINE_BYTES))
    scan.map(len).sum()  # the workers build their engines for this rule set
    t = time.perf_counter()
    scan.map(len).sum()
    took = time.perf_counter() - t
    payload.unpersist()
    return took


def main() -> None:
    as_installed()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpus", type=Path, help="default: bench/out/corpus-EVENTS.log (written if missing)")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--no-local", action="store_true", help="skip the --workers 2 comparisons (Spark only)")
    args = ap.parse_args()
    if args.corpus is None:
        args.corpus = HERE / "out" / f"corpus-{args.events}.log"
    if not args.corpus.exists():
        args.corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write(args.corpus, args.events)
    load = os.getloadavg()
    out: dict = {"corpus": str(args.corpus), "bytes": args.corpus.stat().st_size, "cores": os.cpu_count(),
                 "load_before": load}
    out["cores_free_before"] = capacity()
    if not args.no_local:
        out["local"] = local(args.corpus, args.repeat)
        # The same without the six first-seen rules, whose matches (a fifth of the events here) the
        # merge replays one by one: what --workers gives when few matches are stateful.
        with tempfile.TemporaryDirectory() as rules:
            for f in BUILTIN_DIR.glob("*.yml"):
                if f.name != "baseline.yml":
                    shutil.copy(f, rules)
            out["local_without_first_seen_rules"] = local(args.corpus, args.repeat,
                                                          ["--no-builtin", "--rules", rules])
    if not args.no_spark:
        out["spark"] = spark(args.corpus, args.repeat)
    out["cores_free_after"] = capacity()
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
