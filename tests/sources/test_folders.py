"""A file named more than once is read once (kubehawk.sources.folders.FilesRead)."""

from __future__ import annotations

import json
import os

from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.folders import FilesRead

from helpers import audit


def _write(path, *ids: str):
    path.write_bytes(b"".join(json.dumps(audit(auditID=i)).encode() + b"\n" for i in ids))
    return path


def test_a_file_named_twice_is_read_once_where_first_named(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    a = _write(logs / "a.log", "a1", "a2")
    b = _write(tmp_path / "b.log", "b1")
    os.symlink(b, tmp_path / "current.log")
    stats = ReadStats()
    events = list(read_paths([str(b), str(logs), str(a), str(tmp_path / "current.log"), str(b)], stats))
    assert [e.head.auditID for e in events] == ["b1", "a1", "a2"]
    assert (stats.files, stats.events) == (2, 3)


def test_what_is_not_a_regular_file_is_left_to_its_reader(tmp_path):
    read = FilesRead()
    missing = str(tmp_path / "nowhere.log")
    assert read.first(missing) and read.first(missing)  # its reader names it, each time it is named
    assert read.first(str(tmp_path)) and read.first(str(tmp_path))
    f = _write(tmp_path / "a.log", "a")
    assert read.first(str(f)) and not read.first(str(f)) and not read.first(str(tmp_path / "." / "a.log"))
