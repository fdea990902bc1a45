"""Read audit events from files, directories, compressed files and stdin, in flat memory.

One reader for every way a log reaches us on disk: the kube-apiserver log backend (one
Event per line), a pretty-printed document (an Event, a webhook EventList, a JSON array,
a cloud export such as ``gcloud logging read --format=json``), a stream of documents
(``jq .`` output), gzip/bzip2/xz (found by magic bytes, not by name), directories (rotated
files oldest first) and ``-`` for stdin. Lines are streamed, so memory stays flat whatever
the size; only a single-document file is held whole, since it must be decoded whole.

Memory is bounded whatever the input: no line is read past ``ReadStats.max_line_bytes`` (a
longer one is skipped with a warning, its rest read and dropped in pieces), no document is held
past it either, so a decompression bomb of one endless line costs that much and no more.

Bad input never raises: each malformed record gives one warning naming ``file:line`` and is
counted in :class:`ReadStats` (a few per file are shown); a file that is plainly not an audit
log (:mod:`kubehawk.sources.sniff`) is skipped with one line; the caller decides the exit code.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import chain, islice, repeat
from typing import IO, TYPE_CHECKING

import msgspec

from kubehawk.event import AuditEvent, decode_head
from kubehawk.sources.compression import READ_ERRORS, decompressed, is_compressed
from kubehawk.sources.documents import emit_documents, is_complete_json, looks_like_document, read_document
from kubehawk.sources.folders import FilesRead, iter_files
from kubehawk.sources.readstats import DEFAULT_MAX_LINE_BYTES, ReadStats, Warn
from kubehawk.sources.records import emit_line
from kubehawk.sources.sniff import SNIFF_BYTES, not_audit_reason

if TYPE_CHECKING:
    from kubehawk.rules.linescreen import LineScreen

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "ReadStats",
    "bounded_lines",
    "emit_line",
    "BOM",
    "READ_BUFFER",
    "bounded_lines",
    "is_compressed",
    "is_cut",
    "read_error",
    "read_lines_of",
    "read_paths",
    "read_stream",
]

STDIN = "-"
# Bytes read from a file at a time: with the default 8 KiB a line of about 1 KB costs twice as
# much to split off (a refill, a system call, every few lines).
READ_BUFFER = 1 << 18
STDIN_NAME = "<stdin>"


# --- one stream ----------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def bounded_lines(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """The lines of ``fh``, none longer than ``limit``: a longer line comes in pieces, the first
    exactly ``limit`` bytes long and not ending in a newline (see :func:`is_cut`)."""
    return iter(partial(fh.readline, limit), b"")


def is_cut(raw: bytes, limit: int) -> bool:
    """Is ``raw`` (from :func:`bounded_lines`) the first piece of a line longer than ``limit``?"""
    return len(raw) >= limit and raw[-1:] != b"\n"


def _drop_rest(lines: Iterator[bytes]) -> None:
    """Read and drop the pieces of a cut line, up to its newline (memory: one piece at a time)."""
    for more in lines:
        if more[-1:] == b"\n":
            return


def read_stream(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn = None,
                screen: LineScreen | None = None, compressed: bool = False) -> Iterator[AuditEvent]:
    """Events of one already-opened binary stream, named ``name`` in origins; ``compressed``: it
    may be gzip, bzip2 or xz (told by its first bytes, as a file's; ``fh`` must then peek).

    Read errors end the stream with one warning naming ``name:line``; never raises. ``screen``:
    see :func:`read_paths`.
    """
    yield from _open_events(fh, name, stats, on_warning, owned=False, compressed=compressed, screen=screen)


def _layout(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn, owned: IO[bytes] | None,
            screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of a stream, its layout decided now from its first lines (read now).

    A plain function handing back the iterator that does the work, so that every event
    of a file crosses one generator only (:func:`_read_lines` for JSON lines).
    ``owned``: the file to close once the stream is done.
    """
    limit = stats.max_line_bytes
    lines = bounded_lines(fh, limit)
    head: list[bytes] = []  # lines read while deciding the layout, replayed below
    blank = 0  # blank lines before the first line (replayed as such: a file of them costs no memory)
    first: bytes | None = None
    document = False
    for raw in lines:
        if not head and not blank and raw.startswith(BOM):
            raw = raw[len(BOM):]
        stripped = raw.strip()
        if not stripped and first is None:
            blank += 1
            continue
        head.append(raw)
        if is_cut(raw, limit):
            break  # a line past the limit: JSON lines, where it is reported
        if not stripped:
            continue
        if first is None:
            first = stripped
            # Only a line that opens a JSON value without closing it may start a document.
            if first[:1] not in (b"{", b"[") or is_complete_json(first):
                break
            if first in (b"{", b"["):
                document = True
                break
        else:
            document = looks_like_document(stripped)
            break
    # A file that ends on its first line is one (cut) line, not a document: the line
    # formats get their say (CloudWatch's "[Truncated...]" is a skip, not an error).
    if document:
        data = read_document(b"\n" * blank + b"".join(head), fh, name, stats, on_warning)
        if owned is not None:
            owned.close()  # the document is in memory
        return iter(()) if data is None else _documents(data, name, stats, on_warning, screen)
    if blank:
        return _read_lines(chain(repeat(b"\n", blank), head, lines), name, stats, on_warning, owned, screen)
    return _read_lines(chain(head, lines) if head else lines, name, stats, on_warning, owned, screen)


def _documents(data: bytes, name: str, stats: ReadStats, on_warning: Warn, screen: LineScreen | None
               ) -> Iterator[AuditEvent]:
    if (yield from emit_documents(data, name, 1, stats, on_warning)):
        stats.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return
    # Not a document after all: JSON lines whose first lines are broken.
    yield from _read_lines(iter(io.BytesIO(data)), name, stats, on_warning, None, screen)


# Lines between two updates of the shared counters (one thread writes, others may read).
_FLUSH_EVERY = 4096


def _read_lines(lines: Iterator[bytes], name: str, stats: ReadStats, on_warning: Warn,
                owned: IO[bytes] | None, screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """Events of JSON lines (or line-oriented exports), line numbers from 1.

    The common case, one native Event per line, is decoded right here: the typed head
    decoder (which also checks kind and apiVersion), the rest of the checks of
    :func:`kubehawk.event.decode_event` as one expression, the event built in C, the
    counters kept in locals and added to ``stats`` every ``_FLUSH_EVERY`` lines, at a line
    that is not a plain Event, and at the end. Any line the fast test does not accept
    (another format, a wrong type, JSON broken or nested too deeply, a line cut at the
    length limit) takes the general path, which names the problem with ``file:line``. A read
    error (truncated gzip, I/O) ends the file with one warning; ``owned`` is closed at the end.
    A line the ``screen`` knows meets no rule is counted as an event and not decoded.
    """
    decode = decode_head
    skip = screen.skip if screen is not None else None
    event = AuditEvent
    limit = stats.max_line_bytes
    lineno = counted = 0  # counted: lines already added to stats.lines
    found = 0  # events not yet added to stats.events
    try:
        while True:
            start = lineno
            for raw in islice(lines, _FLUSH_EVERY):
                lineno += 1
                if skip is not None and skip(raw):
                    found += 1  # an audit event no rule can match (kubehawk.rules.linescreen)
                    continue
                try:
                    h = decode(raw)  # kind and apiVersion checked in the decode; JSON allows the line break
                except (msgspec.DecodeError, RecursionError):
                    pass
                else:
                    if h.verb is not None or h.requestURI is not None or h.auditID is not None:
                        found += 1
                        yield event(h, (name, lineno), None, raw)
                        continue
                stats.lines += lineno - counted
                stats.events += found
                counted, found = lineno, 0
                if is_cut(raw, limit):
                    raw = b""  # let the piece go before the next one is read
                    _drop_rest(lines)
                    stats.overlong(name, lineno, on_warning)
                    continue
                line = raw.strip()
                if line[:1] == b"\x00":  # the hole logrotate's copytruncate leaves: no record's bytes
                    line = line.lstrip(b"\x00").strip()
                if line:
                    yield from emit_line(line, f"{name}:{lineno}", stats, on_warning, name)
            if lineno - start < _FLUSH_EVERY:
                return  # the lines are over (the counters are updated on the way out)
            stats.lines += lineno - counted
            stats.events += found
            counted, found = lineno, 0
    except READ_ERRORS as e:
        # A truncated gzip, an I/O error: what was read stands, the file ends here.
        read_error(name, lineno + 1, e, stats, on_warning)
    finally:
        stats.lines += lineno - counted
        stats.events += found
        if owned is not None:
            owned.close()


def read_error(name: str, line: int, err: Exception, stats: ReadStats, on_warning: Warn) -> None:
    stats.warn(f"{name}:{line}: read error: {type(err).__name__}: {err}", on_warning, name)


def _open_events(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn, owned: bool = False,
                 compressed: bool = True, screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of an opened file (decompressed if ``compressed`` and the magic bytes say so).

    Never raises for bad input; ``owned``: close ``fh`` once done (or abandoned). A stream that is
    plainly not an audit log is skipped with one line.
    """
    try:
        stream = decompressed(fh) if compressed else fh  # type: ignore[arg-type]
        peek = getattr(stream, "peek", None)
        why = not_audit_reason(peek(SNIFF_BYTES)[:SNIFF_BYTES]) if peek is not None else None
        if why is None:
            return _layout(stream, name, stats, on_warning, fh if owned else None, screen)
        stats.not_an_audit_log(name, why, on_warning)
    except READ_ERRORS as e:
        read_error(name, 1, e, stats, on_warning)
    if owned:
        fh.close()
    return iter(())


def _read_opened(fh: io.BufferedReader, name: str, stats: ReadStats, on_warning: Warn) -> Iterator[AuditEvent]:
    """Events of an opened (maybe compressed) file that the caller closes."""
    return _open_events(fh, name, stats, on_warning)


def _stdin_buffer(stats: ReadStats, on_warning: Warn) -> IO[bytes] | None:
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        stats.warn(f"{STDIN_NAME}: cannot read: no binary standard input", on_warning, STDIN_NAME)
        return None
    if not hasattr(buf, "peek"):
        buf = io.BufferedReader(buf)
    return buf


def _file_events(path: str, stats: ReadStats, on_warning: Warn, screen: LineScreen | None
                 ) -> Iterator[AuditEvent] | None:
    try:
        fh = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by the events' iterator
    except OSError as e:
        stats.warn(f"{path}: cannot read: {e.strerror or e}", on_warning, path)
        return None
    stats.files += 1
    return _open_events(fh, path, stats, on_warning, owned=True, screen=screen)


def _per_file(paths: Iterable[str | os.PathLike[str]], stats: ReadStats, on_warning: Warn,
              screen: LineScreen | None) -> Iterator[Iterator[AuditEvent]]:
    """One iterator of events per file, each opened when the previous one is done (which is
    when the warnings it held back are announced)."""
    read = FilesRead()
    for p in paths:
        path = os.fspath(p)
        if path == STDIN:
            buf = _stdin_buffer(stats, on_warning)
            if buf is not None:
                stats.files += 1
                yield _open_events(buf, STDIN_NAME, stats, on_warning, screen=screen)
                stats.end_file(STDIN_NAME, on_warning)
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            stats.warn(f"{path}: cannot read: {e.strerror or e}", on_warning, path)
            continue
        files = [path]
        if stat.S_ISDIR(st.st_mode):
            errors: list[OSError] = []
            files = iter_files(path, errors)
            for e in errors:
                where = e.filename or path
                stats.warn(f"{where}: cannot read: {e.strerror or e}", on_warning, where)
            if not files and not errors:
                stats.warn(f"{path}: no files in directory", on_warning, path)
        for f in files:
            if not read.first(f):
                continue
            events = _file_events(f, stats, on_warning, screen)
            if events is not None:
                yield events
            stats.end_file(f, on_warning)


def read_paths(paths: Iterable[str | os.PathLike[str]], stats: ReadStats, on_warning: Warn = None,
               screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """Every event in ``paths`` (files, directories, ``-`` for stdin), in order.

    Each event's ``origin`` is ``path:line`` (``path:line[i]`` / ``path:line item i`` for
    records inside a document, ``<stdin>:line`` for stdin). Never raises for bad input:
    an unreadable file or folder, here or deep in a directory, is one warning each.
    Files are opened one at a time, as the events are read; the events of a JSON-lines
    file cross one Python generator only (the chain is C). A file named more than once is read
    once (:class:`kubehawk.sources.folders.FilesRead`).

    ``screen``: the engine's :class:`kubehawk.rules.linescreen.LineScreen` (``Engine.line_screen``).
    JSON lines it knows meet no rule are counted as events but not decoded, so they never reach
    the caller: pass it only when the events go to that engine's :meth:`Engine.stream`.
    """
    return chain.from_iterable(_per_file(paths, stats, on_warning, screen))


def read_lines_of(lines: Iterator[bytes], name: str, stats: ReadStats, on_warning: Warn = None,
                  screen: LineScreen | None = None, owned: IO[bytes] | None = None) -> Iterator[AuditEvent]:
    """The events of JSON lines (or line-oriented exports) someone else has read (a Spark
    partition's lines, a byte range of a file: kubehawk.sources.ranges), named ``name`` in
    origins with line numbers from 1; ``owned``: closed once the lines are done (or abandoned)."""
    return _read_lines(lines, name, stats, on_warning, owned, screen)
