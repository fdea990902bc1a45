"""What a worker sends the merge: each matched event with the rules it matched, in reading order.

An event read from a JSON-lines file crosses as its line (re-decoded by the merge, cheaper than
pickling a decoded head); the lines of a part travel as one bytes object with their end offsets
and line numbers in arrays, so that crossing processes costs a copy, not an object per event.
Any other event (a cloud export's record, a document's item) crosses as head, origin and extras.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent, decode_head
from kubehawk.rules.correlation import event_epoch

if TYPE_CHECKING:
    from kubehawk.rules import Engine

__all__ = ["ChunkResult", "find_matches"]

# (head, origin, extra, line) of an event that is not a plain line of a JSON-lines file
Packed = tuple[Any, ...]


@dataclass
class ChunkResult:
    """One worker's part: its matched events in reading order and what the merge needs besides."""

    blob: bytes = b""  # the matched lines, one after another
    ends: array = field(default_factory=lambda: array("q"))  # per record: where its line ends in blob
    linenos: array = field(default_factory=lambda: array("q"))  # per record: its line number (file:line)
    rules: list[tuple[int, ...]] = field(default_factory=list)  # per record: the ordinals of its rules
    others: dict[int, Packed] = field(default_factory=dict)  # record number -> an event that is no line
    name: str = ""  # the file the lines are from
    first: Packed | None = None  # the part's first event with a time (baselines start there)
    first_at: int = 0  # how many records come before it
    stats: dict[str, Any] = field(default_factory=dict)  # ReadStats.summary() of the part
    engine_errors: list[str] = field(default_factory=list)
    where: str = ""  # the part, for messages

    def __len__(self) -> int:
        return len(self.rules)

    def events(self, line_base: int = 0) -> Iterator[tuple[AuditEvent, tuple[int, ...]]]:
        """(event, rule ordinals) of each record; ``line_base``: the lines of the file before the
        part (a byte range counts its lines from its start)."""
        blob, ends, linenos, others, name = self.blob, self.ends, self.linenos, self.others, self.name
        start = 0
        for i, ordinals in enumerate(self.rules):
            end = ends[i]
            if end == start:
                head, origin, extra, line = others[i]
                yield AuditEvent(head, origin, extra, line), ordinals
            else:
                line = blob[start:end]
                # a line the worker's reader took the fast path for, where decode_head took it
                yield AuditEvent(decode_head(line), (name, linenos[i] + line_base), None, line), ordinals
            start = end

    def first_event(self, line_base: int = 0) -> AuditEvent | None:
        if self.first is None:
            return None
        head, origin, extra, line = self.first
        if origin.__class__ is tuple:
            origin = (origin[0], origin[1] + line_base)
        return AuditEvent(head, origin, extra, line)


def find_matches(engine: Engine, events: Iterable[AuditEvent], out: ChunkResult) -> ChunkResult:
    """Run a split-mode engine (``Engine.split``) over ``events``, filling ``out``.

    Until the first event with a time the events go one by one (:meth:`Engine.process`, the line
    screen learns nothing), as :meth:`Detector.alerts` does while the baselines wait for their
    start: the first timed event is then the one a single process would see.
    """
    lines: list[bytes] = []
    ends, linenos, rules, others = out.ends, out.linenos, out.rules, out.others
    interned: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per rule combination: pickles once
    size = 0

    def add(ev: AuditEvent, matched: list[Any]) -> None:
        nonlocal size
        ordinals = tuple([r.ordinal for r in matched])
        rules.append(interned.setdefault(ordinals, ordinals))
        o = ev._origin
        if ev._extra is None and ev._line is not None and o.__class__ is tuple and o[0] == out.name:
            lines.append(ev._line)
            size += len(ev._line)
            linenos.append(o[1])
        else:
            others[len(rules) - 1] = (ev.head, ev._origin, ev._extra, ev._line)
            linenos.append(0)
        ends.append(size)

    it = iter(events)
    for ev in it:
        matched = engine.process(ev)
        if event_epoch(ev) is not None:
            out.first, out.first_at = (ev.head, ev._origin, ev._extra, ev._line), len(rules)
            if matched:
                add(ev, matched)
            break
        if matched:
            add(ev, matched)
    for ev, matched in engine.stream(it):
        add(ev, matched)
    out.blob = b"".join(lines)
    return out
