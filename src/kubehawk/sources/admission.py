"""AdmissionReview (admission.k8s.io/v1) to an audit-like Event: kube-audit-rest lines and the
live ``/admission`` webhook.

Where there is no audit log (DOKS, locked-down managed clusters), a validating webhook that
sees every write is the next best record. kube-audit-rest writes one AdmissionReview per line
with a top-level ``requestReceivedTimestamp``; kubehawk's own ``/admission`` endpoint hands the
posted review to :func:`admission_review_to_event`.

Mapping (reference/sources.md §6):

- ``verb``: CREATE -> create; UPDATE -> patch when ``options.kind`` is PatchOptions, else update;
  DELETE -> delete (a deletecollection arrives as one DELETE per item); CONNECT -> create
  (exec/attach/portforward/proxy; whether the client really used POST/SPDY or GET/WebSocket is
  unknown, so the verb is listed as synthetic).
- ``objectRef``: ``request.resource`` (group/version/resource), ``subResource``, ``namespace``,
  ``name`` (from the object when the request has none, e.g. generateName), uid from the object.
- ``requestURI``: rebuilt from the objectRef; for CONNECT the options object gives the query
  (``PodExecOptions.command``/container/stdin/stdout/stderr/tty, ``PodPortForwardOptions.ports``,
  proxy ``path``), so ``x.exec.*`` works exactly as on an apiserver exec URI.
- ``requestObject``: ``request.object`` (after defaulting and earlier mutating webhooks, not the
  raw client body). For DELETE, whose ``object`` is null, ``requestObject`` is the DeleteOptions
  (as the apiserver logs it) and ``responseObject`` is ``request.oldObject``: the object as it
  was when deleted, which is what a delete response returns for most resources; the level is
  then RequestResponse, otherwise Request. For UPDATE the prior state is kept beside the event
  as ``event.extra["oldObject"]`` (reachable by rules as ``oldObject.*``).
- ``auditID`` = ``request.uid``; ``stage`` = ResponseComplete; timestamps from the top-level
  ``requestReceivedTimestamp`` (receipt time at the webhook), else the conversion time.
- ``user`` = ``request.userInfo``; no annotations are made up.

What an AdmissionReview cannot tell (so rules that need it will not fire on these events):
reads (get/list/watch never reach admission) and non-resource URLs; requests denied by
authentication or authorization; changes to webhook configurations and admission policies
(exempt from webhooks); impersonation (``userInfo`` is the effective identity, the real
requester is lost); the real apiserver ``auditID`` (``request.uid`` is per webhook call and
changes on re-invocation, so these events never join with a real audit log); the outcome
(later webhooks, quota or etcd may still reject: ``responseStatus`` is absent); source IPs and
user agent; the query string of non-CONNECT calls (dryRun, fieldManager). Every reconstructed
field is listed in ``event.extra["synthetic"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from kubehawk.event import AuditEvent, EventDecodeError, event_from_dict
from kubehawk.sources import _cloud

__all__ = ["admission_review_to_event"]

_VERBS = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete", "CONNECT": "create"}
# Query parameters of the CONNECT options kinds, in the order url.Values encodes them (sorted).
_CONNECT_PARAMS = ("command", "container", "path", "ports", "stderr", "stdin", "stdout", "tty")


def _uri(ref: dict[str, Any], verb: str, connect_options: Any) -> str:
    group, version = ref.get("apiGroup", ""), ref.get("apiVersion") or "v1"
    path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    ns, name, sub = ref.get("namespace"), ref.get("name"), ref.get("subresource")
    resource = ref.get("resource", "")
    if ns and resource != "namespaces":
        path += f"/namespaces/{quote(ns)}"
    path += f"/{resource}"
    if name and not (verb == "create" and not sub):
        path += f"/{quote(name)}"
    if sub:
        path += f"/{sub}"
    if isinstance(connect_options, dict):
        proxy_path = connect_options.get("path")
        if sub == "proxy" and isinstance(proxy_path, str) and proxy_path:
            path += "/" + proxy_path.lstrip("/")
        pairs: list[tuple[str, str]] = []
        for key in _CONNECT_PARAMS:
            value = connect_options.get(key)
            if key == "path" or value is None or value is False:
                continue
            values = value if isinstance(value, list) else [value]
            for v in values:
                pairs.append((key, "true" if v is True else str(v)))
        if pairs:
            path += "?" + urlencode(pairs)
    return path


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def admission_review_to_event(review: dict, origin: str = "") -> AuditEvent:
    """One AdmissionReview (v1; v1beta1 has the same request shape) as an audit-like Event.

    Raises :class:`EventDecodeError` (naming the field) for anything that is not one.
    """
    try:
        return _convert_review(review, origin)
    except EventDecodeError:
        raise
    except _cloud.SHAPE_ERRORS as e:
        raise _cloud.shape_error("AdmissionReview", e) from None


def _str(req: dict, key: str) -> str | None:
    value = req.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventDecodeError(f"AdmissionReview request.{key} must be a string, got {type(value).__name__}")
    return value


def _convert_review(review: dict, origin: str) -> AuditEvent:
    if not isinstance(review, dict):
        raise EventDecodeError(f"AdmissionReview must be an object, got {type(review).__name__}")
    req = review.get("request")
    if not isinstance(req, dict):
        raise EventDecodeError("AdmissionReview without a request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise EventDecodeError("AdmissionReview request without a uid")
    op = req.get("operation")
    if not isinstance(op, str) or op not in _VERBS:
        raise EventDecodeError(f"AdmissionReview request.operation {op!r} is not CREATE/UPDATE/DELETE/CONNECT")
    options = req.get("options") if isinstance(req.get("options"), dict) else None
    verb = _VERBS[op]
    if op == "UPDATE" and options and options.get("kind") == "PatchOptions":
        verb = "patch"
    synthetic = ["auditID", "stage", "level", "requestURI"]
    if op == "CONNECT":
        synthetic.append("verb")

    obj = req.get("object")
    old = req.get("oldObject")
    resource = req.get("resource") if isinstance(req.get("resource"), dict) else {}
    ref: dict[str, Any] = {}
    if resource.get("resource"):
        ref["resource"] = resource["resource"]
    if _str(req, "subResource"):
        ref["subresource"] = req["subResource"]
    if _str(req, "namespace"):
        ref["namespace"] = req["namespace"]
    meta_src = obj if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) else old
    meta = meta_src.get("metadata") if isinstance(meta_src, dict) and isinstance(meta_src.get("metadata"), dict) else {}
    name = _str(req, "name") or meta.get("name")
    if isinstance(name, str) and name:
        ref["name"] = name
    if meta.get("uid") and op != "CONNECT":
        ref["uid"] = meta["uid"]
    ref["apiGroup"] = resource.get("group", "")
    if resource.get("version"):
        ref["apiVersion"] = resource["version"]

    d: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": uid,
        "stage": "ResponseComplete",
        "verb": verb,
        "objectRef": ref,
        "requestURI": _uri(ref, verb, obj if op == "CONNECT" else None),
    }
    user = req.get("userInfo")
    if isinstance(user, dict):
        d["user"] = user
    extra: dict[str, Any] = {"source_type": "admission", "synthetic": synthetic}
    if op == "DELETE":
        if options is not None:
            d["requestObject"] = options
        if isinstance(old, dict):
            d["responseObject"] = old
            synthetic.append("responseObject")
    elif obj is not None:
        d["requestObject"] = obj
    if op == "UPDATE" and isinstance(old, dict):
        extra["oldObject"] = old
    d["level"] = "RequestResponse" if "responseObject" in d else "Request"

    ts = _cloud.rfc3339(review.get("requestReceivedTimestamp"))
    if ts is None:
        ts = _now()
        synthetic.append("requestReceivedTimestamp")
    d["requestReceivedTimestamp"] = d["stageTimestamp"] = ts

    if req.get("dryRun"):
        extra["dry_run"] = True
    requested = req.get("requestResource")
    if isinstance(requested, dict) and requested != resource:
        extra["requestResource"] = requested
    kind = req.get("kind")
    if isinstance(kind, dict) and kind.get("kind"):
        extra["object_kind"] = kind["kind"]
    return event_from_dict(d, origin, extra)


def _detect(obj: dict) -> bool:
    return obj.get("kind") == "AdmissionReview" or (
        "kind" not in obj and isinstance(obj.get("request"), dict) and "operation" in obj["request"]
        and "uid" in obj["request"]
    )


def _convert(obj: dict, origin: str) -> Iterator[AuditEvent]:
    if not isinstance(obj.get("request"), dict) and isinstance(obj.get("response"), dict):
        raise _cloud.skip("AdmissionReview response (the webhook's answer), no request")
    yield admission_review_to_event(obj, origin)


_cloud.register("admission-review", _detect, _convert)
