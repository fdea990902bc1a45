"""Run kubehawk as a user's install runs it: with its bytecode cached.

This sandbox sets PYTHONDONTWRITEBYTECODE, so every fresh process would compile the package's
changed modules again (about 80 ms of a ``detect`` run's start, paid by one process and by the
parent of ``--workers`` alike); ``pip install`` compiles them once. The benchmarks call
:func:`as_installed` first: the variable is dropped for this process and its children (the
``kubehawk`` commands they time, Spark's Python workers) and the package is compiled now.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import kubehawk


def as_installed() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(kubehawk.__file__).parent, quiet=1)
