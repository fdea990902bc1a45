"""Finding a rule the way a person types it: by id, by name, or by a unique prefix of either
(like git's short hashes), with close names suggested when nothing matches."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubehawk.rules import Rule, RuleSet

__all__ = ["RuleNotFound", "find_rule", "short_ids"]

SHORT = 8  # characters of a rule id shown by `rules list`, more where two would look alike


class RuleNotFound(LookupError):
    """No rule, or more than one, answers to what was typed; the message says which."""


def short_ids(ids: Iterable[str]) -> dict[str, str]:
    """Each id cut to the shortest prefix (at least ``SHORT`` characters) no other id starts with."""
    ids = list(ids)
    out: dict[str, str] = {}
    for i in ids:
        n = SHORT
        while n < len(i) and any(o != i and o.startswith(i[:n]) for o in ids):
            n += 1
        out[i] = i[:n]
    return out


def find_rule(ruleset: RuleSet, key: str) -> Rule:
    """The rule whose id or name is ``key``, else the only one whose id or name starts with it."""
    rule = ruleset.get(key)
    if rule is not None:
        return rule
    low = key.lower()
    hits = [r for r in ruleset.rules if r.id.lower().startswith(low) or (r.name or "").lower().startswith(low)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        names = ", ".join(r.name or r.id for r in hits[:8]) + (", …" if len(hits) > 8 else "")
        raise RuleNotFound(f"{key!r} is the start of {len(hits)} rules: {names}; type more of it")
    raise RuleNotFound(f"no rule with id or name {key!r}" + _suggest(ruleset, low))


def _suggest(ruleset: RuleSet, low: str) -> str:
    names = [r.name for r in ruleset.rules if r.name]
    near = [n for n in names if low in n.lower()]
    near += [n for n in difflib.get_close_matches(low, names, n=5, cutoff=0.6) if n not in near]
    if not near:
        return " (see `kubehawk rules list`)"
    return "; did you mean " + ", ".join(near[:5]) + "?"
