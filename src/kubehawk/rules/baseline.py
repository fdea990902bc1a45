"""First-seen baselines: alert when a value was never seen before for a key.

Some intrusions look like ordinary requests and are only odd *for this cluster*: an
identity that has never read secrets cluster-wide, a person who has never exec'd into a
pod, a ServiceAccount token suddenly used from a network it never came from. A baseline
rule is a normal Sigma rule (its detection selects the sensitive action) with one custom
attribute::

    baseline:
      key: [user.username]      # what the baseline is kept per (empty list: one set for all)
      value: x.source_ip        # the value that must have been seen before for that key
      network: 16               # optional: compare IPs by their /16 (IPv4) and /48 (IPv6)
      transform: product        # optional: compare user agents by product ("kubectl")
      learn_days: 7             # optional: this rule's learning period (else the config's)
      per_key: true             # optional: each key also gets its own learning period from its
                                # first sighting (a new ServiceAccount learns its networks first)

A match of such a rule becomes an alert only when the value is new for the key *after*
the rule's learning period; during the learning period values are only recorded. The
learning period starts at the first event processed with the rule enabled (event time,
so replaying an archive learns from its first days); with ``per_key`` a key first seen
later (a newly deployed app's ServiceAccount) has its own learning period from then. Events without the key or the value
are not judged (no alert).

Knowledge lives in a SQLite file (WAL) named by the config::

    baseline:
      path: /var/lib/kubehawk/baseline.sqlite
      learning_days: 7          # default learning period
      cache_entries: 100000     # known values kept in memory (LRU); the rest stay on disk
      flush_every: 500          # pending writes before a commit (also every 5 s and at the end)

Without ``path`` the same store runs in memory (SQLite ``:memory:``): baselines learn
within one run and forget at exit, which still suits a long archive. Whoever passes a
``note`` callback (the CLI does; the library is silent unless asked) hears so once, when a
first-seen rule first matches something. Memory is bounded by ``cache_entries`` plus ``flush_every`` pending rows
(the in-memory store excepted, which holds every value it learned).
"""

from __future__ import annotations

import sqlite3
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubehawk.config import ConfigError
from kubehawk.rules.baseline_entries import Entries, Entry
from kubehawk.rules.baseline_spec import BaselineSpec, _utc_day, spec_of
from kubehawk.rules.baseline_store import BaselineStore
from kubehawk.rules.correlation import epoch_of, event_epoch

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent
    from kubehawk.rules.model import Match, Rule

__all__ = ["CONFIG_KEYS", "BaselineConfig", "BaselineSpec", "BaselineStore", "Baselines", "baseline_config",
           "spec_of"]

DAY = 86400.0
CONFIG_KEYS = ("path", "learning_days", "cache_entries", "flush_every")

MEMORY_NOTE = ("baseline: no baseline.path in the config; first-seen rules learn in memory and forget at exit "
               "(set baseline.path to keep what they learned)")


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineConfig:
    path: str | None = None
    learning_days: float = 7.0
    cache_entries: int = 100_000
    flush_every: int = 500


def baseline_config(config: Config | None) -> BaselineConfig:
    """The ``baseline:`` mapping of the config, validated; every mistake names its key."""
    raw: Any = (config.raw.get("baseline") if config is not None else None) or {}
    source = config.source if config is not None else "<config>"

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{source}: baseline.{key}: {msg}")

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: baseline: expected a mapping")
    for k in raw:
        if k not in CONFIG_KEYS:
            fail(str(k), f"unknown key (expected one of: {', '.join(CONFIG_KEYS)})")
    path = raw.get("path")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        fail("path", "expected a file path")
    days = raw.get("learning_days", BaselineConfig.learning_days)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        fail("learning_days", f"expected a number of days >= 0, got {days!r}")
    out: dict[str, Any] = {"path": path, "learning_days": float(days)}
    for key, low in (("cache_entries", 1), ("flush_every", 1)):
        v = raw.get(key, getattr(BaselineConfig, key))
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            fail(key, f"expected a whole number >= {low}, got {v!r}")
        out[key] = v
    if path is not None and config is not None and config.source not in ("<config>", "<defaults>"):
        # A relative path is relative to the config file, like every other path a user writes there.
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = Path(config.source).resolve().parent / p
        out["path"] = str(p)
    return BaselineConfig(**out)


# --- what the Detector asks ----------------------------------------------------------------


class Baselines:
    """Decides whether a baseline rule's match is new (an alert) or known (learned, dropped)."""

    def __init__(self, rules: Iterable[Rule], config: Config | None = None, *,
                 note: Callable[[str], None] | None = None):
        self.config = baseline_config(config)
        self.specs: dict[str, BaselineSpec] = {}
        self.learn: dict[str, float] = {}
        for r in rules:
            spec = spec_of(r)
            if spec is not None:
                self.specs[r.id] = spec
                days = spec.learn_days if spec.learn_days is not None else self.config.learning_days
                self.learn[r.id] = days * DAY
        self.store = BaselineStore(self.config.path, cache_entries=self.config.cache_entries,
                                   flush_every=self.config.flush_every)
        self._finalizer = weakref.finalize(self, self.store.close)
        known = self.store.starts()
        self.started: dict[str, float] = {rid: known[rid] for rid in self.specs if rid in known}
        self.pending_start = [rid for rid in self.specs if rid not in known]
        self.stats: Counter[str] = Counter()
        # (rule, key, value) -> a last-seen time the store has held (see decide); bounded
        self._hot: dict[tuple[str, str, str], float] = {}
        self._hot_size = max(self.config.cache_entries, 1024)
        # (rule, key, value) -> "YYYY-MM-DDT", the UTC day of its _hot time: an event stamped that
        # day (in UTC, "...Z") is within a day of it, known without parsing its timestamp
        self._hot_day: dict[tuple[str, str, str], str] = {}
        # per rule: the entry (rule, key, value) an event is judged by (the split run's workers read it too)
        self.entries = Entries(self.specs, self._hot_size)
        # told once, at the first match a first-seen rule judges (see decide), and only when in memory
        self._note = note if self.config.path is None else None

    @classmethod
    def for_rules(cls, rules: Iterable[Rule], config: Config | None = None, **kw: Any) -> Baselines | None:
        """A Baselines for the rule set, or None when no rule has a ``baseline`` attribute."""
        rules = list(rules)
        if not any(spec_of(r) is not None for r in rules):
            return None
        return cls(rules, config, **kw)

    def observe(self, event: AuditEvent) -> None:
        """Start the learning period of newly enabled rules at the first timed event."""
        if not self.pending_start:
            return
        t = event_epoch(event)
        if t is None:
            return
        for rid in self.pending_start:
            try:
                self.store.set_start(rid, t)
            except sqlite3.Error as e:  # learning still starts now; the next run records its own start
                self.store.read_failed(f"learning start of {rid}", e)
            self.started[rid] = t
        self.pending_start = []

    def admit(self, match: Match) -> bool:
        """True when the match should alert: its rule has no baseline, or the value is new after learning."""
        rid = match.rule.id
        if rid not in self.specs:
            return True
        return self.decide(rid, match.event)

    def gates(self) -> dict[str, Callable[[AuditEvent], bool]]:
        """Per baseline rule id, ``decide`` bound to it: the engine asks before it builds a Match."""
        return {rid: self._gate(rid) for rid in self.specs}

    def _gate(self, rid: str) -> Callable[[AuditEvent], bool]:
        """``decide(rid, ev)`` as :meth:`judge` of the event's entry and timestamp text."""
        read, judge = self.entries.reader(rid), self.judge

        def gate(ev: AuditEvent) -> bool:
            h = ev.head
            return judge(rid, read(ev), h.stageTimestamp or h.requestReceivedTimestamp or h.timestamp)  # event_stamp

        return gate

    def decide(self, rid: str, ev: AuditEvent) -> bool:
        """Should this event, matched by baseline rule ``rid``, alert? Records what it learns."""
        return self.decide_entry(rid, self.entries.entry(rid, ev), event_epoch(ev))

    def judge(self, rid: str, k: Entry | None, ts: Any) -> bool:
        """:meth:`decide_entry` for entry ``k`` of a match stamped ``ts`` (:func:`event_stamp`), with
        its commonest answer first: a (key, value) last seen the same UTC day as an event stamped in
        UTC ("...Z") is within a day of it, "known" without parsing the timestamp."""
        if k is not None and ts.__class__ is str and ts[-1:] == "Z" and ts[:11] == self._hot_day.get(k):
            self.stats["known"] += 1
            return False
        return self.decide_entry(rid, k, epoch_of(ts))

    def judge_all(self, rids: Sequence[str], entries: Sequence[Entry | None], stamps: Sequence[Any]) -> list[int]:
        """:meth:`judge` of each (rule id, entry, timestamp text) in turn: the positions that
        alert. The commonest answer ("known" on the remembered UTC day) is read for all of them
        at once: it stands whatever the others teach first (a store's last-seen times only grow),
        so only the rest are judged one by one, in order."""
        days = list(map(self._hot_day.get, entries))
        # judge()'s first test, inlined: a call per record is what this saves
        rest = [i for i, ts in enumerate(stamps)
                if not (ts.__class__ is str and ts[-1:] == "Z" and ts[:11] == days[i])]
        self.stats["known"] += len(stamps) - len(rest)
        judge = self.judge
        return [i for i in rest if judge(rids[i], entries[i], stamps[i])]

    def decide_entry(self, rid: str, k: Entry | None, t: float | None) -> bool:
        """Should a match of baseline rule ``rid`` with entry ``k`` (None: the event has no key or
        no value) at time ``t`` alert? Records what it learns.

        Most matches repeat a (key, value) seen minutes ago: ``_hot`` remembers, per value,
        a last-seen time the store has held, so those matches are answered without the store.
        Exact: the store's last-seen time only grows, so when the event is within a day of the
        remembered time it is within a day of the store's too, and the store would answer
        "known" without writing anything (the key, if ``per_key``, was recorded on first sight).
        """
        if self._note is not None:
            note, self._note = self._note, None
            note(MEMORY_NOTE)
        if k is None:
            self.stats["undecided"] += 1
            return False
        spec = self.specs[rid]
        key, value = k[1], k[2]
        if t is None:
            t = self.started.get(rid, 0.0)
        hot = self._hot
        last = hot.get(k)
        if last is not None and t - last < DAY:
            self.stats["known"] += 1
            return False
        try:
            key_first = self.store.key_first(rid, key, t) if spec.per_key else None
            last = self.store.last_seen(rid, key, value)
        except sqlite3.Error as e:  # unknown, not new: this rule stays quiet, every other rule alerts
            self.store.read_failed(f"rule {rid}", e)
            self.stats["undecided"] += 1
            return False
        if len(hot) >= self._hot_size:
            hot.clear()
            self._hot_day.clear()
        if last is not None:
            if t - last >= DAY:
                self.store.record(rid, key, value, t)  # keep last-seen roughly current, once a day
                last = max(last, t)
            hot[k] = last
            self._hot_day[k] = _utc_day(last)
            self.stats["known"] += 1
            return False
        self.store.record(rid, key, value, t)
        hot[k] = t
        self._hot_day[k] = _utc_day(t)
        start = self.started.get(rid)
        if key_first is not None and start is not None:
            start = max(start, key_first)
        if start is None or t < start + self.learn[rid]:
            self.stats["learned"] += 1
            return False
        self.stats["new"] += 1
        return True

    def filter(self, matches: list[Match]) -> list[Match]:
        return [m for m in matches if self.admit(m)]

    def flush(self) -> None:
        self.store.flush()

    def close(self) -> None:
        self._finalizer()
