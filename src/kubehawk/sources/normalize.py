"""Turn any record a source hands us into audit Events: the single edge of the system.

Native Events and EventLists are handled here; each cloud format lives in its own
module and registers itself with :func:`register_format` (record-level: a decoded
JSON value) or :func:`register_line_format` (a text line that is not JSON by itself,
e.g. an S3 export line ``<timestamp> <json>``). Detection is by shape, so
``kubehawk detect`` and ``serve`` recognise every format without being told.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from kubehawk.event import TOO_DEEP, AuditEvent, EventDecodeError, decode_event, event_from_dict

__all__ = [
    "RecordFormat",
    "SkipRecord",
    "line_to_events",
    "register_format",
    "register_line_format",
    "to_events",
]


class SkipRecord(Exception):
    """A well-formed record that carries no audit event (a control message, another
    log category, a truncated export line). Counted and reported, never fatal."""


@dataclass(frozen=True)
class RecordFormat:
    name: str
    detect: Callable[[Any], bool]
    convert: Callable[[Any, str], Iterator[AuditEvent]]


@dataclass(frozen=True)
class LineFormat:
    name: str
    convert: Callable[[bytes, str], Iterator[AuditEvent] | None]  # None: not this format


_FORMATS: list[RecordFormat] = []
_LINE_FORMATS: list[LineFormat] = []
_plugins_loaded = False

# Modules that register formats on import; absent modules are simply not loaded.
_PLUGIN_MODULES = (
    "kubehawk.sources.gke",
    "kubehawk.sources.eks",
    "kubehawk.sources.aks",
    "kubehawk.sources.yandex",
    "kubehawk.sources.openshift",
    "kubehawk.sources.admission",
)


def register_format(name: str, detect: Callable[[Any], bool], convert: Callable[[Any, str], Iterator[AuditEvent]]) -> None:
    _FORMATS.append(RecordFormat(name, detect, convert))


def register_line_format(name: str, convert: Callable[[bytes, str], Iterator[AuditEvent] | None]) -> None:
    _LINE_FORMATS.append(LineFormat(name, convert))


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for mod in _PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def _is_event(obj: dict) -> bool:
    kind = obj.get("kind")
    if kind == "Event":
        return True
    return kind is None and "auditID" in obj and ("verb" in obj or "requestURI" in obj) and "stage" in obj


def to_events(obj: Any, origin: str = "") -> Iterator[AuditEvent]:
    """Every audit Event in one decoded JSON value, whatever its source format.

    Raises :class:`EventDecodeError` for something that is not any known format and
    :class:`SkipRecord` for a known record that holds no event.
    """
    if isinstance(obj, list):
        yield from _list_events(obj, origin, 1)
        return
    if not isinstance(obj, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(obj).__name__}")
    if _is_event(obj):
        yield event_from_dict(obj, origin)
        return
    if obj.get("kind") == "EventList":
        items = obj.get("items")
        if not isinstance(items, list):
            raise EventDecodeError("EventList without an items list")
        for i, item in enumerate(items):
            yield event_from_dict(item, f"{origin} item {i}") if isinstance(item, dict) else _bad(item, origin, i)
        return
    _load_plugins()
    for fmt in _FORMATS:
        if fmt.detect(obj):
            yield from fmt.convert(obj, origin)
            return
    keys = ", ".join(sorted(obj)[:6])
    raise EventDecodeError(f"not an audit Event nor a known export format (keys: {keys})")


# Lists of lists of events (``jq -s`` of arrays) are read; deeper nesting is no format, and walking
# it one generator per level would exhaust the stack on a hostile record.
MAX_LIST_NESTING = 4


def _list_events(items: list, origin: str, depth: int) -> Iterator[AuditEvent]:
    for i, item in enumerate(items):
        where = f"{origin}[{i}]"
        if not isinstance(item, list):
            yield from to_events(item, where)
        elif depth >= MAX_LIST_NESTING:
            raise EventDecodeError(f"lists nested more than {MAX_LIST_NESTING} deep are not audit Events")
        else:
            yield from _list_events(item, where, depth + 1)


def _bad(item: Any, origin: str, i: int) -> Iterator[AuditEvent]:
    raise EventDecodeError(f"{origin} item {i}: expected an Event object, got {type(item).__name__}")


_json = msgspec.json.Decoder()


def line_to_events(line: bytes, origin: str = "") -> Iterator[AuditEvent]:
    """Every event in one line of a JSON-lines (or line-oriented export) file.

    The common case, a native Event per line, takes the fast typed decode.
    """
    try:
        yield decode_event(line, origin)
        return
    except EventDecodeError as fast_err:
        first_error = fast_err
    try:
        obj = _json.decode(line)
    except RecursionError:
        raise EventDecodeError(TOO_DEEP) from None
    except msgspec.DecodeError:
        _load_plugins()
        for fmt in _LINE_FORMATS:
            found = fmt.convert(line, origin)
            if found is not None:
                yield from found
                return
        raise first_error from None
    if isinstance(obj, dict) and _is_event(obj):
        # A native Event whose fields have the wrong types: the typed error names the field.
        raise first_error
    yield from to_events(obj, origin)
