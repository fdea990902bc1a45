"""Turn a request body into journal records, validating every event on the way in.

The apiserver's webhook backend posts one ``EventList``; like Falco's k8saudit we also
accept a single ``Event``, a JSON array of either, and any export format the source
normaliser knows. Events are stored as the bytes the apiserver sent (no re-encoding on
the hot path); each is decoded once here so a bad one is rejected with a reason now,
not discovered later by the processor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from kubehawk.event import TOO_DEEP, EventDecodeError, decode_event
from kubehawk.jsonsplit import split
from kubehawk.server.journal import Record
from kubehawk.sources.normalize import SkipRecord, to_events

__all__ = ["BadRequest", "Parsed", "parse_audit_body", "parse_admission_body"]

MAX_REJECTS_SHOWN = 20


class BadRequest(Exception):
    """The whole body is unusable: answered 400 with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Parsed:
    records: list[Record] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, where: str, error: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTS_SHOWN:
            self.rejected.append({"item": where, "error": error})


class _Envelope(msgspec.Struct):
    kind: str | None = None
    apiVersion: str | None = None
    items: list[msgspec.Raw] | None = None


_envelope = msgspec.json.Decoder(_Envelope)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_any = msgspec.json.Decoder()


def parse_audit_body(body: bytes, origin: str = "POST /audit") -> Parsed:
    if not body.strip():
        raise BadRequest("empty_body", "empty request body: expected an audit.k8s.io/v1 EventList")
    out = Parsed()
    try:
        _parse_value(body, origin, out, depth=0)
    except msgspec.DecodeError as e:
        raise BadRequest("malformed_json", f"malformed JSON: {e}") from None
    except RecursionError:  # a body the splitter could not take apart (kubehawk.jsonsplit)
        raise BadRequest("too_deep", TOO_DEEP) from None
    if not out.records and out.rejected_count:
        first = out.rejected[0]
        raise BadRequest("no_valid_event", f"no valid audit event in the body; {first['item']}: {first['error']}")
    return out


def _parse_value(raw: bytes, origin: str, out: Parsed, depth: int) -> None:
    head = raw.lstrip()[:1]
    if head == b"[":
        try:
            items = _raw_list.decode(raw)
        except RecursionError:  # one member nested too deeply: take the list apart without recursing
            items = _members(raw)
        for i, item in enumerate(items):
            where = f"{origin}[{i}]"
            if depth >= 2:
                out.reject(where, "nested too deeply")
                continue
            try:
                _parse_value(bytes(item), where, out, depth + 1)
            except msgspec.DecodeError as e:  # cannot happen for a Raw slice of valid JSON
                out.reject(where, f"malformed JSON: {e}")
        return
    if head != b"{":
        if depth == 0:
            # Valid JSON that is not an object or array, or not JSON at all.
            _any.decode(raw)
            raise BadRequest("not_audit", "expected an audit.k8s.io/v1 EventList (a JSON object)")
        out.reject(origin, "expected an Event object")
        return
    try:
        env = _envelope.decode(raw)
    except msgspec.ValidationError:
        env = _Envelope()  # e.g. items is not a list; decide below by the generic path
    except RecursionError:
        env = _deep_envelope(raw)
    if env.kind == "EventList" or (env.kind is None and env.items is not None and env.apiVersion
                                   and env.apiVersion.startswith("audit.k8s.io/")):
        if env.items is None:
            out.reject(origin, "EventList without an items list")
            return
        for i, item in enumerate(env.items):
            _add_event(bytes(item), f"{origin} item {i}", out)
        return
    if env.kind == "Event" or (env.kind is None and env.apiVersion and env.apiVersion.startswith("audit.k8s.io/")):
        _add_event(raw, origin, out)
        return
    # Anything else: a cloud export record or a native Event without kind; the normaliser decides.
    try:
        obj = _any.decode(raw)
        events = list(to_events(obj, origin))
    except RecursionError:
        out.reject(origin, TOO_DEEP)
        return
    except SkipRecord as e:
        out.reject(origin, f"skipped: {e}")
        return
    except EventDecodeError as e:
        out.reject(origin, str(e))
        return
    for ev in events:
        out.records.append(Record.make(ev.head.auditID, ev.head.stage, "audit", ev.to_json()))


def _members(raw: bytes) -> list[bytes]:
    """The members of a JSON array msgspec could not decode for its depth, each as its own text."""
    found = split(raw)
    if found is None or found.kind != "array":
        raise msgspec.DecodeError("brackets do not balance")
    return [raw[m.start:m.end] for m in found.members]


def _deep_envelope(raw: bytes) -> _Envelope:
    """The envelope of an object msgspec could not decode for its depth: kind, apiVersion and the
    items' texts found by the splitter, so that only the deep item is rejected."""
    found = split(raw)
    if found is None or found.kind != "object":
        raise msgspec.DecodeError("brackets do not balance")
    env = _Envelope()
    for m in found.members:
        if m.key in ("kind", "apiVersion"):
            try:
                value = _any.decode(raw[m.start:m.end])
            except (msgspec.DecodeError, RecursionError):
                continue
            if isinstance(value, str):
                setattr(env, m.key, value)
        elif m.key == "items" and raw[m.start:m.start + 1] == b"[":
            env.items = _members(raw[m.start:m.end])  # type: ignore[assignment] # bytes serve as Raw here
    return env


def _add_event(raw: bytes, where: str, out: Parsed) -> None:
    try:
        ev = decode_event(raw, where)
    except EventDecodeError as e:
        out.reject(where, str(e))
        return
    out.records.append(Record.make(ev.head.auditID, ev.head.stage, "audit", raw))


def parse_admission_body(body: bytes) -> tuple[dict[str, Any], Any]:
    """(AdmissionReview response to send, the review as decoded JSON). Raises BadRequest."""
    if not body.strip():
        raise BadRequest("empty_body", "empty request body: expected an admission.k8s.io/v1 AdmissionReview")
    try:
        review = _any.decode(body)
    except msgspec.DecodeError as e:
        raise BadRequest("malformed_json", f"malformed JSON: {e}") from None
    except RecursionError:
        raise BadRequest("too_deep", TOO_DEEP) from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise BadRequest("not_admission", "expected an AdmissionReview object")
    req = review.get("request")
    uid = req.get("uid") if isinstance(req, dict) else None
    if not isinstance(uid, str) or not uid:
        raise BadRequest("not_admission", "AdmissionReview without request.uid")
    response = {
        "apiVersion": review.get("apiVersion") or "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }
    return response, review
