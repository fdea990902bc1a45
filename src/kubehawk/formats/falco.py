"""Alerts in the JSON Falco prints (``json_output: true``), so falcosidekick, its outputs and
dashboards written for Falco take kubehawk alerts unchanged.

Field names follow Falco's k8saudit plugin (``ka.*``); kubehawk-specific data goes under
``kubehawk.*``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from kubehawk.sinks.base import alert_level

__all__ = ["PRIORITY", "falco_payload"]

# kubehawk level -> Falco priority (falcosidekick types/priority.go spelling).
PRIORITY = {"critical": "Critical", "high": "Error", "medium": "Warning", "low": "Notice",
            "informational": "Informational"}

_NS = uuid.UUID("5f2b1c9e-7a44-4e0b-9a5e-6b1d2c3f4a50")


def falco_payload(alert: dict[str, Any], hostname: str) -> dict[str, Any]:
    rule = alert.get("rule") if isinstance(alert.get("rule"), dict) else {}
    priority = PRIORITY[alert_level(alert)]
    # falcosidekick decodes ``time`` as an RFC 3339 time.Time: never send an empty string.
    time = alert.get("time") or dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    message = alert.get("message") or rule.get("title") or ""
    fields = {
        "ka.auditid": alert.get("auditID"),
        "ka.user.name": alert.get("user"),
        "ka.verb": alert.get("verb"),
        "ka.target.resource": alert.get("resource"),
        "ka.target.subresource": alert.get("subresource"),
        "ka.target.namespace": alert.get("namespace"),
        "ka.target.name": alert.get("name"),
        "ka.sourceips": [alert["sourceIP"]] if alert.get("sourceIP") else [],
        "ka.useragent": alert.get("userAgent"),
        "kubehawk.rule.id": rule.get("id"),
        "kubehawk.level": alert_level(alert),
        "kubehawk.techniques": alert.get("techniques") or [],
        "kubehawk.attack": alert.get("attack") or [],
    }
    tags = ["k8s", "k8s_audit", "kubehawk", *(alert.get("techniques") or []), *(alert.get("attack") or [])]
    ident = f"{rule.get('id', '')}/{alert.get('auditID', '')}"
    return {
        "uuid": str(uuid.uuid5(_NS, ident)),
        "output": f"{time}: {priority} {message}".strip(),
        "priority": priority,
        "rule": rule.get("title") or rule.get("id") or "kubehawk alert",
        "time": time,
        "source": "k8s_audit",
        "hostname": hostname,
        "tags": tags,
        "output_fields": fields,
    }
