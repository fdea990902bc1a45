"""Alerts as OCSF Detection Findings (class 2004, OCSF 1.5.0) with the original audit event as
evidence, for Amazon Security Lake, Splunk and other OCSF readers.

Tests validate every finding against the OCSF 1.5.0 schema as exported by schema.ocsf.io (the
copy the ``ocsf-json-schema`` package ships), which forbids any attribute it does not define.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from kubehawk import __version__
from kubehawk.formats import epoch_ms, prune
from kubehawk.sinks.base import alert_level

__all__ = ["OCSF_VERSION", "to_ocsf"]

OCSF_VERSION = "1.5.0"
# kubehawk level -> OCSF severity_id / severity caption.
SEVERITY = {"informational": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"),
            "high": (4, "High"), "critical": (5, "Critical")}
_NS = uuid.UUID("0c3f5a0e-55d1-4b7e-9a21-6f3e1b2d4c70")


def _attacks(attack: list[str]) -> list[dict[str, Any]]:
    out = []
    for a in attack:
        if not a:
            continue
        tech = a.split(".")[0]
        entry: dict[str, Any] = {"technique": {"uid": tech,
                                               "src_url": f"https://attack.mitre.org/techniques/{tech}/"}}
        if "." in a:
            entry["sub_technique"] = {"uid": a,
                                      "src_url": f"https://attack.mitre.org/techniques/{a.replace('.', '/')}/"}
        out.append(entry)
    return out


def to_ocsf(alert: dict[str, Any], event: dict[str, Any] | None = None) -> dict[str, Any]:
    """One alert (the JSON contract of DESIGN.md) as an OCSF Detection Finding."""
    rule = alert.get("rule") if isinstance(alert.get("rule"), dict) else {}
    sev_id, sev = SEVERITY[alert_level(alert)]
    ms = epoch_ms(alert.get("time"))
    if ms is None:  # time is required; a finding without one is stamped when written
        ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    uid = str(uuid.uuid5(_NS, f"{rule.get('id', '')}/{alert.get('auditID', '')}"))
    resource = {"type": alert.get("resource"), "name": alert.get("name"), "namespace": alert.get("namespace"),
                "labels": [f"subresource={alert['subresource']}"] if alert.get("subresource") else None}
    evidence = {
        "actor": {"user": {"name": alert.get("user")}},
        "api": {"operation": alert.get("verb") or "unknown", "service": {"name": "kube-apiserver"},
                "request": {"uid": alert["auditID"]} if alert.get("auditID") else None},
        "src_endpoint": {"ip": alert.get("sourceIP")},
        "resources": [prune(resource)] if alert.get("resource") and alert.get("name") else None,
    }
    finding = {
        "activity_id": 1, "activity_name": "Create",
        "category_uid": 2, "category_name": "Findings",
        "class_uid": 2004, "class_name": "Detection Finding",
        "type_uid": 200401, "type_name": "Detection Finding: Create",
        "severity_id": sev_id, "severity": sev,
        "status_id": 1, "status": "New",
        "is_alert": True,
        "time": ms,
        "message": alert.get("message"),
        "metadata": {"version": OCSF_VERSION, "uid": uid, "log_name": "kubernetes-audit",
                     "product": {"name": "kubehawk", "vendor_name": "kubehawk", "version": __version__}},
        "finding_info": {
            "uid": uid,
            "title": rule.get("title") or rule.get("id") or "kubehawk alert",
            "analytic": {"uid": rule.get("id"), "name": rule.get("title"), "type_id": 1, "type": "Rule"},
            "attacks": _attacks(list(alert.get("attack") or [])),
            "types": list(alert.get("techniques") or []),
            "data_sources": ["Kubernetes audit log"],
            "first_seen_time": ms, "last_seen_time": ms,
        },
        "resources": [prune(resource)] if alert.get("resource") and alert.get("name") else None,
    }
    out = prune(finding)
    # The evidence as recorded: never pruned (an empty field of the original event stays).
    data = event if event is not None else {k: v for k, v in alert.items() if k != "event"}
    out["evidences"] = [{**prune(evidence), "data": data}]
    return out
