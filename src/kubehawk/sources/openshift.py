"""OpenShift: audit files and what the cluster log forwarder makes of them.

The four audit logs of an OpenShift 4 control-plane node (kube-apiserver, openshift-apiserver,
oauth-apiserver, oauth-server) are native ``audit.k8s.io/v1`` JSON lines and need nothing
here. This module handles the forms around them:

- **ClusterLogForwarder** records (``log_type``, ``hostname``, ``openshift.cluster_id``...):
  audit events with the Event's keys merged into the top level are taken back out (records that
  still carry ``kind: Event`` are already read as native Events, extras ignored); records of the
  ``auditd`` (node Linux audit) and ``ovn`` (network ACL) audit sources and application or
  infrastructure logs are skipped with the reason; an older collector's ``message`` holding the
  Event as a string is decoded.
- ``oc adm node-logs --role=master --path=kube-apiserver/audit.log`` output, where each line is
  prefixed with the node name (``<node> {"kind":"Event"...}``) [layout inferred, see
  reference/sources.md §5.1]: the node goes into ``event.extra["node"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud

__all__ = ["convert_forwarder_record"]


def _detect_forwarder(obj: dict) -> bool:
    return isinstance(obj.get("log_type"), str) and ("hostname" in obj or "openshift" in obj
                                                     or "log_source" in obj or "@timestamp" in obj)


def _provenance(obj: dict) -> dict[str, Any]:
    openshift = obj.get("openshift") if isinstance(obj.get("openshift"), dict) else {}
    cluster = {"id": openshift["cluster_id"]} if openshift.get("cluster_id") else {}
    extra: dict[str, Any] = {"source_type": "openshift", "cluster": cluster, "synthetic": []}
    if obj.get("hostname"):
        extra["node"] = obj["hostname"]
    if obj.get("log_source"):
        extra["log_source"] = obj["log_source"]
    return extra


def convert_forwarder_record(obj: dict, origin: str = "") -> Iterator[AuditEvent]:
    log_type = obj.get("log_type")
    if log_type != "audit":
        raise _cloud.skip(f"OpenShift {log_type} log record, not an audit record")
    source = obj.get("log_source")
    if source in ("auditd", "ovn") or "audit.linux" in obj:
        what = source or "auditd"
        raise _cloud.skip(f"OpenShift {what} audit record (node-level), not a kube-apiserver audit event")
    if "auditID" in obj or "verb" in obj or "requestURI" in obj:
        event = {k: v for k, v in obj.items() if k in TOP_FIELDS or k in ("requestObject", "responseObject")}
        yield event_from_dict(event, origin, _provenance(obj))
        return
    message = _cloud.maybe_json(obj.get("message"))
    if isinstance(message, dict) and ("auditID" in message or message.get("kind") == "Event"):
        yield event_from_dict(message, origin, _provenance(obj))
        return
    raise EventDecodeError("OpenShift audit record without an audit Event (no auditID/verb, no JSON message)")


_NODE_LINE = re.compile(rb"^([A-Za-z0-9][A-Za-z0-9.-]*)\s+(\{.*)$", re.S)


def _convert_node_line(line: bytes, origin: str) -> Iterator[AuditEvent] | None:
    m = _NODE_LINE.match(line.strip())
    if not m or m.group(1)[:4].isdigit():  # timestamps belong to the CloudWatch export format
        return None
    rest = m.group(2)
    if b'"auditID"' not in rest[:400] and not rest.startswith(b'{"kind":"Event"'):
        return None
    node = m.group(1).decode()
    return _node_events(rest, origin, node)


def _node_events(rest: bytes, origin: str, node: str) -> Iterator[AuditEvent]:
    yield _cloud.decode_native(rest, origin, {"source_type": "openshift", "node": node, "synthetic": []})


_cloud.register("openshift-log-forwarder", _detect_forwarder, convert_forwarder_record)
_cloud.register_line("openshift-node-logs", _convert_node_line)
