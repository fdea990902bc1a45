"""Byte ranges of a large JSON-lines file, for ``detect --workers`` and Spark (kubehawk.scale):
where to cut a file at line starts, and the events of one range, read with the file reader's
own line code (the same warnings, limits and line screen as a whole file).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent
from kubehawk.sources.documents import is_complete_json
from kubehawk.sources.files import (
    BOM,
    READ_BUFFER,
    bounded_lines,
    is_compressed,
    is_cut,
    read_error,
    read_lines_of,
)
from kubehawk.sources.readstats import ReadStats, Warn

if TYPE_CHECKING:
    from kubehawk.rules.linescreen import LineScreen

__all__ = ["line_starts", "read_range", "splittable"]

_SPLIT_PROBE = 1 << 20  # how much of a line planning the split holds at once


def splittable(path: str) -> bool:
    """Can the file be read in byte ranges? Only an uncompressed JSON-lines file can: its first
    non-blank line is a whole JSON object. A compressed file or a document is read whole."""
    try:
        with open(path, "rb") as fh:
            if is_compressed(fh.peek(6)[:6]):
                return False
            for raw in bounded_lines(fh, _SPLIT_PROBE):
                if is_cut(raw, _SPLIT_PROBE):
                    return False  # a first line too long to look at: one worker reads the file
                line = raw.removeprefix(BOM).strip()
                if line:
                    return line[:1] == b"{" and is_complete_json(line)
    except OSError:
        return False
    return False


def line_starts(path: str, size: int, every: int | Callable[[int], int]) -> list[int]:
    """Offsets of line starts about ``every`` bytes apart (0 included): each the first line start
    at or after the one before plus ``every``, which may also be a function of that offset (the
    length of the next piece)."""
    step = every if callable(every) else (lambda _pos: every)
    starts = [0]
    with open(path, "rb") as fh:
        pos = step(0)
        while pos < size:
            fh.seek(pos - 1)
            while True:  # to the end of the line holding byte pos-1, a piece at a time (memory)
                piece = fh.readline(_SPLIT_PROBE)
                if not piece or piece[-1:] == b"\n":
                    break
            at = fh.tell()
            if at >= size:
                break
            if at > starts[-1]:
                starts.append(at)
            pos = max(at + step(at), at + 1)
    return starts


def read_range(path: str, start: int, end: int, stats: ReadStats, on_warning: Warn = None,
               screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of the JSON lines in bytes [start, end) of a file, both line starts (see
    :func:`line_starts`): one worker's part of a large file. Origins count lines from the range's
    first (``path:1``); the caller knows the lines before it. Memory: a read buffer, and no line
    longer than the run's limit (a longer one comes in pieces and is dropped, as everywhere)."""
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the events' iterator
        raw.seek(start)
    except OSError as e:
        read_error(path, 1, e, stats, on_warning)
        return iter(())
    fh = io.BufferedReader(_Range(raw, end - start), READ_BUFFER)
    lines = bounded_lines(fh, stats.max_line_bytes)
    if start == 0:
        lines = _without_bom(lines)
    return read_lines_of(lines, path, stats, on_warning, screen, owned=fh)


class _Range(io.RawIOBase):
    """The next ``length`` bytes of a raw file, as a raw stream of their own (a buffered reader
    over it reads lines with the same C code as a whole file, and stops at the range's end)."""

    def __init__(self, raw: io.FileIO, length: int) -> None:
        self.raw = raw
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(b)
        n = self.raw.readinto(view[:min(len(view), self.left)]) or 0
        self.left -= n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    for first in lines:
        return chain((first.removeprefix(BOM),), lines)
    return iter(())
