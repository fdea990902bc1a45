"""One Sigma rule becomes an event :class:`Rule`: its metadata, its compiled condition, the audit
level it needs and the policy scopes it reads.

Takes a pySigma ``SigmaRule`` (parsed by :mod:`.loader`) and gives a Rule whose predicate is
compiled on first call (:mod:`.compiler`); the audit level comes from the fields the condition
reads, never from the rule's text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kubehawk.rules import compiler
from kubehawk.rules.dnf import dnf
from kubehawk.rules.index_keys import choose_index_keys
from kubehawk.rules.ir import CompileError, Leaf, Or, _simplify, leaves, to_ir
from kubehawk.rules.model import AUDIT_LEVELS, Rule, RuleLoadError, Scope, _sigma_message

__all__ = ["audit_level_of"]

_ATTACK_RE = re.compile(r"^t\d{4}(\.\d{3})?$", re.IGNORECASE)

if TYPE_CHECKING:
    from sigma.rule import SigmaRule


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    name = getattr(v, "name", None)
    return name.lower() if name is not None and not isinstance(v, str) else str(v)


def _metadata(path: str, obj: Any) -> dict[str, Any]:
    tags = [f"{t.namespace}.{t.name}" for t in (obj.tags or [])]
    techniques = [t.split(".", 1)[1].upper() for t in tags if t.lower().startswith("ms-k8s.")]
    attack = [t.split(".", 1)[1].upper() for t in tags if t.lower().startswith("attack.")]
    attack = [t for t in attack if _ATTACK_RE.match(t)]
    custom = dict(obj.custom_attributes or {})
    message = custom.pop("message", None)
    if message is not None and not isinstance(message, str):
        raise RuleLoadError(f"{obj.title!r}: 'message' must be a string")
    if obj.id is not None:
        rid = str(obj.id)
    elif obj.name:
        rid = str(obj.name)
    else:
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, "kubehawk-rule:" + (obj.title or path)))
    author = obj.author
    if isinstance(author, list):
        author = ", ".join(map(str, author))
    return {
        "id": rid,
        "name": obj.name,
        "title": obj.title or rid,
        "source": path,
        "level": _str_or_none(obj.level) or "medium",
        "status": _str_or_none(obj.status),
        "description": obj.description,
        "falsepositives": [str(x) for x in (obj.falsepositives or [])],
        "author": author,
        "references": [str(x) for x in (obj.references or [])],
        "tags": tags,
        "techniques": techniques,
        "attack": attack,
        "message_template": message,
        "custom": custom,
    }


def _check_logsource(obj: SigmaRule) -> None:
    ls = obj.logsource
    product = (ls.product or "").lower() if ls else ""
    service = (ls.service or "").lower() if ls else ""
    if product != "kubernetes" or service != "audit":
        got = f"product: {ls.product}, service: {ls.service}" if ls else "none"
        raise RuleLoadError(
            f"{obj.title!r}: logsource must be product: kubernetes, service: audit (got {got})"
        )


def _compile(ir: Any) -> Any:
    """The predicate of a condition (also what a cached rule gets back on restore)."""
    return compiler.build(ir)


class _Deferred:
    """The predicate of a rule restored from the cache: compiled (:func:`_compile`) on first call.

    One object for the rule's lifetime, so the index still sees the predicate it was built with.
    """

    __slots__ = ("_fn", "_ir")

    def __init__(self, ir: Any):
        self._ir = ir
        self._fn: Any = None

    def __call__(self, event: Any) -> bool:
        fn = self._fn
        if fn is None:  # two threads may both compile: the same closure, harmless
            fn = self._fn = _compile(self._ir)
        return fn(event)


def _event_rule(path: str, obj: SigmaRule, variables: Mapping[str, list[str]]) -> Rule:
    from sigma.exceptions import SigmaError

    _check_logsource(obj)
    meta = _metadata(path, obj)
    title = meta["title"]
    try:
        trees = [c.parse() for c in obj.detection.parsed_condition]
        irs = [to_ir(t, variables) for t in trees]
    except CompileError as e:
        raise RuleLoadError(f"{title!r}: {e}") from None
    except SigmaError as e:
        raise RuleLoadError(f"{title!r}: bad condition: {_sigma_message(e)}") from None
    ir = irs[0] if len(irs) == 1 else _simplify(Or(irs))
    try:
        predicate = _compile(ir)
    except CompileError as e:
        raise RuleLoadError(f"{title!r}: {e}") from None
    fields = _fields(ir)
    level = audit_level_of(fields)
    conjuncts = dnf(ir)
    rule = Rule(
        kind="event",
        fields=frozenset(fields),
        audit_level=level,
        scopes=_scopes(conjuncts, level),
        predicate=predicate,
        ir=ir,
        **meta,
    )
    rule.index_keys = choose_index_keys(conjuncts)
    return rule


def _fields(ir: Any) -> set[str]:
    out: set[str] = set()
    for leaf in leaves(ir):
        if isinstance(leaf, Leaf) and leaf.field is not None:
            out.add(leaf.field)
            if leaf.kind == "fieldref":
                out.add(leaf.atoms[0].field)
    return out


def audit_level_of(fields: Iterable[str]) -> str:
    """The audit level at which every field a rule reads is present in the log."""
    best = 0
    for f in fields:
        parts = f.split(".")
        if parts[0] == "requestObject":
            lvl = "Request"
        elif parts[0] == "responseObject":
            lvl = "RequestResponse"
        elif parts[0] == "x" and len(parts) > 1:
            lvl = _derived_level(parts[1:])
        else:
            lvl = "Metadata"
        best = max(best, AUDIT_LEVELS.index(lvl) if lvl in AUDIT_LEVELS else 0)
    return AUDIT_LEVELS[best]


def _derived_level(parts: list[str]) -> str:
    try:
        from kubehawk.enrich import DERIVED_LEVELS
    except ImportError:
        return "Metadata"
    for j in range(len(parts), 0, -1):
        lvl = DERIVED_LEVELS.get(".".join(parts[:j]))
        if lvl is not None:
            return lvl
    return "Metadata"


_SCOPE_FIELDS = {
    "verb": "verbs",
    "objectRef.resource": "resources",
    "objectRef.subresource": "subresources",
    "objectRef.apiGroup": "api_groups",
    "objectRef.namespace": "namespaces",
    "user.username": "users",
}


def _scopes(conjuncts: list[dict[str, Any]] | None, level: str) -> list[Scope]:
    if conjuncts is None:
        return [Scope(level=level)]
    out: list[Scope] = []
    for c in conjuncts:
        kw = {attr: c[f] for f, attr in _SCOPE_FIELDS.items() if isinstance(c.get(f), frozenset)}
        s = Scope(level=level, **kw)
        if s not in out:
            out.append(s)
    return out
