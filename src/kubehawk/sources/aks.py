"""AKS: audit Events from Azure Monitor diagnostic settings, in each shape Azure stores them.

- Diagnostic records (``{"category": "kube-audit", "properties": {"log": "<Event JSON>"}}``) as
  found in storage-account ``PT1H.json`` blobs (one per line) and Event Hubs bodies
  (``{"records": [...]}``), the live path;
- Log Analytics ``AzureDiagnostics`` rows (the Event is the string column ``log_s``);
- resource-specific ``AKSAudit`` / ``AKSAuditAdmin`` rows (``AuditId``, ``Verb``, ``ObjectRef``...;
  dynamic columns may arrive as JSON strings; bodies may be the literal
  ``skipped-too-big-size-object``);
- Log Analytics query responses (``{"tables": [{"columns": [...], "rows": [...]}]}``).

Only the ``kube-audit`` and ``kube-audit-admin`` categories hold audit events; records of the
other categories (``kube-apiserver``, ``guard``...) and Azure Activity Log records (ARM
operations such as ``MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/.../ROLEBINDINGS/WRITE``, which
describe Azure's control plane, not the apiserver's audit trail) are skipped with the reason.
The AKSAudit tables have no ``impersonatedUser`` column, so that is lost there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud
from kubehawk.sources.normalize import to_events

__all__ = ["AUDIT_CATEGORIES", "cluster_from_resource_id", "convert_record"]

AUDIT_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
TOO_BIG = "skipped-too-big-size-object"
# Azure Activity Log categories: ARM control-plane operations, never apiserver audit events.
_ACTIVITY_CATEGORIES = frozenset({"Administrative", "Security", "ServiceHealth", "Alert", "Recommendation",
                                  "Policy", "Autoscale", "ResourceHealth"})
_RESOURCE_ID = re.compile(
    r"/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.containerservice/managedclusters/([^/]+)",
    re.I,
)
# AKSAudit column -> Event field (reference/sources.md §4.4).
_COLUMNS = {
    "Level": "level", "AuditId": "auditID", "Stage": "stage", "RequestUri": "requestURI", "Verb": "verb",
    "User": "user", "SourceIps": "sourceIPs", "UserAgent": "userAgent", "ObjectRef": "objectRef",
    "ResponseStatus": "responseStatus", "RequestObject": "requestObject", "ResponseObject": "responseObject",
    "RequestReceivedTime": "requestReceivedTimestamp", "StageReceivedTime": "stageTimestamp",
    "Annotations": "annotations",
}
_DYNAMIC = {"user", "sourceIPs", "objectRef", "responseStatus", "requestObject", "responseObject", "annotations"}


def cluster_from_resource_id(resource_id: Any) -> dict[str, Any]:
    if not isinstance(resource_id, str):
        return {}
    m = _RESOURCE_ID.search(resource_id)
    if not m:
        return {"resource_id": resource_id}
    return {"subscription": m.group(1), "resource_group": m.group(2), "name": m.group(3),
            "resource_id": resource_id}


def _extra(record: dict, category: str | None) -> dict[str, Any]:
    rid = record.get("resourceId") or record.get("ResourceId") or record.get("_ResourceId")
    extra: dict[str, Any] = {"source_type": "aks", "cluster": cluster_from_resource_id(rid), "synthetic": []}
    if category:
        extra["category"] = category
    received = _cloud.rfc3339(record.get("time") or record.get("TimeGenerated"))
    if received:
        extra["received"] = received
    return extra


# --- diagnostic records (Event Hubs, storage) and AzureDiagnostics rows ----------------


def _detect_record(obj: dict) -> bool:
    cat = obj.get("category", obj.get("Category"))
    op = obj.get("operationName", obj.get("OperationName"))
    return isinstance(cat, str) and (isinstance(op, str) or "properties" in obj or "log_s" in obj)


def convert_record(record: dict, origin: str = "") -> Iterator[AuditEvent]:
    """One Azure diagnostic record or AzureDiagnostics row."""
    category = record.get("category", record.get("Category"))
    op = record.get("operationName", record.get("OperationName")) or ""
    if category not in AUDIT_CATEGORIES:
        if category in _ACTIVITY_CATEGORIES or (
            "/" in op and "diagnosticLogs" not in op and record.get("properties") is None and "log_s" not in record
        ):
            raise _cloud.skip(f"Azure Activity Log record ({category}: {op}), not a kube-apiserver audit event")
        raise _cloud.skip(f"Azure record of category {category!r} ({op or 'no operation'}), not kube-audit")
    props = record.get("properties")
    if isinstance(props, str):  # some exporters keep properties as a JSON string
        props = _cloud.maybe_json(props)
    log = props.get("log") if isinstance(props, dict) else None
    if log is None:
        log = record.get("log_s")
    if isinstance(log, dict):
        yield event_from_dict(log, origin, _extra(record, category))
        return
    if not isinstance(log, str):
        raise EventDecodeError(f"{category} record without properties.log / log_s")
    text = log.strip()
    try:
        yield _cloud.decode_native(text, origin, _extra(record, category))
    except EventDecodeError:
        if text.startswith("{") and not text.endswith("}"):
            # Log Analytics and the diagnostic pipeline cut long strings without a marker.
            raise _cloud.skip(f"{category} event cut in transport, auditID {_cloud.truncated_id(text)}") from None
        raise


def _detect_batch(obj: dict) -> bool:
    recs = obj.get("records")
    return isinstance(recs, list) and (not recs or (isinstance(recs[0], dict) and "category" in recs[0]))


def _convert_batch(obj: dict, origin: str) -> Iterator[AuditEvent]:
    yield from _cloud.gather(
        ((f"{origin} record {i}", r) for i, r in enumerate(obj["records"])),
        lambda r, where: convert_record(r, where) if isinstance(r, dict) else _not_object(r),
        "Azure records",
    )


def _not_object(r: Any) -> Iterator[AuditEvent]:
    raise EventDecodeError(f"record is a {type(r).__name__}, not an object")


# --- AKSAudit / AKSAuditAdmin rows --------------------------------------------------------


def _detect_table_row(obj: dict) -> bool:
    return obj.get("Type") in ("AKSAudit", "AKSAuditAdmin") or ("AuditId" in obj and ("Verb" in obj or "RequestUri" in obj))


def convert_table_row(row: dict, origin: str = "") -> Iterator[AuditEvent]:
    d: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1"}
    lost: list[str] = []
    for col, field in _COLUMNS.items():
        value = row.get(col)
        if value is None or value == "":
            continue
        if field in _DYNAMIC:
            if value == TOO_BIG:
                lost.append(field)
                continue
            value = _cloud.maybe_json(value)
        if field in ("requestReceivedTimestamp", "stageTimestamp"):
            value = _cloud.rfc3339(value) or value
        d[field] = value
    st = d.get("responseStatus")
    if isinstance(st, dict) and isinstance(st.get("code"), str) and st["code"].isdigit():
        st["code"] = int(st["code"])
    table = row.get("Type") or "AKSAudit"
    extra = _extra(row, "kube-audit-admin" if table == "AKSAuditAdmin" else "kube-audit")
    extra["table"] = table
    if lost:
        extra["lost"] = [f"{f} ({TOO_BIG})" for f in lost]
    if row.get("PodName"):
        extra["apiserver_pod"] = row["PodName"]
    yield event_from_dict(d, origin, extra)


# --- Log Analytics query responses ----------------------------------------------------------


def _detect_tables(obj: dict) -> bool:
    tables = obj.get("tables")
    return isinstance(tables, list) and bool(tables) and isinstance(tables[0], dict) and "rows" in tables[0]


def _convert_tables(obj: dict, origin: str) -> Iterator[AuditEvent]:
    def rows() -> Iterator[tuple[str, Any]]:
        for t, table in enumerate(obj["tables"]):
            cols = [c.get("name") if isinstance(c, dict) else c for c in table.get("columns") or []]
            for i, row in enumerate(table.get("rows") or []):
                where = f"{origin} table {t} row {i}"
                yield where, dict(zip(cols, row, strict=False)) if isinstance(row, list) else row

    def one(row: Any, where: str) -> Iterator[AuditEvent]:
        if not isinstance(row, dict):
            raise EventDecodeError("query result row is not a list")
        if _detect_table_row(row):
            yield from convert_table_row(row, where)
        else:
            yield from to_events(row, where)

    yield from _cloud.gather(rows(), one, "query rows")


_cloud.register("azure-eventhub-records", _detect_batch, _convert_batch)
_cloud.register("aks-audit-table-row", _detect_table_row, convert_table_row)
_cloud.register("azure-diagnostic-record", _detect_record, convert_record)
_cloud.register("azure-log-analytics-response", _detect_tables, _convert_tables)
