"""A bounded on-disk retry queue (SQLite) for alerts an HTTP endpoint did not take.

Bounded by count: when full the oldest alert is dropped (counted and logged by the
caller), because the newest alerts are the ones an analyst needs first.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Spool"]


class Spool:
    def __init__(self, path: str | Path, max_items: int = 10000) -> None:
        self.path = Path(path)
        self.max_items = max_items
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; a spooled alert is already a failure
        # path, so we do not pay an fsync per alert for power-loss safety here.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, added REAL NOT NULL)"
        )
        self._count = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def push(self, payloads: list[bytes]) -> int:
        """Store payloads; returns how many old ones were evicted to stay within the bound."""
        if not payloads:
            return 0
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO spool (payload, added) VALUES (?, ?)", [(p, now) for p in payloads])
                self._count += len(payloads)
                evicted = max(0, self._count - self.max_items)
                if evicted:
                    self._db.execute(
                        "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (evicted,)
                    )
                    self._count -= evicted
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._count = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]
                raise
        return evicted

    def peek(self, limit: int = 100) -> list[tuple[int, bytes, int]]:
        with self._lock:
            return self._db.execute(
                "SELECT id, payload, attempts FROM spool ORDER BY id LIMIT ?", (limit,)
            ).fetchall()

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            cur = self._db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
            self._count -= cur.rowcount if cur.rowcount > 0 else 0

    def bump(self, ident: int) -> None:
        with self._lock:
            self._db.execute("UPDATE spool SET attempts = attempts + 1 WHERE id = ?", (ident,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
