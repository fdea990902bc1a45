"""Yandex Managed Service for Kubernetes: Audit Trails events and Cloud Logging entries.

- **Audit Trails** data events (``event_type`` ``yandex.cloud.audit.k8s.apiserver.ApiServer*``,
  snake_case envelope): the native Event is ``details.native_api_server_event``. Trails write
  Object Storage objects that are JSON arrays of such events, one event per Cloud Logging
  entry, or Data Streams records. Protobuf JSON renders ``responseStatus.code`` as a string;
  it is turned back into an integer. Events of other services in the same trail (IAM,
  Compute...) are skipped with their type. The Yandex IAM subject (``authentication``) goes into
  ``event.extra["cloud_identity"]``; the cluster into ``extra["cluster"]``.
- **Cloud Logging** (master logging with ``audit_enabled``): an entry's ``message`` (or
  ``json_payload``) holds the native Event; entries of other master-log streams are skipped.
  Also the Cloud Functions trigger invocation that batches such entries
  (``{"messages": [{"details": {"messages": [entry...]}}]}``). How audit entries are told from
  other master logs in a shared group is unverified (reference/sources.md §5.2): an entry is
  taken when its payload is an Event, whatever its stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud

__all__ = ["convert_cloud_logging_entry", "convert_trail_event"]

_K8S_EVENT_PREFIX = "yandex.cloud.audit.k8s."


def _fix_codes(event: dict) -> dict:
    st = event.get("responseStatus")
    if isinstance(st, dict) and isinstance(st.get("code"), str) and st["code"].lstrip("-").isdigit():
        event = dict(event)
        event["responseStatus"] = {**st, "code": int(st["code"])}
    return event


def _detect_trail(obj: dict) -> bool:
    et = obj.get("event_type")
    return isinstance(et, str) and et.startswith("yandex.cloud.") and "event_id" in obj


def convert_trail_event(obj: dict, origin: str = "") -> Iterator[AuditEvent]:
    details = obj.get("details") if isinstance(obj.get("details"), dict) else {}
    native = _cloud.maybe_json(details.get("native_api_server_event"))
    if not obj["event_type"].startswith(_K8S_EVENT_PREFIX) or native is None:
        raise _cloud.skip(f"Audit Trails event {obj['event_type']} is not a Kubernetes API server event")
    if not isinstance(native, dict):
        raise EventDecodeError("details.native_api_server_event is not an object")
    cluster: dict[str, Any] = {}
    if details.get("cluster_id"):
        cluster["id"] = details["cluster_id"]
    meta = obj.get("resource_metadata") if isinstance(obj.get("resource_metadata"), dict) else {}
    for p in meta.get("path") or []:
        if not isinstance(p, dict):
            continue
        kind = p.get("resource_type")
        if kind == "managed-kubernetes.cluster" and p.get("resource_name"):
            cluster["name"] = p["resource_name"]
        elif kind == "resource-manager.folder":
            cluster["folder_id"] = p.get("resource_id")
        elif kind == "resource-manager.cloud":
            cluster["cloud_id"] = p.get("resource_id")
    extra: dict[str, Any] = {"source_type": "yandex", "cluster": cluster, "synthetic": [],
                             "event_id": obj.get("event_id")}
    authn = obj.get("authentication")
    if isinstance(authn, dict):
        extra["cloud_identity"] = {k: authn[k] for k in ("subject_type", "subject_id", "subject_name",
                                                         "federation_name") if authn.get(k)}
    received = _cloud.rfc3339(obj.get("event_time"))
    if received:
        extra["received"] = received
    yield event_from_dict(_fix_codes(native), origin, extra)


def _detect_entry(obj: dict) -> bool:
    return (
        isinstance(obj.get("resource"), dict)
        and ("message" in obj or "json_payload" in obj)
        and any(k in obj for k in ("stream_name", "json_payload", "ingested_at", "saved_at", "uid"))
        and "protoPayload" not in obj
    )


def convert_cloud_logging_entry(entry: dict, origin: str = "") -> Iterator[AuditEvent]:
    payload = entry.get("json_payload")
    event: Any = None
    if isinstance(payload, dict) and ("auditID" in payload or payload.get("kind") == "Event"):
        event = payload
    else:
        message = entry.get("message")
        if isinstance(message, str) and message.lstrip().startswith("{"):
            stripped = message.strip()
            if stripped.endswith(_cloud.TRUNCATED_MARKER) or not stripped.endswith("}"):
                raise _cloud.skip(f"audit entry cut in transport, auditID {_cloud.truncated_id(stripped)}")
            event = _cloud.json_value(stripped, "Cloud Logging message")
    stream = entry.get("stream_name") or "no stream"
    if not isinstance(event, dict) or not ("auditID" in event or event.get("kind") == "Event"):
        raise _cloud.skip(f"Yandex Cloud Logging entry ({stream}) does not hold an audit event")
    resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else {}
    cluster = {"id": resource["id"]} if resource.get("id") else {}
    extra: dict[str, Any] = {"source_type": "yandex", "cluster": cluster, "synthetic": []}
    if entry.get("uid"):
        extra["entry_id"] = entry["uid"]
    received = _cloud.rfc3339(entry.get("ingested_at") or entry.get("saved_at"))
    if received:
        extra["received"] = received
    yield event_from_dict(_fix_codes(event), origin, extra)


def _detect_trigger(obj: dict) -> bool:
    msgs = obj.get("messages")
    return (isinstance(msgs, list) and bool(msgs) and isinstance(msgs[0], dict)
            and "event_metadata" in msgs[0] and "details" in msgs[0])


def _convert_trigger(obj: dict, origin: str) -> Iterator[AuditEvent]:
    def entries() -> Iterator[tuple[str, Any]]:
        for i, m in enumerate(obj["messages"]):
            details = m.get("details") if isinstance(m, dict) else None
            inner = details.get("messages") if isinstance(details, dict) else None
            for j, entry in enumerate(inner if isinstance(inner, list) else []):
                yield f"{origin} message {i}.{j}", entry

    def one(entry: Any, where: str) -> Iterator[AuditEvent]:
        if not isinstance(entry, dict):
            raise EventDecodeError("trigger message entry is not an object")
        yield from convert_cloud_logging_entry(entry, where)

    yield from _cloud.gather(entries(), one, "Cloud Logging entries")


_cloud.register("yandex-audit-trails", _detect_trail, convert_trail_event)
_cloud.register("yandex-cloud-functions-trigger", _detect_trigger, _convert_trigger)
_cloud.register("yandex-cloud-logging", _detect_entry, convert_cloud_logging_entry)
