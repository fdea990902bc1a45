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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubehawk.levels import LEVELS

__all__ = ["BadFiles", "exit_code", "missing_paths", "summary_lines"]

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
_ORIGIN = re.compile(r"^(.*?)(?::\d+)*: ")
MAX_NAMED_FILES = 5


def missing_paths(paths: Iterable[str]) -> list[str]:
    """The paths (``-`` is stdin) that do not exist: nothing can be read from them."""
    return [p for p in paths if p != "-" and not os.path.exists(p)]


class BadFiles:
    """Bad records per file, tallied from the reader's warnings (each starts ``file[:line]: ``);
    called for every warning, printed or not, so ``-q`` still names the files in the summary."""

    def __init__(self, then: Callable[[str], None] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self._then = then

    def __call__(self, message: str) -> None:
        m = _ORIGIN.match(message)
        if m and ": skipped: " not in message:
            self.counts[m.group(1)] += 1
        if self._then is not None:
            self._then(message)

    def describe(self) -> str | None:
        """``README.md (157), x.log (2)``: the files with most bad records first, None when none."""
        if not self.counts:
            return None
        top = self.counts.most_common(MAX_NAMED_FILES)
        text = ", ".join(f"{name} ({n})" for name, n in top)
        rest = len(self.counts) - len(top)
        return text + (f" and {rest} more file(s)" if rest > 0 else "")


def summary_lines(s: Mapping[str, Any], alerts_by_level: Mapping[str, int], bad_files: BadFiles) -> list[str]:
    """The end summary: counts on one line, then the files with bad records."""
    parts = [f"{s.get('events', 0)} events read", f"{s.get('bad', 0)} bad records"]
    if s.get("skipped"):
        parts.append(f"{s['skipped']} skipped")
    shown = [(lvl, alerts_by_level.get(lvl, 0)) for lvl in reversed(LEVELS)]
    parts.append("alerts: " + ", ".join(f"{n} {lvl}" for lvl, n in shown if n) if any(n for _, n in shown)
                 else "no alerts")
    lines = ["; ".join(parts)]
    where = bad_files.describe()
    if where:
        lines.append(f"bad records in: {where}")
    return lines


def exit_code(s: Mapping[str, Any], alerts_by_level: Mapping[str, int], *, fail_on: str | None, strict: bool,
              follow: bool = False) -> tuple[int, str | None]:
    """The exit code of a finished run and, when it is not 0, why (one line for stderr)."""
    if not follow and not s.get("events") and (s.get("bad") or s.get("skipped")):
        return EXIT_INPUT, "no audit event was recognised in the input"
    if fail_on is not None:
        floor = LEVELS.index(fail_on)
        hits = sum(n for lvl, n in alerts_by_level.items() if lvl in LEVELS and LEVELS.index(lvl) >= floor)
        if hits:
            return EXIT_FINDINGS, f"{hits} alert(s) at or above {fail_on} (--fail-on)"
    if strict and s.get("bad"):
        return EXIT_FINDINGS, f"{s['bad']} malformed record(s) (--strict)"
    return EXIT_OK, None
