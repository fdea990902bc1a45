"""Counters and limits of one run of the readers (:mod:`kubehawk.sources.files`, :mod:`.follow`).

The reader never raises for bad input: each problem is counted here and reported through the
caller's ``on_warning``, a few per file so that one broken file cannot flood the terminal; the
counts per file and the files skipped whole go to the end summary, which the CLI prints even
with ``-q`` and uses for its exit code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DEFAULT_MAX_LINE_BYTES", "ReadStats", "Warn"]

Warn = Callable[[str], None] | None

# The longest line (or whole JSON document) read; past it a record is skipped with a warning, so
# a decompression bomb of one endless line cannot take the machine's memory (``--max-line-mib``).
DEFAULT_MAX_LINE_BYTES = 64 << 20


class ReadStats:
    """Counters for one run of the readers, shown in the end summary, and the run's read limits.

    ``bad`` counts malformed JSON, wrong-typed fields, unknown shapes, over-long lines and
    unreadable paths (each also gives one warning); ``skipped`` counts well-formed records that
    hold no audit event (:class:`SkipRecord`). Per file, only the first ``warnings_per_file``
    warnings reach ``on_warning`` (then one "… and N more in FILE" when the file is done);
    ``bad_files`` keeps the count per file for the summary, ``not_audit`` the files skipped
    as plainly not audit logs, ``invalid_utf8`` the records kept with invalid UTF-8 replaced.
    Only the first ``max_warnings`` warning texts are kept, so a log full of garbage cannot grow
    memory. One thread writes; others may read :meth:`summary` at any time (while a JSON-lines
    file is read, its line and event counts are brought up to date every few thousand lines).
    """

    MAX_FILES_NAMED = 1000  # files remembered by name in bad_files / not_audit

    def __init__(self, max_warnings: int = 100, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 warnings_per_file: int = 5) -> None:
        self.files = 0
        self.lines = 0
        self.events = 0
        self.bad = 0
        self.skipped = 0
        self.invalid_utf8 = 0
        self.max_warnings = max_warnings
        self.max_line_bytes = max_line_bytes
        self.warnings_per_file = warnings_per_file
        self.warnings: list[str] = []
        self.bad_files: dict[str, int] = {}
        self.not_audit: list[str] = []
        self._noted: dict[str, int] = {}  # warnings held back per file and already announced
        self._utf8_files: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, message: str, on_warning: Warn = None, file: str | None = None) -> None:
        """Count one bad record (or path) of ``file`` and report it (the first few of the file)."""
        shown = True
        with self._lock:
            self.bad += 1
            if len(self.warnings) < self.max_warnings:
                self.warnings.append(message)
            if file is not None:
                n = self.bad_files.get(file, 0) + 1
                if n > 1 or len(self.bad_files) < self.MAX_FILES_NAMED:
                    self.bad_files[file] = n
                shown = n <= self.warnings_per_file
        if on_warning is not None and shown:
            on_warning(message)

    def end_file(self, file: str, on_warning: Warn = None) -> None:
        """``file`` is done: say how many of its warnings were held back (once per file)."""
        with self._lock:
            held = max(0, self.bad_files.get(file, 0) - self.warnings_per_file)
            new = held - self._noted.get(file, 0)
            if new > 0:
                self._noted[file] = held
        if new > 0 and on_warning is not None:
            on_warning(f"… and {new} more in {file}")

    def overlong(self, file: str, line: int, on_warning: Warn = None) -> None:
        self.warn(f"{file}:{line}: line longer than {self.max_line_bytes} bytes (--max-line-mib); skipped",
                  on_warning, file)

    def not_an_audit_log(self, file: str, reason: str, on_warning: Warn = None) -> None:
        """A file skipped whole: one line, and its name kept for the summary (not a bad record)."""
        with self._lock:
            if len(self.not_audit) < self.MAX_FILES_NAMED:
                self.not_audit.append(file)
        if on_warning is not None:
            on_warning(f"{file}: skipped, not an audit log: {reason}")

    def utf8_replaced(self, file: str, origin: str, on_warning: Warn = None) -> None:
        """A record kept with its invalid UTF-8 replaced by U+FFFD: counted, said once per file."""
        with self._lock:
            self.invalid_utf8 += 1
            first = file not in self._utf8_files
            if first and len(self._utf8_files) < self.MAX_FILES_NAMED:
                self._utf8_files.add(file)
        if first and on_warning is not None:
            on_warning(f"{origin}: invalid UTF-8 replaced with U+FFFD, the event is kept "
                       "(said once per file; counted in the summary)")

    def skip(self, err: Exception, origin: str, on_warning: Warn = None) -> None:
        """Count records that hold no audit event (a batch may stand for several).

        The first few are reported with their reason, so that a truncated export or a
        wrong log category is visible without flooding the terminal.
        """
        n = getattr(err, "count", 1) or 1
        with self._lock:
            before = self.skipped
            self.skipped += n
        if before < self.MAX_SKIP_NOTES and on_warning is not None:
            on_warning(f"{origin}: skipped: {err}")

    MAX_SKIP_NOTES = 20

    def add(self, summary: dict[str, Any]) -> None:
        """Count another reader's :meth:`summary` in (a worker's part of a split run, kubehawk.scale,
        or a Spark partition): its counters, its bad records per file, the files it skipped and
        its warning texts up to ``max_warnings``."""
        with self._lock:
            self.files += summary["files"]
            self.lines += summary["lines"]
            self.events += summary["events"]
            self.bad += summary["bad"]
            self.skipped += summary["skipped"]
            self.invalid_utf8 += summary.get("invalid_utf8", 0)
            for f, n in summary.get("bad_files", {}).items():
                if f in self.bad_files or len(self.bad_files) < self.MAX_FILES_NAMED:
                    self.bad_files[f] = self.bad_files.get(f, 0) + n
            for f in summary.get("not_audit", []):
                if f not in self.not_audit and len(self.not_audit) < self.MAX_FILES_NAMED:
                    self.not_audit.append(f)
            room = self.max_warnings - len(self.warnings)
            self.warnings.extend(summary["warnings"][:max(0, room)])

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "files": self.files,
                "lines": self.lines,
                "events": self.events,
                "bad": self.bad,
                "skipped": self.skipped,
                "invalid_utf8": self.invalid_utf8,
                "bad_files": dict(self.bad_files),
                "not_audit": list(self.not_audit),
                "warnings": list(self.warnings),
                "warnings_dropped": max(0, self.bad - len(self.warnings)),
            }

    def problems(self) -> list[str]:
        """The end summary's lines about input (shown even with ``-q``): the files with bad records,
        the files skipped as not audit logs, the records kept with invalid UTF-8."""
        s = self.summary()
        out = []
        if s["bad_files"]:
            out.append("bad records in " + _named(f"{f} ({n})" for f, n in s["bad_files"].items()))
        if s["not_audit"]:
            out.append("skipped, not audit logs: " + _named(s["not_audit"]))
        if s["invalid_utf8"]:
            out.append(f"{s['invalid_utf8']} record(s) with invalid UTF-8 kept, the bad bytes replaced with U+FFFD")
        return out

    def __repr__(self) -> str:
        s = self.summary()
        return f"ReadStats(files={s['files']}, lines={s['lines']}, events={s['events']}, bad={s['bad']}, skipped={s['skipped']})"


def _named(items: Iterable[str], shown: int = 10) -> str:
    items = list(items)
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
