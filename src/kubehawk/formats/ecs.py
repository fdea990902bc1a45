"""Alerts in the Elastic Common Schema (ECS 9.4): ``event.*``, ``rule.*``, ``threat.*``, ``user.*``,
``source.*``, ``orchestrator.*``, so Elastic Security and other ECS readers index them as alerts.

Every field name is an ECS field (tests check them against the field list Elastic publishes,
``@elastic/ecs`` ``ecs_flat``); nothing custom is added at the top level. The Microsoft Threat
Matrix IDs, which ECS has no field for, go into ``tags``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from kubehawk.formats import prune
from kubehawk.sinks.base import alert_level

__all__ = ["ECS_VERSION", "to_ecs"]

ECS_VERSION = "9.4.0"
# kubehawk level -> ECS event.severity (a number; larger is worse) and risk score (0-100).
SEVERITY = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
RISK = {"informational": 10, "low": 21, "medium": 47, "high": 73, "critical": 99}
_TYPE_OF_VERB = {"create": "creation", "update": "change", "patch": "change", "delete": "deletion",
                 "deletecollection": "deletion"}


def _threat(attack: list[str]) -> dict[str, Any]:
    """ATT&CK IDs as ECS threat.technique (T1610) and threat.technique.subtechnique (T1552.001)."""
    techniques = sorted({a.split(".")[0] for a in attack if a})
    subs = sorted(a for a in attack if "." in a)
    if not techniques:
        return {}
    return {"framework": "MITRE ATT&CK",
            "technique": {"id": techniques,
                          "reference": [f"https://attack.mitre.org/techniques/{t}/" for t in techniques],
                          "subtechnique": {"id": subs} if subs else None}}


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _outcome(event: dict[str, Any] | None) -> str | None:
    status = (event or {}).get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    return "success" if code < 400 else "failure"


def to_ecs(alert: dict[str, Any], event: dict[str, Any] | None = None) -> dict[str, Any]:
    """One alert (the JSON contract of DESIGN.md) as an ECS document."""
    rule = alert.get("rule") if isinstance(alert.get("rule"), dict) else {}
    level = alert_level(alert)
    verb = alert.get("verb")
    resource = alert.get("resource")
    if resource and alert.get("subresource"):
        resource = f"{resource}/{alert['subresource']}"
    user = alert.get("user")
    ip = alert.get("sourceIP")
    ref = (event or {}).get("objectRef")
    doc = {
        "@timestamp": alert.get("time"),
        "ecs": {"version": ECS_VERSION},
        "message": alert.get("message"),
        "tags": ["kubehawk", *(alert.get("techniques") or [])],
        "event": {
            "kind": "alert",
            # An alert about a call to the Kubernetes API: category api, typed by what the call did.
            "category": ["api"],
            "type": [_TYPE_OF_VERB.get(verb or "", "access")],
            "action": verb,
            "outcome": _outcome(event),
            "id": alert.get("auditID"),
            "module": "kubehawk",
            "dataset": "kubehawk.alerts",
            "provider": "kube-apiserver",
            "severity": SEVERITY[level],
            "risk_score": RISK[level],
            "start": alert.get("time"),
            "original": json.dumps(event, separators=(",", ":")) if event else None,
        },
        "rule": {"id": rule.get("id"), "name": rule.get("title"), "ruleset": "kubehawk"},
        "threat": _threat(list(alert.get("attack") or [])),
        "user": {"name": user},
        # an ip field holds an address or the document is refused at indexing: anything else is an address
        "source": {"ip": ip if _is_ip(ip) else None, "address": ip},
        "user_agent": {"original": alert.get("userAgent")},
        "orchestrator": {
            "type": "kubernetes",
            "namespace": alert.get("namespace"),
            "resource": {"type": resource, "name": alert.get("name")},
            "api_version": ref.get("apiVersion") if isinstance(ref, dict) else None,
        },
        "related": {"user": [user] if user else [], "ip": [ip] if _is_ip(ip) else []},
        "observer": {"vendor": "kubehawk", "product": "kubehawk", "type": "detection"},
    }
    return prune(doc)
