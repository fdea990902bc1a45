"""A progress line on stderr while ``detect`` reads a long input on a terminal.

It shows the events read, the megabytes read and their rate, and the alerts so far by level,
rewritten in place twice a second from a thread; it appears only after the first second (a
short run never shows it), and is erased before anything else is written to stderr and at
the end, so that the summary and the warnings read as without it. It is off unless stderr is
a terminal, and with ``-q``.

Bytes read come from ``/proc/self/io`` (``rchar``: what the process read, compressed bytes for
a gzip file); where there is no such file the line shows events per second instead.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

__all__ = ["Progress"]

_PROC_IO = "/proc/self/io"


def _bytes_read() -> int | None:
    try:
        with open(_PROC_IO, "rb") as fh:
            for line in fh:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Progress:
    """The progress line of one run: :meth:`start`, :meth:`note` for a message, :meth:`stop`."""

    def __init__(self, events: Callable[[], int], alerts: Mapping[str, int], levels: tuple[str, ...],
                 stream: TextIO | None = None, delay: float = 1.0, interval: float = 0.5,
                 bytes_read: Callable[[], int | None] = _bytes_read) -> None:
        """``bytes_read``: what this process has read so far (None: unknown, the line shows events/s
        instead); a run whose worker processes do the reading passes ``lambda: None``."""
        self.events = events
        self.bytes_read = bytes_read
        self.alerts = alerts
        self.levels = levels  # most severe first
        self.stream = stream or sys.stderr
        self.delay = delay
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._shown = False
        self._t0 = time.monotonic()
        self._b0 = bytes_read()
        self._thread: threading.Thread | None = None

    @staticmethod
    def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
        """On a terminal (stderr), unless ``-q``."""
        stream = stream or sys.stderr
        return not quiet and hasattr(stream, "isatty") and stream.isatty()

    def start(self) -> Progress:
        self._t0 = time.monotonic()
        self._b0 = self.bytes_read()
        self._thread = threading.Thread(target=self._run, name="kubehawk-progress", daemon=True)
        self._thread.start()
        return self

    def line(self) -> str:
        """The text of the line now."""
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        n = self.events()
        parts = [f"{n:,} events"]
        b = self.bytes_read()
        if b is not None and self._b0 is not None:
            mb = (b - self._b0) / 1e6
            parts.append(f"{mb:,.1f} MB, {mb / elapsed:,.1f} MB/s")
        else:
            parts.append(f"{n / elapsed:,.0f} events/s")
        counts = dict(self.alerts)  # a copy: the main thread adds to it
        shown = [f"{counts[lvl]:,} {lvl}" for lvl in self.levels if counts.get(lvl)]
        parts.append("alerts: " + ", ".join(shown) if shown else "no alerts yet")
        return "kubehawk: " + " · ".join(parts)

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        text = self.line()[: max(width - 1, 10)]
        with self._lock:
            if self._stop.is_set():
                return
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def _erase(self) -> None:
        """Under the lock: the line gone, the cursor at its start."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            try:
                self._draw()
            except (OSError, ValueError):  # stderr closed under us: no more progress
                return
            self._stop.wait(self.interval)

    def note(self, message: str) -> None:
        """Write a line of its own to the stream (a warning): the progress line is redrawn after it."""
        with self._lock:
            self._erase()
            self.stream.write(message + "\n")
            self.stream.flush()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            self._erase()
        if self._thread is not None:
            self._thread.join(2)
