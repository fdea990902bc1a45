"""Where the workers' results wait for the merge (kubehawk.scale.results)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from kubehawk.scale import results


def _failing_writes(monkeypatch, err: int, under: Path | None = None) -> None:
    """Writes into files under ``under`` (all files when None) fail with ``err``."""
    real = os.fdopen

    def fdopen(fd, *args, **kw):
        f = real(fd, *args, **kw)
        if under is None or os.readlink(f"/proc/self/fd/{fd}").startswith(str(under)):
            f.write = lambda data: (_ for _ in ()).throw(OSError(err, os.strerror(err)))
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_result_that_does_not_fit_in_memory_goes_to_the_next_folder(tmp_path, monkeypatch):
    """A full /dev/shm (64 MB in a container by default) must not fail the run: the result is
    written to the next folder, the temporary one; any other write error still fails the part."""
    full, disk = tmp_path / "shm", tmp_path / "disk"
    full.mkdir()
    disk.mkdir()
    _failing_writes(monkeypatch, errno.ENOSPC, under=full)
    path = results.write_result([str(full), str(disk)], {"records": [1, 2, 3]})
    assert Path(path).parent == disk and not list(full.iterdir())  # nothing left half written
    assert results.load_result(path) == {"records": [1, 2, 3]} and not Path(path).exists()
    _failing_writes(monkeypatch, errno.EIO)
    with pytest.raises(OSError, match="Input/output"):
        results.write_result([str(full), str(disk)], {"records": []})


def test_result_folders_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """A run killed before its end leaves its results folder (in /dev/shm: memory); the next run
    removes the folders whose process is gone, and no other."""
    gone = subprocess.Popen(["true"])  # a process that has ended
    gone.wait()
    stale = tmp_path / f"{results.PREFIX}{gone.pid}-x1"
    running = tmp_path / f"{results.PREFIX}{os.getpid()}-x2"
    other = tmp_path / "kubehawk-other"
    for d in (stale, running, other):
        d.mkdir()
        (d / "1-a.part").write_bytes(b"x")
    results.remove_stale(str(tmp_path))
    assert not stale.exists() and running.exists() and other.exists()
    with results.result_folders() as folders:
        assert folders and all(Path(f).name.startswith(f"{results.PREFIX}{os.getpid()}-") for f in folders)
    assert not any(Path(f).exists() for f in folders)
