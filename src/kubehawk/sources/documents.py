"""Document mode of the file reader: a file holding one JSON document, or several in a row.

An Event, a webhook EventList, a JSON array, a cloud export (``gcloud logging read
--format=json``), or a stream of documents (``jq .`` output). A document must be decoded whole,
so it is read whole, up to the run's line limit (``ReadStats.max_line_bytes``): a bigger one is
skipped with a warning rather than taking the machine's memory. A document that msgspec cannot
decode for its depth is taken apart by :mod:`kubehawk.jsonsplit`, so that only its deep members
are lost; invalid UTF-8 is replaced, counted and said once, as for lines.
"""

from __future__ import annotations

import io
import re
from collections.abc import Generator, Iterator
from typing import IO, Any

import msgspec

from kubehawk.event import TOO_DEEP, AuditEvent, event_from_dict
from kubehawk.jsonsplit import Split, split
from kubehawk.sources.readstats import ReadStats, Warn
from kubehawk.sources.records import describe, emit_value, repair_utf8

__all__ = ["emit_documents", "is_complete_json", "looks_like_document", "read_document"]

_json = msgspec.json.Decoder()
_BYTE_AT = re.compile(r"\(byte (\d+)\)")
_WS = b" \t\r\n"


def read_document(head: bytes, fh: IO[bytes], name: str, stats: ReadStats, on_warning: Warn) -> bytes | None:
    """``head`` and the rest of ``fh``, or None (with a warning) past the run's line limit."""
    cap = stats.max_line_bytes
    rest = fh.read(cap - len(head) + 1) if len(head) <= cap else b""
    if len(head) + len(rest) <= cap:
        return head + rest
    stats.warn(f"{name}: a JSON document longer than {cap} bytes (--max-line-mib); skipped "
               "(for a big export, write one event per line: jq -c '.[]')", on_warning, name)
    return None


def emit_documents(
    data: bytes, name: str, first_line: int, stats: ReadStats, on_warning: Warn
) -> Generator[AuditEvent, None, bool]:
    """Events of a file holding one JSON document or several in a row (``jq .`` output).

    Each document's origin is ``name:line`` of its first line; a malformed document
    gives one warning at the line where the JSON breaks and ends the file. Returns
    False, having emitted nothing, when the first document is broken but some line is
    a whole JSON object by itself: the file is JSON lines and must be read as such.
    """
    fixed = repair_utf8(data)
    if fixed is not None:
        stats.utf8_replaced(name, name, on_warning)
        data = fixed
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
        except RecursionError:
            found = split(data, pos)
            if found is None:
                stats.warn(f"{name}:{line}: {TOO_DEEP}", on_warning, name)
                return True
            yield from _emit_split(data, found, f"{name}:{line}", stats, on_warning, name)
            line += data.count(b"\n", pos, found.end)
            pos = found.end
            continue
        except msgspec.DecodeError as e:
            msg = str(e)
            m = _BYTE_AT.search(msg)
            found_doc = _split_trailing(view, pos, int(m.group(1))) if "trailing characters" in msg and m else None
            if found_doc is not None:
                obj, end = found_doc
            else:
                if pos == start and _has_json_line(data):
                    return False
                at = pos + int(m.group(1)) if m else n
                bad_line = line + data.count(b"\n", pos, min(at, n))
                if not m:
                    msg += " (document ends before it is complete)"
                stats.warn(f"{name}:{bad_line}: malformed JSON document: {msg}", on_warning, name)
                return True
        yield from emit_value(obj, f"{name}:{line}", stats, on_warning, name)
        line += data.count(b"\n", pos, end)
        pos = end


def _emit_split(data: bytes, found: Split, origin: str, stats: ReadStats, on_warning: Warn,
                file: str) -> Iterator[AuditEvent]:
    """A document too deep to decode whole, member by member: a JSON array's elements, an
    EventList's items; anything else is one record, and too deep."""
    if found.kind == "array":
        for i, m in enumerate(found.members):
            obj = _member(data[m.start:m.end], f"{origin}[{i}]", stats, on_warning, file)
            if obj is not _FAILED:
                yield from emit_value(obj, f"{origin}[{i}]", stats, on_warning, file)
        return
    members = {m.key: m for m in found.members}
    kind, items = members.get("kind"), members.get("items")
    listed = split(data, items.start) if items is not None else None
    if kind is None or data[kind.start:kind.end] != b'"EventList"' or listed is None or listed.kind != "array":
        stats.warn(f"{origin}: {TOO_DEEP}", on_warning, file)
        return
    for i, m in enumerate(listed.members):
        where = f"{origin} item {i}"
        obj = _member(data[m.start:m.end], where, stats, on_warning, file)
        if obj is _FAILED:
            continue
        try:
            ev = event_from_dict(obj, where)
        except Exception as e:  # noqa: BLE001 - as emit_value does for an EventList's items
            stats.warn(f"{where}: {describe(e)}", on_warning, file)
            continue
        stats.events += 1
        yield ev


_FAILED = object()


def _member(text: bytes, where: str, stats: ReadStats, on_warning: Warn, file: str) -> Any:
    try:
        return _json.decode(text)
    except RecursionError:
        stats.warn(f"{where}: {TOO_DEEP}", on_warning, file)
    except msgspec.DecodeError as e:
        stats.warn(f"{where}: malformed JSON: {e}", on_warning, file)
    return _FAILED


def _has_json_line(data: bytes) -> bool:
    """Does any line hold a whole JSON object (``{"...}``)? Pretty-printed documents
    put each key on its own line, so their lines are fragments."""
    for raw in io.BytesIO(data):
        line = raw.strip()
        if line.startswith(b'{"') and is_complete_json(line):
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
        except (msgspec.DecodeError, RecursionError):
            continue
    return None


def is_complete_json(line: bytes) -> bool:
    """Is ``line`` one whole JSON value? One too deep to decode counts as whole: it is a record."""
    try:
        _json.decode(line)
    except msgspec.DecodeError:
        return False
    except RecursionError:
        return True
    return True


def looks_like_document(second: bytes) -> bool:
    """Given a first line that opens a JSON value without closing it: is this a
    pretty-printed document (True) or JSON lines whose first line is broken (False)?

    Cheap: a document's second line is a fragment; in JSON lines it is a whole value.
    """
    return not (second[:1] in (b"{", b"[") and is_complete_json(second))
