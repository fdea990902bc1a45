"""One followed file: read what it holds, then what is appended, across rotation and restarts.

A :class:`_FileTail` polls its path: a changed inode is rename-rotation (finish the old file,
then read the new one from its start), a size below its offset is copytruncate (start again at
0), a missing file is waited for. With a saved position (``--state``) it resumes after the last
line whose events the consumer took, in the same file even when it was rotated away meanwhile.
Folders and stdin, and the poll loop over them all, are :mod:`kubehawk.sources.follow`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from kubehawk.event import AuditEvent
from kubehawk.followstate import HEAD_BYTES, Position, find_file, fingerprint, same_file
from kubehawk.sources.compression import is_compressed
from kubehawk.sources.files import (
    ReadStats,
    Warn,
    _read_opened,
    emit_line,
)

_CHUNK = 1 << 20


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
        self.archive = is_compressed(magic)
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
