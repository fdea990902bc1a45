"""Dotted field paths over a decoded audit event: ``objectRef.namespace``,
``requestObject.spec.containers.image``, ``annotations.authorization.k8s.io/decision``.

How a path walks lists (into every element) and dotted keys (the longest existing key first) is
decided here once, for the event's own lookups and for the rule compiler's getters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["flatten_lists", "resolve", "split_path"]

_path_cache: dict[str, tuple[str, ...]] = {}


def split_path(path: str) -> tuple[str, ...]:
    parts = _path_cache.get(path)
    if parts is None:
        parts = _path_cache[path] = tuple(path.split("."))
    return parts


def resolve(value: Any, parts: tuple[str, ...] | list[str]) -> list[Any]:
    """All values reached by following ``parts`` from ``value``.

    A path through a list continues into every element (so a rule matches if any
    element matches), and a list at the end of the path gives its elements, those of nested
    lists too; at a mapping the longest run of parts that is an existing key
    wins, so ``annotations.authorization.k8s.io/decision`` finds the dotted key.
    A missing field yields no values (``[]``); an explicit JSON null yields ``[None]``.
    """
    out: list[Any] = []
    _walk(value, parts, 0, out)
    return out


def flatten_lists(values: list[Any], out: list[Any]) -> None:
    """The elements of ``values`` into ``out``, those of nested lists too, at any depth (as a path
    walks lists in its middle): ``[[a, b], [c]]`` holds a, b and c."""
    for x in values:
        if type(x) is list:
            flatten_lists(x, out)
        else:
            out.append(x)


def _walk(value: Any, parts: tuple[str, ...] | list[str], i: int, out: list[Any]) -> None:
    n = len(parts)
    while True:
        if i == n:
            if isinstance(value, list):
                flatten_lists(value, out)
            else:
                out.append(value)
            return
        if isinstance(value, list):
            for item in value:
                _walk(item, parts, i, out)
            return
        if not isinstance(value, Mapping):
            return
        key = parts[i]
        if i + 1 < n:
            # Longest existing key first: dotted keys such as annotation names.
            for j in range(n, i + 1, -1):
                joined = ".".join(parts[i:j])
                if joined in value:
                    _walk(value[joined], parts, j, out)
                    return
        if key not in value:
            return
        value = value[key]
        i += 1
