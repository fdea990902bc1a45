"""The Spark job: lines in, the alerts of one process out (see :mod:`kubehawk.spark`)."""

from __future__ import annotations

import glob
import os
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from kubehawk.scale.collector import collector_paused
from kubehawk.scale.local import PartMerge, ScaleError, files_in_order, plan_parts
from kubehawk.scale.merge import Merge
from kubehawk.scale.records import ChunkResult
from kubehawk.sources.compression import SUFFIXES
from kubehawk.sources.files import ReadStats
from kubehawk.sources.folders import order_files
from kubehawk.sources.readstats import DEFAULT_MAX_LINE_BYTES
from kubehawk.spark.executors import local_name, local_path, scan_partition, scan_parts, scan_split

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from kubehawk.alerts import Alert
    from kubehawk.config import Config
    from kubehawk.detect import Detector
    from kubehawk.rules import RuleSet

__all__ = ["ALERT_COLUMNS", "SparkRun", "detect_dataframe", "detect_files", "read_lines", "write_alerts"]

# The alert contract (kubehawk.alerts.Alert.to_dict), plus where the event was read and its UTC day.
ALERT_COLUMNS = ("rule", "techniques", "attack", "auditID", "time", "user", "verb", "resource", "subresource",
                 "namespace", "name", "sourceIP", "userAgent", "message", "source", "day")
_SCHEMA = ("rule struct<id:string,name:string,title:string,level:string>, techniques array<string>, attack array<string>, "
           "auditID string, time string, user string, verb string, resource string, subresource string, "
           "namespace string, name string, sourceIP string, userAgent string, message string, source string, "
           "day string")
SPARK_PART = 128 << 20  # the longest byte range a task reads (Spark's spark.sql.files.maxPartitionBytes)


@dataclass
class SparkRun:
    """What a run gives besides its alerts: read counters over every partition, the warnings
    (the first ``ReadStats.max_warnings``), engine errors and the alert counts by level."""

    stats: ReadStats = field(default_factory=ReadStats)
    engine_errors: list[str] = field(default_factory=list)
    alerts_by_level: dict[str, int] = field(default_factory=dict)
    scan_seconds: float = 0.0  # until the executors' last results are on the driver
    merge_seconds: float = 0.0  # the driver's replay of the matches (the stateful rules), in all
    # (reading local files, the merge runs while the executors read: the two overlap)
    records: int = 0  # matched events sent to the driver


def read_lines(spark: SparkSession, paths: str | list[str], whole_files: bool = False) -> DataFrame:
    """The text lines of ``paths`` (files, folders, globs; any scheme and codec Spark reads), with
    where each was read (``file``, ``block``: the byte offset of its split). ``whole_files``: one
    row per file, for pretty-printed JSON documents (an Event, an EventList, a cloud export
    array); such a file is decoded whole, in one task. Frames of both kinds may be unioned."""
    return _positioned(_reader(spark).text(paths if isinstance(paths, list) else [paths], wholetext=whole_files))


def _reader(spark: SparkSession) -> Any:
    """Spark's text reader, listing folders as kubehawk does: every file below them, at any
    depth (an archive kept as ``audit/2026/11/01/*.gz``). Spark's own default lists a folder's
    top level only and reads nothing in its subfolders."""
    return spark.read.option("recursiveFileLookup", "true")


# --- the driver ------------------------------------------------------------------------------


def _positioned(lines: DataFrame) -> DataFrame:
    """(file, split offset, line) of each row: from the file source's metadata when the DataFrame
    reads files, else the partition number stands for the file (the DataFrame's own order)."""
    from pyspark.sql import functions as F

    try:
        return lines.select(F.col("_metadata.file_path").alias("file"),
                            F.col("_metadata.file_block_start").alias("block"), F.col("value"))
    except Exception:  # noqa: BLE001 - not a file source (or an older Spark): its partition order
        return lines.select(F.lit("").alias("file"), F.spark_partition_id().cast("long").alias("block"),
                            F.col("value"))


def detect_dataframe(spark: SparkSession, lines: DataFrame, config: Config | None = None,
                     rules: RuleSet | None = None, *, min_level: str | None = None,
                     run: SparkRun | None = None) -> DataFrame:
    """The alerts of the text lines ``lines`` (a DataFrame with a string column ``value``, as
    ``spark.read.text`` or :func:`read_lines` give), as a DataFrame with :data:`ALERT_COLUMNS`,
    in the order of :func:`kubehawk.scale.alert_order`. ``run`` (optional) receives the counters."""
    from kubehawk.detect import load_ruleset

    ruleset = rules if rules is not None else load_ruleset(config, collect_errors=True)
    run = run if run is not None else SparkRun()
    payload = spark.sparkContext.broadcast((ruleset, config))
    key = id(payload)
    if not {"file", "block"} <= set(lines.columns):
        lines = _positioned(lines)
    t0 = time.perf_counter()
    parts = (lines.select("file", "block", "value").rdd
             .mapPartitions(lambda rows: scan_partition(key, payload, (tuple(r) for r in rows)))
             .collect())
    payload.unpersist()
    return _merged(spark, parts, ruleset, config, min_level, run, t0)


def detect_files(spark: SparkSession, paths: str | list[str], config: Config | None = None,
                 rules: RuleSet | None = None, *, min_level: str | None = None, run: SparkRun | None = None,
                 whole_files: bool = False, min_splits: int | None = None, local_read: bool = True,
                 part_bytes: int | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> DataFrame:
    """:func:`detect_dataframe` over the files of ``paths`` (files, folders, globs, any scheme).
    When every path is local to the executors (``file:`` or no scheme: Spark in local mode, or a
    filesystem every node mounts), the files are listed as one process lists them
    (:func:`local_inputs`, then in the order given, folders at every depth, each file once), and
    the driver cuts them into the parts of
    ``detect --workers`` (:func:`kubehawk.scale.local.plan_parts`: byte ranges of ``part_bytes``
    of a large JSON-lines file, a compressed file whole), one Spark task each, and each task's
    Python reads its part from the file itself, as a local worker does, the line screen
    skipping undecoded the lines no rule wants; no line crosses the JVM, and origins are the
    ``path:line`` of one process. Other storage (listed by Spark, at every depth), files in a
    codec only Hadoop reads
    (:func:`_hadoop_codecs`) or ``local_read=False`` are read with
    ``SparkContext.textFile`` as bytes: half the cost of a DataFrame's rows on their way to
    Python; positions (file, split number, line), ``min_splits`` per file (``minPartitions``)."""
    from kubehawk.detect import load_ruleset

    if whole_files:
        return detect_dataframe(spark, read_lines(spark, paths, True), config, rules, min_level=min_level, run=run)
    ruleset = rules if rules is not None else load_ruleset(config, collect_errors=True)
    run = run if run is not None else SparkRun()
    paths = paths if isinstance(paths, list) else [paths]
    inputs = local_inputs(paths)
    local = None if inputs is None else list(files_in_order(inputs))  # listed as one process lists them
    if missing := [f for f in local or () if not os.path.exists(f)]:
        raise FileNotFoundError(f"{missing[0]}: no such file or directory")
    if local_read and local and not _hadoop_codecs(spark, local):
        return _detect_parts(spark, local, ruleset, config, min_level, run, part_bytes, max_line_bytes)
    if local is None:
        files = _reader(spark).text(paths).inputFiles()  # Spark's own listing
    else:  # kubehawk's listing, the JVM's working folder aside
        # (a name starting with "_" Hadoop's reader refuses to read, even named: a job's _SUCCESS)
        files = [os.path.abspath(f) for f in local if os.path.isfile(f) and not os.path.basename(f).startswith("_")]
    sc = spark.sparkContext
    payload = sc.broadcast((ruleset, config))
    key = id(payload)
    t0 = time.perf_counter()
    splits = [sc.textFile(f, min_splits, use_unicode=False).mapPartitionsWithIndex(partial(scan_split, f, key, payload))
              for f in files]
    parts = sc.union(splits).collect() if splits else []
    payload.unpersist()
    return _merged(spark, parts, ruleset, config, min_level, run, t0, None if local is None else files)


def local_inputs(paths: list[str]) -> list[str] | None:
    """``paths`` as local paths, a pattern (``*``, ``?``, ``[...]``) expanded as a shell expands
    it for ``detect`` (sorted by name; kept as it is when nothing matches, to be named as
    missing), or None when one is not local (s3a://, gs://, hdfs://...)."""
    local = [local_path(p) for p in paths]
    if any(p is None for p in local):
        return None
    return [f for p in local for f in ((sorted(glob.glob(p)) or [p]) if glob.has_magic(p) else [p])]


def _hadoop_codecs(spark: SparkSession, files: list[str]) -> bool:
    """Whether a file is compressed with a codec Hadoop knows (by its name, as ``textFile``
    decides) and kubehawk's own reader does not: deflate, lz4, snappy, any the cluster's
    ``io.compression.codecs`` adds, zstd without the zstandard package; gzip and bzip2 (and
    zstd with zstandard) it reads itself. Such a run takes the ``textFile`` route, whose reader
    decompresses them."""
    sc = spark.sparkContext
    hadoop = sc._jvm.org.apache.hadoop
    factory = hadoop.io.compress.CompressionCodecFactory(sc._jsc.hadoopConfiguration())
    for f in files:
        codec = factory.getCodec(hadoop.fs.Path(f))
        if codec is not None and codec.getDefaultExtension() not in SUFFIXES:
            return True
    return False


def _detect_parts(spark: SparkSession, files: list[str], ruleset: RuleSet, config: Config | None,
                  min_level: str | None, run: SparkRun, part_bytes: int | None, max_line_bytes: int) -> DataFrame:
    """The local-read route of :func:`detect_files`: ``files`` (local paths, in the order one
    process reads them) cut into parts, a task each, merged on the driver in reading order."""
    from kubehawk.detect import Detector

    sc = spark.sparkContext
    # parts of up to Spark's own split size, none smaller at the end: a task costs tens of
    # milliseconds of its own, so the short parts that even out local workers slow Spark down
    parts = plan_parts(files, sc.defaultParallelism, part_bytes, largest=SPARK_PART, smallest=SPARK_PART)
    detector = Detector(ruleset, config, min_level=min_level)
    # the first-seen rules whose matches cross as entries: the driver reads a line again if it must
    payload = sc.broadcast((ruleset, config, detector.first_seen_only()))
    key = id(payload)
    t0 = time.perf_counter()
    tasks = sc.parallelize(parts, len(parts)).mapPartitions(partial(scan_parts, key, payload, max_line_bytes))
    merge = PartMerge(detector, max_line_bytes=max_line_bytes, render=_row)  # rows made as the merge goes
    results = _in_order(sc, tasks, len(parts), sc.defaultParallelism)
    merging = 0.0
    try:
        with collector_paused():
            for part in parts:  # merged as they come, while the executors read the later parts
                res = next(results, None)
                if res is None:  # never merge a run with a part missing
                    raise ScaleError(f"no result for {part.describe()}; the run is incomplete")
                t = time.perf_counter()
                merge.add(part, res)
                merging += time.perf_counter() - t
                run.records += len(res)
    finally:
        results.close()
        payload.unpersist()
    t1 = time.perf_counter()
    rows = merge.finish()
    run.stats.add(merge.stats.summary())
    run.engine_errors.extend(merge.engine_errors)
    return _alerts_frame(spark, detector, rows, run, t0, t1, merging)


_IN_FLIGHT = 8  # jobs submitted ahead of the merge


def _in_order(sc: Any, tasks: Any, n: int, group: int) -> Generator[Any, None, None]:
    """The results of the ``n`` partitions of ``tasks`` in partition order, as each group of
    ``group`` partitions is done: one Spark job per group, a few submitted ahead from threads,
    so that the driver merges the first parts while the executors read the later ones. Spark runs
    an application's jobs first come first served; threads started at once reach it in any order
    (the last group was seen to run first, its results waiting for the first's), so each job is
    started once the one before it is known to Spark. A failed job cancels the others."""
    from concurrent.futures import ThreadPoolExecutor

    run = uuid.uuid4().hex
    groups = [list(range(i, min(n, i + group))) for i in range(0, n, group)]
    tracker = sc.statusTracker()

    def run_job(i: int) -> list[Any]:
        sc.setJobGroup(f"kubehawk-{run}-{i}", "kubehawk: read parts, run the rules")  # per thread: its jobs
        return sc.runJob(tasks, _identity, groups[i])

    pool = ThreadPoolExecutor(max_workers=max(1, min(len(groups), _IN_FLIGHT)))
    futures: list[Any] = []
    try:
        for i in range(len(groups)):
            futures.append(pool.submit(run_job, i))
            while not futures[-1].done() and not tracker.getJobIdsForGroup(f"kubehawk-{run}-{i}"):
                time.sleep(0.002)  # until Spark has the job: the next one queues behind it
        for i, f in enumerate(futures):
            futures[i] = None  # a group's results are held only until merged
            yield from f.result()
    except BaseException:
        for i in range(len(groups)):
            sc.cancelJobGroup(f"kubehawk-{run}-{i}")
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _identity(rows: Iterator[Any]) -> Iterator[Any]:
    return rows


def _merged(spark: SparkSession, parts: list[tuple[str, int, ChunkResult]], ruleset: RuleSet, config: Config | None,
            min_level: str | None, run: SparkRun, t0: float, order: list[str] | None = None) -> DataFrame:
    """The driver's half: the parts in stream order (files in ``order``, the files the splits
    were read from, local ones listed as one process lists them; else as :func:`order_files`
    orders them; then splits), replayed through one Detector; the alerts as a DataFrame."""
    from kubehawk.detect import Detector

    t1 = time.perf_counter()
    names = order if order is not None else order_files(sorted({local_name(f) for f, _, _ in parts}))
    rank = {local_name(f): i for i, f in enumerate(names)}
    parts.sort(key=lambda p: (rank[local_name(p[0])], p[1]))
    detector = Detector(ruleset, config, min_level=min_level)
    merge = Merge(detector, render=_row)
    with collector_paused():
        for file, block, part in parts:
            merge.add(part)
            _count(run, part, file, block)
    rows = merge.finish()
    run.records = sum(len(p) for _, _, p in parts)
    return _alerts_frame(spark, detector, rows, run, t0, t1)


def _alerts_frame(spark: SparkSession, detector: Detector, rows: list[tuple[Any, ...]], run: SparkRun,
                  t0: float, t1: float, merged_before: float = 0.0) -> DataFrame:
    """The run's alerts (their :func:`_row`) as a DataFrame (the driver's merge done: its detector is closed here);
    in ``run`` the executors' time (``t0``..``t1``) and the merge's (after ``t1``, plus
    ``merged_before``: the part of it that ran while the executors read)."""
    detector.close()
    run.alerts_by_level = dict(detector.alerts_by_level)
    run.scan_seconds, run.merge_seconds = t1 - t0, time.perf_counter() - t1 + merged_before
    # the rows are made here to the schema: Spark's check of every value cost 0.4 s per 16k alerts
    return spark.createDataFrame(rows, schema=_SCHEMA, verifySchema=False)


def _count(run: SparkRun, part: ChunkResult, file: str, block: int) -> None:
    run.stats.add(dict(part.stats, files=1 if block == 0 else 0))  # a file's first split counts it
    run.engine_errors.extend(part.engine_errors)


def _row(alert: Alert) -> tuple[Any, ...]:
    d = alert.to_dict()
    o = alert.event._origin
    source = f"{o[0]}:{o[1]}" if o.__class__ is tuple else str(o)
    day = (d["time"] or "")[:10] or None
    return (d["rule"], d["techniques"], d["attack"], d["auditID"], d["time"], d["user"], d["verb"], d["resource"],
            d["subresource"], d["namespace"], d["name"], d["sourceIP"], d["userAgent"], d["message"], source, day)


def write_alerts(alerts: DataFrame, output: str, fmt: str = "json", mode: str = "errorifexists") -> None:
    """JSON lines or Parquet under ``output``, partitioned by the events' UTC day (``day=YYYY-MM-DD``)."""
    writer = alerts.write.mode(mode).partitionBy("day").option("ignoreNullFields", "false")
    if fmt == "parquet":
        writer.parquet(output)
    else:
        writer.json(output)
