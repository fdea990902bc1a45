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
from kubehawk.followstate import HEAD_BYTES, Position, find_file, fingerprint, same_file
from kubehawk.sources.files import (
    _MAGIC,
    STDIN,
    STDIN_NAME,
    ReadStats,
    Warn,
    _read_opened,
    bounded_lines,
    emit_line,
    is_cut,
)
from kubehawk.sources.folders import rotation_of, walk_files

__all__ = ["follow_paths"]

_CHUNK = 1 << 20

Checkpoint = Callable[[dict[str, Position]], None]


class _FileTail:
    """One followed file path, across rotations of the file behind it."""

    def __init__(self, path: str, stats: ReadStats, on_warning: Warn, at_end: bool,
                 resume: Position | None = None) -> None:
        self.path = path
        self.stats = stats
        self.on_warning = on_warning
        self.fh: object | None = None
        self.ident: tuple[int, int] | None = None
        self.pos = 0
        self.lineno = 0
        self.partial = bytearray()
        self.overlong = False  # the line being read passed the run's limit: its bytes are dropped
        self._error: str | None = None
        self.archive = False  # a compressed file: read once, never tailed
        # (offset, line) after the last line whose events the consumer has all taken, and
        # whether the event just handed out is the first of its line (then that position is
        # exactly what the consumer has processed: see positions()).
        self.done = (0, 0)
        self.first_of_line = True
        self._head = (-1, 0)  # (bytes, fingerprint) of the open file, computed when they change
        if resume is None:
            self._open(at_end)
        else:
            self._resume(resume)

    # --- opening ---------------------------------------------------------------------------
    def _open(self, at_end: bool, path: str | None = None) -> bool:
        try:
            fh = open(path or self.path, "rb", buffering=0)  # noqa: SIM115 - lives across polls
        except FileNotFoundError:
            return False
        except OSError as e:
            msg = f"{self.path}: cannot read: {e.strerror or e}"
            if msg != self._error:  # once per distinct problem, not once per poll
                self._error = msg
                self.stats.warn(msg, self.on_warning, self.path)
            return False
        self._error = None
        st = os.fstat(fh.fileno())
        self.fh = fh
        self.ident = (st.st_dev, st.st_ino)
        self.pos = 0
        self.lineno = 0
        self.partial.clear()
        self.overlong = False
        self.stats.files += 1
        magic = fh.read(6)
        fh.seek(0)
        self.archive = any(magic.startswith(m) for m, _ in _MAGIC)
        if self.archive:
            # Nobody appends to a gzip file: read it whole unless we start at the end.
            self.pos = st.st_size if at_end else 0
        elif at_end:
            self._skip_existing()
        self.done = (self.pos, self.lineno)
        self._head = (-1, 0)
        return True

    def _resume(self, saved: Position) -> None:
        """Open the file at a saved position: the path itself when it is still that file, else
        the file rotation made of it (renamed: its inode; copied before truncation: its first
        bytes) beside the path, else the path from its start. Poll then goes on with the path."""
        same = same_file(self.path, saved)
        old = None if same else find_file(os.path.dirname(self.path) or ".", saved)
        if (same or old is not None) and self._open(at_end=False, path=old):
            size = os.fstat(self.fh.fileno()).st_size  # type: ignore[union-attr]
            if self.archive:
                if saved.offset:  # read whole before the restart
                    self.pos = size
                    self.done = (size, 0)
            elif size >= saved.offset:
                self.fh.seek(saved.offset)  # type: ignore[union-attr]
                self.pos, self.lineno = saved.offset, saved.line
                self.done = (saved.offset, saved.line)
            # else: emptied in place while we were away; all it holds now is new
            return
        if self.on_warning is not None:
            self.on_warning(f"{self.path}: the file read before the restart (inode {saved.ino}) is gone; "
                            f"reading the current one from its start (lines written to the old one after "
                            f"line {saved.line} were not read)")
        self._open(at_end=False)

    def positions(self) -> dict[str, Position]:
        """The saved-state entry of this file: where the consumer's processing has got to."""
        if self.ident is None:
            return {}
        n = min(self.done[0], HEAD_BYTES)
        if self._head[0] != n and self.fh is not None:
            self._head = (n, fingerprint(self.fh.fileno(), n))  # type: ignore[attr-defined]
        return {os.path.abspath(self.path): Position(*self.ident, *self.done, self._head[1])}

    def exact(self) -> bool:
        """Whether :meth:`positions`, asked just before the last event read is handed on, says
        exactly what the consumer has processed (no event of that event's line taken yet)."""
        return self.first_of_line

    def _skip_existing(self) -> None:
        """Start after the last complete line (counting lines so origins stay ``file:line``).

        A last line still being written is not old yet: it is read when it completes.
        """
        fh = self.fh
        assert fh is not None
        last_nl = -1
        offset = 0
        while True:
            chunk = fh.read(_CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                break
            self.lineno += chunk.count(b"\n")
            i = chunk.rfind(b"\n")
            if i >= 0:
                last_nl = offset + i
            offset += len(chunk)
        self.pos = last_nl + 1
        fh.seek(self.pos)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()  # type: ignore[attr-defined]
            self.fh = None
        self.stats.end_file(self.path, self.on_warning)

    # --- reading ---------------------------------------------------------------------------
    def _grow(self, data: bytes) -> None:
        """Add to the line being read, up to the run's line limit (then drop it, and the rest)."""
        if self.overlong:
            return
        if len(self.partial) + len(data) > self.stats.max_line_bytes:
            self.overlong = True
            self.partial.clear()
            return
        self.partial += data  # a long line: grows without copying what came before

    def _line(self, raw: bytes | bytearray, end: int) -> Iterator[AuditEvent]:
        """The events of one line that ends at offset ``end``; once the consumer asks for more,
        the line is done."""
        self.lineno += 1
        self.stats.lines += 1
        if self.overlong or len(raw) > self.stats.max_line_bytes:
            self.overlong = False
            self.stats.overlong(self.path, self.lineno, self.on_warning)
            self.done = (end, self.lineno)  # the skipped line is behind the saved position too
            return
        line = bytes(raw).strip()
        if line:
            first = True
            for ev in emit_line(line, f"{self.path}:{self.lineno}", self.stats, self.on_warning, self.path):
                self.first_of_line = first
                first = False
                yield ev
        self.done = (end, self.lineno)

    def _drain(self) -> Iterator[AuditEvent]:
        """Every complete line now in the open file; a partial last line waits for its newline."""
        fh = self.fh
        if fh is None:
            return
        if self.archive:
            if self.pos == 0:
                size = self.pos = os.fstat(fh.fileno()).st_size  # type: ignore[attr-defined]
                with open(os.dup(fh.fileno()), "rb") as f:  # type: ignore[attr-defined]
                    for ev in _read_opened(f, self.path, self.stats, self.on_warning):
                        self.first_of_line = False  # no position inside an archive: done when read whole
                        yield ev
                self.done = (size, 0)
                self.first_of_line = True
            return
        while True:
            try:
                chunk = fh.read(_CHUNK)  # type: ignore[attr-defined]
            except OSError as e:
                self.stats.warn(f"{self.path}:{self.lineno + 1}: read error: {e}", self.on_warning, self.path)
                return
            if not chunk:
                return
            start = self.pos
            self.pos += len(chunk)
            nl = chunk.find(b"\n")
            if nl < 0:
                self._grow(chunk)
                continue
            self._grow(chunk[:nl])
            first = bytes(self.partial)
            self.partial.clear()
            end = start + nl + 1
            yield from self._line(first, end)
            parts = chunk[nl + 1 :].split(b"\n")
            self._grow(parts.pop())
            for raw in parts:
                end += len(raw) + 1
                yield from self._line(raw, end)

    def _flush_partial(self) -> Iterator[AuditEvent]:
        """The file will not grow any more: its unterminated last line is final."""
        if self.partial or self.overlong:
            rest = bytes(self.partial)
            self.partial.clear()
            yield from self._line(rest, self.pos)

    def poll(self) -> Iterator[AuditEvent]:
        if self.fh is None and not self._open(at_end=False):
            return
        yield from self._drain()
        try:
            st = os.stat(self.path)
        except OSError:
            return  # renamed away or deleted: keep the old file until a new one appears
        if (st.st_dev, st.st_ino) != self.ident:
            # Rename-rotation: lines written to the old file since our read come first.
            yield from self._drain()
            yield from self._flush_partial()
            self.close()
            if self._open(at_end=False):
                yield from self._drain()
        elif st.st_size < self.pos and not self.archive:
            # copytruncate: the file was emptied in place; whatever it holds now is new.
            yield from self._flush_partial()
            self.fh.seek(0)  # type: ignore[union-attr]
            self.pos = 0
            self.lineno = 0
            self.done = (0, 0)
            self._head = (-1, 0)
            yield from self._drain()


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
