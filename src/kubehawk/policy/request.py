"""The request attributes a policy is evaluated against, and how the apiserver derives them.

``parse_request`` follows ``RequestInfoFactory.NewRequestInfo`` (requestinfo.go): which
paths are resource requests, the verb mapping (GET without a name is list/watch, DELETE
without a name is deletecollection, non-resource verbs are the lower-cased method), the
namespace of ``/api/v1/namespaces/<ns>`` being ``<ns>``, and the name taken from a
``metadata.name`` field selector. ``request_from_event`` rebuilds the attributes from an
audit Event: the *authenticated* user (impersonation is applied after the policy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_PREFIXES = ("api", "apis")
SPECIAL_VERBS = ("proxy", "watch")
NAMESPACE_SUBRESOURCES = ("status", "finalize")
LONG_RUNNING_VERBS = ("watch", "proxy")
LONG_RUNNING_SUBRESOURCES = ("attach", "exec", "proxy", "log", "portforward")
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Request:
    """Authorizer attributes of one request (what ``ruleMatches`` sees).

    ``user=None`` is a request without an authenticated user (failed authentication):
    rules with ``users``/``userGroups`` never match it. ``resource_request`` defaults to
    "a resource is named".
    """

    user: str | None = None
    groups: tuple[str, ...] = ()
    verb: str = ""
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups or ()))
        for attr in ("verb", "namespace", "api_group", "resource", "subresource", "name", "path"):
            if getattr(self, attr) is None:
                object.__setattr__(self, attr, "")
        if self.resource_request is None:
            object.__setattr__(self, "resource_request", bool(self.resource))

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def long_running(self) -> bool:
        """kube-apiserver's long-running check: these requests get a ResponseStarted stage."""
        if self.resource_request:
            return self.verb in LONG_RUNNING_VERBS or self.subresource in LONG_RUNNING_SUBRESOURCES
        return self.path.startswith("/debug/pprof/")

    def describe(self) -> str:
        who = "<unauthenticated>" if self.user is None else self.user
        if self.resource_request:
            res = self.combined_resource
            if self.api_group:
                res = f"{self.api_group}/{res}"
            where = f" in {self.namespace}" if self.namespace else ""
            named = f" {self.name}" if self.name else ""
            return f"{who} {self.verb} {res}{named}{where}"
        return f"{who} {self.verb} {self.path}"


def parse_request(
    method: str,
    uri: str,
    user: str | None = None,
    groups: Iterable[str] = (),
) -> Request:
    """Request attributes for an HTTP ``method`` on ``uri`` (path plus optional query)."""
    split = urlsplit(uri)
    path = split.path or "/"
    method = method.upper()
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    groups = tuple(groups)
    non_resource = Request(user=user, groups=groups, verb=method.lower(), path=path, resource_request=False)
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return non_resource
    prefix, cur = parts[0], parts[1:]
    api_group = ""
    if prefix != "api":
        if len(cur) < 3:
            return non_resource
        api_group, cur = cur[0], cur[1:]
    cur = cur[1:]  # the version
    if cur[0] in SPECIAL_VERBS:
        if len(cur) < 2:
            return non_resource  # the apiserver answers these with an error
        verb, cur = cur[0], cur[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if cur[0] == "namespaces" and len(cur) > 1:
        namespace = cur[1]
        if len(cur) > 2 and cur[2] not in NAMESPACE_SUBRESOURCES:
            cur = cur[2:]
    resource = name = subresource = ""
    if len(cur) >= 3 and verb != "proxy":
        subresource = cur[2]
    if len(cur) >= 2:
        name = cur[1]
    if cur:
        resource = cur[0]
    if not name and verb == "get":
        query = parse_qs(split.query)
        watch = (query.get("watch") or [""])[0].lower()
        verb = "watch" if watch in ("1", "true") else "list"
        selector = (query.get("fieldSelector") or [""])[0]
        exact = _field_selector_name(selector)
        if exact and "/" not in exact and exact not in (".", "..") and "%" not in exact:
            name = exact
    if not name and verb == "delete":
        verb = "deletecollection"
    return Request(
        user=user,
        groups=groups,
        verb=verb,
        namespace=unquote(namespace),
        api_group=api_group,
        resource=resource,
        subresource=subresource,
        name=unquote(name),
        path=path,
        resource_request=True,
    )


def _field_selector_name(selector: str) -> str | None:
    """``metadata.name=X`` / ``metadata.name==X`` required by a field selector."""
    for term in selector.split(","):
        term = term.strip()
        for op in ("==", "="):
            if "!=" in term:
                break
            if op in term:
                key, _, value = term.partition(op)
                if key.strip() == "metadata.name":
                    return value.strip()
                break
    return None


def _head(event: Any) -> Mapping[str, Any]:
    head = getattr(event, "head", None)
    if head is not None:
        return {
            "user": head.user,
            "verb": head.verb,
            "requestURI": head.requestURI,
            "objectRef": head.objectRef,
        }
    if isinstance(event, Mapping):
        return event
    raise TypeError(f"expected an audit Event (AuditEvent or dict), got {type(event).__name__}")


def request_from_event(event: Any) -> Request:
    """The attributes the apiserver evaluated the policy on when it wrote ``event``.

    The user is ``event.user`` (the authenticated identity; ``impersonatedUser`` is only
    recorded); an event without a username is a request without a user. A resource
    request is one with an ``objectRef``. The name comes from the URL (a create has no
    name in its attributes even though ``objectRef.name`` is filled from the body).
    """
    h = _head(event)
    u = h.get("user") or {}
    username = u.get("username") if isinstance(u, Mapping) else None
    groups = u.get("groups") if isinstance(u, Mapping) else None
    user = username if username else None
    if user is None and groups:
        user = ""  # groups but no name: still an authenticated user object
    groups_t = tuple(g for g in (groups or ()) if isinstance(g, str))
    verb = h.get("verb") or ""
    uri = h.get("requestURI") or ""
    path = urlsplit(uri).path if uri else ""
    ref = h.get("objectRef")
    if not isinstance(ref, Mapping) or not ref.get("resource"):
        return Request(user=user, groups=groups_t, verb=verb, path=path, resource_request=False)
    parsed = parse_request(_method_for(verb), uri, user, groups_t) if uri else None
    name = ref.get("name") or ""
    namespace = ref.get("namespace") or ""
    if parsed is not None and parsed.resource_request and parsed.resource == ref.get("resource"):
        name = parsed.name
        namespace = parsed.namespace
    elif verb in ("create", "list", "watch", "deletecollection") and not ref.get("subresource"):
        name = ""
    return Request(
        user=user,
        groups=groups_t,
        verb=verb,
        namespace=namespace,
        api_group=ref.get("apiGroup") or "",
        resource=ref.get("resource") or "",
        subresource=ref.get("subresource") or "",
        name=name,
        path=path,
        resource_request=True,
    )


def _method_for(verb: str) -> str:
    return {
        "create": "POST",
        "update": "PUT",
        "patch": "PATCH",
        "delete": "DELETE",
        "deletecollection": "DELETE",
    }.get(verb, "GET")
