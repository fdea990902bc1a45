"""Alert levels: one set of names for every command, option and config key.

The Sigma levels, compared case-insensitively, with ``info`` (the policy linter's word and
what most tools say) accepted for ``informational``. Everything that takes a level from a
user goes through :func:`parse_level` (on the command line, :class:`kubehawk.cliutil.LevelChoice`), so ``--min-level INFO``,
``--fail-on informational`` and ``min_level: High`` in a config all mean what they say.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LEVELS", "LEVEL_STYLE", "level_names", "level_style", "parse_level"]

LEVELS = ("informational", "low", "medium", "high", "critical")
_ALIASES = {"info": "informational"}
# How a terminal shows each level (rich markup styles).
LEVEL_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
               "informational": "dim"}


def parse_level(value: Any) -> str | None:
    """The canonical name of a level a user wrote, None when it is not one."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    v = _ALIASES.get(v, v)
    return v if v in LEVELS else None


def level_style(value: Any) -> str:
    """The rich style of a level however it is written (``info`` too); "" for no level."""
    return LEVEL_STYLE.get(parse_level(value) or "", "")


def level_names() -> str:
    """The names to suggest in an error message."""
    return ", ".join(("info", *LEVELS[1:])) + " (informational = info; any case)"
