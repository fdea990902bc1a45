"""The durable journal behind ``serve``: received events, the processed cursor, emitted alerts.

One SQLite file in WAL mode holds everything, so the steps that must agree commit together:

* ``events``: every accepted event, ``UNIQUE(audit_id, stage, source)`` so an apiserver
  retry of a batch we already stored is dropped. The webhook answers 2xx only after the
  transaction holding its batch has committed.
* ``state``: the ``processed`` cursor (last event seq run through detection) and one
  cursor per output (last alert id handed to it).
* ``alerts``: every alert emitted, ``UNIQUE(rule_id, audit_key)`` (one alert per rule and
  request, DESIGN.md). Alerts for a chunk of events are inserted in the same transaction
  that advances the ``processed`` cursor: after a kill -9 detection resumes at the cursor,
  so an event is never half-processed and an alert never produced twice. Outputs read
  alerts after their own cursor, so an alert committed but not yet sent is sent after restart.

Durability: ``synchronous=FULL`` in WAL mode fsyncs the WAL at every commit, so an
acknowledged batch survives power loss as well as a killed process. ``NORMAL`` (option
``journal_sync: normal``) still survives kill -9 (the WAL is in the OS page cache) but may
lose the last commits on power loss; it is faster on slow disks.

Appends go through one writer thread that commits every batch waiting at that moment in
a single transaction (group commit), so concurrent requests share one fsync and seq
numbers become visible in order (the processor never skips a row committed late).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("kubehawk.server")

__all__ = ["AppendResult", "Journal", "JournalClosed", "JournalUnusable", "Record"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id TEXT NOT NULL,
    stage    TEXT NOT NULL,
    source   TEXT NOT NULL,
    payload  BLOB NOT NULL,
    received REAL NOT NULL,
    UNIQUE (audit_id, stage, source)
);
CREATE INDEX IF NOT EXISTS events_received ON events (received);
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id   TEXT NOT NULL,
    audit_key TEXT NOT NULL,
    payload   BLOB NOT NULL,
    received  REAL NOT NULL,
    created   REAL NOT NULL,
    UNIQUE (rule_id, audit_key)
);
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created);
CREATE TABLE IF NOT EXISTS snapshots (
    name  TEXT PRIMARY KEY,
    upto  INTEGER NOT NULL,
    data  BLOB NOT NULL
);
INSERT OR IGNORE INTO state (name, value) VALUES ('processed', 0);
"""


@dataclass(frozen=True, slots=True)
class Record:
    """One event to journal. ``audit_id`` falls back to a payload hash when absent."""

    audit_id: str
    stage: str
    source: str
    payload: bytes

    @classmethod
    def make(cls, audit_id: str | None, stage: str | None, source: str, payload: bytes) -> Record:
        if not audit_id:
            audit_id = "sha256:" + hashlib.sha256(payload).hexdigest()
        return cls(audit_id, stage or "", source, payload)


@dataclass(frozen=True, slots=True)
class AppendResult:
    accepted: int
    duplicates: int


class JournalClosed(RuntimeError):
    pass


class JournalUnusable(OSError):
    """The journal cannot be opened: damaged, not SQLite, or held by another process. One line says why."""


def _take_lock(path: Path) -> Any:
    """An exclusive lock beside the journal, held while it is open: two servers on one journal
    would both process (and alert on) every event."""
    lock_path = path.with_name(path.name + ".lock")
    fh = open(lock_path, "a+")  # noqa: SIM115 - held for the journal's life
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise JournalUnusable(f"{path} is in use by another kubehawk serve (pid {holder}); "
                              "two processes on one journal would both process every event") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule_id: str
    audit_key: str
    payload: bytes
    received: float


class Journal:
    """Open (and create) the journal; use :meth:`connect` for a per-thread connection."""

    def __init__(self, path: str | Path, *, sync: str = "full", busy_timeout: float = 60.0) -> None:
        if sync not in ("full", "normal"):
            raise ValueError(f"journal sync must be full or normal, got {sync!r}")
        self.path = Path(path)
        self.sync = sync
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fh = _take_lock(self.path)
        try:
            self._open()
        except BaseException:
            self._lock_fh.close()
            raise
        self._q: queue.Queue[tuple[list[Record], float, Future[AppendResult]] | None] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.new_events = threading.Condition()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()

    def _open(self) -> None:
        """Check the file (one clear line when it is damaged), create the tables, read the cursors."""
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            try:
                problems = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
            except sqlite3.Error as e:
                raise JournalUnusable(f"{self.path} is not a usable SQLite journal ({e}); "
                                      "move it aside to start a new one") from None
            if problems != ["ok"]:
                raise JournalUnusable(f"{self.path} is damaged (SQLite quick_check: {'; '.join(problems)}); "
                                      "move it aside to start a new one")
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OSError(f"{self.path}: SQLite cannot use WAL mode here (got {mode})")
            db.executescript(SCHEMA)
            self.last_seq = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            self.processed = self.read_state(db, "processed")
            # Seq numbers have gaps (an ignored duplicate still consumes one), so count.
            self._backlog = db.execute("SELECT count(*) FROM events WHERE seq > ?", (self.processed,)).fetchone()[0]
        except sqlite3.Error as e:
            raise JournalUnusable(f"{self.path}: {e}") from None
        finally:
            db.close()

    # --- connections -----------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                             check_same_thread=False)
        db.execute(f"PRAGMA synchronous={self.sync.upper()}")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return db

    @staticmethod
    def read_state(db: sqlite3.Connection, name: str, default: int = 0) -> int:
        row = db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    @property
    def backlog(self) -> int:
        """Events stored but not yet through detection."""
        return self._backlog

    @property
    def pending_appends(self) -> int:
        return self._pending

    # --- appends (group commit) ------------------------------------------------------
    def submit(self, records: list[Record], received: float | None = None) -> Future[AppendResult]:
        """Queue records for the writer; the future resolves after the commit."""
        fut: Future[AppendResult] = Future()
        if self._closed:
            fut.set_exception(JournalClosed("journal is closed"))
            return fut
        with self._pending_lock:
            self._pending += 1
        self._q.put((records, received if received is not None else time.time(), fut))
        return fut

    def append(self, records: list[Record], received: float | None = None) -> AppendResult:
        return self.submit(records, received).result()

    def _write_loop(self) -> None:
        db = self.connect()
        try:
            while True:
                item = self._q.get()
                if item is None:
                    return
                group = [item]
                rows = len(item[0])
                stop = False
                while rows < 20000:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    group.append(nxt)
                    rows += len(nxt[0])
                self._commit_group(db, group)
                if stop:
                    return
        finally:
            db.close()

    def _commit_group(self, db: sqlite3.Connection, group: list) -> None:
        results: list[AppendResult] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for records, received, _fut in group:
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO events (audit_id, stage, source, payload, received) VALUES (?,?,?,?,?)",
                    [(r.audit_id, r.stage, r.source, r.payload, received) for r in records],
                )
                accepted = db.total_changes - before
                results.append(AppendResult(accepted, len(records) - accepted))
            db.execute("COMMIT")
        except Exception as e:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            log.error("journal %s: cannot store %d batch(es): %s", self.path, len(group), e)
            for _records, _received, fut in group:
                fut.set_exception(e)
            self._done(len(group))
            return
        last = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        with self.new_events:
            self.last_seq = last
            self._backlog += sum(r.accepted for r in results)
            self.new_events.notify_all()
        for (_records, _received, fut), res in zip(group, results, strict=True):
            fut.set_result(res)
        self._done(len(group))

    def _done(self, n: int) -> None:
        with self._pending_lock:
            self._pending -= n

    # --- the processor's side ----------------------------------------------------------
    def next_events(self, db: sqlite3.Connection, limit: int,
                    after: int | None = None) -> list[tuple[int, str, bytes, float]]:
        """Events after the ``processed`` cursor that the writer has counted in the backlog.

        A batch is visible in SQLite as soon as it commits, a moment before the writer adds it
        to the backlog; reading only up to :attr:`last_seq` (published with that addition) keeps
        the backlog equal to the journal's rows between the two cursors, instead of drifting.
        """
        with self.new_events:
            upto = self.last_seq
            if after is None:  # else: replaying from a snapshot, behind the cursor
                after = self.processed
        return db.execute(
            "SELECT seq, source, payload, received FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, upto, limit)).fetchall()

    def recount_backlog(self, db: sqlite3.Connection) -> int:
        """Derive the backlog from the journal (rows between the two cursors) and adopt it."""
        with self.new_events:  # the writer publishes under this lock: the range is stable meanwhile
            n = db.execute("SELECT count(*) FROM events WHERE seq > ? AND seq <= ?",
                           (self.processed, self.last_seq)).fetchone()[0]
            if n != self._backlog:
                log.warning("journal: backlog counter said %d, the journal holds %d; using the journal",
                            self._backlog, n)
                self._backlog = n
        return n

    def commit_processed(self, db: sqlite3.Connection, upto: int, alerts: list[NewAlert],
                         count: int = 0, snapshot: tuple[str, bytes] | None = None) -> list[NewAlert]:
        """Record alerts and advance the cursor past ``count`` events in one transaction, with the
        detection state ``snapshot`` (name, data) as of ``upto`` if given. The cursor never moves
        back (a replay after a restart commits behind it).

        Returns the alerts that were new.
        """
        fresh: list[NewAlert] = []
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            for a in alerts:
                cur = db.execute(
                    "INSERT OR IGNORE INTO alerts (rule_id, audit_key, payload, received, created) VALUES (?,?,?,?,?)",
                    (a.rule_id, a.audit_key, a.payload, a.received, now),
                )
                if cur.rowcount == 1:
                    fresh.append(a)
            db.execute("UPDATE state SET value = max(value, ?) WHERE name = 'processed'", (upto,))
            if snapshot is not None:
                db.execute("INSERT INTO snapshots (name, upto, data) VALUES (?, ?, ?) ON CONFLICT(name) DO "
                           "UPDATE SET upto = excluded.upto, data = excluded.data", (snapshot[0], upto, snapshot[1]))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        with self.new_events:
            self.processed = max(self.processed, upto)
            self._backlog -= count
        return fresh

    @staticmethod
    def load_snapshot(db: sqlite3.Connection, name: str) -> tuple[int, bytes] | None:
        """(upto, data) of the last detection-state snapshot ``name``, if any."""
        row = db.execute("SELECT upto, data FROM snapshots WHERE name = ?", (name,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def prune(self, db: sqlite3.Connection, *, dedup_window: float, alert_window: float, sinks: list[str]) -> int:
        """Forget processed events older than the dedup window and alerts every output has."""
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            # Events after the oldest snapshot are replayed at the next start: keep them.
            keep = db.execute("SELECT min(upto) FROM snapshots").fetchone()[0]
            done = self.processed if keep is None else min(self.processed, keep)
            n = db.execute("DELETE FROM events WHERE seq <= ? AND received < ?",
                           (done, now - dedup_window)).rowcount
            floor = min((self.read_state(db, f"sink:{s}") for s in sinks), default=0)
            n += db.execute("DELETE FROM alerts WHERE id <= ? AND created < ?", (floor, now - alert_window)).rowcount
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return n

    # --- the outputs' side -------------------------------------------------------------
    @staticmethod
    def alerts_after(db: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, bytes, float]]:
        return db.execute(
            "SELECT id, payload, received FROM alerts WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        ).fetchall()

    @staticmethod
    def alert_id(db: sqlite3.Connection, rule_id: str, audit_key: str) -> int | None:
        row = db.execute("SELECT id FROM alerts WHERE rule_id = ? AND audit_key = ?", (rule_id, audit_key)).fetchone()
        return row[0] if row else None

    @staticmethod
    def set_state(db: sqlite3.Connection, name: str, value: int) -> None:
        db.execute("INSERT INTO state (name, value) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    @staticmethod
    def last_alert_id(db: sqlite3.Connection) -> int:
        return db.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()[0]

    # --- shutdown ------------------------------------------------------------------------
    def close(self, *, release: bool = True) -> None:
        """Commit what is queued, then stop the writer; ``release``: also give up the lock
        (the server does that last, after detection has stopped writing, see :meth:`release`)."""
        if not self._closed:
            self._closed = True
            self._q.put(None)
            self._writer.join(30)
        if release:
            self.release()

    def release(self) -> None:
        """Give up the journal's lock: another process may open it now."""
        self._lock_fh.close()
