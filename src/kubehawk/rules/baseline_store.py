"""The baseline store: first-seen values in one SQLite file, with a bounded memory cache.

Takes observations (rule, key, value, time) and gives whether a value was seen before for its
key; new rows are written in batches (:meth:`BaselineStore.flush`), so a run costs one commit
every few seconds, not one per event.
"""

from __future__ import annotations

import contextlib
import logging
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
log = logging.getLogger("kubehawk.baseline")


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
