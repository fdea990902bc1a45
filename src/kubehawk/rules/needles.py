"""Literal search: which of several byte strings a text holds, in one pass.

Serves the raw-body screen (keys in a body) and the keyword prefilters (words in the event as
written): the compiled needle search of :mod:`kubehawk.native` when it is built, else an RE2
set of literals, else one ``in`` per string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubehawk import native

_searchers: dict[tuple[tuple[bytes, ...], bool], Callable[[bytes], Any]] = {}


def _key_searcher(keys: tuple[bytes, ...], fold: bool = False) -> Callable[[bytes], Any]:
    """``search(raw)``: the positions in ``keys`` of those found in ``raw`` (substrings, as
    :meth:`_Body.has` finds them), in one pass: the compiled needle search
    (:mod:`kubehawk.native`), else an RE2 set of literals (byte semantics), else one ``in`` per
    key. ``fold``: ASCII letters match either case (the keys are lower-case; ``raw`` is ASCII,
    which the caller checks)."""
    search = _searchers.get((keys, fold))
    if search is None and native.needles is not None and len(keys) <= 64:
        search = _searchers[(keys, fold)] = native.needles.Needles(keys, fold).search
    if search is None:
        try:
            import re2

            opts = re2.Options()
            opts.encoding = re2.Options.Encoding.LATIN1
            opts.case_sensitive = not fold
            opts.log_errors = False
            rs = re2.Set.SearchSet(opts)
            for kb in keys:
                rs.Add(re.escape(kb))
            rs.Compile()
            match = rs.Match

            def search(raw: bytes) -> Any:
                return match(raw) or ()
        except ImportError:
            def search(raw: bytes) -> Any:
                text = raw.lower() if fold else raw
                return [i for i, kb in enumerate(keys) if kb in text]
        search = _searchers[(keys, fold)] = search
    return search
