"""Where ``detect --follow --state FILE`` stopped: per followed file, its inode and the offset
after the last line whose alerts were written, so a restarted follower resumes exactly there.

The state also records how long the alert file (``-o``) was at that moment. A follower killed
between writing alerts and saving the state has written alerts for lines it will read again;
on restart the alert file is cut back to the recorded length, so those alerts are raised once,
not twice. The file is replaced atomically (write, fsync, rename): a crash leaves the old state
or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["HEAD_BYTES", "Checkpoints", "FollowState", "Position", "StateError", "find_file", "fingerprint",
           "same_file"]

_VERSION = 1


class StateError(Exception):
    """The state file cannot be read or written (the message names it)."""


class Position(NamedTuple):
    """A place in one file: which file (device, inode, and ``head``, the CRC-32 of its first bytes
    up to the offset: an inode is reused once its file is deleted) and the byte offset and line
    count after the last line fully processed."""

    dev: int
    ino: int
    offset: int
    line: int
    head: int = 0


HEAD_BYTES = 256  # the first line of an audit log: its auditID and time make it unique


def fingerprint(fd: int, offset: int) -> int:
    """The ``head`` of a file open as ``fd`` at a position ``offset``."""
    n = min(offset, HEAD_BYTES)
    return zlib.crc32(os.pread(fd, n, 0)) if n else 0


def same_file(path: str, saved: Position) -> bool:
    """Whether ``path`` is the file ``saved`` points into (device, inode and first bytes)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            return (st.st_dev, st.st_ino) == (saved.dev, saved.ino) and fingerprint(fh.fileno(), saved.offset) \
                == saved.head
    except OSError:
        return False


def _same_content(path: str, saved: Position) -> bool:
    """Whether ``path`` begins with the bytes ``saved`` read and holds at least as many."""
    try:
        with open(path, "rb") as fh:
            return os.fstat(fh.fileno()).st_size >= saved.offset and fingerprint(fh.fileno(), saved.offset) \
                == saved.head
    except OSError:
        return False


HEAD_MATCH_MIN = 64  # fewer first bytes than this do not tell two files apart


def find_file(folder: str, saved: Position) -> str | None:
    """The file of ``folder`` that ``saved`` points into: the followed file renamed by rotation
    (same inode), else a copy of it (copytruncate: same first bytes, at least as long)."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if e.is_file()]
    except OSError:
        return None
    for entry in entries:
        if entry.inode() == saved.ino and same_file(entry.path, saved):
            return entry.path
    if min(saved.offset, HEAD_BYTES) >= HEAD_MATCH_MIN:
        for entry in entries:
            if _same_content(entry.path, saved):
                return entry.path
    return None


def _position(path: str, where: str, value: Any) -> Position:
    """One file's entry; every field is required (without ``head`` a reused inode passes for the file)."""
    fields = Position._fields
    if not isinstance(value, dict) or not all(isinstance(value.get(f), int) and value[f] >= 0 for f in fields):
        raise StateError(f"{path}: {where}: expected {{{', '.join(fields)}}} as non-negative integers")
    return Position(*(value[f] for f in fields))


class FollowState:
    """The saved positions (by absolute path) and the alert file's length, loaded from and saved
    to one JSON file."""

    def __init__(self, path: str, positions: dict[str, Position] | None = None,
                 output: tuple[str, int] | None = None) -> None:
        self.path = path
        self.positions: dict[str, Position] = positions or {}
        self.output = output  # (absolute path, length in bytes) of the alert file at the last save

    @classmethod
    def load(cls, path: str) -> FollowState:
        """The state in ``path``; an empty one when the file does not exist yet."""
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
        except FileNotFoundError:
            return cls(path)
        except OSError as e:
            raise StateError(f"{path}: cannot read the follow state: {e.strerror or e}") from None
        except ValueError as e:
            raise StateError(f"{path}: not a kubehawk follow state (invalid JSON: {e})") from None
        if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("files"), dict):
            raise StateError(f"{path}: not a kubehawk follow state (expected version {_VERSION} with 'files')")
        positions = {str(k): _position(path, f"files[{k!r}]", v) for k, v in data["files"].items()}
        output = None
        out = data.get("output")
        if out is not None:
            if not (isinstance(out, dict) and isinstance(out.get("path"), str) and isinstance(out.get("size"), int)):
                raise StateError(f"{path}: output: expected {{path, size}}")
            output = (out["path"], out["size"])
        return cls(path, positions, output)

    def save(self, positions: dict[str, Position], output: tuple[str, int] | None = None) -> None:
        """Replace the file with these positions (and alert file length), atomically."""
        self.positions = dict(positions)
        self.output = output
        data: dict[str, Any] = {"version": _VERSION,
                                "files": {k: p._asdict() for k, p in sorted(self.positions.items())}}
        if output is not None:
            data["output"] = {"path": output[0], "size": output[1]}
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".kubehawk-state-", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            raise StateError(f"{self.path}: cannot save the follow state: {e.strerror or e}") from None

    def rewind_output(self, output: str) -> int:
        """Cut the alert file ``output`` back to its length at the last save, when it grew since
        (alerts of lines that will be read again); the number of bytes cut."""
        if self.output is None or self.output[0] != os.path.abspath(output):
            return 0
        try:
            size = os.path.getsize(output)
        except OSError:
            return 0
        saved = self.output[1]
        if size <= saved:
            return 0  # unchanged, or the user truncated or replaced it: nothing of ours to cut
        try:
            os.truncate(output, saved)
        except OSError as e:
            raise StateError(f"{output}: cannot cut back to the last saved position: {e.strerror or e}") from None
        return size - saved


class Checkpoints:
    """The ``checkpoint`` of :func:`kubehawk.sources.follow.follow_paths` for ``detect``: first the
    alerts written so far reach the output (``flush`` returns the alert file's length, None for
    standard output), then the positions are saved with that length. A save that fails is
    reported (once per distinct reason) and the follow goes on: a full disk must not stop
    detection, it only means a restart reads again from an older position."""

    def __init__(self, state: FollowState, output: str | None, flush: Callable[[], int | None],
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.state = state
        self.output = os.path.abspath(output) if output else None
        self.flush = flush
        self.on_warning = on_warning
        self._error: str | None = None

    def __call__(self, positions: dict[str, Position]) -> None:
        size = self.flush()
        try:
            self.state.save(positions, (self.output, size) if self.output and size is not None else None)
        except StateError as e:
            if str(e) != self._error and self.on_warning is not None:
                self.on_warning(str(e))
            self._error = str(e)
            return
        self._error = None

    def final(self) -> None:
        """After the last alerts (a correlation's at the end): the same positions, the new length."""
        self(self.state.positions)
