"""Where a local worker's results wait for the merge: files, whose names alone cross the pool's pipe.

A worker that dies while it writes a message longer than a pipe's atomic write into the pool's
pipe leaves the pool's reader waiting for the rest for ever (a killed worker hung the run); a
file's name is written whole or not at all. The files are in memory (``/dev/shm``) when it can
be written, in the temporary folder when not or when it is full (a container's ``/dev/shm`` is
often 64 MB). A run's folders are named after its process and removed at its end; those of a run
that was killed (its process gone) are removed by the next run, so that memory is not held until
a reboot.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["MEMORY", "PREFIX", "load_result", "remove_stale", "result_folders", "write_result"]

MEMORY = "/dev/shm"
PREFIX = "kubehawk-parts-"  # then the run's process id, "-" and a unique part


@contextmanager
def result_folders() -> Iterator[list[str]]:
    """This run's folders for results, in the order to try them; removed at the end."""
    bases = ([MEMORY] if os.access(MEMORY, os.W_OK) else []) + [tempfile.gettempdir()]
    for base in bases:
        remove_stale(base)
    folders: list[str] = []
    try:
        for base in bases:
            folders.append(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        yield folders
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def remove_stale(base: str) -> None:
    """Remove the result folders in ``base`` of runs whose process is gone (killed before its
    end), only those of this user."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):].partition("-")[0] if name.startswith(PREFIX) else ""
        if not pid.isdigit() or _alive(int(pid)):
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to tell: keep its folder
        return True
    return True


def write_result(folders: Sequence[str], result: Any) -> str:
    """``result`` pickled into a new file in the first of ``folders`` with room for it; its path."""
    data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    for folder in folders[:-1]:
        try:
            return _written(folder, data)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
    return _written(folders[-1], data)


def _written(folder: str, data: bytes) -> str:
    fd, path = tempfile.mkstemp(dir=folder, prefix=f"{os.getpid()}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(path)
        raise
    return path


def load_result(path: str) -> Any:
    """The result written at ``path``, which is removed."""
    with open(path, "rb") as f:
        result = pickle.load(f)
    os.unlink(path)
    return result
