"""How a ``detect`` run ends: the summary on stderr and the exit code a CI job or cron reads.

Exit codes (the same table for every command, see the README): 0 the run went through and
found nothing it was asked to fail on; 1 findings (an alert at or above ``--fail-on``, or a
malformed record with ``--strict``); 2 the input, config or command line was wrong (a path
that is not there, input in which no audit event was recognised, a rule file that did not
load under ``--strict``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubehawk.levels import LEVELS

__all__ = ["exit_code", "missing_paths", "summary_lines"]

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
_ORIGIN = re.compile(r"^(.*?)(?::\d+)*: ")
MAX_NAMED_FILES = 5


def missing_paths(paths: Iterable[str]) -> list[str]:
    """The paths (``-`` is stdin) that do not exist: nothing can be read from them."""
    return [p for p in paths if p != "-" and not os.path.exists(p)]


def summary_lines(s: Mapping[str, Any], alerts_by_level: Mapping[str, int], odd_records: int,
                  problems: Iterable[str]) -> list[str]:
    """The end summary: counts on one line, then what the reader says about the input (the files
    with bad records, those skipped as not audit logs: :meth:`ReadStats.problems`), named even
    with ``-q``."""
    parts = [f"{s.get('events', 0)} events read", f"{s.get('bad', 0)} bad records"]
    if s.get("skipped"):
        parts.append(f"{s['skipped']} skipped")
    if odd_records:
        parts.append(f"{odd_records} alerted records with odd values")
    shown = [(lvl, alerts_by_level.get(lvl, 0)) for lvl in reversed(LEVELS)]
    parts.append("alerts: " + ", ".join(f"{n} {lvl}" for lvl, n in shown if n) if any(n for _, n in shown)
                 else "no alerts")
    return ["; ".join(parts), *problems]


def exit_code(s: Mapping[str, Any], alerts_by_level: Mapping[str, int], *, fail_on: str | None, strict: bool,
              follow: bool = False) -> tuple[int, str | None]:
    """The exit code of a finished run and, when it is not 0, why (one line for stderr)."""
    if not follow and not s.get("events") and (s.get("bad") or s.get("skipped") or s.get("not_audit")):
        return EXIT_INPUT, "no audit event was recognised in the input"
    if fail_on is not None:
        floor = LEVELS.index(fail_on)
        hits = sum(n for lvl, n in alerts_by_level.items() if lvl in LEVELS and LEVELS.index(lvl) >= floor)
        if hits:
            return EXIT_FINDINGS, f"{hits} alert(s) at or above {fail_on} (--fail-on)"
    if strict and s.get("bad"):
        return EXIT_FINDINGS, f"{s['bad']} malformed record(s) (--strict)"
    return EXIT_OK, None
