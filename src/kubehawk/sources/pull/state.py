"""The resumable position of a live pull, in one small SQLite file.

Three kinds of state, all keyed by the source (``eks:/aws/eks/c/cluster``, ``gke:project``...):

- ``positions``: free-form key/value per source (per-stream last timestamp, last insertId...);
- ``seen``: the dedup window of ``auditID|stage`` keys already handed on (bounded: the oldest
  are dropped past ``max_seen``), so overlapping polls and at-least-once transports never
  alert twice;
- ``eh_ownership`` / ``eh_checkpoints``: Azure Event Hubs partition ownership and checkpoints
  (see :mod:`kubehawk.sources.pull.aks`).

One connection per process, WAL journal, a transaction per page/batch: a crash after the
sink saw a page but before the commit re-delivers that page only, and the dedup window makes
the replay silent where the keys are already committed.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["PullState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                      PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS seen (seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS seen_key ON seen (source, key);
CREATE TABLE IF NOT EXISTS eh_ownership (namespace TEXT NOT NULL, eventhub TEXT NOT NULL, consumer_group TEXT NOT NULL,
                                         partition_id TEXT NOT NULL, owner_id TEXT NOT NULL, etag TEXT NOT NULL,
                                         last_modified REAL NOT NULL,
                                         PRIMARY KEY (namespace, eventhub, consumer_group, partition_id));
CREATE TABLE IF NOT EXISTS eh_checkpoints (namespace TEXT NOT NULL, eventhub TEXT NOT NULL,
                                           consumer_group TEXT NOT NULL, partition_id TEXT NOT NULL,
                                           offset TEXT, sequence_number INTEGER,
                                           PRIMARY KEY (namespace, eventhub, consumer_group, partition_id));
"""


class PullState:
    def __init__(self, path: str | Path, max_seen: int = 200_000):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a usable kubehawk pull state file ({e})") from None
        self.max_seen = max_seen
        self.lock = threading.RLock()  # Event Hubs callbacks run on several threads
        self._since_trim = 0

    # --- transactions -----------------------------------------------------------------------
    def __enter__(self) -> PullState:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()

    # --- positions --------------------------------------------------------------------------
    def get(self, source: str, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM positions WHERE source=? AND key=?", (source, key)).fetchone()
        return row[0] if row else default

    def items(self, source: str, prefix: str = "") -> dict[str, str]:
        with self.lock:
            rows = self.db.execute("SELECT key, value FROM positions WHERE source=? AND key LIKE ? ESCAPE '\\'",
                                   (source, _like_prefix(prefix))).fetchall()
        return dict(rows)

    def put(self, source: str, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO positions (source, key, value) VALUES (?, ?, ?) "
                            "ON CONFLICT (source, key) DO UPDATE SET value=excluded.value", (source, key, value))

    # --- dedup ------------------------------------------------------------------------------
    def first_time(self, source: str, key: str) -> bool:
        """Record ``key``; True when it had not been seen (within the window) before."""
        with self.lock:
            cur = self.db.execute("INSERT OR IGNORE INTO seen (source, key) VALUES (?, ?)", (source, key))
            fresh = cur.rowcount == 1
            if fresh:
                self._since_trim += 1
                if self._since_trim >= 1000:
                    self.trim()
        return fresh

    def trim(self) -> None:
        with self.lock:
            self._since_trim = 0
            row = self.db.execute("SELECT MAX(seq) FROM seen").fetchone()
            if row and row[0] is not None:
                self.db.execute("DELETE FROM seen WHERE seq <= ?", (row[0] - self.max_seen,))

    def seen_count(self, source: str | None = None) -> int:
        with self.lock:
            if source is None:
                return self.db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
            return self.db.execute("SELECT COUNT(*) FROM seen WHERE source=?", (source,)).fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
