"""EKS: audit Events delivered through CloudWatch Logs, in every wrapper AWS puts around them.

The Event itself needs no conversion: each CloudWatch log event's ``message`` is one compact
native ``audit.k8s.io/v1`` Event (reference/sources.md §3). What varies is the envelope:

- ``filter_log_events`` / ``get_log_events`` responses (boto3 or ``aws logs`` JSON output), and
  single CloudWatch log events (``{"timestamp": ms, "message": ..., "logStreamName"...}``);
- Logs Insights ``get_query_results`` responses and console JSON exports (``@message``);
  a query that did not select ``@message`` still gives a partial event from its fields;
- subscription-filter payloads: decoded ``DATA_MESSAGE``/``CONTROL_MESSAGE``, Kinesis
  ``GetRecords`` responses and Lambda Kinesis events (``Data`` = base64(gzip(payload))),
  Lambda ``awslogs`` events, Firehose transformation batches;
- text lines: CloudWatch export-to-S3 objects (``<ISO time> <event>``), ``aws logs tail``
  output (``<time> <stream> <event>``), Firehose-to-S3 objects whose gzip'd payloads are
  concatenated without newlines.

Messages cut by CloudWatch's event-size limit end in ``[Truncated...]``: they are skipped
(counted, with the auditID they still show). Events of non-audit streams in the same log
group (``authenticator-*``, ``kube-apiserver-*``...) are skipped with the stream's name.
Provenance (cluster name from ``/aws/eks/<cluster>/cluster``, account, stream, CloudWatch
event id) goes into ``event.extra``; nothing is synthetic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from kubehawk.event import TOO_DEEP, AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud
from kubehawk.sources.normalize import to_events

__all__ = ["AUDIT_STREAM_PREFIX", "cluster_from_log_group", "convert_log_event", "log_events_to_events"]

AUDIT_STREAM_PREFIX = "kube-apiserver-audit"
_LOG_GROUP = re.compile(r"^/aws/eks/([^/]+)/cluster$")


def cluster_from_log_group(log_group: str | None) -> str | None:
    m = _LOG_GROUP.match(log_group or "")
    return m.group(1) if m else None


def _context(log_group: str | None = None, stream: str | None = None, owner: str | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {}
    name = cluster_from_log_group(log_group)
    if name:
        cluster["name"] = name
    if owner and owner.isdigit():
        cluster["account"] = owner
    if log_group:
        cluster["log_group"] = log_group
    extra: dict[str, Any] = {"source_type": "eks", "cluster": cluster, "synthetic": []}
    if stream:
        extra["log_stream"] = stream
    return extra


def _is_audit_stream(stream: str | None) -> bool:
    return stream is None or stream == "" or stream.startswith(AUDIT_STREAM_PREFIX)


def convert_log_event(item: Any, origin: str, ctx: dict[str, Any] | None = None) -> Iterator[AuditEvent]:
    """One CloudWatch log event (``message`` holds the Event)."""
    if not isinstance(item, dict):
        raise EventDecodeError(f"CloudWatch log event is a {type(item).__name__}, not an object")
    message = item.get("message")
    if not isinstance(message, str):
        raise EventDecodeError("CloudWatch log event without a message string")
    extra = dict(ctx) if ctx else _context()
    extra["synthetic"] = list(extra.get("synthetic", ()))
    stream = item.get("logStreamName") or extra.get("log_stream")
    if stream:
        extra["log_stream"] = stream
    event_id = item.get("eventId") or item.get("id")
    if event_id:
        extra["event_id"] = str(event_id)
    if isinstance(item.get("ingestionTime"), int):
        extra["received"] = _cloud.rfc3339(item["ingestionTime"])
    if not _is_audit_stream(stream) and not message.lstrip().startswith('{"kind":"Event"'):
        raise _cloud.skip(f"log stream {stream} is not a kube-apiserver audit stream")
    try:
        yield _cloud.decode_native(message, origin, extra)
    except EventDecodeError:
        if not _is_audit_stream(stream):
            raise _cloud.skip(f"log stream {stream} is not a kube-apiserver audit stream") from None
        raise


def log_events_to_events(events: list, origin: str, ctx: dict[str, Any] | None = None) -> Iterator[AuditEvent]:
    """Every Event of a list of CloudWatch log events; bad members are reported after the good ones."""
    yield from _cloud.gather(
        ((f"{origin} event {i}", item) for i, item in enumerate(events)),
        lambda item, where: convert_log_event(item, where, ctx),
        "CloudWatch log events",
    )


# --- filter_log_events / get_log_events responses, single log events --------------------

_PAGE_KEYS = ("nextToken", "searchedLogStreams", "nextForwardToken", "nextBackwardToken")


def _detect_page(obj: dict) -> bool:
    events = obj.get("events")
    if not isinstance(events, list):
        return False
    if any(k in obj for k in _PAGE_KEYS):
        return True
    first = events[0] if events else None
    return isinstance(first, dict) and isinstance(first.get("message"), str) and "timestamp" in first


def _convert_page(obj: dict, origin: str) -> Iterator[AuditEvent]:
    yield from log_events_to_events(obj["events"], origin)


def _detect_single(obj: dict) -> bool:
    return (
        isinstance(obj.get("message"), str)
        and isinstance(obj.get("timestamp"), int)
        and any(k in obj for k in ("eventId", "logStreamName", "ingestionTime", "id"))
    )


def _convert_single(obj: dict, origin: str) -> Iterator[AuditEvent]:
    yield from convert_log_event(obj, origin)


# --- subscription payloads: DATA_MESSAGE, Kinesis, Lambda, Firehose ---------------------


def _detect_subscription(obj: dict) -> bool:
    return obj.get("messageType") in ("DATA_MESSAGE", "CONTROL_MESSAGE") and "logEvents" in obj


def _convert_subscription(obj: dict, origin: str) -> Iterator[AuditEvent]:
    if obj.get("messageType") == "CONTROL_MESSAGE":
        raise _cloud.skip("CloudWatch Logs subscription control message (destination health check)")
    events = obj.get("logEvents")
    if not isinstance(events, list):
        raise EventDecodeError("DATA_MESSAGE without a logEvents list")
    ctx = _context(obj.get("logGroup"), obj.get("logStream"), obj.get("owner"))
    yield from log_events_to_events(events, origin, ctx)


def _blob_events(data: Any, origin: str, what: str) -> Iterator[AuditEvent]:
    if not isinstance(data, str | bytes):
        raise EventDecodeError(f"{what} is a {type(data).__name__}, expected base64 text")
    raw = _cloud.unpack_blob(data, what)
    text = raw.strip()
    if not text.startswith(b"{") or b"\n" not in text:
        yield from to_events(_cloud.json_value(text, what), origin)
        return
    # Firehose with message extraction: newline-delimited records.
    yield from _cloud.gather(
        ((f"{origin} line {i + 1}", line) for i, line in enumerate(text.splitlines()) if line.strip()),
        lambda line, where: to_events(_cloud.json_value(line, where), where),
        "records",
    )


def _record_data(rec: Any) -> Any:
    if not isinstance(rec, dict):
        return None
    if "Data" in rec:  # Kinesis GetRecords (boto3 / CLI)
        return rec["Data"]
    kin = rec.get("kinesis")
    if isinstance(kin, dict):  # Lambda Kinesis event
        return kin.get("data")
    return rec.get("data")  # Firehose transformation record


def _detect_records(obj: dict) -> bool:
    for key in ("Records", "records"):
        recs = obj.get(key)
        if isinstance(recs, list) and recs and isinstance(recs[0], dict):
            first = recs[0]
            if "Data" in first and ("SequenceNumber" in first or "PartitionKey" in first):
                return True
            if isinstance(first.get("kinesis"), dict) and "data" in first["kinesis"]:
                return True
            if "recordId" in first and "data" in first:
                return True
    return False


def _convert_records(obj: dict, origin: str) -> Iterator[AuditEvent]:
    recs = obj.get("Records") if isinstance(obj.get("Records"), list) else obj.get("records")

    def one(rec: Any, where: str) -> Iterator[AuditEvent]:
        data = _record_data(rec)
        if data is None:
            raise EventDecodeError("stream record without data")
        yield from _blob_events(data, where, "record data")

    yield from _cloud.gather(((f"{origin} record {i}", r) for i, r in enumerate(recs)), one, "stream records")


def _detect_awslogs(obj: dict) -> bool:
    aws = obj.get("awslogs")
    return isinstance(aws, dict) and "data" in aws


def _convert_awslogs(obj: dict, origin: str) -> Iterator[AuditEvent]:
    yield from _blob_events(obj["awslogs"]["data"], f"{origin} awslogs", "awslogs.data")


# --- Logs Insights ---------------------------------------------------------------------


def _detect_insights(obj: dict) -> bool:
    results = obj.get("results")
    if isinstance(results, list) and ("status" in obj or "statistics" in obj):
        return True
    return isinstance(obj.get("@message"), str)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Logs Insights auto-discovered fields (``objectRef.resource``, ``sourceIPs.0``) back into objects."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        cur: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, list):
                idx = int(part) if part.isdigit() else len(cur)
                while len(cur) <= idx:
                    cur.append(None)
                if last:
                    cur[idx] = value
                else:
                    if cur[idx] is None:
                        cur[idx] = [] if parts[i + 1].isdigit() else {}
                    cur = cur[idx]
            else:
                if last:
                    cur[part] = value
                else:
                    nxt = cur.get(part)
                    if not isinstance(nxt, dict | list):
                        nxt = cur[part] = [] if parts[i + 1].isdigit() else {}
                    cur = nxt
    return out


def _insights_row(row: dict[str, Any], origin: str) -> Iterator[AuditEvent]:
    log = row.get("@log")
    group = log.split(":", 1)[1] if isinstance(log, str) and ":" in log else None
    owner = log.split(":", 1)[0] if isinstance(log, str) and ":" in log else None
    ctx = _context(group, row.get("@logStream"), owner)
    if isinstance(row.get("@message"), str):
        yield from convert_log_event({"message": row["@message"]}, origin, ctx)
        return
    fields = {k: v for k, v in row.items() if not k.startswith("@")}
    if not any(k in fields for k in ("verb", "auditID", "requestURI")):
        raise EventDecodeError("Logs Insights row without @message or audit fields (add `fields @message`)")
    d = _nest(fields)
    st = d.get("responseStatus")
    if isinstance(st, dict) and isinstance(st.get("code"), str) and st["code"].isdigit():
        st["code"] = int(st["code"])
    ctx["synthetic"] = ["partial: only the fields the Logs Insights query selected"]
    yield event_from_dict(d, origin, ctx)


def _convert_insights(obj: dict, origin: str) -> Iterator[AuditEvent]:
    if isinstance(obj.get("@message"), str):
        yield from _insights_row(obj, origin)
        return
    if obj.get("status") not in (None, "Complete"):
        raise _cloud.skip(f"Logs Insights query is {obj.get('status')}, results not final")

    def one(row: Any, where: str) -> Iterator[AuditEvent]:
        if not isinstance(row, list):
            raise EventDecodeError("Logs Insights result row is not a list of fields")
        flat = {f["field"]: f.get("value") for f in row if isinstance(f, dict) and "field" in f}
        yield from _insights_row(flat, where)

    yield from _cloud.gather(((f"{origin} row {i}", r) for i, r in enumerate(obj["results"])), one,
                             "Logs Insights rows")


# --- text lines ------------------------------------------------------------------------

_EXPORT_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s+(?:([A-Za-z0-9_./#-]+)\s+)?(\{.*)$", re.S
)


def _convert_export_line(line: bytes, origin: str) -> Iterator[AuditEvent] | None:
    """``<ISO time> <event>`` (export to S3) or ``<time> <stream> <event>`` (``aws logs tail``)."""
    m = _EXPORT_LINE.match(line.strip())
    if not m:
        return None
    stream = m.group(2).decode() if m.group(2) else None
    ctx = _context(stream=stream)
    return convert_log_event({"message": m.group(3).decode("utf-8", "replace")}, origin, ctx)


def _convert_truncated_line(line: bytes, origin: str) -> Iterator[AuditEvent] | None:
    text = line.strip()
    if not text.endswith(_cloud.TRUNCATED_MARKER.encode()):
        return None
    return _raise_truncated(text.decode("utf-8", "replace"))


def _raise_truncated(text: str) -> Iterator[AuditEvent]:
    raise _cloud.skip(
        f"event cut by CloudWatch ({_cloud.TRUNCATED_MARKER}), auditID {_cloud.truncated_id(text)}"
    )
    yield  # pragma: no cover - makes this a generator


_decoder = json.JSONDecoder()


def _convert_concatenated(line: bytes, origin: str) -> Iterator[AuditEvent] | None:
    """Firehose-to-S3 objects: DATA_MESSAGE documents back to back with no separator."""
    text = line.strip()
    if not text.startswith(b'{"messageType"') or b"}{" not in text:
        return None
    s = text.decode("utf-8", "replace")
    docs: list[tuple[str, Any]] = []
    pos = 0
    try:
        while pos < len(s):
            obj, end = _decoder.raw_decode(s, pos)
            docs.append((f"{origin} document {len(docs)}", obj))
            pos = end
            while pos < len(s) and s[pos].isspace():
                pos += 1
    except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        if not docs:
            return None
        docs.append((f"{origin} document {len(docs)}", _Bad(s[pos : pos + 60], isinstance(e, RecursionError))))
    return _cloud.gather(docs, _doc_events, "concatenated documents")


class _Bad:
    def __init__(self, head: str, too_deep: bool = False):
        self.head = head
        self.too_deep = too_deep


def _doc_events(doc: Any, where: str) -> Iterator[AuditEvent]:
    if isinstance(doc, _Bad):
        raise EventDecodeError(f"{TOO_DEEP if doc.too_deep else 'malformed JSON'} starting {doc.head!r}")
    yield from to_events(doc, where)


_cloud.register("cloudwatch-subscription", _detect_subscription, _convert_subscription)
_cloud.register("cloudwatch-page", _detect_page, _convert_page)
_cloud.register("cloudwatch-event", _detect_single, _convert_single)
_cloud.register("kinesis-firehose-records", _detect_records, _convert_records)
_cloud.register("lambda-awslogs", _detect_awslogs, _convert_awslogs)
_cloud.register("cloudwatch-logs-insights", _detect_insights, _convert_insights)
_cloud.register_line("cloudwatch-truncated", _convert_truncated_line)
_cloud.register_line("cloudwatch-export", _convert_export_line)
_cloud.register_line("firehose-concatenated", _convert_concatenated)
