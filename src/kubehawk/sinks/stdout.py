"""Alerts as JSON lines on standard output (the default when no output is configured)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import msgspec

from kubehawk.sinks.base import Sink

__all__ = ["StdoutSink"]


class StdoutSink(Sink):
    type_name = "stdout"

    def __init__(self, name: str, min_level: str = "informational", stream: TextIO | None = None) -> None:
        super().__init__(name, min_level)
        self._stream = stream

    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        stream = self._stream or sys.stdout
        try:
            stream.write("".join(msgspec.json.encode(self.shape(a)).decode() + "\n" for a in alerts))
            stream.flush()
        except (OSError, ValueError) as e:  # closed pipe (| head), closed stream
            self.drop(len(alerts), f"cannot write to stdout: {e}")
            return
        self.stats.add("delivered", len(alerts))
