"""Alerts as JSON lines in a file, rotated by size (``alerts.jsonl`` -> ``alerts.jsonl.1`` ...).

Each batch is written with one ``write`` call and flushed, so a killed process leaves
whole lines; ``fsync: true`` also survives power loss. After a crash the server asks
:meth:`FileSink.last_delivered_key` which alert the file already ends with, so an
alert is never written twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from kubehawk.sinks.base import Sink, alert_key

__all__ = ["FileSink"]


class FileSink(Sink):
    type_name = "file"

    def __init__(self, name: str, path: str | Path, *, max_bytes: int = 100 * 1024 * 1024, backups: int = 5,
                 fsync: bool = False, min_level: str = "informational") -> None:
        super().__init__(name, min_level)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held open for the sink's life
        self._size = self._fh.tell()

    # --- writing ---------------------------------------------------------------------
    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        data = b"".join(msgspec.json.encode(self.shape(a)) + b"\n" for a in alerts)
        try:
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._fh.write(data)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as e:
            self.drop(len(alerts), f"cannot write {self.path}: {e.strerror or e}")
            self._reopen()
            return
        self._size += len(data)
        self.stats.add("delivered", len(alerts))

    def _rotate(self) -> None:
        self._fh.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                src = self._backup(i)
                if src.exists():
                    os.replace(src, self._backup(i + 1))
            os.replace(self.path, self._backup(1))
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def _reopen(self) -> None:
        try:
            self._fh.close()
            self._fh = open(self.path, "ab")  # noqa: SIM115
            self._size = self._fh.tell()
        except OSError:
            pass

    def _backup(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def close(self) -> None:
        try:
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except (OSError, ValueError):
            pass
        self._fh.close()

    # --- crash recovery --------------------------------------------------------------
    def _repair_tail(self) -> None:
        """Cut a partial last line (power loss mid-write) so the file stays valid JSON lines."""
        try:
            with open(self.path, "rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(size - 1)
                if fh.read(1) == b"\n":
                    return
                start = max(0, size - 1024 * 1024)
                fh.seek(start)
                tail = fh.read()
                cut = tail.rfind(b"\n")
                fh.truncate(start + cut + 1 if cut >= 0 else start)
        except FileNotFoundError:
            return

    def last_delivered_key(self) -> tuple[str, str] | None:
        for p in (self.path, self._backup(1)):
            line = _last_line(p)
            if line is None:
                continue
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError:
                return None
            if not isinstance(obj, dict):
                return None
            if self.fmt == "json":
                return alert_key(obj)
            from kubehawk.formats import key_of

            return key_of(obj, self.fmt)
        return None


def _last_line(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return None
            start = max(0, size - 1024 * 1024)
            fh.seek(start)
            lines = fh.read().rstrip(b"\n").rsplit(b"\n", 1)
            return lines[-1] or None
    except FileNotFoundError:
        return None
