"""Where ``kubehawk detect`` writes its alerts: JSON lines (our contract, or ECS, OCSF, Falco) to
standard output or a file, or a table (rich) on a terminal, streamed while following."""

from __future__ import annotations

import os
import sys

import msgspec

from kubehawk.alerts import Alert
from kubehawk.cliutil import open_output

__all__ = ["AlertSink"]


class AlertSink:
    """Where alerts go: JSON lines, or a rich table/stream on a terminal."""

    def __init__(self, fmt: str, output: str | None, streaming: bool, evidence: bool = False):
        self.evidence = evidence
        self.fh = open_output(output) if output else None
        out_is_tty = self.fh is None and sys.stdout.isatty()
        self.fmt = fmt if fmt != "auto" else ("table" if out_is_tty else "json")
        self.streaming = streaming
        self.rows: list[Alert] = []
        self.console = None
        if self.fmt == "table":
            from rich.console import Console

            # Off a terminal rich assumes 80 columns, too narrow for alerts.
            self.console = Console(file=self.fh, width=160) if self.fh else (
                Console() if sys.stdout.isatty() else Console(width=160))

    @property
    def writes_lines(self) -> bool:
        """JSON lines (our contract, or ECS, OCSF, Falco: kubehawk.formats), not a table."""
        return self.fmt != "table"

    def line(self, alert: Alert) -> str:
        """The JSON line of an alert, newline included (:attr:`writes_lines`)."""
        from kubehawk.formats import alert_parts, render

        if self.fmt == "json":
            doc = alert.to_dict()
            if self.evidence:
                doc["evidence"] = alert.evidence()
        else:
            d, event = alert_parts(alert)
            doc = render(d, self.fmt, event)
        return msgspec.json.encode(doc).decode() + "\n"

    def write(self, line: str) -> None:
        if self.fh:
            self.fh.write(line)
        else:
            sys.stdout.write(line)
            if self.streaming:
                sys.stdout.flush()

    def write_all(self, lines: list[str], batch: int = 4096) -> None:
        """Lines made earlier (``detect --workers`` makes them during its merge), written in
        batches: one write per batch, not per line (a write per line is a system call on an
        unbuffered standard output, PYTHONUNBUFFERED)."""
        for i in range(0, len(lines), batch):
            self.write("".join(lines[i:i + batch]))

    def emit(self, alert: Alert) -> None:
        if self.writes_lines:
            self.write(self.line(alert))
        elif self.streaming:
            from kubehawk.alerttable import print_alert

            print_alert(self.console, alert, evidence=self.evidence)
        else:
            self.rows.append(alert)

    def flush(self) -> int | None:
        """Written alerts reach the file (its length is returned) or the pipe, before a follow
        state says they were written."""
        if self.fh is None:
            sys.stdout.flush()
            return None
        self.fh.flush()
        os.fsync(self.fh.fileno())
        # the file's own length, not tell(): the follow state may cut the file after it was opened
        # for appending, and until the next write the descriptor's offset is where the end was
        return os.fstat(self.fh.fileno()).st_size

    def close(self) -> None:
        if self.fmt == "table" and not self.streaming:
            from kubehawk.alerttable import print_table

            print_table(self.console, self.rows, evidence=self.evidence)
        if self.fh:
            self.fh.close()
