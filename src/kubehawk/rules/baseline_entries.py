"""What a first-seen rule judges an event by: its entry, ``(rule, key, value)``.

One reader serves both halves of a run: the Detector's gate reads the entry of each match, and
in a split run (:mod:`kubehawk.scale`) the workers read it for the merge, which then judges the
match without decoding the event again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kubehawk.rules.baseline_spec import _MISSING, BaselineSpec, _reader

if TYPE_CHECKING:
    from kubehawk.event import AuditEvent

__all__ = ["Entries", "Entry"]

Entry = tuple[str, str, str]  # (rule id, key, value)


class Entries:
    """Per first-seen rule: the readers of its key and value fields, and a memo from the raw values
    read to the entry (bounded: dropped whole at ``size`` values per rule)."""

    def __init__(self, specs: Mapping[str, BaselineSpec], size: int = 100_000):
        self.specs = specs
        self.size = size
        self._readers = {rid: tuple(_reader(p) for p in (*spec.key, spec.value)) for rid, spec in specs.items()}
        self._memo: dict[str, dict[tuple[Any, ...], Entry | None]] = {rid: {} for rid in specs}

    def entry(self, rid: str, ev: AuditEvent) -> Entry | None:
        """(rule, key, value) of the event, or None when it has no key or no value. Remembered per
        raw values read (strings and None only: 1, 1.0 and true are equal keys but not equal text)."""
        spec = self.specs[rid]
        raw = tuple([read(ev) for read in self._readers[rid]])
        for v in raw:
            if v is not None and v.__class__ is not str:
                return _make_entry(rid, spec, raw)
        memo = self._memo[rid]
        k = memo.get(raw, _MISSING)
        if k is _MISSING:
            if len(memo) >= self.size:
                memo.clear()
            k = memo[raw] = _make_entry(rid, spec, raw)
        return k

    def reader(self, rid: str) -> Callable[[AuditEvent], Entry | None]:
        """``entry(rid, ev)`` for one rule, with its commonest case (a key and a value of text
        already in the memo) inlined: the gate asks it for every match of the rule."""
        entry = self.entry
        readers = self._readers[rid]
        if len(readers) != 2:
            return lambda ev: entry(rid, ev)
        r0, r1 = readers
        memo = self._memo[rid]

        def read(ev: AuditEvent) -> Entry | None:
            a = r0(ev)
            b = r1(ev)
            if (a is None or a.__class__ is str) and (b is None or b.__class__ is str):
                k = memo.get((a, b), _MISSING)
                if k is not _MISSING:
                    return k
            return entry(rid, ev)

        return read


def _make_entry(rid: str, spec: BaselineSpec, raw: tuple[Any, ...]) -> Entry | None:
    key, value = spec.key_from(raw[:-1]), spec.value_from(raw[-1])
    return None if key is None or value is None else (rid, key, value)
