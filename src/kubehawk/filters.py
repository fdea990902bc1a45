"""Which events a command looks at: ``--user``, ``--namespace``, ``--resource``, ``--source-ip``,
``--since`` and ``--until``, shared by ``kubehawk detect`` and ``kubehawk investigate``.

Times are absolute (``2026-11-30T09:00Z``, ``2026-11-30 09:00:00+01:00``, ``2026-11-30``) or
relative: ``--until +2h`` is two hours after ``--since``; ``-30m`` is thirty minutes before now.
Names match exactly, or as a glob when they hold ``*``, ``?`` or ``[``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import click

from kubehawk.formats import parse_time

__all__ = ["EventFilter", "FilterError", "build_filter", "filter_options", "parse_duration", "parse_when"]

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class FilterError(ValueError):
    """A filter value that cannot be read; the message names the option."""


def parse_duration(text: str, option: str = "duration") -> dt.timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w``, or combined (``1h30m``)."""
    m = _DURATION.match(text.strip().lower())
    if not text.strip() or not m or not any(m.groups()):
        raise FilterError(f"{option}: expected a duration such as 30m, 2h, 1d or 1h30m, got {text!r}")
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return dt.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def parse_when(text: str, option: str, *, base: dt.datetime | None = None,
               now: dt.datetime | None = None) -> dt.datetime:
    """An absolute time, ``+D`` (after ``base``: ``--until +2h`` after ``--since``) or ``-D`` (before now)."""
    t = text.strip()
    if t[:1] in "+-" and t[1:2].isdigit() and "T" not in t:
        delta = parse_duration(t[1:], option)
        if t[0] == "+":
            if base is None:
                raise FilterError(f"{option}: {t} is relative to --since; give --since too")
            return base + delta
        return (now or dt.datetime.now(dt.UTC)) - delta
    candidate = t.replace(" ", "T", 1)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", candidate):
        candidate += "T00:00:00Z"
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})?", candidate, re.I):
        # minutes only: insert the seconds before the zone
        m = re.match(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(.*)", candidate)
        candidate = f"{m.group(1)}:00{m.group(2)}"  # type: ignore[union-attr]
    if not re.search(r"(Z|[+-]\d{2}:?\d{2})$", candidate, re.I):
        candidate += "Z"  # audit logs are UTC; so is a time given without a zone
    parsed = parse_time(candidate)
    if parsed is None:
        raise FilterError(f"{option}: expected a time such as 2026-11-30T09:00Z, +2h or -30m, got {text!r}")
    return parsed


def _matcher(values: Iterable[str]) -> Callable[[Any], bool] | None:
    exact = {v for v in values if not any(c in v for c in "*?[")}
    globs = [v for v in values if v not in exact]
    if not exact and not globs:
        return None

    def match(value: Any) -> bool:
        if value is None:
            return False
        s = str(value)
        return s in exact or any(fnmatch.fnmatchcase(s, g) for g in globs)

    return match


@dataclass
class EventFilter:
    """The conjunction of the given filters (each repeatable option: any of its values)."""

    users: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # "pods" or "pods/exec"
    source_ips: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        self._user = _matcher(self.users)
        self._ns = _matcher(self.namespaces)
        self._res = _matcher(self.resources)
        self._ip = _matcher(self.source_ips)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its options (its matchers are closures): ``detect --workers`` sends it to
        each worker."""
        return (EventFilter, (self.users, self.namespaces, self.resources, self.source_ips, self.since, self.until))

    @property
    def active(self) -> bool:
        return any((self.users, self.namespaces, self.resources, self.source_ips, self.since, self.until))

    def matches(self, event: Any) -> bool:
        if self._user is not None and not self._user(event.username):
            return False
        if self._ns is not None and not self._ns(event.ref("namespace")):
            return False
        if self._res is not None:
            res, sub = event.ref("resource"), event.ref("subresource")
            if not (self._res(res) or (sub and self._res(f"{res}/{sub}"))):
                return False
        if self._ip is not None and not any(self._ip(ip) for ip in event.head.sourceIPs or ()):
            return False
        if self.since is not None or self.until is not None:
            when = parse_time(event.time)
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return True

    def apply(self, events: Iterable[Any]) -> Iterator[Any]:
        return filter(self.matches, events) if self.active else iter(events)

    def describe(self) -> dict[str, Any]:
        return {"user": list(self.users), "namespace": list(self.namespaces), "resource": list(self.resources),
                "source_ip": list(self.source_ips),
                "since": self.since.isoformat().replace("+00:00", "Z") if self.since else None,
                "until": self.until.isoformat().replace("+00:00", "Z") if self.until else None}


def build_filter(user: tuple[str, ...] = (), namespace: tuple[str, ...] = (), resource: tuple[str, ...] = (),
                 source_ip: tuple[str, ...] = (), since: str | None = None, until: str | None = None,
                 now: dt.datetime | None = None) -> EventFilter:
    """The filter of the command-line options; raises FilterError naming the bad option."""
    start = parse_when(since, "--since", now=now) if since else None
    end = parse_when(until, "--until", base=start, now=now) if until else None
    if start is not None and end is not None and end < start:
        raise FilterError(f"--until ({end.isoformat()}) is before --since ({start.isoformat()})")
    return EventFilter(tuple(user), tuple(namespace), tuple(resource), tuple(source_ip), start, end)


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The filter options, for any command that reads events (passes ``user``, ``namespace``,
    ``resource``, ``source_ip``, ``since``, ``until``; build the filter with :func:`build_filter`)."""
    opts = [
        click.option("--user", "user", multiple=True, help="Only events of this identity (repeatable; globs)."),
        click.option("--namespace", "namespace", multiple=True, help="Only events in this namespace (repeatable)."),
        click.option("--resource", "resource", multiple=True,
                     help="Only events on this resource, e.g. secrets or pods/exec (repeatable)."),
        click.option("--source-ip", "source_ip", multiple=True, help="Only events from this IP (repeatable)."),
        click.option("--since", help="Only events at or after this time: 2026-11-30T09:00Z, or -2h (before now)."),
        click.option("--until", help="Only events at or before this time: absolute, +2h (after --since) or -30m."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f
