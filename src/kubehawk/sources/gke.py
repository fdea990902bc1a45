"""GKE: Cloud Audit Logs entries (``protoPayload`` AuditLog, ``serviceName: k8s.io``) to audit Events.

Recognised shapes (all by their own keys, no flag needed):

- a Cloud Logging ``LogEntry`` as JSON (``gcloud logging read --format=json``, the Logging
  API / ``entry.to_api_repr()``, a Cloud Storage sink line, Panther-style exports with
  ``at_sign_type``/``callerIP``);
- a BigQuery sink row (``protopayload_auditlog`` with ``requestJson``/``responseJson`` strings
  and sanitised label column names);
- a Pub/Sub push body ``{"message": {"data": <base64 LogEntry>}, "subscription": ...}``.

Mapping (reference/sources.md §2.4): auditID from ``operation.id`` (else ``insertId``); verb,
resource and subresource from ``methodName`` (``io.k8s.core.v1.pods.exec.create``); group,
version, namespace and name from ``resourceName`` with the apiserver's own rule for
``namespaces/<ns>`` (the Namespace object vs a namespaced collection); ``core`` becomes the
empty core group; status code from a ``Status`` response when there is one, else from the
gRPC ``status.code``, else inferred from the verb. What GKE does not keep is lost: user
groups/uid/extra, all but one source IP, the query string (so ``requestURI`` is rebuilt and
``x.exec.*`` has no command), the stage (``ResponseComplete`` unless ``operation`` says the
entry is the first of several). Every reconstructed field is listed in
``event.extra["synthetic"]``; nothing is written into ``annotations`` except GKE's own copy
of the apiserver annotations (entry ``labels``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud
from kubehawk.sources.normalize import to_events

__all__ = ["GRPC_TO_HTTP", "convert_entry", "is_k8s_entry", "parse_method", "parse_resource_name"]

# google.rpc.Code -> HTTP, the standard mapping (reference/sources.md §2.4).
GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}

_VERSION = re.compile(r"^v\d+(?:(?:alpha|beta)\d+)?$")
# Built-in groups whose name has no ".k8s.io" suffix (used only when resourceName is absent).
_SHORT_GROUPS = {"apps", "batch", "autoscaling", "policy", "extensions"}
_LONG_RUNNING = {"exec", "attach", "portforward"}
# Annotation prefixes whose BigQuery-sanitised label names we can restore.
_ANNOTATION_PREFIXES = (
    "authorization.k8s.io/",
    "authentication.k8s.io/",
    "pod-security.kubernetes.io/",
    "mutation.webhook.admission.k8s.io/",
    "patch.webhook.admission.k8s.io/",
    "validation.policy.admission.k8s.io/",
    "apiserver.latency.k8s.io/",
    "audit.k8s.io/",
    "k8s.io/",
)
_SANITISED = [(re.sub(r"[./-]", "_", p), p) for p in _ANNOTATION_PREFIXES]
# Whole keys first, so that dashes after the prefix come back too.
_KNOWN_KEYS = {
    re.sub(r"[./-]", "_", k): k
    for k in (
        "authorization.k8s.io/decision", "authorization.k8s.io/reason",
        "pod-security.kubernetes.io/enforce-policy", "pod-security.kubernetes.io/audit-violations",
        "pod-security.kubernetes.io/exempt", "audit.k8s.io/truncated", "authentication.k8s.io/legacy-token",
        "authentication.k8s.io/stale-token", "validation.policy.admission.k8s.io/validation_failure",
        "apiserver.latency.k8s.io/etcd", "apiserver.latency.k8s.io/total",
        "apiserver.latency.k8s.io/response-write", "apiserver.latency.k8s.io/serialize-response-object",
        "apiserver.latency.k8s.io/decode-response-object", "apiserver.latency.k8s.io/transform-response-object",
        "apiserver.latency.k8s.io/apf-queue-wait", "apiserver.latency.k8s.io/mutating-webhook",
        "apiserver.latency.k8s.io/validating-webhook", "apiserver.latency.k8s.io/authentication",
    )
}


def _payload(entry: dict) -> tuple[dict | None, bool]:
    pp = entry.get("protoPayload")
    if isinstance(pp, dict):
        return pp, False
    pp = entry.get("protopayload_auditlog")
    if isinstance(pp, dict):
        return pp, True
    return None, False


def is_k8s_entry(entry: dict) -> bool:
    """A LogEntry whose payload is a Kubernetes API audit record (not GKE's own control-plane API)."""
    pp, _ = _payload(entry)
    if pp is None:
        return False
    if pp.get("serviceName") == "k8s.io":
        return True
    method = pp.get("methodName")
    return pp.get("serviceName") is None and isinstance(method, str) and method.startswith("io.k8s.")


def _detect_entry(obj: dict) -> bool:
    if _payload(obj)[0] is not None:
        return True
    op = obj.get("operation")
    # A LogEntry fragment from the k8s.io producer without its payload: claimed to say so.
    return isinstance(op, dict) and op.get("producer") == "k8s.io" and "kind" not in obj


def parse_method(method: str) -> dict[str, Any]:
    """``io.k8s.<group reversed>.<version>.<resource>[.<subresource>].<verb>`` into its parts.

    Returns ``{}`` when the name has no API version (non-resource URLs such as ``io.k8s.readyz``).
    """
    parts = method.split(".")
    if parts[:2] == ["io", "k8s"]:
        parts = parts[2:]
    for i, seg in enumerate(parts):
        if _VERSION.match(seg):
            group_parts, version, rest = parts[:i], seg, parts[i + 1 :]
            break
    else:
        return {}
    out: dict[str, Any] = {"version": version}
    if group_parts == ["core"] or not group_parts:
        out["group"] = ""
    else:
        g = ".".join(reversed(group_parts))
        out["group"] = g if g in _SHORT_GROUPS else f"{g}.k8s.io"
    if len(rest) >= 2:
        out["verb"] = rest[-1]
        out["resource"] = rest[0]
        if len(rest) >= 3:
            out["subresource"] = "/".join(rest[1:-1])
    elif rest:
        out["resource"] = rest[0]
    return out


def parse_resource_name(name: str) -> dict[str, Any]:
    """``<group|core>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]``.

    Follows the apiserver's RequestInfo rule: ``namespaces/<ns>`` alone is the Namespace
    object (namespace = name = <ns>); ``namespaces/<ns>/status|finalize`` its subresource.
    """
    segs = [s for s in name.split("/") if s != ""]
    if len(segs) < 3:
        return {}
    group, version, rest = segs[0], segs[1], segs[2:]
    out: dict[str, Any] = {"group": "" if group == "core" else group, "version": version}
    if rest[0] == "namespaces" and len(rest) > 1:
        out["namespace"] = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    out["resource"] = rest[0]
    if len(rest) > 1:
        out["name"] = rest[1]
    if len(rest) > 2:
        out["subresource"] = "/".join(rest[2:])
    return out


def _auth_resource(entry: dict, pp: dict) -> str | None:
    for holder in (pp, entry):
        infos = holder.get("authorizationInfo")
        if isinstance(infos, list):
            for info in infos:
                if isinstance(info, dict) and isinstance(info.get("resource"), str):
                    return info["resource"]
    return None


def _granted_false(entry: dict, pp: dict) -> bool:
    for holder in (pp, entry):
        infos = holder.get("authorizationInfo")
        if isinstance(infos, list) and infos:
            return all(isinstance(i, dict) and i.get("granted") is False for i in infos)
    return False


def _restore_labels(labels: dict, bigquery: bool) -> tuple[dict[str, str], bool]:
    out: dict[str, str] = {}
    restored = False
    for k, v in labels.items():
        if v is None:
            continue
        key = str(k)
        if bigquery and key in _KNOWN_KEYS:
            key = _KNOWN_KEYS[key]
            restored = True
        elif bigquery and "/" not in key:
            for sanitised, real in _SANITISED:
                if key.startswith(sanitised):
                    key = real + key[len(sanitised) :]
                    restored = True
                    break
        out[key] = v if isinstance(v, str) else str(v)
    return out, restored


def _body(pp: dict, name: str, bigquery: bool) -> Any:
    value = pp.get(name)
    if value is None and bigquery:
        value = pp.get(f"{name}Json")
    value = _cloud.maybe_json(value)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("@type", "at_sign_type")}
    return value


def _uri(ref: dict[str, Any], verb: str | None) -> str | None:
    resource = ref.get("resource")
    if not resource or ref.get("apiVersion") is None:
        return None
    group = ref.get("apiGroup", "")
    base = f"/api/{ref['apiVersion']}" if not group else f"/apis/{group}/{ref['apiVersion']}"
    name, ns, sub = ref.get("name"), ref.get("namespace"), ref.get("subresource")
    if resource == "namespaces":
        path = f"{base}/namespaces"
        if name:
            path += f"/{name}"
    else:
        path = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
        # A create is POSTed to the collection; the name GKE shows comes from the object.
        if name and not (verb == "create" and not sub):
            path += f"/{name}"
    if sub and name:
        path += f"/{sub}"
    return path


def _status(pp: dict, entry: dict, verb: str | None, sub: str | None, resp: Any, synthetic: list[str]) -> dict:
    if isinstance(resp, dict) and resp.get("kind") == "Status" and isinstance(resp.get("code"), int):
        st = {"code": resp["code"]}
        for k in ("status", "message", "reason", "details"):
            if resp.get(k) not in (None, ""):
                st[k] = resp[k]
        return st
    status = pp.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    synthetic.append("responseStatus.code")
    if isinstance(code, int) and code != 0:
        st = {"code": GRPC_TO_HTTP.get(code, 500), "status": "Failure"}
        if status.get("message"):
            st["message"] = status["message"]
        return st
    if _granted_false(entry, pp):
        return {"code": 403, "status": "Failure"}
    if sub in _LONG_RUNNING:
        return {"code": 101}
    return {"code": 201 if verb == "create" and not sub else 200}


def convert_entry(entry: dict, origin: str = "") -> Iterator[AuditEvent]:
    """One LogEntry to (at most) one Event; non-Kubernetes entries are skipped with the reason."""
    pp, bigquery = _payload(entry)
    if pp is None:
        raise EventDecodeError("GKE LogEntry fragment from producer k8s.io without a protoPayload")
    method = pp.get("methodName")
    if not is_k8s_entry(entry):
        service = pp.get("serviceName") or "an unknown service"
        raise _cloud.skip(f"GCP audit entry for {service} ({method}), not a Kubernetes API call")
    if not isinstance(method, str):
        raise EventDecodeError("GKE k8s.io entry without protoPayload.methodName")

    synthetic: list[str] = []
    m = parse_method(method)
    rn = pp.get("resourceName")
    if not isinstance(rn, str) or not rn:
        rn = _auth_resource(entry, pp)
    r = parse_resource_name(rn) if isinstance(rn, str) and not rn.startswith("/") else {}
    verb = m.get("verb")
    d: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1"}

    if m:
        ref: dict[str, Any] = {}
        resource = m.get("resource") or r.get("resource")
        if resource:
            ref["resource"] = resource
        if r.get("resource") and m.get("resource") and r["resource"] != m["resource"]:
            # resourceName and methodName disagree: the method names what was authorised.
            r = {"group": r.get("group"), "version": r.get("version"), "namespace": r.get("namespace")}
        for key, src in (("namespace", "namespace"), ("name", "name")):
            if r.get(src):
                ref[key] = r[src]
        sub = m.get("subresource") or r.get("subresource")
        if sub:
            ref["subresource"] = sub
        if "group" in r and r["group"] is not None:
            ref["apiGroup"] = r["group"]
        else:
            ref["apiGroup"] = m["group"]
            synthetic.append("objectRef.apiGroup")
        ref["apiVersion"] = r.get("version") or m["version"]
        d["objectRef"] = ref
        uri = _uri(ref, verb)
        if uri:
            d["requestURI"] = uri
            synthetic.append("requestURI")
    else:
        # Non-resource URL (io.k8s.readyz, io.k8s.healthz...): no objectRef in native events either.
        sub = None
        path = rn if isinstance(rn, str) and rn.startswith("/") else "/" + "/".join(method.split(".")[2:])
        d["requestURI"] = path
        synthetic.append("requestURI")
        # Health and discovery paths are GETs; GKE's method name carries no HTTP method.
        verb = "get"
        synthetic.append("verb")
    if verb:
        d["verb"] = verb

    op = entry.get("operation") if isinstance(entry.get("operation"), dict) else {}
    audit_id = op.get("id") or entry.get("insertId")
    if audit_id:
        d["auditID"] = str(audit_id)
    if op.get("first") is True and op.get("last") is False:
        d["stage"] = "ResponseStarted"
    else:
        d["stage"] = "ResponseComplete"
    synthetic.append("stage")

    authn = pp.get("authenticationInfo") if isinstance(pp.get("authenticationInfo"), dict) else {}
    if authn.get("principalEmail"):
        d["user"] = {"username": authn["principalEmail"]}
        if authn.get("authoritySelector"):
            d["impersonatedUser"] = {"username": authn["authoritySelector"]}
            synthetic.append("impersonatedUser")
    elif authn.get("authoritySelector"):
        # Nobody to impersonate on behalf of: the selector is the only identity shown.
        d["user"] = {"username": authn["authoritySelector"]}
        synthetic.append("user")
    meta = pp.get("requestMetadata") if isinstance(pp.get("requestMetadata"), dict) else {}
    ip = meta.get("callerIp") or meta.get("callerIP")
    if ip:
        d["sourceIPs"] = [ip]
    if meta.get("callerSuppliedUserAgent"):
        d["userAgent"] = meta["callerSuppliedUserAgent"]

    req = _body(pp, "request", bigquery)
    resp = _body(pp, "response", bigquery)
    if req is not None:
        d["requestObject"] = req
    if resp is not None:
        d["responseObject"] = resp
    d["level"] = "RequestResponse" if resp is not None else "Request" if req is not None else "Metadata"
    synthetic.append("level")
    d["responseStatus"] = _status(pp, entry, verb, sub, resp, synthetic)

    ts = _cloud.rfc3339(entry.get("timestamp")) or _cloud.rfc3339(pp.get("timestamp"))
    received = _cloud.rfc3339(entry.get("receiveTimestamp"))
    if ts is None and received is not None:
        ts = received
        synthetic.append("stageTimestamp")
    if ts:
        d["requestReceivedTimestamp"] = d["stageTimestamp"] = ts
        synthetic.append("requestReceivedTimestamp")

    labels = entry.get("labels")
    if isinstance(labels, dict) and labels:
        d["annotations"], restored = _restore_labels(labels, bigquery)
        if restored:
            synthetic.append("annotations")

    resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else {}
    rlabels = resource.get("labels") if isinstance(resource.get("labels"), dict) else {}
    cluster = {k: rlabels[s] for k, s in (("project", "project_id"), ("location", "location"),
                                         ("name", "cluster_name")) if rlabels.get(s)}
    extra: dict[str, Any] = {"source_type": "gke", "cluster": cluster, "synthetic": synthetic}
    log_name = entry.get("logName")
    if isinstance(log_name, str) and "%2F" in log_name:
        extra["log"] = log_name.rsplit("%2F", 1)[1]
    if entry.get("insertId"):
        extra["insert_id"] = entry["insertId"]
    if received:
        extra["received"] = received
    yield event_from_dict(d, origin, extra)


def _detect_pubsub(obj: dict) -> bool:
    msg = obj.get("message")
    return isinstance(msg, dict) and isinstance(msg.get("data"), str) and (
        "subscription" in obj or "messageId" in msg or "message_id" in msg or "attributes" in msg
    )


def convert_pubsub(obj: dict, origin: str = "") -> Iterator[AuditEvent]:
    """A Pub/Sub push body: ``message.data`` is base64 of one LogEntry (any known format works)."""
    raw = _cloud.unpack_blob(obj["message"]["data"], "Pub/Sub message.data")
    inner = _cloud.json_value(raw, "Pub/Sub message.data")
    yield from to_events(inner, f"{origin} pubsub")


_cloud.register("gke-logentry", _detect_entry, convert_entry)
_cloud.register("gcp-pubsub-push", _detect_pubsub, convert_pubsub)
