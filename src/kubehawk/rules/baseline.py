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
within one run and forget at exit, which still suits a long archive; kubehawk says so
once on stderr. Memory is bounded by ``cache_entries`` plus ``flush_every`` pending rows
(the in-memory store excepted, which holds every value it learned).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import operator
import sqlite3
import sys
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kubehawk.config import ConfigError
from kubehawk.rules.correlation import event_epoch
from kubehawk.rules.model import RuleLoadError

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent
    from kubehawk.rules.model import Match, Rule

__all__ = ["CONFIG_KEYS", "BaselineConfig", "BaselineSpec", "BaselineStore", "Baselines", "baseline_config",
           "spec_of"]

DAY = 86400.0
CONFIG_KEYS = ("path", "learning_days", "cache_entries", "flush_every")
SPEC_KEYS = ("key", "value", "network", "network6", "transform", "learn_days", "per_key")
TRANSFORMS = ("none", "product", "lower")
FLUSH_SECONDS = 5.0
_SEP = "\x1f"  # joins key parts; never in a username, namespace or IP

_warned_memory = False
log = logging.getLogger("kubehawk.baseline")


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


# --- the rule attribute --------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineSpec:
    key: tuple[str, ...]
    value: str
    network: int | None = None
    network6: int | None = None
    transform: str = "none"
    learn_days: float | None = None
    per_key: bool = False

    def key_of(self, event: AuditEvent) -> str | None:
        return self.key_from([_read(event, path) for path in self.key])

    def value_of(self, event: AuditEvent) -> str | None:
        return self.value_from(_read(event, self.value))

    def key_from(self, values: Iterable[Any]) -> str | None:
        """The key for the values read at ``key`` (None: the event has no key)."""
        parts = []
        for v in values:
            if v is None or v == "":
                return None
            parts.append(str(v))
        return _SEP.join(parts)

    def value_from(self, v: Any) -> str | None:
        """The value compared with the baseline for the one read at ``value`` (None: no value)."""
        if v is None or v == "" or isinstance(v, (dict, list)):
            return None
        s = str(v)
        if self.network is not None or self.network6 is not None:
            k = (s, self.network, self.network6)
            s = _network_memo.get(k) or _remember_network(k)
        if self.transform == "product":
            s = _product(s)
        elif self.transform == "lower":
            s = s.lower()
        return s


# The head fields baseline keys and values use most, read without the general path resolver.
_FAST: dict[str, Any] = {
    "user.username": operator.attrgetter("username"),  # C getters: no Python frame of their own
    "x.source_ip": operator.attrgetter("source_ip"),
    "userAgent": operator.attrgetter("head.userAgent"),
    "objectRef.namespace": lambda e: e.ref("namespace"),
}


def _read(event: AuditEvent, path: str) -> Any:
    fast = _FAST.get(path)
    return fast(event) if fast is not None else event.first(path)


def _reader(path: str) -> Callable[[AuditEvent], Any]:
    """:func:`_read` for a fixed path."""
    fast = _FAST.get(path)
    if fast is not None:
        return fast
    return lambda event: event.first(path)


_MISSING: Any = object()


def _utc_day(t: float) -> str:
    """``YYYY-MM-DDT`` of the UTC day holding epoch second ``t`` (how event timestamps start)."""
    try:
        return time.strftime("%Y-%m-%dT", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "?"  # matches no timestamp


_network_memo: dict[tuple[str, int | None, int | None], str] = {}


def _remember_network(k: tuple[str, int | None, int | None]) -> str:
    """Memoised :func:`_network` (pod IPs repeat); the memo is dropped whole when it grows too big."""
    if len(_network_memo) >= 65536:
        _network_memo.clear()
    net = _network_memo[k] = _network(*k)
    return net


def _network(s: str, v4: int | None, v6: int | None) -> str:
    parts = s.split(".")
    if len(parts) == 4 and all(x.isdigit() and len(x) <= 3 for x in parts):
        # IPv4, the common case, without the ipaddress module (it dominated the cost of a baseline rule).
        n = 0
        for x in parts:
            o = int(x)
            if o > 255:
                return s
            n = n << 8 | o
        prefix = v4 if v4 is not None else 32
        n &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{prefix}"
    return _network_slow(s, v4, v6)


@functools.lru_cache(maxsize=4096)
def _network_slow(s: str, v4: int | None, v6: int | None) -> str:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return s  # not an IP (a hostname from a converter): compare as written
    prefix = (v4 if v4 is not None else 32) if ip.version == 4 else (v6 if v6 is not None else 48)
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _product(ua: str) -> str:
    """``kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350`` -> ``kubectl``: versions change, products rarely."""
    head = ua.strip().split(" ", 1)[0]
    return head.split("/", 1)[0].lower() or ua


def spec_of(rule: Rule) -> BaselineSpec | None:
    """The rule's ``baseline`` attribute, validated; None for an ordinary rule."""
    raw = rule.custom.get("baseline") if rule.custom else None
    if raw is None:
        return None

    def fail(key: str, msg: str) -> None:
        where = f"baseline.{key}" if key else "baseline"
        raise RuleLoadError(f"{rule.source}: {rule.title!r}: {where}: {msg}", rule.source)

    if rule.kind != "event":
        fail("", "only event rules can have a baseline (not correlations)")
    if not isinstance(raw, Mapping):
        fail("", "expected a mapping with key and value")
    for k in raw:
        if k not in SPEC_KEYS:
            fail(str(k), f"unknown key (expected one of: {', '.join(SPEC_KEYS)})")
    key = raw.get("key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
        fail("key", "expected a field path or a list of field paths")
    value = raw.get("value")
    if not isinstance(value, str) or not value:
        fail("value", "expected a field path")
    ints: dict[str, int | None] = {}
    for name, top in (("network", 32), ("network6", 128)):
        v = raw.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top):
            fail(name, f"expected a prefix length 0..{top}, got {v!r}")
        ints[name] = v
    transform = raw.get("transform", "none")
    if transform not in TRANSFORMS:
        fail("transform", f"expected one of {', '.join(TRANSFORMS)}, got {transform!r}")
    per_key = raw.get("per_key", False)
    if not isinstance(per_key, bool):
        fail("per_key", f"expected true or false, got {per_key!r}")
    days = raw.get("learn_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0):
        fail("learn_days", f"expected a number of days >= 0, got {days!r}")
    return BaselineSpec(key=tuple(key), value=value, network=ints["network"], network6=ints["network6"],
                        transform=transform, learn_days=None if days is None else float(days),
                        per_key=per_key)


# --- the store -----------------------------------------------------------------------------


class BaselineStore:
    """A persistent set of (rule, key, value) with first/last seen times, cached and batched.

    Reads go cache -> pending writes -> SQLite (primary-key lookup); new values and
    last-seen bumps (at most one per value per day) wait in ``pending`` and are committed
    in one transaction every ``flush_every`` rows, every few seconds, and on close.
    """

    def __init__(self, path: str | None, *, cache_entries: int = 100_000, flush_every: int = 500):
        self.path = path
        self.cache_entries = cache_entries
        self.flush_every = flush_every
        self._lock = threading.Lock()
        target = ":memory:" if path is None else path
        try:
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                self._db.close()
                raise ConfigError(f"baseline.path: {target} is damaged (SQLite quick_check: {'; '.join(problems)}); "
                                  "move it aside to learn afresh")
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS rules (rule TEXT PRIMARY KEY, started REAL NOT NULL);"
                "CREATE TABLE IF NOT EXISTS seen (rule TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
                " first REAL NOT NULL, last REAL NOT NULL, PRIMARY KEY (rule, key, value)) WITHOUT ROWID;"
                "CREATE TABLE IF NOT EXISTS keys (rule TEXT NOT NULL, key TEXT NOT NULL, first REAL NOT NULL,"
                " PRIMARY KEY (rule, key)) WITHOUT ROWID;"
            )
        except (sqlite3.Error, OSError) as e:
            raise ConfigError(f"baseline.path: cannot open {target}: {e}") from None
        self._cache: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._pending: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._key_cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._pending_keys: dict[tuple[str, str], float] = {}
        self._last_flush = time.monotonic()
        self._retry_at = 0.0  # after a failed flush: no new try before this (monotonic)
        self._last_warning = 0.0
        self.failures = 0  # consecutive failed flushes
        self.errors = 0  # failed flushes and reads, ever
        self.lost = 0  # pending values dropped to bound memory while flushes failed
        self.closed = False

    # rule learning starts
    def starts(self) -> dict[str, float]:
        with self._lock:
            return dict(self._db.execute("SELECT rule, started FROM rules").fetchall())

    def set_start(self, rule_id: str, t: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO rules (rule, started) VALUES (?, ?)", (rule_id, t))

    # values
    def last_seen(self, rule_id: str, key: str, value: str) -> float | None:
        """When the value was last recorded for the key, or None if never."""
        k = (rule_id, key, value)
        with self._lock:
            last = self._cache.get(k)
            if last is not None:
                self._cache.move_to_end(k)
                return last
            p = self._pending.get(k)
            if p is not None:
                return p[1]
            row = self._db.execute("SELECT last FROM seen WHERE rule=? AND key=? AND value=?", k).fetchone()
            if row is None:
                return None
            self._remember(k, row[0])
            return row[0]

    def key_first(self, rule_id: str, key: str, t: float) -> float:
        """When the key was first seen; a key never seen is recorded as first seen at ``t``."""
        k = (rule_id, key)
        with self._lock:
            first = self._key_cache.get(k)
            if first is None:
                first = self._pending_keys.get(k)
            if first is None:
                row = self._db.execute("SELECT first FROM keys WHERE rule=? AND key=?", k).fetchone()
                first = row[0] if row is not None else None
            if first is None:
                first = self._pending_keys[k] = t
            self._key_cache[k] = first
            self._key_cache.move_to_end(k)
            while len(self._key_cache) > self.cache_entries:
                self._key_cache.popitem(last=False)
            return first

    def record(self, rule_id: str, key: str, value: str, t: float) -> None:
        k = (rule_id, key, value)
        with self._lock:
            p = self._pending.get(k)
            self._pending[k] = (min(p[0], t), max(p[1], t)) if p else (t, t)
            self._remember(k, max(t, self._cache.get(k, t)))
            now = time.monotonic()
            due = (len(self._pending) >= self.flush_every or now - self._last_flush > FLUSH_SECONDS) \
                and now >= self._retry_at
        if due:
            self.flush()

    def _remember(self, k: tuple[str, str, str], last: float) -> None:
        self._cache[k] = last
        self._cache.move_to_end(k)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    def flush(self) -> bool:
        """Commit the pending rows; True when nothing is left pending.

        A failure (disk full, I/O error, a locked file) keeps every pending row for the next
        try, which waits a growing backoff; it is logged once per failing spell and never raised:
        the alerts of the event that triggered the flush, and of every other rule, go on.
        """
        with self._lock:
            self._last_flush = time.monotonic()
            if not (self._pending or self._pending_keys) or self.closed:
                return True
            rows = [(*k, first, last) for k, (first, last) in self._pending.items()]
            keys = [(*k, first) for k, first in self._pending_keys.items()]
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO seen (rule, key, value, first, last) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (rule, key, value) DO UPDATE SET first=min(first, excluded.first), "
                    "last=max(last, excluded.last)", rows)
                self._db.executemany(
                    "INSERT INTO keys (rule, key, first) VALUES (?, ?, ?) "
                    "ON CONFLICT (rule, key) DO UPDATE SET first=min(first, excluded.first)", keys)
                self._db.execute("COMMIT")
            except (sqlite3.Error, OSError) as e:
                # SQLite may have rolled back already (SQLITE_FULL does): a second error is not news.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._failed(len(rows) + len(keys), e)
                return False
            # Only now, committed, are the rows no longer pending.
            self._pending.clear()
            self._pending_keys.clear()
            if self.failures:
                log.warning("baseline: saved %d learned value(s) to %s after %d failed attempt(s)",
                            len(rows) + len(keys), self.path, self.failures)
                self.failures = 0
            self._retry_at = 0.0
            return True

    def _failed(self, n: int, e: BaseException) -> None:
        """Back off, bound the rows kept for the retry, and say so (once per failing spell and a minute)."""
        self.failures += 1
        self.errors += 1
        self._retry_at = time.monotonic() + min(60.0, 0.5 * 2 ** min(self.failures, 7))
        lost = 0
        while len(self._pending) > self.cache_entries:  # memory stays bounded while the disk is gone
            self._pending.pop(next(iter(self._pending)))
            lost += 1
        while len(self._pending_keys) > self.cache_entries:
            self._pending_keys.pop(next(iter(self._pending_keys)))
            lost += 1
        self.lost += lost
        now = time.monotonic()
        if self.failures == 1 or lost or now - self._last_warning >= 60:
            self._last_warning = now
            extra = f"; {self.lost} value(s) forgotten to bound memory" if self.lost else ""
            log.warning("baseline: cannot save %d learned value(s) to %s: %s (kept, retrying%s)",
                        n, self.path or ":memory:", e, extra)

    def read_failed(self, what: str, e: BaseException) -> None:
        """A read the caller could not do (it decides without the store); counted, said once a minute."""
        self.errors += 1
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning("baseline: cannot read %s (%s): %s; such matches do not alert until it can",
                        self.path or ":memory:", what, e)

    def count(self, rule_id: str | None = None) -> int:
        self.flush()
        with self._lock:
            if rule_id is None:
                return self._db.execute("SELECT count(*) FROM seen").fetchone()[0]
            return self._db.execute("SELECT count(*) FROM seen WHERE rule=?", (rule_id,)).fetchone()[0]

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self.flush():
                log.warning("baseline: %d learned value(s) not saved to %s at exit",
                            len(self._pending) + len(self._pending_keys), self.path)
        finally:
            with self._lock:
                self.closed = True
                self._db.close()

    def __len__(self) -> int:
        return len(self._cache)


# --- what the Detector asks ----------------------------------------------------------------


class Baselines:
    """Decides whether a baseline rule's match is new (an alert) or known (learned, dropped)."""

    def __init__(self, rules: Iterable[Rule], config: Config | None = None, *, warn: TextIO | None = None):
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
        # per rule: what to read (key fields, then the value field), and raw values -> (rule, key, value)
        self._readers = {rid: tuple(_reader(p) for p in (*spec.key, spec.value)) for rid, spec in self.specs.items()}
        self._entries: dict[str, dict[tuple[Any, ...], Any]] = {rid: {} for rid in self.specs}
        if self.config.path is None and self.specs:
            global _warned_memory
            if not _warned_memory:
                _warned_memory = True
                print(f"kubehawk: baseline: no baseline.path in the config; {len(self.specs)} first-seen rules "
                      "learn in memory and forget at exit", file=warn or sys.stderr)

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
        """``decide(rid, ev)`` with its commonest answer inlined: a (key, value) already remembered
        (``_entries``) and seen within a day (``_hot``) is "known". The same reads and tests as
        :meth:`decide`, which answers everything else (a miss there does all the work again)."""
        readers = self._readers[rid]
        decide = functools.partial(self.decide, rid)
        if len(readers) != 2:
            return decide
        r0, r1 = readers
        memo, hot, hot_day, stats, epoch = self._entries[rid], self._hot, self._hot_day, self.stats, event_epoch

        def gate(ev: AuditEvent) -> bool:
            a = r0(ev)
            b = r1(ev)
            if (a is None or a.__class__ is str) and (b is None or b.__class__ is str):
                k = memo.get((a, b))
                if k is not None:
                    h = ev.head
                    ts = h.stageTimestamp or h.requestReceivedTimestamp or h.timestamp  # as event_epoch
                    if ts.__class__ is str and ts[-1:] == "Z" and ts[:11] == hot_day.get(k):
                        stats["known"] += 1  # the same UTC day as its last-seen time: within a day
                        return False
                    t = epoch(ev)
                    if t is not None:
                        last = hot.get(k)
                        if last is not None and t - last < DAY:
                            stats["known"] += 1
                            return False
            return decide(ev)

        return gate

    def decide(self, rid: str, ev: AuditEvent) -> bool:
        """Should this event, matched by baseline rule ``rid``, alert? Records what it learns.

        Most matches repeat a (key, value) seen minutes ago: ``_hot`` remembers, per value,
        a last-seen time the store has held, so those matches are answered without the store.
        Exact: the store's last-seen time only grows, so when the event is within a day of the
        remembered time it is within a day of the store's too, and the store would answer
        "known" without writing anything (the key, if ``per_key``, was recorded on first sight).
        """
        spec = self.specs[rid]
        k = self._entry(rid, spec, ev)
        if k is None:
            self.stats["undecided"] += 1
            return False
        key, value = k[1], k[2]
        t = event_epoch(ev)
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

    def _entry(self, rid: str, spec: BaselineSpec, ev: AuditEvent) -> tuple[str, str, str] | None:
        """(rule, key, value) of the event, or None when it has no key or no value. Remembered per
        raw values read (strings and None only: 1, 1.0 and true are equal keys but not equal text)."""
        readers = self._readers[rid]
        raw = tuple([read(ev) for read in readers])
        for v in raw:
            if v is not None and v.__class__ is not str:
                return self._make_entry(rid, spec, raw)
        memo = self._entries[rid]
        k = memo.get(raw, _MISSING)
        if k is _MISSING:
            if len(memo) >= self._hot_size:
                memo.clear()
            k = memo[raw] = self._make_entry(rid, spec, raw)
        return k

    @staticmethod
    def _make_entry(rid: str, spec: BaselineSpec, raw: tuple[Any, ...]) -> tuple[str, str, str] | None:
        key, value = spec.key_from(raw[:-1]), spec.value_from(raw[-1])
        return None if key is None or value is None else (rid, key, value)

    def filter(self, matches: list[Match]) -> list[Match]:
        return [m for m in matches if self.admit(m)]

    def flush(self) -> None:
        self.store.flush()

    def close(self) -> None:
        self._finalizer()
