"""Run kubehawk as a user's install runs it: with its bytecode cached, its output buffered.

This sandbox sets PYTHONDONTWRITEBYTECODE, so every fresh process would compile the package's
changed modules again (about 80 ms of a ``detect`` run's start, paid by one process and by the
parent of ``--workers`` alike); ``pip install`` compiles them once. It also sets
PYTHONUNBUFFERED, which makes each alert line written to standard output a system call. The
benchmarks call :func:`as_installed` first: both variables are dropped for this process and its
children (the ``kubehawk`` commands they time, Spark's Python workers) and the package is
compiled now.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import kubehawk


def as_installed() -> None:
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        os.environ.pop(name, None)
    compileall.compile_dir(Path(kubehawk.__file__).parent, quiet=1)
