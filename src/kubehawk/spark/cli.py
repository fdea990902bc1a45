"""``kubehawk spark``: the Spark job for people who do not write Spark code (also
``python -m kubehawk.spark`` and ``spark-submit .../kubehawk/spark/__main__.py``)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from kubehawk.alerts import LEVELS
from kubehawk.cliutil import LevelChoice, fail, load_config, load_rules, require_paths


@click.command("spark")
@click.argument("paths", nargs=-1, required=True)
@click.option("--output", "-o", required=True, help="Folder (any Spark path) for the alerts, partitioned by day.")
@click.option("--format", "fmt", type=click.Choice(["json", "parquet"]), default="json", show_default=True)
@click.option("--master", help="Spark master (local[*], yarn, spark://...); default: spark-submit's or local[*].")
@click.option("--config", "config_path", type=click.Path(), help="kubehawk.yaml with the cluster's business context.")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--min-level", type=LevelChoice(), help="Drop alerts below this level.")
@click.option("--overwrite", is_flag=True, help="Replace what is at --output (default: fail if it exists).")
@click.option("--whole-files", is_flag=True,
              help="Read each file whole: pretty-printed JSON documents (an EventList, a cloud export array).")
@click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted in the summary).")
def spark(paths: tuple[str, ...], output: str, fmt: str, master: str | None, config_path: str | None,
          rule_dirs: tuple[str, ...], no_builtin: bool, min_level: str | None, overwrite: bool, whole_files: bool,
          quiet: bool) -> None:
    """Detect over PATHS (files, folders, globs: file://, s3a://, gs://, abfss://, hdfs://) on Spark."""
    try:
        from pyspark.errors import AnalysisException
        from pyspark.sql import SparkSession
    except ImportError:
        fail("kubehawk spark", "needs pyspark: pip install 'kubehawk[spark]'")
    from kubehawk.spark.job import SparkRun, detect_files, local_inputs, write_alerts

    inputs = local_inputs(list(paths))
    if inputs is not None:  # local files: a typo is named before Spark starts, as detect names it
        require_paths(inputs, prog="kubehawk spark")
    problem = _local_output_problem(output)
    if problem:  # said before Spark starts, not as a Java stack after the whole run
        fail("kubehawk spark", f"--output {output}: {problem}")
    if "://" not in output:  # a local folder is the one the user means: from here, not the JVM's cwd
        output = os.path.abspath(output)
    config = load_config(config_path, prog="kubehawk spark")
    ruleset = load_rules(config, rule_dirs, builtin=not no_builtin, prog="kubehawk spark")
    t0 = time.perf_counter()
    session = _start(SparkSession, master)
    started = time.perf_counter() - t0
    if not overwrite and _exists(session, output):  # before the run, not when its alerts are written
        session.stop()
        fail("kubehawk spark", f"--output {output}: already exists (--overwrite replaces it)")
    run = SparkRun()
    t1 = time.perf_counter()
    try:
        alerts = detect_files(session, list(paths), config, ruleset, min_level=min_level, run=run,
                              whole_files=whole_files)
        write_alerts(alerts, output, fmt, "overwrite" if overwrite else "errorifexists")
    except AnalysisException as e:  # a path that does not exist, an output that does: the user's to fix
        session.stop()
        fail("kubehawk spark", str(e).strip().splitlines()[0])
    except Exception as e:  # noqa: BLE001 - a failed job (Py4JJavaError: storage, permissions): one line
        session.stop()
        first = str(getattr(e, "java_exception", e)).strip().splitlines()
        fail("kubehawk spark", f"the Spark job failed: {first[0] if first else type(e).__name__}", 1)
    took = time.perf_counter() - t1
    s = run.stats.summary()
    if not quiet:
        for w in s["warnings"]:
            click.echo(f"kubehawk: warning: {w}", err=True)
    levels = ", ".join(f"{n} {lvl}" for lvl in reversed(LEVELS) if (n := run.alerts_by_level.get(lvl)))
    click.echo(f"kubehawk: {s['events']} events read; {s['bad']} bad records; alerts: {levels or 'none'}; "
               f"written to {output} ({fmt}); Spark start-up {started:.1f} s, detection {took:.1f} s", err=True)
    session.stop()
    sys.exit(0)


_MASTERS = ("local", "spark://", "k8s://", "mesos://")  # what spark-submit takes, besides "yarn"


def _start(builder_of: Any, master: str | None) -> Any:
    """A Spark session for ``master`` (spark-submit's, or local[*], when None), or one line on why
    none started: a master Spark would refuse is named before the JVM prints its own stack."""
    if master and master != "yarn" and not master.startswith(_MASTERS):
        fail("kubehawk spark", f"--master {master}: expected local[N], local[*], yarn, spark://, k8s:// "
                               "or mesos:// (Spark's master URLs)")
    builder = builder_of.builder.appName("kubehawk")
    if master:
        builder = builder.master(master)
    if (master or "local").startswith("local"):
        # local mode: the Python workers run this very Python (where kubehawk is installed)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = builder.getOrCreate()
    except Exception as e:  # noqa: BLE001 - no Java, a cluster that refused us: one line, not a traceback
        first = str(e).strip().splitlines()
        fail("kubehawk spark", f"Spark did not start: {first[0] if first else type(e).__name__}", 1)
    _quiet_listing_warning(session)
    return session


def _exists(session: Any, output: str) -> bool:
    """Whether ``output`` exists, asked of the storage Spark would write it to (Hadoop's
    FileSystem: local, s3a://, gs://...); False where that cannot be asked (no JVM here), and
    Spark's writer then says it at the end."""
    try:
        jvm = session.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(output)
        return bool(path.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()).exists(path))
    except Exception:  # noqa: BLE001 - a question we may not be able to ask; the write still checks
        return False


def _quiet_listing_warning(session: object) -> None:
    """Spark logs a Java stack at WARN when a path it lists does not exist (its streaming sink
    looking for a metadata folder a batch read never has) before the one-line error we print:
    that logger is set to ERROR. Sessions without a JVM here (Spark Connect) are left alone."""
    try:
        log4j = session.sparkContext._jvm.org.apache.logging.log4j  # type: ignore[attr-defined]
        log4j.core.config.Configurator.setLevel(
            "org.apache.spark.sql.execution.streaming.sinks.FileStreamSink", log4j.Level.ERROR)
    except Exception:  # noqa: BLE001 - a logging nicety: never a reason to fail the run
        pass


def _local_output_problem(output: str) -> str | None:
    """Why a local output folder (no scheme, or file://) cannot be written, or None. Other
    storage (s3a://, gs://, hdfs://...) is Spark's to judge."""
    if "://" in output and not output.startswith("file://"):
        return None
    path = os.path.abspath(output.removeprefix("file://"))
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f"{parent} is a file, not a folder"
    return None
