"""Which files a folder holds, and in which order they are read: oldest first, by rotation.

A folder of audit logs holds the live file and its rotated backups (kube-apiserver's lumberjack
``audit-2024-10-30T11-19-19.911.log.gz``, logrotate's ``audit.log.1`` and ``audit.log-20241030``);
reading them oldest first keeps event time and stream order together, which the correlations and
first-seen rules rely on. A folder that cannot be read is reported, not raised.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["FilesRead", "Rotation", "iter_files", "order_files", "rotation_of", "walk_files"]


_COMPRESSED = (".gz", ".bz2", ".xz")
# kube-apiserver log backend (lumberjack): audit-2024-10-30T11-19-19.911.log[.gz]
_LUMBERJACK = re.compile(r"^(?P<base>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)(?P<ext>\.[^.]+)?$")
# logrotate: audit.log.1, audit.log.2.gz (higher = older); dateext: audit.log-20241030
_LOGROTATE_NUM = re.compile(r"^(?P<base>.+)\.(?P<n>\d{1,4})$")
_LOGROTATE_DATE = re.compile(r"^(?P<base>.+)-(?P<date>\d{8}(?:\d{2,6})?)$")


@dataclass(frozen=True)
class Rotation:
    """Where a file stands in its rotation family (``base``); ``backup`` False = current."""

    base: str
    backup: bool
    rank: tuple[Any, ...]


def rotation_of(name: str) -> Rotation:
    """The rotation family of a file name and its age rank within it (smaller = older)."""
    stem = name
    for ext in _COMPRESSED:
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    m = _LUMBERJACK.match(stem)
    if m:
        return Rotation(m["base"] + (m["ext"] or ""), True, (0, m["ts"], 0))
    m = _LOGROTATE_NUM.match(stem)
    if m:
        return Rotation(m["base"], True, (1, "", -int(m["n"])))
    m = _LOGROTATE_DATE.match(stem)
    if m:
        return Rotation(m["base"], True, (0, m["date"], 0))
    # The current file sorts after every backup of its family.
    return Rotation(stem, stem != name, (2, "", 0))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def order_files(paths: Iterable[str]) -> list[str]:
    """Oldest first: rotation families by name (lumberjack time stamps, logrotate numbers,
    the current file last); families and unrelated files by modification time, then name."""
    families: dict[tuple[str, str], list[tuple[tuple[Any, ...], str]]] = {}
    for p in paths:
        d, name = os.path.split(p)
        rot = rotation_of(name)
        families.setdefault((d, rot.base), []).append((rot.rank, p))
    ordered = []
    for key, members in families.items():
        members.sort()
        oldest = min(_mtime(p) for _, p in members)
        ordered.append((oldest, key, [p for _, p in members]))
    ordered.sort(key=lambda t: (t[0], t[1]))
    return [p for _, _, ps in ordered for p in ps]


class FilesRead:
    """The regular files a run has read, by device and inode: a file named twice (the same path
    again, a folder and a file in it, a link and its target) is read once, where first named.
    Reading it again would count its events twice and feed its requests to the correlations
    twice."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, int]] = set()

    def first(self, path: str) -> bool:
        """True the first time ``path``'s file is met (and for what is not a regular file, or
        cannot be looked at: its reader names the problem)."""
        try:
            st = os.stat(path)
        except OSError:
            return True
        if not stat.S_ISREG(st.st_mode):
            return True
        key = (st.st_dev, st.st_ino)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def walk_files(root: str, errors: list[OSError] | None = None) -> list[str]:
    """Regular files under ``root``, recursively, hidden files and folders left out.

    ``errors`` collects what could not be read (a folder that cannot be listed, an entry that
    cannot be looked at, such as a dangling link); without it they are passed over.
    """
    found: list[str] = []
    for d, dirs, files in os.walk(root, onerror=errors.append if errors is not None else None):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            p = os.path.join(d, f)
            try:
                if stat.S_ISREG(os.stat(p).st_mode):
                    found.append(p)
            except OSError as e:
                if errors is not None:
                    errors.append(e)
    return found


def iter_files(root: str, errors: list[OSError] | None = None) -> list[str]:
    """The files of a directory in reading order (see :func:`order_files`); ``errors``: see
    :func:`walk_files`."""
    return order_files(walk_files(root, errors))

