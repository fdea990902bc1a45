"""Gather a report's inputs: alerts from a log (running detection) or from alert JSON lines, the
rules' triage text, the Threat Matrix coverage, and a policy's blind spots and leaks."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from kubehawk.formats import parse_time

__all__ = ["EventWatch", "alerts_from_jsonl", "alerts_from_log", "policy_section"]

Warn = Callable[[str], None] | None


class EventWatch:
    """Passes events through, counting them and keeping the first and last timestamps."""

    def __init__(self) -> None:
        self.count = 0
        self._lo: str | None = None
        self._hi: str | None = None

    def __call__(self, events: Iterable[Any]) -> Iterator[Any]:
        for ev in events:
            self.count += 1
            t = ev.time
            if t:
                key = t[:19]  # RFC 3339 to the second compares as text
                if self._lo is None or key < self._lo[:19]:
                    self._lo = t
                if self._hi is None or key >= self._hi[:19]:
                    self._hi = t
            yield ev

    @property
    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        lo, hi = parse_time(self._lo), parse_time(self._hi)
        return (lo, hi) if lo is not None and hi is not None else None


def alerts_from_log(paths: list[str], detector: Any, stats: Any, watch: EventWatch,
                    on_warning: Warn = None) -> list[tuple[dict[str, Any], bytes]]:
    """Run detection over ``paths``; each alert with the event that raised it, as compact JSON
    (decoded again only for the rows the report lists). Every event is read (no line screen), so
    the time span and the count are those of the whole log."""
    from kubehawk.sources.files import read_paths

    events = watch(read_paths(paths, stats, on_warning=on_warning))
    return [(a.to_dict(), a.event.to_json()) for a in detector.alerts(events)]


def alerts_from_jsonl(path: str, on_warning: Warn = None) -> tuple[list[tuple[dict[str, Any], None]], int]:
    """Alerts written by ``kubehawk detect --format json`` (or a file output); a line that is not
    an alert object is a warning naming ``file:line``, counted, and skipped."""
    out: list[tuple[dict[str, Any], None]] = []
    bad = 0
    fh = open(path, "rb") if path != "-" else None  # noqa: SIM115
    stream = fh or sys.stdin.buffer
    try:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError as e:
                obj, why = None, f"not JSON ({e})"
            else:
                why = "not an alert (expected an object with a rule mapping)"
            if not isinstance(obj, dict) or not isinstance(obj.get("rule"), dict):
                bad += 1
                if on_warning:
                    on_warning(f"{path}:{n}: {why}")
                continue
            out.append((obj, obj.get("event") if isinstance(obj.get("event"), dict) else None))
    finally:
        if fh:
            fh.close()
    return out, bad


def policy_section(policy_path: str, rules: list[Any]) -> dict[str, Any]:
    """What the policy blinds (``kubehawk policy coverage``) and what it leaks (the lint's
    secret-leak findings). Raises PolicyError for a policy the apiserver would refuse."""
    from kubehawk.policy.coverage import coverage
    from kubehawk.policy.lint import lint_policy
    from kubehawk.policy.model import Policy

    pol = Policy.load(policy_path)
    report = coverage(pol, rules)
    order = {"blind": 0, "partial": 1}
    gaps = [{"status": r.status, "title": r.title, "level": r.level,
             "gap": f"{len(r.gaps)}/{r.probes} probes, e.g. {r.gaps[0].describe()}", "fix": r.fix}
            for r in sorted(report.rules, key=lambda r: (order.get(r.status, 2), r.title))
            if r.status != "fed" and r.gaps]
    leaks = [f for f in lint_policy(pol).findings if f.id == "POL-SECRET-LEAK"]
    return {"source": Path(policy_path).name, "counts": report.counts(), "gaps": gaps, "leaks": leaks}
