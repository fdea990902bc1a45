"""Derived ``x.*`` fields: the logic many rules share, computed once per event and only on demand.

One rule can then cover every workload kind (``x.pod_spec``, ``x.containers``), every
exec transport (``x.exec.*`` from the requestURI), and the cluster's business context
(working hours, GitOps, honeytokens, allowlists) without repeating that logic in YAML.
Nothing here runs unless a candidate rule reads an ``x`` field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kubehawk.identity import (
    BUILTIN_CONTROLLERS,
    _kind,
    _sa_of,
    _sa_ref,
    _system_kind,
    actor,
    effective_groups,
    effective_user,
    is_bootstrap,
    is_controller,
)
from kubehawk.network import Networks
from kubehawk.workloads import (
    _SPEC_SUBRESOURCES,
    WORKLOAD_RESOURCES,
    _dig,
    _exec_info,
    _uri_path,
    image_registry,
    pod_spec_of,
)
from kubehawk.xfields import descriptions, levels

if TYPE_CHECKING:  # names in annotations only: at run time the event module imports this one
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent

__all__ = ["DERIVED_FIELDS", "DERIVED_LEVELS", "EVENT_ONLY", "Derived"]

# The audit level a rule needs when it reads x.<name> (the policy toolkit relies on it), and what
# each field means: both read from the one table of derived fields, kubehawk.xfields.
DERIVED_LEVELS: dict[str, str] = levels()
DERIVED_FIELDS: dict[str, str] = descriptions()

_HEALTH_PREFIXES = ("/healthz", "/livez", "/readyz")


_health_memo: dict[str, bool] = {}  # requestURI -> x.health_endpoint (probes repeat a few URIs)


class _Lazy(Mapping[str, Any]):
    """A mapping whose values are computed on first access; absent (None) values are missing keys."""

    __slots__ = ("_cache",)
    _KEYS: tuple[str, ...] = ()

    def __init__(self, cache: dict[str, Any] | None = None) -> None:
        self._cache: dict[str, Any] = {} if cache is None else cache

    def _value(self, key: str) -> Any:  # pragma: no cover - each subclass computes its values
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._value(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self._cache[key]
        except KeyError:
            value = self._value(key)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._KEYS if self._value(k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Derived(_Lazy):
    """The ``x`` mapping of one event: a view over the value cache the event holds.

    The event keeps only the cache (plain values), never this view: an event and its
    derived fields form no reference cycle, so each event is freed as soon as the stream
    moves on instead of waiting for the garbage collector.
    """

    __slots__ = ("event", "config")
    _KEYS = tuple(DERIVED_LEVELS)

    def __init__(self, event: AuditEvent, config: Config | None, cache: dict[str, Any] | None = None):
        self._cache = {} if cache is None else cache
        self.event = event
        self.config = config

    def _value(self, key: str) -> Any:
        cache = self._cache
        try:
            return cache[key]
        except KeyError:
            pass
        f = _COMPUTE.get(key)
        value = cache[key] = None if f is None else f(self)
        return value

    # --- workload --------------------------------------------------------------------------
    def _x_pod_spec(self) -> Any:
        ev = self.event
        res = ev.ref("resource")
        if res not in WORKLOAD_RESOURCES:
            return None
        if ev.ref("subresource") not in _SPEC_SUBRESOURCES:
            # status, binding, scale, eviction...: no spec is written there (the apiserver
            # ignores spec changes sent to /status), so the body is never decoded for them.
            return None
        spec = pod_spec_of(ev.request_object, res)
        if spec is None and not ev.has_request_object:
            spec = pod_spec_of(ev.response_object, res)
        return spec

    def _x_containers(self) -> Any:
        spec = self.get("pod_spec")
        if spec is None:
            return None
        out: list[Any] = []
        for key in ("containers", "initContainers", "ephemeralContainers"):
            items = spec.get(key)
            if isinstance(items, list):
                out.extend(c for c in items if isinstance(c, dict))
        return out

    def _x_images(self) -> Any:
        containers = self.get("containers")
        if containers is None:
            return None
        return [c["image"] for c in containers if isinstance(c.get("image"), str)]

    def _x_registry(self) -> Any:
        images = self.get("images")
        return None if images is None else [image_registry(i) for i in images]

    # --- exec --------------------------------------------------------------------------------
    def _x_exec(self) -> Any:
        return _exec_info(self.event)

    # --- identity (the functions of the event alone are _EVENT_FIELDS, below) ------------------
    def _x_system(self) -> Any:
        return _system(self.event, self.get)

    def _x_bootstrap(self) -> Any:
        return _bootstrap(self.event, self.config)

    def _x_source(self) -> Any:
        return _source(self.event, self.config)


    # --- business context ----------------------------------------------------------------------
    def _local_time(self) -> dt.datetime | None:
        t = self.event.time
        if not t:
            return None
        try:
            when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        tz = self.config.timezone if self.config is not None else dt.UTC
        return when.astimezone(tz)

    def _x_business_hours(self) -> Any:
        when = self._local_time()
        if when is None:
            return None
        if self.config is None:
            from kubehawk.config import BusinessHours

            return BusinessHours().contains(when)
        return self.config.business_hours.contains(when)

    def _x_off_hours(self) -> Any:
        inside = self.get("business_hours")
        return None if inside is None else not inside

    def _x_gitops(self) -> Any:
        cfg = self.config
        controller = is_controller(self.event, BUILTIN_CONTROLLERS)
        if cfg is None:
            return {"identity": False, "namespace": False, "controller": controller}
        return {
            "identity": self.event.username in cfg.gitops_identities,
            "namespace": self.event.ref("namespace") in cfg.gitops_namespaces,
            "controller": controller or is_controller(self.event, cfg.gitops_controllers),
        }

    def _x_honeytoken_kind(self) -> Any:
        return _honeytoken_kind(self.event, self.config, self.get)

    def _x_honeytoken(self) -> Any:
        return self.get("honeytoken_kind") is not None

    def _x_allowlisted(self) -> Any:
        # Every configured allowlist at once: a plain dict keeps the cache free of references
        # back to the event (see the class docstring); configs have a handful of allowlists.
        cfg = self.config
        names = tuple(cfg.allowlists) if cfg is not None else ()
        if not names:
            return {}
        ev = self.event
        spec = self.get("pod_spec")
        if spec is not None:
            ns = ev.ref("namespace") or _dig(ev.request_object, "metadata", "namespace")
            sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            sa: Any = (ns or "", sa_name)
        else:
            sa = (self.get("sa") or {}).get("namespace"), (self.get("sa") or {}).get("name")
            sa = sa if sa[1] else None
            ns = ev.ref("namespace")
        facts = {"user": ev.username, "namespace": ns, "serviceaccount": sa, "images": self.get("images") or []}
        out = {}
        for name in names:
            value = cfg.allowed(name, **facts)
            if value is not None:
                out[name] = value
        return out


def _health_endpoint(event: AuditEvent) -> bool:
    uri = event.head.requestURI or ""
    hit = _health_memo.get(uri)
    if hit is None:
        path = _uri_path(uri)
        hit = path == "/version" or any(path == p or path.startswith(p + "/") for p in _HEALTH_PREFIXES)
        if len(_health_memo) >= 4096:
            _health_memo.clear()
        _health_memo[uri] = hit
    return hit


# --- identity fields: functions of the event alone (see EVENT_ONLY) --------------------------------


def _sa(ev: AuditEvent) -> Any:
    return _sa_of(effective_user(ev))


def _node(ev: AuditEvent) -> Any:
    user = effective_user(ev) or ""
    return user[len("system:node:"):] if user.startswith("system:node:") else None


def _source_ip(ev: AuditEvent) -> Any:
    return ev.source_ip


def _impersonated(ev: AuditEvent) -> Any:
    return ev.head.impersonatedUser is not None


def _labels_removed(ev: AuditEvent) -> Any:
    """x.labels_removed of a patch (None for other verbs)."""
    if ev.head.verb != "patch" or not ev.has_request_object:
        return None
    body = ev.request_object
    if isinstance(body, list):
        prefix = "/metadata/labels/"
        return [op["path"][len(prefix):].replace("~1", "/").replace("~0", "~") for op in body
                if isinstance(op, dict) and op.get("op") == "remove" and isinstance(op.get("path"), str)
                and op["path"].startswith(prefix)]
    labels = _dig(body, "metadata", "labels")
    return [k for k, v in labels.items() if v is None] if isinstance(labels, dict) else []


def _workload(ev: AuditEvent) -> Any:
    return ev.ref("resource") in WORKLOAD_RESOURCES


def _identity(ev: AuditEvent) -> Any:
    return _kind(effective_user(ev), effective_groups(ev))


def _system(ev: AuditEvent, get: Callable[[str], Any]) -> Any:
    """x.system; ``get`` reads the event's other x.* fields (identity, sa). Both the requester and
    the identity it acts as must be system: impersonating the controller-manager is not system."""
    if not _system_kind(get("identity"), get("sa")):
        return False
    if ev.head.impersonatedUser is None:
        return True
    user = ev.username
    groups = (ev.head.user or {}).get("groups") or []
    return _system_kind(_kind(user, groups), _sa_of(user))


def _bootstrap(ev: AuditEvent, cfg: Config | None) -> Any:
    return (cfg is None or cfg.bootstrap) and is_bootstrap(ev)


_NO_NETWORKS = Networks()


def _source(ev: AuditEvent, cfg: Config | None) -> Any:
    nets = getattr(cfg, "networks", None)
    return (nets if nets is not None else _NO_NETWORKS).classify(ev.source_ip)


def _decision(ev: AuditEvent) -> Any:
    ann = ev.head.annotations
    return ann.get("authorization.k8s.io/decision") if ann else None


def _honeytoken_kind(ev: AuditEvent, cfg: Config | None, get: Callable[[str], Any]) -> Any:
    """x.honeytoken_kind of ``ev`` under ``cfg``; ``get`` reads the event's other x.* fields."""
    if cfg is None:
        return None
    secrets, sas = cfg.honeytoken_secrets, cfg.honeytoken_serviceaccounts
    if not (secrets or sas):
        return None
    if sas and _sa_ref(ev.username) in sas:
        return "serviceaccount-token-used"
    res = ev.ref("resource")
    if res == "serviceaccounts":
        return "serviceaccount" if sas and f"{ev.ref('namespace')}/{ev.ref('name')}" in sas else None
    if res == "secrets" and secrets:
        ns, name = ev.ref("namespace"), ev.ref("name")
        if name:
            return "secret" if f"{ns}/{name}" in secrets else None
        if ev.head.verb not in ("list", "watch"):
            return None
        # A list returns every secret in scope, the honeytoken's value included.
        # A denied list returned nothing, so it did not touch the honeytoken.
        code = (ev.head.responseStatus or {}).get("code")
        succeeded = not (isinstance(code, int) and code >= 400) and get("decision") != "forbid"
        if succeeded and not get("system") and (
                not ns or any(s.split("/", 1)[0] == ns for s in secrets)):
            return "secret-list"
    return None


# x.<name> -> a function of the event alone: the Derived view and EVENT_ONLY both call it.
_EVENT_FIELDS: dict[str, Callable[[AuditEvent], Any]] = {
    "health_endpoint": _health_endpoint,
    "sa": _sa,
    "node": _node,
    "source_ip": _source_ip,
    "impersonated": _impersonated,
    "workload": _workload,
    "labels_removed": _labels_removed,
    "identity": _identity,
    "user": effective_user,
    "actor": actor,
    "decision": _decision,
}

# x.<name> -> a function of the event and the config bound to it (event._ctx), reading other x.*
# fields through event.derived_value: AuditEvent.derived_value calls it without building a Derived
# view (x.health_endpoint is asked of every anonymous probe, x.honeytoken of every secret request,
# which reads x.decision and x.system).
EVENT_ONLY: dict[str, Callable[[AuditEvent], Any]] = {
    **_EVENT_FIELDS,
    "system": lambda ev: _system(ev, ev.derived_value),
    "bootstrap": lambda ev: _bootstrap(ev, ev._ctx),
    "source": lambda ev: _source(ev, ev._ctx),
    "honeytoken_kind": lambda ev: _honeytoken_kind(ev, ev._ctx, ev.derived_value),
    "honeytoken": lambda ev: ev.derived_value("honeytoken_kind") is not None,
}


def _of_event(f: Callable[[AuditEvent], Any]) -> Callable[[Derived], Any]:
    return lambda d: f(d.event)


# x.<name> -> how the Derived view computes it (one dict lookup instead of building "_x_" + name
# per value): a function of the event alone, else the view's _x_<name> method.
_COMPUTE: dict[str, Callable[[Derived], Any]] = {
    k: _of_event(_EVENT_FIELDS[k]) if k in _EVENT_FIELDS else getattr(Derived, "_x_" + k) for k in DERIVED_LEVELS
}
