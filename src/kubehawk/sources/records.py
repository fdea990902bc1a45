"""One record (a line, a decoded document) to events, every problem counted and never raised.

Shared by the file reader (:mod:`kubehawk.sources.files`), document mode
(:mod:`kubehawk.sources.documents`) and the follower (:mod:`kubehawk.sources.follow`). ``file``
names the file a warning belongs to, so :class:`ReadStats` can cap the warnings per file.

A line whose only fault is invalid UTF-8 in a string is not dropped: the Go apiserver never writes
one, but a log that went through another tool may, and one bad byte in a user agent must not
lose an alert. The line is decoded again with the bad bytes replaced by U+FFFD, and the repair is
counted and said once per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events
from kubehawk.sources.readstats import ReadStats, Warn

__all__ = ["describe", "emit_line", "emit_value", "repair_utf8"]

_LEGACY = b' AUDIT: id="'
_BAD_UTF8 = "Invalid UTF-8"  # msgspec's word for it


def describe(err: Exception, line: bytes | None = None) -> str:
    # Anything but EventDecodeError is a converter tripping over a shape it did not expect.
    msg = str(err) if isinstance(err, EventDecodeError) else f"{type(err).__name__}: {err}"
    if line is not None and _LEGACY in line[:200]:
        msg = "legacy text audit format (--audit-log-format=legacy) is not supported; use --audit-log-format=json"
    return msg


def repair_utf8(data: bytes) -> bytes | None:
    """``data`` with invalid UTF-8 replaced by U+FFFD, or None when it is valid UTF-8."""
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")
    return None


def emit_line(line: bytes, origin: str, stats: ReadStats, on_warning: Warn,
              file: str | None = None) -> Iterator[AuditEvent]:
    """Events of one line; a bad line is warned about (as a record of ``file``) and counted, never raised."""
    return _counted(line_to_events(line, origin), origin, stats, on_warning, line, file)


def _counted(events: Iterator[AuditEvent], origin: str, stats: ReadStats, on_warning: Warn,
             line: bytes | None = None, file: str | None = None) -> Iterator[AuditEvent]:
    """``events`` of one record, counted; a record skipped or bad is reported, never raised."""
    yielded = False
    try:
        for ev in events:
            stats.events += 1
            yielded = True
            yield ev
    except SkipRecord as e:
        stats.skip(e, origin, on_warning)
    except Exception as e:  # noqa: BLE001 - bad input of any shape must not stop the run
        fixed = repair_utf8(line) if line is not None and not yielded and _BAD_UTF8 in str(e) else None
        if fixed is None:
            stats.warn(f"{origin}: {describe(e, line)}", on_warning, file)
            return
        before = stats.events
        yield from _counted(line_to_events(fixed, origin), origin, stats, on_warning, None, file)
        if stats.events > before:  # repaired, and kept (else the warning above says what else is wrong)
            stats.utf8_replaced(file or origin, origin, on_warning)


def emit_value(obj: Any, origin: str, stats: ReadStats, on_warning: Warn,
               file: str | None = None) -> Iterator[AuditEvent]:
    """Events of one decoded document; items of a list or EventList fail one by one."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            where = f"{origin}[{i}]"
            # a list in a list is left to to_events, which bounds how deep it goes
            yield from (_counted(to_events(item, where), where, stats, on_warning, None, file)
                        if isinstance(item, list) else emit_value(item, where, stats, on_warning, file))
        return
    if isinstance(obj, dict) and obj.get("kind") == "EventList" and isinstance(obj.get("items"), list):
        for i, item in enumerate(obj["items"]):
            where = f"{origin} item {i}"
            try:
                ev = event_from_dict(item, where)
            except Exception as e:  # noqa: BLE001
                stats.warn(f"{where}: {describe(e)}", on_warning, file)
                continue
            stats.events += 1
            yield ev
        return
    yield from _counted(to_events(obj, origin), origin, stats, on_warning, None, file)
