"""The one event shape that flows through kubehawk: an ``audit.k8s.io/v1`` Event.

Decoding is the hot path, so the top-level fields are decoded with a typed msgspec
decoder while ``requestObject`` and ``responseObject`` stay raw JSON until a rule
(or the enricher) actually reads them. Every source converts its records to this
shape at the edge; rules and the policy toolkit never see cloud formats.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from kubehawk.enrich import EVENT_ONLY, Derived
from kubehawk.event_schema import has_body
from kubehawk.fieldpath import resolve, split_path

__all__ = [
    "AuditEvent",
    "EventDecodeError",
    "EventHead",
    "decode_event",
    "event_from_dict",
    "fast_decoded",
    "iter_values",
]

AUDIT_API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")


class EventHead(msgspec.Struct, kw_only=True):
    """Top-level fields of an audit Event; bodies are kept as raw JSON."""

    kind: str | None = None
    apiVersion: str | None = None
    level: str | None = None
    auditID: str | None = None
    stage: str | None = None
    requestURI: str | None = None
    verb: str | None = None
    user: dict[str, Any] | None = None
    impersonatedUser: dict[str, Any] | None = None
    sourceIPs: list[str] | None = None
    userAgent: str | None = None
    objectRef: dict[str, Any] | None = None
    responseStatus: dict[str, Any] | None = None
    # Raw JSON (msgspec cannot put Raw in a union); empty or b"null" means absent.
    requestObject: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    responseObject: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    requestReceivedTimestamp: str | None = None
    stageTimestamp: str | None = None
    annotations: dict[str, str] | None = None
    # v1beta1 carried the timestamp here; kept so legacy logs still have a time.
    timestamp: str | None = None


class EventDecodeError(ValueError):
    """A record that is not a usable audit Event; the message names the field."""


# msgspec recurses once per nesting level and raises RecursionError near Python's recursion limit
# (about 1,000 levels, fewer the deeper the caller's stack): a hostile record, never a crash.
TOO_DEEP = "JSON nested too deeply (about 1,000 levels or more)"


class _CheckedHead(EventHead, kw_only=True):
    """An EventHead whose decode also checks ``kind`` and ``apiVersion`` (as :func:`_check`
    does), in C: the fast path of the file reader pays no Python test for them."""

    kind: Literal["Event"] | None = None
    apiVersion: Literal[AUDIT_API_VERSIONS] | None = None  # type: ignore[valid-type] # the same list
    level: Literal["None", "Metadata", "Request", "RequestResponse"] | None = None
    stage: Literal["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"] | None = None
    verb: Literal["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
                  "post", "put", "head", "options"] | None = None


_decoder = msgspec.json.Decoder(EventHead)
# The typed head decode for readers with a fast path of their own (kubehawk.sources.files): a
# record that is not an audit Event by kind or apiVersion fails it (msgspec.ValidationError, a
# DecodeError) and goes the way of decode_event, which names the problem. The rest of _check
# (verb, requestURI or auditID present) stays with the caller.
decode_head = msgspec.json.Decoder(_CheckedHead).decode


def fast_decoded(head: EventHead) -> bool:
    """Was this head made by :data:`decode_head` (the readers' fast path)? Its line then decodes
    again the same way; a head of :func:`decode_event` may hold values decode_head refuses."""
    return head.__class__ is _CheckedHead
_body_decoder = msgspec.json.Decoder()
_top_raw_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_NULL = msgspec.Raw(b"null")

TOP_FIELDS = frozenset(EventHead.__struct_fields__)


class _Unset:
    __slots__ = ()


_UNSET = _Unset()


class AuditEvent(msgspec.Struct, eq=False):
    """One audit Event with lazily decoded bodies and lazily derived ``x.*`` fields.

    ``origin`` says where it came from (``file:line``, ``request #n``) so that
    errors and alerts can point back at the record. Built as ``AuditEvent(head,
    origin, extra, line)``; a msgspec Struct (compared by identity) because one is made per
    line read and its constructor runs in C, at a third of a Python ``__init__``.
    """

    head: EventHead
    _origin: Any = ""  # or (file, line) from the file reader, formatted when asked
    # Provenance and anything a source adds beside the audit fields (``source_type``...).
    _extra: dict[str, Any] | None = None
    # The line the head was decoded from, as written, when the reader has it (the file reader
    # does): keyword searches read it instead of re-encoding the head. Never kept by anything
    # that changes the head (a changed event is a new AuditEvent without it).
    _line: bytes | None = None
    _req: Any = _UNSET
    _resp: Any = _UNSET
    _ctx: Any = None
    # The derived values, a dict made on first use: most events never need it.
    _x: dict[str, Any] | None = None
    # Top-level fields written as JSON null, which the typed head reads as missing: given by
    # event_from_dict, else read from the line when asked (see written_null).
    _nulls: frozenset[str] | None = None

    @property
    def origin(self) -> str:
        o = self._origin
        if o.__class__ is tuple:  # (file, line) from the file reader, formatted when asked
            o = self._origin = f"{o[0]}:{o[1]}"
        return o

    @origin.setter
    def origin(self, value: str) -> None:
        self._origin = value

    # --- top-level access -------------------------------------------------------------
    @property
    def request_object(self) -> Any:
        if self._req is _UNSET:
            self._req = _decode_body(self.head.requestObject, "requestObject", self.origin)
        return self._req

    @property
    def has_request_object(self) -> bool:
        return has_body(self.head.requestObject)

    @property
    def response_object(self) -> Any:
        if self._resp is _UNSET:
            self._resp = _decode_body(self.head.responseObject, "responseObject", self.origin)
        return self._resp

    @property
    def derived(self) -> Mapping[str, Any]:
        """The ``x.*`` fields (:class:`kubehawk.enrich.Derived`), each computed on first use."""
        cache = self._x
        if cache is None:
            cache = self._x = {}
        return Derived(self, self._ctx, cache)

    def derived_value(self, name: str) -> Any:
        """``x.<name>`` (None when absent): the fast path rules use."""
        cache = self._x
        if cache is None:
            cache = self._x = {}
        else:
            try:
                return cache[name]
            except KeyError:
                pass
        f = EVENT_ONLY.get(name)
        if f is not None:  # no Derived view needed (see kubehawk.enrich.EVENT_ONLY)
            value = cache[name] = f(self)
            return value
        return Derived(self, self._ctx, cache).get(name)

    def written_null(self, name: str) -> bool:
        """Is the top-level field ``name`` written as JSON null? The typed head cannot tell it
        from a missing one (both are None); ``|exists`` can (the Sigma spec: presence, whatever
        the value). Asked only when the head holds None, so the line is decoded once, rarely."""
        nulls = self._nulls
        if nulls is None:
            line = self._line
            if line is None or b'"' + name.encode() + b'"' not in line:
                return False  # not written at all (a byte search; the line is decoded only when it is)
            try:
                top = _top_raw_decoder.decode(line)
                nulls = frozenset(k for k, v in top.items() if len(v) == 4 and bytes(v) == b"null")
            except (msgspec.DecodeError, RecursionError):
                nulls = frozenset()
            self._nulls = nulls
        return name in nulls

    def bind_context(self, context: Any) -> None:
        """Use this :class:`kubehawk.config.Config` for the ``x.*`` fields (allowlists, hours...)."""
        if context is not self._ctx:
            self._ctx = context
            self._x = None

    @property
    def extra(self) -> dict[str, Any]:
        if self._extra is None:
            self._extra = {}
        return self._extra

    def top(self, name: str) -> Any:
        """The value of a top-level field (``x`` gives the derived fields)."""
        if name == "requestObject":
            return self.request_object
        if name == "responseObject":
            return self.response_object
        if name == "x":
            return self.derived
        if name in TOP_FIELDS:
            return getattr(self.head, name)
        if self._extra is not None:
            return self._extra.get(name)
        return None

    def get(self, path: str | tuple[str, ...]) -> list[Any]:
        """All values at a dotted path (Sigma semantics; see :func:`kubehawk.fieldpath.resolve`)."""
        parts = split_path(path) if isinstance(path, str) else path
        return resolve(self.top(parts[0]), parts[1:])

    def first(self, path: str | tuple[str, ...], default: Any = None) -> Any:
        values = self.get(path)
        return values[0] if values else default

    # --- convenience for alerts and sinks --------------------------------------------
    @property
    def time(self) -> str | None:
        h = self.head
        return h.stageTimestamp or h.requestReceivedTimestamp or h.timestamp

    @property
    def username(self) -> str | None:
        u = self.head.user
        return u.get("username") if isinstance(u, dict) else None

    @property
    def source_ip(self) -> str | None:
        """The trusted source IP: the last entry (the others are client-controlled)."""
        ips = self.head.sourceIPs
        return ips[-1] if ips else None

    def ref(self, key: str) -> Any:
        o = self.head.objectRef
        return o.get(key) if isinstance(o, dict) else None

    def body_name(self) -> str | None:
        """``metadata.name`` of the request body, else of the response body (a non-empty string).

        A body not decoded yet is not decoded for this: a typed decode of just that field (an
        alert on a create names the object this way, and pod bodies are large).
        """
        h = self.head
        for raw, cached, prop in ((h.requestObject, self._req, "request_object"),
                                  (h.responseObject, self._resp, "response_object")):
            if cached is _UNSET:
                if not has_body(raw):
                    continue
                try:
                    meta = _name_decoder.decode(raw).metadata
                    name = meta.name if meta is not None else None
                except (msgspec.DecodeError, RecursionError):  # not an object, or metadata is not one: ask the body
                    name = _metadata_name(getattr(self, prop))
            else:
                name = _metadata_name(cached)
            if name.__class__ is str and name:
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data (bodies decoded)."""
        # to_builtins cannot encode msgspec.Raw, so the raw bodies are left out here.
        h = self.head
        d = msgspec.to_builtins({f: getattr(h, f) for f in h.__struct_fields__
                                 if f not in ("requestObject", "responseObject")})
        if self.request_object is not None:
            d["requestObject"] = self.request_object
        if self.response_object is not None:
            d["responseObject"] = self.response_object
        return {k: v for k, v in d.items() if v is not None}

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.to_dict())

    def __repr__(self) -> str:
        h = self.head
        return f"AuditEvent({h.verb} {h.requestURI} by {self.username} @ {self.origin})"


class _Metadata(msgspec.Struct):
    name: Any = None


class _Named(msgspec.Struct):
    metadata: _Metadata | None = None


_name_decoder = msgspec.json.Decoder(_Named)


def _metadata_name(body: Any) -> Any:
    meta = body.get("metadata") if isinstance(body, dict) else None
    return meta.get("name") if isinstance(meta, dict) else None


def _decode_body(raw: msgspec.Raw, name: str, origin: str) -> Any:
    if not has_body(raw):
        return None
    try:
        return _body_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        # The top-level decode accepted it, so this can only be a body nested so deep that a decode
        # from deeper in the stack hits the recursion limit: unknown, as if not logged.
        return None


def _check(head: EventHead) -> EventHead:
    api = head.apiVersion
    if api is not None and api not in AUDIT_API_VERSIONS:
        raise EventDecodeError(f"apiVersion {api!r} is not an audit.k8s.io Event")
    if head.kind is not None and head.kind != "Event":
        raise EventDecodeError(f"kind {head.kind!r} is not Event")
    if head.verb is None and head.requestURI is None and head.auditID is None:
        raise EventDecodeError("not an audit Event: no verb, requestURI or auditID")
    return head


def _friendly(err: msgspec.MsgspecError) -> str:
    msg = str(err)
    # msgspec says "Expected `str | null`, got `int` - at `$.verb`"; name the field first.
    if " - at `$." in msg:
        what, _, where = msg.partition(" - at `$.")
        return f"field {where.rstrip('`')}: {what}"
    return msg


def decode_event(data: bytes | str, origin: str = "") -> AuditEvent:
    """Decode one JSON Event; raises :class:`EventDecodeError` naming what is wrong."""
    try:
        head = _decoder.decode(data)
    except msgspec.ValidationError as e:
        raise EventDecodeError(_friendly(e)) from None
    except msgspec.DecodeError as e:
        raise EventDecodeError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise EventDecodeError(TOO_DEEP) from None
    return AuditEvent(_check(head), origin, None, data if data.__class__ is bytes else None)


def event_from_dict(d: Mapping[str, Any], origin: str = "", extra: dict[str, Any] | None = None) -> AuditEvent:
    """Build an event from already-decoded data (cloud converters, admission webhook)."""
    if not isinstance(d, Mapping):
        raise EventDecodeError(f"expected a JSON object, got {type(d).__name__}")
    body = {k: v for k, v in d.items() if k not in ("requestObject", "responseObject") and k in TOP_FIELDS}
    try:
        head = msgspec.convert(body, EventHead)
        for name in ("requestObject", "responseObject"):
            value = d.get(name)
            if value is not None:
                setattr(head, name, msgspec.Raw(msgspec.json.encode(value)))
    except msgspec.ValidationError as e:
        raise EventDecodeError(_friendly(e)) from None
    except RecursionError:  # a value decoded higher up the stack, too deep to walk down here
        raise EventDecodeError(TOO_DEEP) from None
    ev = AuditEvent(_check(head), origin, extra)
    ev._nulls = frozenset(k for k in TOP_FIELDS if k in d and d[k] is None)
    if d.get("requestObject") is not None:
        ev._req = d["requestObject"]
    if d.get("responseObject") is not None:
        ev._resp = d["responseObject"]
    return ev


def iter_values(event: AuditEvent, path: str) -> Iterator[Any]:
    yield from event.get(path)
