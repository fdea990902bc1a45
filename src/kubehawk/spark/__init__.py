"""kubehawk on Apache Spark (``pip install 'kubehawk[spark]'``): the split run of
:mod:`kubehawk.scale` with Spark tasks as the workers.

    from kubehawk.spark import detect_dataframe, read_lines
    alerts_df = detect_dataframe(spark, read_lines(spark, "s3a://bucket/audit/"), config=config)

Executors read the lines (any path and codec Spark reads; local files in the parts of
``detect --workers``, read by the executors' Python itself: :func:`detect_files`), build one split-mode engine per
Python worker from the broadcast rule set and config (rebuilt from the rule text, or the rules
cache), and send back each part's matched events; the driver replays them in stream order
through one :class:`kubehawk.detect.Detector` (dedup, first-seen baselines, correlations, and
the ``baseline.path`` store of the config, read before and updated after), so the alerts are
those of one ``kubehawk detect`` process over the same files. Stream order is the order one
process reads: local files in the order given, a folder's as
:func:`kubehawk.sources.folders.order_files` orders them (rotation names, then modification
time, then name), a pattern's by name (as a shell expands it); files in other storage as
``order_files`` orders Spark's listing; then the lines of each file.
"""

from __future__ import annotations

from kubehawk.spark.job import (
    ALERT_COLUMNS,
    SparkRun,
    detect_dataframe,
    detect_files,
    read_lines,
    write_alerts,
)

__all__ = ["ALERT_COLUMNS", "SparkRun", "detect_dataframe", "detect_files", "read_lines", "write_alerts"]
