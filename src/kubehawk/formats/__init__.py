"""Alerts in the shapes SIEMs ingest: our JSON contract, Elastic Common Schema, OCSF, Falco.

One entry point, :func:`render`, serves ``kubehawk detect --format`` and the ``format:`` key of
the ``outputs:`` sinks, so a format is written one way everywhere. Each formatter takes the
alert dict of DESIGN.md and, when the caller has it, the original audit event (ECS
``event.original``, OCSF evidence ``data``); without it the formats still validate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["ALERT_FORMATS", "alert_parts", "epoch_ms", "key_of", "parse_time", "prune", "render"]

ALERT_FORMATS = ("json", "ecs", "ocsf", "falco")


def alert_parts(alert: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the alert dict, the original event dict or None) of an Alert object or an alert dict."""
    if isinstance(alert, dict):
        event = alert.get("event")
        return alert, event if isinstance(event, dict) else None
    event = getattr(alert, "event", None)
    return alert.to_dict(), (event.to_dict() if event is not None and hasattr(event, "to_dict") else None)


def render(alert: dict[str, Any], fmt: str, event: dict[str, Any] | None = None,
           hostname: str | None = None) -> dict[str, Any]:
    """``alert`` (the JSON contract) in format ``fmt`` (one of :data:`ALERT_FORMATS`)."""
    if fmt == "json":
        return {k: v for k, v in alert.items() if k != "event"}
    if fmt == "ecs":
        from kubehawk.formats.ecs import to_ecs

        return to_ecs(alert, event)
    if fmt == "ocsf":
        from kubehawk.formats.ocsf import to_ocsf

        return to_ocsf(alert, event)
    if fmt == "falco":
        import socket

        from kubehawk.formats.falco import falco_payload

        return falco_payload(alert, hostname or socket.gethostname())
    raise ValueError(f"unknown alert format {fmt!r} (expected one of {', '.join(ALERT_FORMATS)})")


def key_of(doc: dict[str, Any], fmt: str) -> tuple[str, str] | None:
    """(rule id, auditID) of an alert written in format ``fmt``: the identity the file sink
    reads back after a crash, whatever shape it wrote."""
    def dig(d: Any, *path: Any) -> Any:
        for p in path:
            if isinstance(p, int):
                d = d[p] if isinstance(d, list) and len(d) > p else None
            else:
                d = d.get(p) if isinstance(d, dict) else None
        return d

    if fmt == "json":
        pair = (dig(doc, "rule", "id"), doc.get("auditID"))
    elif fmt == "ecs":
        pair = (dig(doc, "rule", "id"), dig(doc, "event", "id"))
    elif fmt == "ocsf":
        pair = (dig(doc, "finding_info", "analytic", "uid"), dig(doc, "evidences", 0, "api", "request", "uid"))
    elif fmt == "falco":
        pair = (dig(doc, "output_fields", "kubehawk.rule.id"), dig(doc, "output_fields", "ka.auditid"))
    else:
        return None
    return (str(pair[0] or ""), str(pair[1] or ""))


def parse_time(text: str | None) -> dt.datetime | None:
    """An audit timestamp (RFC 3339, ``Z`` or an offset; a time without a zone is UTC) as an
    aware datetime; None when absent or unreadable."""
    if not text or not isinstance(text, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def prune(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without the keys whose value is None, an empty list or an empty mapping (recursively):
    the schemas type each field, and null is none of their types."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = prune(v)
        if v is None or v == [] or v == {}:
            continue
        out[k] = v
    return out


def epoch_ms(text: str | None) -> int | None:
    """Milliseconds since the epoch of an audit timestamp (None when absent or unreadable)."""
    parsed = parse_time(text)
    return None if parsed is None else int(parsed.timestamp() * 1000)
