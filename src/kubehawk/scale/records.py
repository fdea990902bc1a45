"""What a worker sends the merge: each matched event with the rules it matched, in reading order.

An event read from a JSON-lines file crosses as its line (bytes, re-decoded by the merge, which is
cheaper than pickling the decoded head); any other event (a cloud export's record, a document's
item) as its head, origin and extras.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent, decode_head
from kubehawk.rules.correlation import event_epoch

if TYPE_CHECKING:
    from kubehawk.rules import Engine

__all__ = ["ChunkResult", "Packed", "find_matches", "pack_event", "unpack_event"]

# (line, file, line number) for a line of a JSON-lines file; (None, head, origin, extra, line) otherwise
Packed = tuple[Any, ...]


def pack_event(ev: AuditEvent) -> Packed:
    o = ev._origin
    if ev._extra is None and ev._line is not None and o.__class__ is tuple:
        return (ev._line, o[0], o[1])
    return (None, ev.head, ev.origin, ev._extra, ev._line)


def unpack_event(p: Packed, line_base: int = 0) -> AuditEvent:
    """The event :func:`pack_event` packed; ``line_base``: the lines of the file before the
    worker's byte range (its line numbers count from the range's first line)."""
    if p[0] is not None:  # a line the worker's reader took the fast path for: decode_head took it there
        return AuditEvent(decode_head(p[0]), (p[1], p[2] + line_base), None, p[0])
    return AuditEvent(p[1], p[2], p[3], p[4])


@dataclass
class ChunkResult:
    """One worker's part: its matched events in reading order and what the merge needs besides."""

    records: list[tuple[Packed, tuple[int, ...]]] = field(default_factory=list)
    first: Packed | None = None  # the part's first event with a time (baselines start there)
    first_at: int = 0  # how many records come before it
    stats: dict[str, Any] = field(default_factory=dict)  # ReadStats.summary() of the part
    engine_errors: list[str] = field(default_factory=list)
    where: str = ""  # the part, for messages


def find_matches(engine: Engine, events: Iterable[AuditEvent], out: ChunkResult) -> ChunkResult:
    """Run a split-mode engine (``Engine.split``) over ``events``, filling ``out``.

    Until the first event with a time the events go one by one (:meth:`Engine.process`, the line
    screen learns nothing), as :meth:`Detector.alerts` does while the baselines wait for their
    start: the first timed event is then the one a single process would see.
    """
    records = out.records
    it = iter(events)
    for ev in it:
        rules = engine.process(ev)
        timed = event_epoch(ev) is not None
        if timed:
            out.first, out.first_at = pack_event(ev), len(records)
        if rules:
            records.append((pack_event(ev), tuple([r.ordinal for r in rules])))
        if timed:
            break
    for ev, rules in engine.stream(it):
        records.append((pack_event(ev), tuple([r.ordinal for r in rules])))
    return out
