"""Where alerts go: stdout, JSON-lines files, HTTP webhooks, syslog, falcosidekick.

``build_sinks(outputs)`` turns the ``outputs:`` list of kubehawk.yaml into a
:class:`SinkSet`; ``emit`` never blocks detection (each sink has a bounded queue and a
worker thread); failures retry, spool (webhooks) or are counted and logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubehawk.sinks.base import LEVELS, Sink, SinkStats, alert_key, as_dict
from kubehawk.sinks.runner import QueuedSink, SinkSet

__all__ = ["LEVELS", "QueuedSink", "Sink", "SinkSet", "SinkStats", "alert_key", "as_dict", "build_sink_list",
           "build_sinks"]


def build_sink_list(outputs: list[dict[str, Any]] | None, *, spool_dir: str | Path | None = None) -> list[Sink]:
    from kubehawk.sinks.config import build_sink_list as build

    return build(outputs, spool_dir=spool_dir)


def build_sinks(outputs: list[dict[str, Any]] | None, *, spool_dir: str | Path | None = None,
                queue_size: int = 10000) -> SinkSet:
    """A :class:`SinkSet` for the ``outputs:`` list; raises ConfigError naming the bad key."""
    return SinkSet(build_sink_list(outputs, spool_dir=spool_dir), maxsize=queue_size)
