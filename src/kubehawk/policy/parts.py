"""The parts of an audit Policy (``audit.k8s.io/v1``): its levels and stages, a rule, a
resource entry, and the errors and warnings of a load, as kube-apiserver names them.

The policy's checks (:mod:`.validate`) and its evaluation (:mod:`.evaluate`) read these; the
:class:`kubehawk.policy.model.Policy` that holds them uses both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSION = "audit.k8s.io/v1"
REMOVED_VERSIONS = ("audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1")

POLICY_FIELDS = ("apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields")
RULE_FIELDS = (
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
)
GROUP_RESOURCE_FIELDS = ("group", "resources", "resourceNames")


def level_rank(level: str) -> int:
    """Order of levels (None < Metadata < Request < RequestResponse); unknown -> -1."""
    return LEVEL_RANK.get(level, -1)


class PolicyError(ValueError):
    """A policy the apiserver would refuse to load.

    ``errors`` holds each message as the apiserver words it (``rules[2].level:
    Required value``); ``str()`` is the apiserver's aggregate form, prefixed with
    the file (and line, when known) so a person can find it.
    """

    def __init__(self, errors: list[str], source: str | None = None, lines: list[int | None] | None = None):
        self.errors = list(errors)
        self.source = source
        self.lines = list(lines) if lines is not None else [None] * len(self.errors)
        super().__init__(self.message)

    @property
    def aggregate(self) -> str:
        """k8s ``utilerrors.Aggregate`` formatting: one message bare, several as ``[a, b]``."""
        seen: list[str] = []
        for e in self.errors:
            if e not in seen:
                seen.append(e)
        if len(seen) == 1:
            return seen[0]
        return "[" + ", ".join(seen) + "]"

    @property
    def message(self) -> str:
        if self.source:
            return f"{self.source}: {self.aggregate}"
        return self.aggregate

    def located(self) -> list[str]:
        """One line per error, ``file:line: message`` where the line is known."""
        out = []
        for err, line in zip(self.errors, self.lines, strict=False):
            where = self.source or "<policy>"
            if line:
                where = f"{where}:{line}"
            out.append(f"{where}: {err}")
        return out


@dataclass(frozen=True)
class PolicyWarning:
    """Something the apiserver accepts with a log warning (unknown/duplicate field)."""

    path: str
    message: str
    line: int | None = None
    rule_index: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class GroupResources:
    """One entry of a rule's ``resources`` list."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"group": self.group}
        if self.resources:
            d["resources"] = list(self.resources)
        if self.resource_names:
            d["resourceNames"] = list(self.resource_names)
        return d


@dataclass(frozen=True)
class PolicyRule:
    """One policy rule; empty tuples mean "any" (as in the apiserver)."""

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None
    index: int = -1
    line: int | None = None

    @property
    def resource_only(self) -> bool:
        """Setting namespaces or resources confines the rule to resource requests."""
        return bool(self.namespaces or self.resources)

    @property
    def non_resource_only(self) -> bool:
        return not self.resource_only and bool(self.non_resource_urls)

    @property
    def unconditional(self) -> bool:
        """Matches every request: nothing after it is ever consulted."""
        return not (
            self.users
            or self.user_groups
            or self.verbs
            or self.resources
            or self.namespaces
            or self.non_resource_urls
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"level": self.level}
        if self.users:
            d["users"] = list(self.users)
        if self.user_groups:
            d["userGroups"] = list(self.user_groups)
        if self.verbs:
            d["verbs"] = list(self.verbs)
        if self.resources:
            d["resources"] = [gr.to_dict() for gr in self.resources]
        if self.namespaces:
            d["namespaces"] = list(self.namespaces)
        if self.non_resource_urls:
            d["nonResourceURLs"] = list(self.non_resource_urls)
        if self.omit_stages:
            d["omitStages"] = list(self.omit_stages)
        if self.omit_managed_fields is not None:
            d["omitManagedFields"] = self.omit_managed_fields
        return d

    def describe(self) -> str:
        """A one-line summary for tables: ``Metadata secrets,configmaps``."""
        parts = [self.level]
        if self.users:
            parts.append("users=" + ",".join(self.users))
        if self.user_groups:
            parts.append("groups=" + ",".join(self.user_groups))
        if self.verbs:
            parts.append("verbs=" + ",".join(self.verbs))
        if self.resources:
            res = []
            for gr in self.resources:
                g = gr.group or "core"
                res.append(g + ":" + (",".join(gr.resources) if gr.resources else "*"))
            parts.append("resources=" + ";".join(res))
        if self.namespaces:
            parts.append("namespaces=" + ",".join(self.namespaces))
        if self.non_resource_urls:
            parts.append("urls=" + ",".join(self.non_resource_urls))
        if self.unconditional:
            parts.append("(catch-all)")
        return " ".join(parts)
