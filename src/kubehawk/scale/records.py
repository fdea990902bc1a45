"""What a worker sends the merge: each matched event with the rules it matched, in reading order.

An event read from a JSON-lines file crosses as its line (re-decoded by the merge, cheaper than
pickling a decoded head); the lines of a part travel as one bytes object with their end offsets
and line numbers in arrays, so that crossing processes costs a copy, not an object per event.
Any other event (a cloud export's record, a document's item) crosses as head, origin and extras.

A match of a first-seen rule with nothing after it but the baseline's verdict
(:meth:`Detector.first_seen_only`) crosses as a first-seen record: what that rule judges it by,
its auditID (for the dedup), its entry (rule, key, value) and its timestamp text. Such matches
are most of a busy cluster's (every ServiceAccount request, for the built-in pack) and almost all
"known": the merge judges them without an event. A line's first-seen rules at the front of its
rules (the engine's plan order) become such records, one each, and the rest of its rules, if
any, a replayed record after them: the merge runs them in that order, as one process does.
Only the first line of each entry in a part crosses in the entries' blob, the one that can be
new; the merge reads any other it needs again from the part (``fetch``), unless a replayed
record carries it.
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
    """One worker's part: its matches in reading order and what the merge needs besides. Two
    kinds of record, each in reading order: records replayed with their event, and first-seen
    records judged by their entry (see the module docstring); ``fs_before`` puts them in one order."""

    # records replayed with their event, per record:
    blob: bytes = b""  # their lines, one after another
    ends: array = field(default_factory=lambda: array("q"))  # where its line ends in blob
    linenos: array = field(default_factory=lambda: array("q"))  # its line number (file:line)
    rules: list[tuple[int, ...]] = field(default_factory=list)  # the ordinals of its rules
    fs_before: array = field(default_factory=lambda: array("q"))  # how many first-seen records come before it
    others: dict[int, Packed] = field(default_factory=dict)  # record number -> an event that is no line
    # first-seen records, per record:
    fs_rules: array = field(default_factory=lambda: array("i"))  # its rule's ordinal
    fs_entries: array = field(default_factory=lambda: array("i"))  # its entry's number in `entries`
    fs_linenos: array = field(default_factory=lambda: array("q"))  # its line number
    fs_stamps: list[Any] = field(default_factory=list)  # its timestamp text (event_stamp)
    fs_aids: list[str | None] = field(default_factory=list)  # its auditID
    # per entry, in order of first sight: the entry, its first record and that record's line
    entries: list[Entry | None] = field(default_factory=list)
    entry_first: array = field(default_factory=lambda: array("q"))
    entry_blob: bytes = b""
    entry_ends: array = field(default_factory=lambda: array("q"))
    name: str = ""  # the file the lines are from
    first: Packed | None = None  # the part's first event with a time (baselines start there)
    first_at: int = 0  # how many records (of both kinds) come before it
    stats: dict[str, Any] = field(default_factory=dict)  # ReadStats.summary() of the part
    engine_errors: list[str] = field(default_factory=list)
    where: str = ""  # the part, for messages

    def __len__(self) -> int:
        return len(self.rules) + len(self.fs_rules)

    def first_seen_before(self, i: int) -> int:
        """How many first-seen records come before replayed record ``i`` (all of them for
        ``i == len(rules)``, the end of the part)."""
        return self.fs_before[i] if i < len(self.rules) else len(self.fs_rules)

    def event_at(self, i: int, line_base: int = 0) -> AuditEvent:
        """The event of replayed record ``i``; ``line_base``: the lines of the file before the
        part (a byte range counts its lines from its start)."""
        start = self.ends[i - 1] if i else 0
        end = self.ends[i]
        if end != start:
            return self.line_event(self.blob[start:end], self.linenos[i], line_base)
        head, origin, extra, line = self.others[i]
        return AuditEvent(head, origin, extra, line)

    def first_seen_event(self, j: int, line_base: int = 0) -> AuditEvent | None:
        """The event of first-seen record ``j`` when its line crossed (its entry's first in the
        part), else None (``fs_linenos[j]`` says which line of the part to read again)."""
        n = self.fs_entries[j]
        if self.entry_first[n] != j:
            return None
        return self.line_event(self.entry_blob[self.entry_ends[n - 1] if n else 0:self.entry_ends[n]],
                               self.fs_linenos[j], line_base)

    def line_event(self, line: bytes, n: int, line_base: int = 0) -> AuditEvent:
        """The event of line ``n`` of the part (a line the worker's reader took the fast path for,
        so decode_head takes it), named as one process names it: ``file:line`` of the whole file."""
        return AuditEvent(decode_head(line), (self.name, n + line_base), None, line)

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
    the first-seen rules whose matches cross as first-seen records (see the module docstring).

    Until the first event with a time the events go one by one (:meth:`Engine.process`, the line
    screen learns nothing), as :meth:`Detector.alerts` does while the baselines wait for their
    start: the first timed event is then the one a single process would see.
    """
    lines: list[bytes] = []  # the replayed records' lines
    entry_lines: list[bytes] = []  # each entry's first line
    ends, linenos, rules, others, fs_before = out.ends, out.linenos, out.rules, out.others, out.fs_before
    fs_rules, fs_entries, fs_linenos, fs_stamps, fs_aids = (out.fs_rules, out.fs_entries, out.fs_linenos,
                                                            out.fs_stamps, out.fs_aids)
    entries, entry_first, entry_ends = out.entries, out.entry_first, out.entry_ends
    interned: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple per rule combination: pickles once
    numbers: dict[Entry | None, int] = {}  # entry -> its number in `entries`
    readers = readers or {}
    # a rule whose match is a first-seen record -> (its ordinal, its entry reader)
    first_seen_rules = {r: (r.ordinal, readers[r.ordinal]) for r in engine.rules if r.ordinal in readers}
    name = out.name
    prefix = name + ":"
    size = entry_size = 0

    def first_seen(ev: AuditEvent, rule: tuple[int, Callable[[AuditEvent], Entry | None]], lineno: int) -> None:
        nonlocal entry_size
        k = rule[1](ev)
        number = numbers.get(k)
        if number is None:  # the entry's first line in the part: the one that can be new
            number = numbers[k] = len(entries)
            entries.append(k)
            entry_first.append(len(fs_rules))
            entry_lines.append(ev._line)
            entry_size += len(ev._line)
            entry_ends.append(entry_size)
        fs_rules.append(rule[0])
        fs_entries.append(number)
        fs_linenos.append(lineno)
        fs_stamps.append(event_stamp(ev))
        fs_aids.append(ev.head.auditID)

    def add(ev: AuditEvent, matched: list[Any]) -> None:
        nonlocal size
        o = ev._origin
        line = ev._line
        if o.__class__ is str and o.startswith(prefix) and o[len(prefix):].isdigit() and fast_decoded(ev.head):
            o = (name, int(o[len(prefix):]))  # a (file, line) origin formatted (AuditEvent.origin was asked)
        plain = ev._extra is None and line is not None and o.__class__ is tuple and o[0] == name
        if plain:  # its first-seen rules in front (in plan order) are judged by entry, the rest replayed
            k = 0
            while k < len(matched) and matched[k] in first_seen_rules:
                first_seen(ev, first_seen_rules[matched[k]], o[1])
                k += 1
            if k == len(matched):
                return
            matched = matched[k:]
        ordinals = tuple([r.ordinal for r in matched])
        rules.append(interned.setdefault(ordinals, ordinals))
        fs_before.append(len(fs_rules))
        if plain:
            linenos.append(o[1])
            lines.append(line)
            size += len(line)
        else:
            others[len(rules) - 1] = (ev.head, o, ev._extra, line)
            linenos.append(0)
        ends.append(size)

    it = iter(events)
    for ev in it:
        matched = engine.process(ev)
        if event_epoch(ev) is not None:
            out.first, out.first_at = (ev.head, ev._origin, ev._extra, ev._line), len(out)
            if matched:
                add(ev, matched)
            break
        if matched:
            add(ev, matched)
    for ev, matched in engine.stream(it):
        # most records: a lone match of a first-seen rule in a plain line, as add() takes it
        if len(matched) == 1 and (rule := first_seen_rules.get(matched[0])) is not None:
            o = ev._origin
            if o.__class__ is tuple and o[0] == name and ev._extra is None and ev._line is not None:
                first_seen(ev, rule, o[1])
                continue
        add(ev, matched)
    out.blob = b"".join(lines)
    out.entry_blob = b"".join(entry_lines)
    return out
