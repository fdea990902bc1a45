"""Read audit events from files, directories, compressed files and stdin, in flat memory.

One reader for every way a log reaches us on disk: the kube-apiserver log backend (one
Event per line), a pretty-printed document (an Event, a webhook EventList, a JSON array,
a cloud export such as ``gcloud logging read --format=json``), a stream of documents
(``jq .`` output), gzip/bzip2/xz (found by magic bytes, not by name), directories (rotated
files oldest first) and ``-`` for stdin. Lines are streamed, so memory stays flat whatever
the size; only a single-document file is held whole, since it must be decoded whole.

Bad input never raises: each malformed record gives one warning naming ``file:line`` and is
counted in :class:`ReadStats`; the caller decides the exit code.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, TYPE_CHECKING, Any

import msgspec

from kubehawk.event import AuditEvent, EventDecodeError, decode_head, event_from_dict
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

if TYPE_CHECKING:
    from kubehawk.rules.linescreen import LineScreen

__all__ = [
    "ReadStats",
    "iter_files",
    "order_files",
    "line_starts",
    "read_lines_of",
    "read_paths",
    "read_range",
    "read_stream",
    "splittable",
]

STDIN = "-"
# Bytes read from a file at a time: with the default 8 KiB a line of about 1 KB costs twice as
# much to split off (a refill, a system call, every few lines).
READ_BUFFER = 1 << 18
STDIN_NAME = "<stdin>"

Warn = Callable[[str], None] | None


class ReadStats:
    """Counters for one run of the readers, shown in the end summary.

    ``bad`` counts malformed JSON, wrong-typed fields, unknown shapes and unreadable
    paths (each also gives one warning); ``skipped`` counts well-formed records that
    hold no audit event (:class:`SkipRecord`). Only the first ``max_warnings`` warning
    texts are kept, so a log full of garbage cannot grow memory. One thread writes;
    others may read :meth:`summary` at any time (while a JSON-lines file is read, its
    line and event counts are brought up to date every few thousand lines).
    """

    def __init__(self, max_warnings: int = 100) -> None:
        self.files = 0
        self.lines = 0
        self.events = 0
        self.bad = 0
        self.skipped = 0
        self.max_warnings = max_warnings
        self.warnings: list[str] = []
        self._lock = threading.Lock()

    def warn(self, message: str, on_warning: Warn = None) -> None:
        """Count one bad record (or path) and report it once."""
        with self._lock:
            self.bad += 1
            if len(self.warnings) < self.max_warnings:
                self.warnings.append(message)
        if on_warning is not None:
            on_warning(message)

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
        """Count another reader's :meth:`summary` in (a worker's part of a split run, kubehawk.scale):
        files, lines, events, bad and skipped records, and its warnings up to ``max_warnings``."""
        with self._lock:
            self.files += summary["files"]
            self.lines += summary["lines"]
            self.events += summary["events"]
            self.bad += summary["bad"]
            self.skipped += summary["skipped"]
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
                "warnings": list(self.warnings),
                "warnings_dropped": max(0, self.bad - len(self.warnings)),
            }

    def __repr__(self) -> str:
        s = self.summary()
        return f"ReadStats(files={s['files']}, lines={s['lines']}, events={s['events']}, bad={s['bad']}, skipped={s['skipped']})"


# --- one record -> events ------------------------------------------------------------------


def _describe(err: Exception, line: bytes | None = None) -> str:
    # Anything but EventDecodeError is a converter tripping over a shape it did not expect.
    msg = str(err) if isinstance(err, EventDecodeError) else f"{type(err).__name__}: {err}"
    if line is not None and b' AUDIT: id="' in line[:200]:
        msg = "legacy text audit format (--audit-log-format=legacy) is not supported; use --audit-log-format=json"
    return msg


def emit_line(line: bytes, origin: str, stats: ReadStats, on_warning: Warn) -> Iterator[AuditEvent]:
    """Events of one line; a bad line is warned about and counted, never raised."""
    return _counted(line_to_events(line, origin), origin, stats, on_warning, line)


def _counted(events: Iterator[AuditEvent], origin: str, stats: ReadStats, on_warning: Warn,
             line: bytes | None = None) -> Iterator[AuditEvent]:
    """``events`` of one record, counted; a record skipped or bad is reported, never raised."""
    try:
        for ev in events:
            stats.events += 1
            yield ev
    except SkipRecord as e:
        stats.skip(e, origin, on_warning)
    except Exception as e:  # noqa: BLE001 - bad input of any shape must not stop the run
        stats.warn(f"{origin}: {_describe(e, line)}", on_warning)


def _emit_value(obj: Any, origin: str, stats: ReadStats, on_warning: Warn) -> Iterator[AuditEvent]:
    """Events of one decoded document; items of a list or EventList fail one by one."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _emit_value(item, f"{origin}[{i}]", stats, on_warning)
        return
    if isinstance(obj, dict) and obj.get("kind") == "EventList" and isinstance(obj.get("items"), list):
        for i, item in enumerate(obj["items"]):
            where = f"{origin} item {i}"
            try:
                ev = event_from_dict(item, where)
            except Exception as e:  # noqa: BLE001
                stats.warn(f"{where}: {_describe(e)}", on_warning)
                continue
            stats.events += 1
            yield ev
        return
    yield from _counted(to_events(obj, origin), origin, stats, on_warning)


_json = msgspec.json.Decoder()
_BYTE_AT = re.compile(r"\(byte (\d+)\)")
_WS = b" \t\r\n"


def _emit_documents(
    data: bytes, name: str, first_line: int, stats: ReadStats, on_warning: Warn
) -> Generator[AuditEvent, None, bool]:
    """Events of a file holding one JSON document or several in a row (``jq .`` output).

    Each document's origin is ``name:line`` of its first line; a malformed document
    gives one warning at the line where the JSON breaks and ends the file. Returns
    False, having emitted nothing, when the first document is broken but some line is
    a whole JSON object by itself: the file is JSON lines and must be read as such.
    """
    view = memoryview(data)
    pos = 0
    line = first_line
    n = len(data)
    start = 0  # where the first document begins
    while start < n and data[start] in _WS:
        start += 1
    while True:
        while pos < n and data[pos] in _WS:
            if data[pos] == 0x0A:
                line += 1
            pos += 1
        if pos >= n:
            return True
        try:
            obj = _json.decode(view[pos:])
            end = n
        except msgspec.DecodeError as e:
            msg = str(e)
            m = _BYTE_AT.search(msg)
            found = _split_trailing(view, pos, int(m.group(1))) if "trailing characters" in msg and m else None
            if found is not None:
                obj, end = found
            else:
                if pos == start and _has_json_line(data):
                    return False
                at = pos + int(m.group(1)) if m else n
                bad_line = line + data.count(b"\n", pos, min(at, n))
                if not m:
                    msg += " (document ends before it is complete)"
                stats.warn(f"{name}:{bad_line}: malformed JSON document: {msg}", on_warning)
                return True
        yield from _emit_value(obj, f"{name}:{line}", stats, on_warning)
        line += data.count(b"\n", pos, end)
        pos = end


def _has_json_line(data: bytes) -> bool:
    """Does any line hold a whole JSON object (``{"...}``)? Pretty-printed documents
    put each key on its own line, so their lines are fragments."""
    for raw in io.BytesIO(data):
        line = raw.strip()
        if line.startswith(b'{"') and _is_complete_json(line):
            return True
    return False


def _split_trailing(view: memoryview, pos: int, at: int) -> tuple[Any, int] | None:
    """The first of several documents in a row, given where msgspec saw the next one.

    msgspec reports the offset just after the first trailing character; try both
    readings of it so another version's convention cannot split a document wrongly.
    """
    for end in (pos + at - 1, pos + at):
        try:
            return _json.decode(view[pos:end]), end
        except msgspec.DecodeError:
            continue
    return None


# --- one stream ----------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"


def _is_complete_json(line: bytes) -> bool:
    try:
        _json.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def _looks_like_document(second: bytes) -> bool:
    """Given a first line that opens a JSON value without closing it: is this a
    pretty-printed document (True) or JSON lines whose first line is broken (False)?

    Cheap: a document's second line is a fragment; in JSON lines it is a whole value.
    """
    return not (second[:1] in (b"{", b"[") and _is_complete_json(second))


def read_stream(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn = None,
                screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """Events of one already-opened binary stream (decompressed), named ``name`` in origins.

    Read errors end the stream with one warning naming ``name:line``; never raises. ``screen``:
    see :func:`read_paths`.
    """
    yield from _open_events(fh, name, stats, on_warning, owned=False, compressed=False, screen=screen)


def _layout(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn, owned: IO[bytes] | None,
            screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of a stream, its layout decided now from its first lines (read now).

    A plain function handing back the iterator that does the work, so that every event
    of a file crosses one generator only (:func:`_read_lines` for JSON lines).
    ``owned``: the file to close once the stream is done.
    """
    lines = iter(fh)
    head: list[bytes] = []  # lines read while deciding the layout, replayed below
    first: bytes | None = None
    document = False
    for raw in lines:
        if not head and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        head.append(raw)
        stripped = raw.strip()
        if not stripped:
            continue
        if first is None:
            first = stripped
            # Only a line that opens a JSON value without closing it may start a document.
            if first[:1] not in (b"{", b"[") or _is_complete_json(first):
                break
            if first in (b"{", b"["):
                document = True
                break
        else:
            document = _looks_like_document(stripped)
            break
    # A file that ends on its first line is one (cut) line, not a document: the line
    # formats get their say (CloudWatch's "[Truncated...]" is a skip, not an error).
    if document:
        data = b"".join(head) + fh.read()
        if owned is not None:
            owned.close()  # the document is in memory
        return _documents(data, name, stats, on_warning, screen)
    return _read_lines(chain(head, lines) if head else lines, name, stats, on_warning, owned, screen)


def _documents(data: bytes, name: str, stats: ReadStats, on_warning: Warn, screen: LineScreen | None
               ) -> Iterator[AuditEvent]:
    if (yield from _emit_documents(data, name, 1, stats, on_warning)):
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
    (another format, a wrong type, JSON broken) takes the general path, which names the
    problem with ``file:line``. A read error
    (truncated gzip, I/O) ends the file with one warning; ``owned`` is closed at the end.
    A line the ``screen`` knows meets no rule is counted as an event and not decoded.
    """
    decode = decode_head
    skip = screen.skip if screen is not None else None
    event = AuditEvent
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
                except msgspec.DecodeError:
                    pass
                else:
                    if h.verb is not None or h.requestURI is not None or h.auditID is not None:
                        found += 1
                        yield event(h, (name, lineno), None, raw)
                        continue
                stats.lines += lineno - counted
                stats.events += found
                counted, found = lineno, 0
                line = raw.strip()
                if line:
                    yield from emit_line(line, f"{name}:{lineno}", stats, on_warning)
            if lineno - start < _FLUSH_EVERY:
                return  # the lines are over (the counters are updated on the way out)
            stats.lines += lineno - counted
            stats.events += found
            counted, found = lineno, 0
    except _READ_ERRORS as e:
        # A truncated gzip, an I/O error: what was read stands, the file ends here.
        _read_error(name, lineno + 1, e, stats, on_warning)
    finally:
        stats.lines += lineno - counted
        stats.events += found
        if owned is not None:
            owned.close()


_MAGIC: tuple[tuple[bytes, Callable[[IO[bytes]], IO[bytes]]], ...] = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", lambda f: bz2.BZ2File(f, "rb")),
    (b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f, "rb")),  # noqa: SIM115 - closed with the file
)


def _decompressed(fh: io.BufferedReader) -> IO[bytes]:
    """The stream itself, or its decompressed view when the magic bytes say so."""
    head = fh.peek(6)[:6]
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(fh)
    return fh


_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def _read_error(name: str, line: int, err: Exception, stats: ReadStats, on_warning: Warn) -> None:
    stats.warn(f"{name}:{line}: read error: {type(err).__name__}: {err}", on_warning)


def _open_events(fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn, owned: bool = False,
                 compressed: bool = True, screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of an opened file (decompressed if ``compressed`` and the magic bytes say so).

    Never raises for bad input; ``owned``: close ``fh`` once done (or abandoned).
    """
    try:
        stream = _decompressed(fh) if compressed else fh  # type: ignore[arg-type]
        return _layout(stream, name, stats, on_warning, fh if owned else None, screen)
    except _READ_ERRORS as e:
        _read_error(name, 1, e, stats, on_warning)
        if owned:
            fh.close()
        return iter(())


def _read_opened(fh: io.BufferedReader, name: str, stats: ReadStats, on_warning: Warn) -> Iterator[AuditEvent]:
    """Events of an opened (maybe compressed) file that the caller closes."""
    return _open_events(fh, name, stats, on_warning)


def _stdin_buffer(stats: ReadStats, on_warning: Warn) -> IO[bytes] | None:
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        stats.warn(f"{STDIN_NAME}: cannot read: no binary standard input", on_warning)
        return None
    if not hasattr(buf, "peek"):
        buf = io.BufferedReader(buf)
    return buf


def _file_events(path: str, stats: ReadStats, on_warning: Warn, screen: LineScreen | None
                 ) -> Iterator[AuditEvent] | None:
    try:
        fh = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by the events' iterator
    except OSError as e:
        stats.warn(f"{path}: cannot read: {e.strerror or e}", on_warning)
        return None
    stats.files += 1
    return _open_events(fh, path, stats, on_warning, owned=True, screen=screen)


def _per_file(paths: Iterable[str | os.PathLike[str]], stats: ReadStats, on_warning: Warn,
              screen: LineScreen | None) -> Iterator[Iterator[AuditEvent]]:
    """One iterator of events per file, each opened when the previous one is done."""
    for p in paths:
        path = os.fspath(p)
        if path == STDIN:
            buf = _stdin_buffer(stats, on_warning)
            if buf is not None:
                stats.files += 1
                yield _open_events(buf, STDIN_NAME, stats, on_warning, screen=screen)
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            stats.warn(f"{path}: cannot read: {e.strerror or e}", on_warning)
            continue
        files = [path]
        if stat.S_ISDIR(st.st_mode):
            files = iter_files(path)
            if not files:
                stats.warn(f"{path}: no files in directory", on_warning)
        for f in files:
            events = _file_events(f, stats, on_warning, screen)
            if events is not None:
                yield events


def read_paths(paths: Iterable[str | os.PathLike[str]], stats: ReadStats, on_warning: Warn = None,
               screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """Every event in ``paths`` (files, directories, ``-`` for stdin), in order.

    Each event's ``origin`` is ``path:line`` (``path:line[i]`` / ``path:line item i`` for
    records inside a document, ``<stdin>:line`` for stdin). Never raises for bad input.
    Files are opened one at a time, as the events are read; the events of a JSON-lines
    file cross one Python generator only (the chain is C).

    ``screen``: the engine's :class:`kubehawk.rules.linescreen.LineScreen` (``Engine.line_screen``).
    JSON lines it knows meet no rule are counted as events but not decoded, so they never reach
    the caller: pass it only when the events go to that engine's :meth:`Engine.stream`.
    """
    return chain.from_iterable(_per_file(paths, stats, on_warning, screen))


# --- byte ranges of a large file (kubehawk.scale) --------------------------------------------


def splittable(path: str) -> bool:
    """Can the file be read in byte ranges? Only an uncompressed JSON-lines file can: its first
    non-blank line is a whole JSON object. A compressed file or a document is read whole."""
    try:
        with open(path, "rb") as fh:
            if any(fh.peek(6)[:6].startswith(magic) for magic, _ in _MAGIC):
                return False
            for raw in fh:
                line = raw.removeprefix(_BOM).strip()
                if line:
                    return line[:1] == b"{" and _is_complete_json(line)
    except OSError:
        return False
    return False


def line_starts(path: str, size: int, every: int) -> list[int]:
    """Offsets of the lines that start first at or after each multiple of ``every`` (0 included)."""
    starts = [0]
    with open(path, "rb") as fh:
        pos = every
        while pos < size:
            fh.seek(pos - 1)
            fh.readline()  # to the end of the line holding byte pos-1
            at = fh.tell()
            if at >= size:
                break
            if at > starts[-1]:
                starts.append(at)
            pos = max(pos + every, at + 1)
    return starts


def read_lines_of(lines: Iterator[bytes], name: str, stats: ReadStats, on_warning: Warn = None,
                  screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of JSON lines (or line-oriented exports) someone else has read (a Spark
    partition's lines), named ``name`` in origins with line numbers from 1."""
    return _read_lines(lines, name, stats, on_warning, None, screen)


def read_range(path: str, start: int, end: int, stats: ReadStats, on_warning: Warn = None,
               screen: LineScreen | None = None) -> Iterator[AuditEvent]:
    """The events of the JSON lines in bytes [start, end) of a file, both line starts (see
    :func:`line_starts`): one worker's part of a large file. Origins count lines from the range's
    first (``path:1``); the caller knows the lines before it. Memory: a batch of lines at a time."""
    try:
        fh = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by the events' iterator
        fh.seek(start)
    except OSError as e:
        _read_error(path, 1, e, stats, on_warning)
        return iter(())
    lines = chain.from_iterable(_batches(fh, end - start))
    if start == 0:
        lines = _without_bom(lines)
    return _read_lines(lines, path, stats, on_warning, fh, screen)


def _batches(fh: IO[bytes], length: int) -> Iterator[list[bytes]]:
    """The lines of the next ``length`` bytes of ``fh`` (which end at a line's end), a list of
    about READ_BUFFER bytes of lines at a time. ``readlines(hint)`` stops after the line that
    takes the total past ``hint``: a hint of ``length - 1`` stops at the range's last line."""
    while length > 0:
        if length > READ_BUFFER:
            batch = fh.readlines(READ_BUFFER)
        else:
            batch = fh.readlines(length - 1) if length > 1 else [fh.readline()]
        if not batch:
            return
        length -= sum(map(len, batch))
        yield batch


def _without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    for first in lines:
        return chain((first.removeprefix(_BOM),), lines)
    return iter(())


# --- directories and rotation order --------------------------------------------------------

_COMPRESSED = (".gz", ".bz2", ".xz")
# kube-apiserver log backend (lumberjack): audit-2024-10-30T11-19-19.911.log[.gz]
_LUMBERJACK = re.compile(r"^(?P<base>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)(?P<ext>\.[^.]+)?$")
# logrotate: audit.log.1, audit.log.2.gz (higher = older); dateext: audit.log-20241030
_LOGROTATE_NUM = re.compile(r"^(?P<base>.+)\.(?P<n>\d{1,4})$")
_LOGROTATE_DATE = re.compile(r"^(?P<base>.+)-(?P<date>\d{8}(?:\d{2,6})?)$")


@dataclass(frozen=True)
class Rotation:
    """Where a file stands in its rotation family (``base``); ``backup`` False = current."""

    base: str
    backup: bool
    rank: tuple[Any, ...]


def rotation_of(name: str) -> Rotation:
    """The rotation family of a file name and its age rank within it (smaller = older)."""
    stem = name
    for ext in _COMPRESSED:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    m = _LUMBERJACK.match(stem)
    if m:
        return Rotation(m["base"] + (m["ext"] or ""), True, (0, m["ts"], 0))
    m = _LOGROTATE_NUM.match(stem)
    if m:
        return Rotation(m["base"], True, (1, "", -int(m["n"])))
    m = _LOGROTATE_DATE.match(stem)
    if m:
        return Rotation(m["base"], True, (0, m["date"], 0))
    # The current file sorts after every backup of its family.
    return Rotation(stem, stem != name, (2, "", 0))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def order_files(paths: Iterable[str]) -> list[str]:
    """Oldest first: rotation families by name (lumberjack time stamps, logrotate numbers,
    the current file last); families and unrelated files by modification time, then name."""
    families: dict[tuple[str, str], list[tuple[tuple[Any, ...], str]]] = {}
    for p in paths:
        d, name = os.path.split(p)
        rot = rotation_of(name)
        families.setdefault((d, rot.base), []).append((rot.rank, p))
    ordered = []
    for key, members in families.items():
        members.sort()
        oldest = min(_mtime(p) for _, p in members)
        ordered.append((oldest, key, [p for _, p in members]))
    ordered.sort(key=lambda t: (t[0], t[1]))
    return [p for _, _, ps in ordered for p in ps]


def walk_files(root: str) -> list[str]:
    """Regular files under ``root``, recursively, hidden files and folders left out."""
    found: list[str] = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            p = os.path.join(d, f)
            try:
                if stat.S_ISREG(os.stat(p).st_mode):
                    found.append(p)
            except OSError:
                continue
    return found


def iter_files(root: str) -> list[str]:
    """The files of a directory in reading order (see :func:`order_files`)."""
    return order_files(walk_files(root))


def __getattr__(name: str) -> Any:
    """``follow_paths`` lives in :mod:`kubehawk.sources.follow` (which imports this module)."""
    if name == "follow_paths":
        from kubehawk.sources.follow import follow_paths

        return follow_paths
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
