"""The baseline store: first-seen values in one SQLite file, with a bounded memory cache.

Takes observations (rule, key, value, time) and gives whether a value was seen before for its
key; new rows are written in batches (:meth:`BaselineStore.flush`), so a run costs one commit
every few seconds, not one per event.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from kubehawk.config import ConfigError

if TYPE_CHECKING:
    pass

__all__ = ["BaselineStore"]

FLUSH_SECONDS = 5.0


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
            due = len(self._pending) >= self.flush_every or time.monotonic() - self._last_flush > FLUSH_SECONDS
        if due:
            self.flush()

    def _remember(self, k: tuple[str, str, str], last: float) -> None:
        self._cache[k] = last
        self._cache.move_to_end(k)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    def flush(self) -> None:
        with self._lock:
            self._last_flush = time.monotonic()
            if not (self._pending or self._pending_keys) or self.closed:
                return
            rows = [(*k, first, last) for k, (first, last) in self._pending.items()]
            keys = [(*k, first) for k, first in self._pending_keys.items()]
            self._pending.clear()
            self._pending_keys.clear()
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO seen (rule, key, value, first, last) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (rule, key, value) DO UPDATE SET first=min(first, excluded.first), "
                    "last=max(last, excluded.last)", rows)
                self._db.executemany(
                    "INSERT INTO keys (rule, key, first) VALUES (?, ?, ?) "
                    "ON CONFLICT (rule, key) DO UPDATE SET first=min(first, excluded.first)", keys)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
            self.flush()
        finally:
            with self._lock:
                self.closed = True
                self._db.close()

    def __len__(self) -> int:
        return len(self._cache)
