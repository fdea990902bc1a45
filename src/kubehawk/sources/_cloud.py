"""Small helpers shared by the cloud-format converters (gke, eks, aks, yandex, openshift).

Kept private: each converter module registers its own formats with
:mod:`kubehawk.sources.normalize`; this module only holds what several of them need
(time normalisation, batch iteration that survives one bad member, JSON-in-a-string).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kubehawk.event import TOO_DEEP, AuditEvent, EventDecodeError, decode_event
from kubehawk.sources.normalize import SkipRecord

__all__ = [
    "SHAPE_ERRORS",
    "TRUNCATED_MARKER",
    "decode_native",
    "gather",
    "guard",
    "guard_detect",
    "guard_line",
    "json_value",
    "maybe_json",
    "rfc3339",
    "register",
    "register_line",
    "skip",
    "unpack_blob",
]

TRUNCATED_MARKER = "[Truncated...]"

_json = msgspec.json.Decoder()

_TS = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|z|UTC|[+-]\d\d:?\d\d)?$"
)


def rfc3339(value: Any) -> str | None:
    """A time in the audit Event's own shape: RFC 3339 UTC, 6 fractional digits.

    Accepts what the clouds hand out: RFC 3339 with 0-9 fractional digits, the
    space-separated BigQuery/Panther forms (``2024-02-16 11:48:22.742154000``,
    ``... UTC``), numeric offsets, and epoch milliseconds (CloudWatch).
    Returns None for anything else rather than guessing.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        try:
            dt = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not isinstance(value, str):
        return None
    if len(value) == 27 and value[10] == "T" and value[19] == "." and value[26] == "Z" and _TS.match(value):
        return value  # already the Event's own shape (the common case)
    m = _TS.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    except ValueError:
        return None
    if tz and tz not in ("Z", "z", "UTC"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# What a converter raises when a field has a type the format never uses there.
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)


def shape_error(what: str, err: Exception) -> EventDecodeError:
    return EventDecodeError(f"{what}: a field has an unexpected type ({type(err).__name__}: {err})")


def guard(convert: Callable[[Any, str], Iterator[AuditEvent]], what: str) -> Callable[[Any, str], Iterator[AuditEvent]]:
    """A record converter whose type confusions become :class:`EventDecodeError` (bad input, counted)."""

    def guarded(obj: Any, origin: str) -> Iterator[AuditEvent]:
        try:
            yield from convert(obj, origin)
        except (SkipRecord, EventDecodeError):
            raise
        except SHAPE_ERRORS as e:
            raise shape_error(what, e) from None
        except RecursionError:  # a hostile record nested deep enough to exhaust the stack
            raise EventDecodeError(f"{what}: {TOO_DEEP}") from None

    return guarded


def guard_detect(detect: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def guarded(obj: Any) -> bool:
        try:
            return bool(detect(obj))
        except SHAPE_ERRORS:
            return False

    return guarded


def guard_line(
    convert: Callable[[bytes, str], Iterator[AuditEvent] | None], what: str
) -> Callable[[bytes, str], Iterator[AuditEvent] | None]:
    def guarded(line: bytes, origin: str) -> Iterator[AuditEvent] | None:
        try:
            found = convert(line, origin)
        except SHAPE_ERRORS as e:
            if isinstance(e, EventDecodeError):
                raise
            raise shape_error(what, e) from None
        except RecursionError:
            raise EventDecodeError(f"{what}: {TOO_DEEP}") from None
        return None if found is None else guard(lambda _obj, _origin: found, what)(None, origin)

    return guarded


def skip(reason: str, count: int = 1) -> SkipRecord:
    err = SkipRecord(reason)
    err.count = count  # type: ignore[attr-defined]
    return err


def gather(
    members: Iterable[tuple[str, Any]],
    convert: Callable[[Any, str], Iterator[AuditEvent]],
    what: str,
) -> Iterator[AuditEvent]:
    """Convert every member of a batch record (log events, Event Hub records...).

    One truncated or malformed member must not lose the rest of the batch, so each
    member is converted on its own; after the good events have been yielded, a single
    :class:`SkipRecord` (or :class:`EventDecodeError` if any member was malformed)
    reports what was left out, with ``.count`` = number of members affected. Readers
    must therefore consume events as they come rather than ``list()`` the generator.
    """
    skipped: list[str] = []
    bad: list[str] = []
    total = 0
    for where, member in members:
        total += 1
        try:
            yield from convert(member, where)
        except SkipRecord as e:
            skipped.append(f"{where}: {e}")
        except EventDecodeError as e:
            bad.append(f"{where}: {e}")
        except SHAPE_ERRORS as e:
            bad.append(f"{where}: {shape_error(what, e)}")
        except RecursionError:
            bad.append(f"{where}: {TOO_DEEP}")
    if bad:
        more = f"; {len(skipped)} more skipped" if skipped else ""
        err = EventDecodeError(f"{len(bad)} of {total} {what} malformed, first {bad[0]}{more}")
        err.count = len(bad) + len(skipped)  # type: ignore[attr-defined]
        raise err
    if skipped:
        raise skip(f"{len(skipped)} of {total} {what} skipped, first {skipped[0]}", len(skipped))


_AUDIT_ID = re.compile(r'"auditID"\s*:\s*"([^"]*)"')


def truncated_id(text: str) -> str:
    m = _AUDIT_ID.search(text)
    return m.group(1) if m else "unknown"


def decode_native(message: str | bytes, origin: str, extra: dict[str, Any] | None = None) -> AuditEvent:
    """A native Event carried as a string (CloudWatch ``message``, AKS ``properties.log``...).

    A message cut by the transport (CloudWatch's ``[Truncated...]``) is skipped with
    the auditID it still shows; anything else that is not an Event is an error.
    """
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    stripped = text.rstrip()
    if stripped.endswith(TRUNCATED_MARKER):
        raise skip(f"event cut by the log transport ({TRUNCATED_MARKER}), auditID {truncated_id(stripped)}")
    ev = decode_event(stripped, origin)
    if extra:
        ev.extra.update(extra)
    return ev


def maybe_json(value: Any) -> Any:
    """Decode a value that may be a JSON document serialised as a string."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _json.decode(value)
        except msgspec.DecodeError:
            return value
        except RecursionError:
            raise EventDecodeError(TOO_DEEP) from None
    return value


def json_value(text: str | bytes, what: str) -> Any:
    try:
        return _json.decode(text)
    except msgspec.DecodeError as e:
        raise EventDecodeError(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise EventDecodeError(f"{what}: {TOO_DEEP}") from None


def unpack_blob(data: str | bytes, what: str) -> bytes:
    """base64 (on the JSON wire) and gzip (CloudWatch subscriptions) as found."""
    raw: bytes
    if isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise EventDecodeError(f"{what} is not valid base64") from None
    else:
        raw = bytes(data)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise EventDecodeError(f"{what}: corrupt gzip data ({e})") from None
    return raw


def register(name: str, detect: Callable[[Any], bool], convert: Callable[[Any, str], Iterator[AuditEvent]]) -> None:
    """``normalize.register_format`` with both callables guarded against type confusion."""
    from kubehawk.sources.normalize import register_format

    register_format(name, guard_detect(detect), guard(convert, name))


def register_line(name: str, convert: Callable[[bytes, str], Iterator[AuditEvent] | None]) -> None:
    from kubehawk.sources.normalize import register_line_format

    register_line_format(name, guard_line(convert, name))
