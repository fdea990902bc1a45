"""kubehawk's two compiled parts, when they were built and are not switched off.

Both are optional C extensions (``setup.py``): a machine without a C compiler installs and runs
kubehawk the same, only slower. ``KUBEHAWK_NATIVE=0`` in the environment switches them off,
which is also how the tests run both ways.

- ``linescreen``: :mod:`kubehawk._linescreen`, see :mod:`kubehawk.rules.linescreen`.
- ``needles``: :mod:`kubehawk._needles`, searches of raw bodies for the rule compiler: several
  byte strings in one pass (the body and keyword screens), the values written after a key.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["enabled", "linescreen", "needles"]


def enabled() -> bool:
    return os.environ.get("KUBEHAWK_NATIVE", "1") != "0"


def _load(name: str) -> Any:
    if not enabled():
        return None
    try:
        return importlib.import_module(f"kubehawk.{name}")
    except ImportError:  # built without a compiler
        return None


linescreen = _load("_linescreen")
needles = _load("_needles")
