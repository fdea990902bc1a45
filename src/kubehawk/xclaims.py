"""What the rule engine may assume of each derived ``x.*`` field without computing it.

The rule index decides a test on a derived value once per combination of the event fields it is
computed from (:data:`DERIVED_DEPS`) and drops a rule whose value is certainly absent
(:func:`derived_gates`); the compiler's raw-body prefilters read the values written in a pod
spec (:data:`SPEC_DERIVED`) and know when a body-derived value is unknown because the body was
not logged (:data:`DERIVED_UNKNOWN`). Each claim mirrors how :mod:`kubehawk.enrich` computes the
value: keep the two in step (tests/test_enrich_deps.py and tests/rules/test_guards.py check them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubehawk.event_schema import has_body
from kubehawk.identity import _sa_ref
from kubehawk.workloads import _EXEC_SUBRESOURCES, _SPEC_SUBRESOURCES, WORKLOAD_RESOURCES, image_registry

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent

__all__ = ["DERIVED_DEPS", "DERIVED_UNKNOWN", "SPEC_DERIVED", "Gate", "derived_gates", "derived_possible"]

# The top-level event fields each derived value is computed from, and nothing else (a leading
# "?" means only whether the field is present). The rule index relies on it: two events that
# agree on these fields agree on the value, so a rule test on it can be decided once per
# combination. tests/test_enrich_deps.py checks the claim; keep it true when editing below.
DERIVED_DEPS: dict[str, tuple[str, ...]] = {
    "workload": ("objectRef.resource",),
    "sa": ("user.username", "impersonatedUser.username"),
    "node": ("user.username", "impersonatedUser.username"),
    "user": ("user.username", "impersonatedUser.username"),
    "actor": ("user.username", "impersonatedUser.username"),
    "identity": ("user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups"),
    "system": ("user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups"),
    "source_ip": ("sourceIPs",),
    "decision": ("annotations.authorization.k8s.io/decision",),
    "impersonated": ("?impersonatedUser",),
    "health_endpoint": ("requestURI",),
    "gitops": ("user.username", "objectRef.namespace", "objectRef.resource"),
    "source": ("sourceIPs",),
}

# Derived values read from the pod spec of a body (the request's when it has one, else the
# response's): (the body key each value is written under, None when the rest of the path names
# it; what turns that written value into the derived one, None: as written). The compiler's
# raw-body prefilters (kubehawk.rules.guards.leaf_guard) rely on it; tests/rules/test_guards.py
# checks it.
SPEC_DERIVED: dict[str, tuple[str | None, Callable[[str], Any] | None]] = {
    "pod_spec": (None, None),
    "containers": (None, None),
    "images": ("image", None),
    "registry": ("image", lambda image: image_registry(image)),
}


def _no_body(event: AuditEvent) -> bool:
    """Neither body was logged (the pod spec is read from the request's, else the response's)."""
    h = event.head
    return not has_body(h.requestObject) and not has_body(h.responseObject)


# Derived values read from a body, and when that body was not logged (issue 13): the value is then
# unknown, so a rule test on it is neither a match nor, under ``not``, a non-match (the compiler's
# unknown_test). Where the rule index settles a leaf by its gate (derived_gates, closed), the gate's
# fields must decide the function's answer: the spec gate reads both bodies' presence. x.exec is not
# here: an exec is known at every level, and the command a real apiserver logs is in the requestURI.
DERIVED_UNKNOWN: dict[str, Callable[[AuditEvent], bool]] = {
    "pod_spec": _no_body, "containers": _no_body, "images": _no_body, "registry": _no_body,
    "labels_removed": lambda e: not has_body(e.head.requestObject),
}


def derived_possible(parts: tuple[str, ...]) -> Callable[[Any], bool] | None:
    """For ``x.<parts>`` that exists only under some configs: ``possible(config)``, else None.

    ``x.allowlisted.NAME`` has a value only when the config defines an allowlist NAME, so a
    rule on an allowlist the config lacks never needs the pod spec decoded.
    """
    if len(parts) > 1 and parts[0] == "allowlisted":
        rest = parts[1:]
        prefixes = frozenset(".".join(rest[:j]) for j in range(1, len(rest) + 1))

        def allowlist_possible(config: Any) -> bool:
            if config is None:
                return False
            names = getattr(config, "allowlists", None)
            return names is None or any(n in prefixes for n in names)

        return allowlist_possible
    return None


Gate = tuple[tuple[str, ...], Callable[..., bool]]


def derived_gates(config: Config | None) -> dict[str, Gate]:
    """For derived values that are absent (or false) on most events: ``(fields, possible)``, keyed by
    the derived name or ``name.key`` for one key of a mapping (``source.ioc``).

    ``possible(*values of fields)`` false means the value is certainly absent (``x.honeytoken``:
    false) whatever the rest of the event holds, so the rule index can drop a rule without
    computing anything. Every check mirrors the first lines of the ``_x_*`` method it guards.
    """
    def spec_possible(resource: Any, subresource: Any, req: Any, resp: Any) -> bool:
        return resource in WORKLOAD_RESOURCES and subresource in _SPEC_SUBRESOURCES and bool(req or resp)

    spec: Gate = (("objectRef.resource", "objectRef.subresource", "?requestObject", "?responseObject"),
                  spec_possible)
    gates: dict[str, Gate] = {
        "pod_spec": spec, "containers": spec, "images": spec, "registry": spec,
        "exec": (("objectRef.subresource",), lambda sub: sub in _EXEC_SUBRESOURCES),
    }
    secrets = getattr(config, "honeytoken_secrets", None)
    sas = getattr(config, "honeytoken_serviceaccounts", None)
    if not (secrets or sas):
        honey: Gate = ((), lambda: False)
    else:

        def honey_possible(resource: Any, user: Any) -> bool:
            return resource in ("secrets", "serviceaccounts") or _sa_ref(user) in (sas or ())

        honey = (("objectRef.resource", "user.username"), honey_possible)
    gates["honeytoken"] = gates["honeytoken_kind"] = honey
    # x.source.<key> exists only when the config names those networks (x.source.public always does)
    nets = getattr(config, "networks", None)
    configured = {"ioc": nets is not None and nets.ioc_file is not None,
                  "cluster": nets is not None and bool(nets.cluster),
                  "trusted": nets is not None and bool(nets.trusted or nets.cluster)}
    for key, present in configured.items():
        gates["source." + key] = ((), (lambda: True) if present else (lambda: False))
    return gates
