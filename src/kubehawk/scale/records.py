"""What a worker sends the merge: each matched event with the rules it matched, in reading order.

An event read from a JSON-lines file crosses as its line (re-decoded by the merge, cheaper than
pickling a decoded head); the lines of a part travel as one bytes object with their end offsets
and line numbers in arrays, so that crossing processes costs a copy, not an object per event.
Any other event (a cloud export's record, a document's item) crosses as head, origin and extras.

A line that matched one rule only, a first-seen rule with nothing else after its match
(:meth:`Detector.first_seen_only`), crosses as what that rule judges it by: its auditID (for the
dedup), its entry (rule, key, value) and its timestamp text. Such matches are most of a busy
cluster's (every ServiceAccount request, for the built-in pack) and almost all "known": the
merge judges them without an event. Only the first line of each entry in a part crosses whole,
the one that can be new; the merge reads any other it needs again from the part (``fetch``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubehawk.event import AuditEvent, decode_head, fast_decoded
from kubehawk.rules.baseline_entries import Entries, Entry
from kubehawk.rules.baseline_spec import spec_of
from kubehawk.rules.correlation import event_epoch, event_stamp

if TYPE_CHECKING:
    from kubehawk.rules import Engine, RuleSet

__all__ = ["ChunkResult", "EntryReaders", "entry_readers", "find_matches"]

# rule ordinal -> the reader of a first-seen rule's entry (see entry_readers)
EntryReaders = dict[int, Callable[[AuditEvent], "Entry | None"]]

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
    # first-seen records (see the module docstring), per record (-1 / None for any other record):
    entry_at: array = field(default_factory=lambda: array("i"))  # its entry's number in `entries`
    stamps: list[Any] = field(default_factory=list)  # its timestamp text (event_stamp)
    aids: list[str | None] = field(default_factory=list)  # its auditID
    entries: list[Entry | None] = field(default_factory=list)  # each entry once, in order of first sight

    def __len__(self) -> int:
        return len(self.rules)

    def event_at(self, i: int, line_base: int = 0) -> AuditEvent | None:
        """The event of record ``i``; ``line_base``: the lines of the file before the part (a byte
        range counts its lines from its start). None for a first-seen record that crossed without
        its line (``linenos[i]`` says which line of the part to read again)."""
        start = self.ends[i - 1] if i else 0
        end = self.ends[i]
        if end != start:
            line = self.blob[start:end]
            # a line the worker's reader took the fast path for, where decode_head took it
            return AuditEvent(decode_head(line), (self.name, self.linenos[i] + line_base), None, line)
        if self.entry_at[i] >= 0:
            return None
        head, origin, extra, line = self.others[i]
        return AuditEvent(head, origin, extra, line)

    def first_event(self, line_base: int = 0) -> AuditEvent | None:
        if self.first is None:
            return None
        head, origin, extra, line = self.first
        if origin.__class__ is tuple:
            origin = (origin[0], origin[1] + line_base)
        return AuditEvent(head, origin, extra, line)


def entry_readers(ruleset: RuleSet, first_seen: Mapping[int, str]) -> EntryReaders:
    """The entry readers of the rules ``first_seen`` names (ordinal -> rule id), for a worker."""
    rules = {r.ordinal: r for r in ruleset.rules if r.ordinal in first_seen}
    entries = Entries({r.id: spec_of(r) for r in rules.values()})
    return {o: entries.reader(r.id) for o, r in rules.items()}


def find_matches(engine: Engine, events: Iterable[AuditEvent], out: ChunkResult,
                 readers: EntryReaders | None = None) -> ChunkResult:
    """Run a split-mode engine (``Engine.split``) over ``events``, filling ``out``; ``readers``:
    the first-seen rules whose lone matches cross as entries (see the module docstring).

    Until the first event with a time the events go one by one (:meth:`Engine.process`, the line
    screen learns nothing), as :meth:`Detector.alerts` does while the baselines wait for their
    start: the first timed event is then the one a single process would see.
    """
    lines: list[bytes] = []
    ends, linenos, rules, others = out.ends, out.linenos, out.rules, out.others
    entry_at, stamps, aids, entries = out.entry_at, out.stamps, out.aids, out.entries
    interned: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per rule combination: pickles once
    numbers: dict[Entry | None, int] = {}  # entry -> its number in `entries`
    alone: dict[Any, tuple[int, ...]] = {}  # rule -> the ordinals of a record it alone matched
    name = out.name
    prefix = name + ":"
    readers = readers or {}
    size = 0

    def add(ev: AuditEvent, matched: list[Any]) -> None:
        nonlocal size
        if len(matched) == 1:  # most records: one rule, maybe a first-seen one
            ordinals = alone.get(matched[0])
            if ordinals is None:
                o = (matched[0].ordinal,)
                ordinals = alone[matched[0]] = interned.setdefault(o, o)
            read = readers.get(ordinals[0])
        else:
            ordinals = tuple([r.ordinal for r in matched])
            ordinals = interned.setdefault(ordinals, ordinals)
            read = None
        rules.append(ordinals)
        o = ev._origin
        line = ev._line
        if o.__class__ is str and o.startswith(prefix) and o[len(prefix):].isdigit() and fast_decoded(ev.head):
            o = (name, int(o[len(prefix):]))  # a (file, line) origin formatted (AuditEvent.origin was asked)
        if ev._extra is None and line is not None and o.__class__ is tuple and o[0] == name:
            linenos.append(o[1])
            if read is not None:
                k = read(ev)
                number = numbers.get(k)
                if number is None:
                    number = numbers[k] = len(entries)
                    entries.append(k)
                    lines.append(line)  # the entry's first line in the part: the one that can be new
                    size += len(line)
                entry_at.append(number)
                stamps.append(event_stamp(ev))
                aids.append(ev.head.auditID)
            else:
                lines.append(line)
                size += len(line)
                entry_at.append(-1)
                stamps.append(None)
                aids.append(None)
        else:
            others[len(rules) - 1] = (ev.head, o, ev._extra, line)
            linenos.append(0)
            entry_at.append(-1)
            stamps.append(None)
            aids.append(None)
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
