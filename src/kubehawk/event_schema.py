"""The audit.k8s.io/v1 schema of the objects the event head keeps as plain dicts.

:class:`kubehawk.event.EventHead` decodes ``user``, ``objectRef``, ``responseStatus``... as
dicts (lenient, and fast to decode); these Structs are their schema, read by what must know
which fields exist and what type they hold: the rule field check at load
(:mod:`kubehawk.rules.schema`). Open maps (annotations, user.extra, the bodies) are dicts here:
any key is valid in them.
"""

from __future__ import annotations

import msgspec

__all__ = ["HEAD_SCHEMA", "has_body", "ListMeta", "ObjectReference", "Status", "StatusCause", "StatusDetails", "UserInfo"]


class UserInfo(msgspec.Struct):
    username: str | None = None
    uid: str | None = None
    groups: list[str] | None = None
    extra: dict[str, list[str]] | None = None


class ObjectReference(msgspec.Struct):
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    apiGroup: str | None = None
    apiVersion: str | None = None
    resourceVersion: str | None = None
    subresource: str | None = None


class ListMeta(msgspec.Struct):
    selfLink: str | None = None
    resourceVersion: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")
    remainingItemCount: int | None = None


class StatusCause(msgspec.Struct):
    reason: str | None = None
    message: str | None = None
    field: str | None = None


class StatusDetails(msgspec.Struct):
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    uid: str | None = None
    causes: list[StatusCause] | None = None
    retryAfterSeconds: int | None = None


class Status(msgspec.Struct):
    """``responseStatus``: a metav1.Status."""

    kind: str | None = None
    apiVersion: str | None = None
    metadata: ListMeta | None = None
    status: str | None = None
    message: str | None = None
    reason: str | None = None
    details: StatusDetails | None = None
    code: int | None = None


# The type of each head field kept as a dict (the others are typed in EventHead itself).
HEAD_SCHEMA: dict[str, type] = {"user": UserInfo, "impersonatedUser": UserInfo, "objectRef": ObjectReference,
                                "responseStatus": Status}


def has_body(raw: msgspec.Raw) -> bool:
    """Was this body (``requestObject``/``responseObject``, kept raw) logged? Absent or ``null``: no."""
    n = len(raw)
    # only a 4-byte body can be "null": no copy of the others
    return n > 4 or (n > 0 and bytes(raw) != b"null")
