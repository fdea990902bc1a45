"""Tail live audit logs like ``tail -F``: ``kubehawk detect --follow``.

The kube-apiserver log backend rotates by renaming ``audit.log`` and opening a new one
(lumberjack), logrotate may instead copy the file and truncate it in place. Both are
handled by polling: a changed inode means rename-rotation (finish the old file, then read
the new one from its start), a size below our offset means copytruncate (start again at
0). A missing file is waited for. Polling needs no platform API and costs one ``stat``
per file per interval.

With a saved state (``--state``, :mod:`kubehawk.followstate`) each file tail knows the exact
position after the last line whose events the consumer has taken: the file (device, inode,
first bytes), the byte offset and the line count. A restart resumes there, in the same file
even when it was rotated away meanwhile (found beside the path by its inode, or a
copytruncate copy by its first bytes), then goes on with the new file from its start.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from kubehawk.event import AuditEvent
from kubehawk.followstate import Position
from kubehawk.sources.files import (
    STDIN,
    STDIN_NAME,
    ReadStats,
    Warn,
    bounded_lines,
    emit_line,
    is_cut,
)
from kubehawk.sources.filetail import _FileTail
from kubehawk.sources.folders import rotation_of, walk_files

__all__ = ["follow_paths"]

Checkpoint = Callable[[dict[str, Position]], None]


def _is_current(path: str) -> bool:
    """A file that a writer may still append to: not a rotated or compressed backup."""
    return not rotation_of(os.path.basename(path)).backup


class _DirTail:
    """Follow the newest current file of a directory; switch when a newer one appears."""

    def __init__(self, root: str, stats: ReadStats, on_warning: Warn, at_end: bool,
                 saved: Mapping[str, Position] | None = None) -> None:
        self.root = root
        self.stats = stats
        self.on_warning = on_warning
        self.known: set[str] = set()
        self.unreadable: set[str] = set()  # warned about once
        self.tail: _FileTail | None = None
        self.tail_mtime = 0.0
        candidates = self._scan()
        resume = self._saved_file(saved or {})
        if resume is not None:
            path, pos = resume
            self.tail = _FileTail(path, stats, on_warning, at_end, resume=pos)
            with contextlib.suppress(OSError):
                self.tail_mtime = os.stat(path).st_mtime
            # Files that appeared while we were away are new to the next poll, which finishes
            # the resumed file and goes on with the newest from its start.
            self.known -= {p for p, m in candidates.items() if m > self.tail_mtime}
        elif candidates:
            path, mtime = max(candidates.items(), key=lambda kv: (kv[1], kv[0]))
            self.tail = _FileTail(path, stats, on_warning, at_end)
            self.tail_mtime = mtime

    def _saved_file(self, saved: Mapping[str, Position]) -> tuple[str, Position] | None:
        """The state entry of a file in this directory (the one followed before a restart)."""
        root = os.path.abspath(self.root)
        for key, pos in saved.items():
            if key.startswith(root + os.sep):
                return os.path.join(self.root, os.path.relpath(key, root)), pos
        return None

    def positions(self) -> dict[str, Position]:
        return self.tail.positions() if self.tail is not None else {}

    def exact(self) -> bool:
        return self.tail is None or self.tail.exact()

    def _scan(self) -> dict[str, float]:
        """Current files not seen before, with their modification times; what cannot be read
        (a locked subfolder, a dangling link) is one warning, the first time it is met."""
        new: dict[str, float] = {}
        errors: list[OSError] = []
        found = walk_files(self.root, errors)
        for e in errors:
            where = e.filename or self.root
            if where not in self.unreadable:
                self.unreadable.add(where)
                self.stats.warn(f"{where}: cannot read: {e.strerror or e}", self.on_warning, where)
        for p in found:
            if p in self.known:
                continue
            self.known.add(p)
            if _is_current(p):
                try:
                    new[p] = os.stat(p).st_mtime
                except OSError:
                    continue
        return new

    def poll(self) -> Iterator[AuditEvent]:
        new = self._scan()
        if new:
            path, mtime = max(new.items(), key=lambda kv: (kv[1], kv[0]))
            if self.tail is None or mtime >= self.tail_mtime:
                if self.tail is not None:
                    yield from self.tail.poll()
                    yield from self.tail._flush_partial()
                    self.tail.close()
                self.tail = _FileTail(path, self.stats, self.on_warning, at_end=False)
                self.tail_mtime = mtime
        if self.tail is not None:
            yield from self.tail.poll()
            with contextlib.suppress(OSError):
                self.tail_mtime = os.stat(self.tail.path).st_mtime

    def close(self) -> None:
        if self.tail is not None:
            self.tail.close()


class _StdinTail:
    """Standard input read by a thread, so polling (and ``stop``) never block on it."""

    def __init__(self, stats: ReadStats, on_warning: Warn) -> None:
        self.stats = stats
        self.on_warning = on_warning
        # bounded: a producer faster than detection waits instead of filling memory
        self.lines: queue.Queue[bytes | None] = queue.Queue(maxsize=1024)
        self.lineno = 0
        self.done = False
        buf = getattr(sys.stdin, "buffer", None)
        if buf is None:
            stats.warn(f"{STDIN_NAME}: cannot read: no binary standard input", on_warning, STDIN_NAME)
            self.done = True
            return
        stats.files += 1
        threading.Thread(target=self._pump, args=(buf,), name="kubehawk-stdin", daemon=True).start()

    def _pump(self, buf) -> None:  # type: ignore[no-untyped-def]
        limit = self.stats.max_line_bytes
        cut = False
        try:
            for raw in bounded_lines(buf, limit):
                if cut:  # the rest of a line past the limit, dropped piece by piece
                    cut = raw[-1:] != b"\n"
                    continue
                cut = is_cut(raw, limit)
                self.lines.put(_CUT if cut else raw)
        except (OSError, ValueError) as e:
            self.stats.warn(f"{STDIN_NAME}:{self.lineno + 1}: read error: {e}", self.on_warning, STDIN_NAME)
        self.lines.put(None)

    def poll(self) -> Iterator[AuditEvent]:
        while not self.done:
            try:
                raw = self.lines.get_nowait()
            except queue.Empty:
                return
            if raw is None:
                self.done = True
                return
            self.lineno += 1
            self.stats.lines += 1
            if raw is _CUT:
                self.stats.overlong(STDIN_NAME, self.lineno, self.on_warning)
                continue
            line = raw.strip()
            if line:
                yield from emit_line(line, f"{STDIN_NAME}:{self.lineno}", self.stats, self.on_warning, STDIN_NAME)

    def positions(self) -> dict[str, Position]:
        return {}  # a pipe has no position to come back to

    def exact(self) -> bool:
        return True

    def close(self) -> None:
        self.stats.end_file(STDIN_NAME, self.on_warning)


_CUT = b"<a line past the limit>"  # a marker, compared by identity


def follow_paths(
    paths: Iterable[str | os.PathLike[str]],
    stats: ReadStats,
    on_warning: Warn = None,
    poll_interval: float = 0.25,
    stop: threading.Event | None = None,
    from_start: bool = False,
    saved: Mapping[str, Position] | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: float = 1.0,
) -> Iterator[AuditEvent]:
    """Events appended to ``paths`` from now on (from the start with ``from_start``), until
    ``stop`` is set; without ``stop`` it runs until the consumer stops iterating.

    "Now" is this call: the files are opened and their ends noted before it returns, so
    a line appended right after the call is never missed. A file path survives
    rename-rotation and copytruncate and may not exist yet; a directory follows its
    newest current file; ``-`` reads standard input. Lines are processed only once
    complete (a partial line waits for its newline).

    ``saved``: positions from a previous run (:class:`kubehawk.followstate.FollowState`), by
    absolute path; a file with one resumes there instead of at its end. ``checkpoint`` is
    called with the position of every file (same keys) whenever they say exactly what the
    consumer has processed: when the files are caught up, at most every ``checkpoint_every``
    seconds while a backlog is read, and when ``stop`` ends the loop (the last event handed
    out was fully processed by then). It is not called when the consumer stops iterating.
    """
    saved = saved or {}
    tails: list[_FileTail | _DirTail | _StdinTail] = []
    for p in paths:
        path = os.fspath(p)
        if path == STDIN:
            tails.append(_StdinTail(stats, on_warning))
            continue
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            is_dir = path.endswith(os.sep)
        if is_dir:
            tails.append(_DirTail(path, stats, on_warning, at_end=not from_start, saved=saved))
        else:
            tails.append(_FileTail(path, stats, on_warning, at_end=not from_start,
                                   resume=saved.get(os.path.abspath(path))))
    return _poll_loop(tails, poll_interval, stop, checkpoint, checkpoint_every)


def _poll_loop(
    tails: list[_FileTail | _DirTail | _StdinTail], poll_interval: float, stop: threading.Event | None,
    checkpoint: Checkpoint | None = None, checkpoint_every: float = 1.0,
) -> Iterator[AuditEvent]:
    last: dict[str, Position] | None = None
    last_time = time.monotonic()

    def save() -> None:
        nonlocal last, last_time
        now: dict[str, Position] = {}
        for t in tails:
            now.update(t.positions())
        if now != last and checkpoint is not None:
            checkpoint(now)
            last = now
        last_time = time.monotonic()

    try:
        if checkpoint is not None:
            save()  # where we start: a kill before the next save resumes here, not from scratch
        while stop is None or not stop.is_set():
            busy = False
            for t in tails:
                for ev in t.poll():
                    busy = True
                    # Before ``ev`` is handed on, everything read before it has been processed.
                    if checkpoint is not None and t.exact():
                        if stop is not None and stop.is_set():
                            save()
                            return
                        if time.monotonic() - last_time >= checkpoint_every:
                            save()
                    yield ev
                    if checkpoint is None and stop is not None and stop.is_set():
                        return
            if checkpoint is not None:
                save()  # caught up: all files at rest
            if not busy:
                if stop is not None:
                    stop.wait(poll_interval)
                else:
                    time.sleep(poll_interval)
        if checkpoint is not None:
            save()
    finally:
        for t in tails:
            t.close()
