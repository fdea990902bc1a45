"""The objects the rest of kubehawk sees: :class:`Rule`, :class:`Scope`, :class:`Match`.

A :class:`Rule` is the loaded, validated and compiled form of one Sigma rule (event
rule or correlation). Its compiled predicate is a closure and is not pickled: a
pickled Rule carries metadata only (alerts cross process boundaries; engines are
rebuilt from rule source text instead, see :class:`kubehawk.rules.RuleSet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubehawk.levels import LEVELS

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubehawk.event import AuditEvent

__all__ = ["AUDIT_LEVELS", "LEVELS", "CorrelationSpec", "Match", "Rule", "RuleLoadError", "Scope"]

# Audit policy levels in the order they add information.
AUDIT_LEVELS = ("Metadata", "Request", "RequestResponse")


class RuleLoadError(ValueError):
    """A rule that cannot be loaded; the message names the file and what is wrong."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Scope:
    """Which requests a rule can match (an over-approximation; ``None`` = any).

    Computed from the positive, wildcard-free equality constraints of each disjunct of
    the rule's condition; the audit-policy toolkit uses it to tell which policy rules a
    detection depends on.
    """

    verbs: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    subresources: frozenset[str] | None = None
    api_groups: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    users: frozenset[str] | None = None
    level: str = "Metadata"


@dataclass
class CorrelationSpec:
    """A Sigma correlation, with its references bound to loaded rule ids."""

    type: str  # event_count | value_count | temporal | temporal_ordered
    rules: list[str]  # ids of the referenced rules, in the order written
    group_by: list[str]
    timespan: float  # seconds
    op: str  # gt | gte | eq (what a stream can decide when an event arrives)
    count: float
    value_field: str | None = None  # value_count: the field whose distinct values are counted
    # alias -> {rule id -> field path in that rule's events}
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(eq=False)
class Rule:
    """One loaded rule. ``kind`` is ``"event"`` or ``"correlation"``."""

    id: str
    title: str
    source: str
    kind: str = "event"
    name: str | None = None
    level: str = "medium"
    status: str | None = None
    description: str | None = None
    falsepositives: list[str] = field(default_factory=list)
    author: str | None = None
    references: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    attack: list[str] = field(default_factory=list)
    generate: bool = True
    fields: frozenset[str] = frozenset()
    audit_level: str = "Metadata"
    message_template: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    scopes: list[Scope] = field(default_factory=list)
    correlation: CorrelationSpec | None = None
    # Position in the rule set: matches of one event come out in this order.
    ordinal: int = 0
    # Where the index files the rule: one entry per distinct key chosen over the disjuncts of
    # its condition, each (fields, lower-cased values or value tuples, or None for "present").
    # None: evaluated on every event.
    index_keys: tuple[tuple[tuple[str, ...], frozenset[Any] | None], ...] | None = field(
        default=None, repr=False
    )
    # Compiled condition (event rules only); never pickled.
    predicate: Callable[[AuditEvent], bool] | None = field(default=None, repr=False)
    # The condition as compiler IR (And/Or/Not/Leaf): the index decides from it which rules an
    # event's head fields already rule out. None: the rule is a candidate for every event.
    ir: Any = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["predicate"] = None
        state["ir"] = None
        return state

    def matches(self, event: AuditEvent) -> bool:
        """Evaluate this event rule on one event (no index, no dedup; for tools and tests)."""
        if self.predicate is None:
            raise TypeError(f"rule {self.id} ({self.kind}) has no compiled event condition")
        return self.predicate(event)

    def __repr__(self) -> str:
        return f"Rule({self.id!r}, {self.title!r}, {self.kind}, {self.level})"


@dataclass(eq=False)
class Match:
    """A rule that fired on an event.

    For a correlation, ``event`` is the event that completed the condition, ``group``
    the group-by values, ``count`` the measured value (events, distinct values or
    rules seen), the window bounds as ISO strings and ``events`` the first auditIDs.
    """

    rule: Rule
    event: AuditEvent
    group: dict[str, Any] | None = None
    count: int | None = None
    window_start: str | None = None
    window_end: str | None = None
    events: list[str] | None = None

    def __repr__(self) -> str:
        extra = f", group={self.group}, count={self.count}" if self.group is not None else ""
        return f"Match({self.rule.id!r}, {self.event.head.auditID!r}{extra})"


def _sigma_message(e: BaseException) -> str:
    """A pySigma error without its absolute-path location suffix (we prefix the file)."""
    from sigma.exceptions import SigmaError

    if isinstance(e, SigmaError) and e.args:
        return str(e.args[0])
    return str(e)
