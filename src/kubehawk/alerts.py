"""Alerts: what a person acts on, in the JSON contract of DESIGN.md."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from kubehawk.event import TOP_FIELDS
from kubehawk.levels import LEVEL_STYLE, LEVELS

if TYPE_CHECKING:
    from kubehawk.event import AuditEvent
    from kubehawk.rules import Match, Rule

__all__ = ["LEVELS", "LEVEL_STYLE", "Alert", "level_rank", "odd_values", "render_message"]

_RANK = {name: i for i, name in enumerate(LEVELS)}


def level_rank(level: str | None) -> int:
    return _RANK.get((level or "medium").lower(), 2)


_HEAD_DICTS = frozenset({"user", "impersonatedUser", "objectRef", "responseStatus", "annotations"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w./-]*)\}")


def _text(v: Any) -> str:
    """How one value reads in a message: a string as itself, anything else as JSON (``5``,
    ``true``, ``{"a":1}``), whatever type an odd record put where a string belongs."""
    if v.__class__ is str:
        return v
    try:
        return msgspec.json.encode(v).decode()
    except (TypeError, ValueError, OverflowError):  # not JSON data (a library caller's object)
        return repr(v)


def _show(values: list[Any]) -> str | None:
    """The text of a placeholder's values, None when there is none to show."""
    shown = [v for v in values if v is not None and not (v.__class__ in (str, list) and not v)]
    if not shown:
        return None
    return ", ".join(_text(v) for v in shown[:8])


# The dict-held head fields every alert reports (its JSON and the default message): a value of
# another type than the audit.k8s.io/v1 schema's (kubehawk.event_schema.HEAD_SCHEMA) is worth a warning.
_REPORTED = (("objectRef", "resource"), ("objectRef", "subresource"), ("objectRef", "namespace"),
             ("objectRef", "name"), ("user", "username"))


def odd_values(event: AuditEvent) -> list[str]:
    """What an alert on ``event`` reports that is not a string where the schema says one belongs."""
    out = []
    h = event.head
    for top, key in _REPORTED:
        d = getattr(h, top)
        v = d.get(key) if d.__class__ is dict else None
        if v is not None and v.__class__ is not str:
            out.append(f"{top}.{key} is {type(v).__name__} {_text(v)}, not a string")
    return out


def _assemble(pieces: tuple[tuple[str, tuple[str, ...] | None], ...], shown: list[str | None]) -> str:
    """The message from its literal text and each placeholder's text (None: missing, shown as
    ``-``). A bare ``/`` between two placeholders joins them only when both are there: a
    cluster-scoped object reads ``backup-admin``, not ``-/backup-admin``; a request without a
    subresource ``secrets``, not ``secrets/-``."""
    out: list[str] = []
    for i, (text, parts) in enumerate(pieces):
        if parts is None:
            out.append(text)
            continue
        v = shown[i]
        if text == "/" and i and pieces[i - 1][1] is not None:
            if v is None:
                continue  # "a/-" -> "a" ("-" when a is missing too)
            if shown[i - 1] is None:
                out[-1] = v  # "-/b" -> "b"
                continue
        out.append(text)
        out.append("-" if v is None else v)
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _compile(template: str) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    """A template as (literal text, path parts) pieces, split once per template, not per alert."""
    pieces: list[tuple[str, tuple[str, ...] | None]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        pieces.append((template[pos:m.start()], tuple(m.group(1).split("."))))
        pos = m.end()
    pieces.append((template[pos:], None))
    return tuple(pieces)


_OBJECT_NAME = ("objectRef", "name")


def object_name(event: AuditEvent) -> Any:
    """The object's name: ``objectRef.name``, or for a create (where the apiserver records no
    name in objectRef) the name in the request body, else the one the server gave it."""
    name = event.ref("name")
    if name not in (None, ""):
        return name
    if event.head.verb != "create":
        return None
    return event.body_name()


def render_message(template: str, event: AuditEvent, extra: dict[str, Any] | None = None) -> str:
    """Fill ``{field.path}`` placeholders from the event (and correlation facts); missing -> ``-``."""
    pieces = _compile(template)
    h = event.head
    shown: list[str | None] = []
    for _, parts in pieces:
        if parts is None:
            shown.append(None)
            continue
        if extra is not None and parts[0] in extra:
            value = extra[parts[0]]
            if len(parts) > 1 and isinstance(value, dict):
                value = value.get(".".join(parts[1:]))
            shown.append(_show(value if isinstance(value, list) else [value]))
            continue
        # Most placeholders name a string of the head ({verb}, {user.username}, {objectRef.name}):
        # read in place; a non-empty string shows as itself, anything else takes the general path.
        n = len(parts)
        if n == 2 and parts[0] in _HEAD_DICTS:
            d = getattr(h, parts[0])
            v = d.get(parts[1]) if d.__class__ is dict else None
        elif n == 1 and parts[0] in TOP_FIELDS:
            v = getattr(h, parts[0])
        else:
            v = None
        if v.__class__ is str and v:
            shown.append(v)
            continue
        if parts == _OBJECT_NAME and event.ref("name") in (None, ""):
            name = object_name(event)
            shown.append(None if name in (None, "") else _text(name))
            continue
        try:
            shown.append(_show(event.get(parts)))
        except Exception:  # a template must never break alerting
            shown.append(None)
    return _assemble(pieces, shown)


def _default_message(rule: Rule, event: AuditEvent) -> str:
    h = event.head
    obj = "/".join(_text(p) for p in (event.ref("namespace"), event.ref("name")) if p)
    res = _text(event.ref("resource") or h.requestURI or "?")
    if event.ref("subresource"):
        res += "/" + _text(event.ref("subresource"))
    user = event.username
    return f"{rule.title}: {_text(user) if user else '-'} {h.verb or '?'} {res}{' ' + obj if obj else ''}"


@dataclass
class Alert:
    rule: Rule
    event: AuditEvent
    message: str
    correlation: dict[str, Any] | None = field(default=None)
    # what the record holds that is not of its schema type (odd_values): the caller warns
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_match(cls, match: Match) -> Alert:
        rule, event = match.rule, match.event
        corr = None
        if getattr(rule, "kind", "event") == "correlation":
            corr = {
                "count": getattr(match, "count", None),
                "group": getattr(match, "group", None) or {},
                "window_start": getattr(match, "window_start", None),
                "window_end": getattr(match, "window_end", None),
                "events": list(getattr(match, "events", None) or []),
            }
        template = getattr(rule, "message_template", None)
        if template:
            message = render_message(template, event, corr)
        elif corr is not None:
            group = ", ".join(f"{k}={v}" for k, v in corr["group"].items())
            message = f"{rule.title}: {corr['count']} events for {group or 'all'} between " \
                      f"{corr['window_start']} and {corr['window_end']}"
        else:
            message = _default_message(rule, event)
        return cls(rule=rule, event=event, message=message, correlation=corr, warnings=odd_values(event))

    @property
    def level(self) -> str:
        return self.rule.level

    def to_dict(self) -> dict[str, Any]:
        ev = self.event
        return {
            "rule": {"id": self.rule.id, "name": self.rule.name or self.rule.id, "title": self.rule.title,
                     "level": self.rule.level},
            "techniques": list(self.rule.techniques),
            "attack": list(self.rule.attack),
            "auditID": ev.head.auditID,
            "time": ev.time,
            "user": ev.username,
            "verb": ev.head.verb,
            "resource": ev.ref("resource"),
            "subresource": ev.ref("subresource"),
            "namespace": ev.ref("namespace"),
            "name": object_name(ev),
            "sourceIP": ev.source_ip,
            "userAgent": ev.head.userAgent,
            "message": self.message,
        }

    def original_event(self) -> dict[str, Any]:
        """The event as it was read: the line as written when the reader kept it, else the event
        as kubehawk decoded it."""
        ev = self.event
        if ev._line is not None:
            try:
                original = _decode_line(ev._line)
            except msgspec.DecodeError:  # not valid JSON on its own (bad UTF-8...): the decoded event
                original = None
            if isinstance(original, dict):
                return original
        return ev.to_dict()

    def evidence(self) -> dict[str, Any]:
        """Where the alert came from, for an analyst to open the record behind it: ``origin``
        (``file:line``, ``request #n``) and ``event``, the event as it was read (the line as
        written when the reader kept it, else the event as kubehawk decoded it); for a correlation,
        ``window_events``, the auditIDs of the events in its window."""
        out = {"origin": self.event.origin or None, "event": self.original_event()}
        if self.correlation is not None:  # the event that completed it; the window's others by auditID
            out["window_events"] = list(self.correlation.get("events") or [])
        return out


_decode_line = msgspec.json.Decoder().decode
