"""Suite-wide setup: the rules cache (kubehawk.rules.cache) goes to a throw-away directory, never to
the developer's ~/.cache; subprocesses the tests start inherit it."""

from __future__ import annotations

import os
import shutil
import tempfile

_made: list[str] = []


def pytest_configure(config) -> None:
    if "KUBEHAWK_CACHE_DIR" not in os.environ:
        d = tempfile.mkdtemp(prefix="kubehawk-test-cache-")
        _made.append(d)
        os.environ["KUBEHAWK_CACHE_DIR"] = d


def pytest_unconfigure(config) -> None:
    for d in _made:
        shutil.rmtree(d, ignore_errors=True)
        if os.environ.get("KUBEHAWK_CACHE_DIR") == d:
            del os.environ["KUBEHAWK_CACHE_DIR"]
