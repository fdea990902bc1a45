"""Load Sigma rules (files, directories, the built-in pack) into a compiled :class:`RuleSet`.

pySigma parses and validates; kubehawk checks what matters for the audit log
(logsource, supported correlation forms, placeholders) and compiles each condition
once. Every problem is a :class:`RuleLoadError` whose message starts with the file.

A RuleSet remembers the rule *text* it was built from, so it pickles as text and is
recompiled on the other side (a Spark worker, a multiprocessing child) without
touching the filesystem again.

What a load of files builds is cached (:mod:`kubehawk.rules.cache`): the next start with the
same files, variables and versions restores it without PyYAML or pySigma's parser, which are
therefore imported only when a rule is really parsed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubehawk.rules import cache, compiler
from kubehawk.rules.compiler import CompileError, Leaf, Or
from kubehawk.rules.index import choose_index_keys
from kubehawk.rules.model import AUDIT_LEVELS, CorrelationSpec, Rule, RuleLoadError, Scope

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

__all__ = ["BUILTIN_DIR", "RuleSet", "load_rules"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
RULE_SUFFIXES = (".yml", ".yaml")
# example events kept beside a rule file (``rules test``), never read as rules
TEST_SUFFIXES = (".tests.yml", ".tests.yaml")
SUPPORTED_CORRELATIONS = ("event_count", "value_count", "temporal", "temporal_ordered")
_ATTACK_RE = re.compile(r"^t\d{4}(\.\d{3})?$", re.IGNORECASE)


class RuleSet:
    """Loaded rules in load order, plus the errors met when ``collect_errors`` was set."""

    def __init__(
        self,
        rules: list[Rule],
        errors: list[RuleLoadError] | None = None,
        sources: list[tuple[str, str]] | None = None,
        variables: Mapping[str, list[str]] | None = None,
    ):
        self.rules = rules
        self.errors = errors or []
        self.variables = dict(variables or {})
        self._sources = sources or []
        self._by_key: dict[str, Rule] = {}
        for r in rules:
            if r.name:
                self._by_key.setdefault(r.name, r)
        for r in rules:
            self._by_key[r.id] = r

    def get(self, key: str) -> Rule | None:
        """A rule by id or by Sigma ``name``."""
        return self._by_key.get(key)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    @property
    def sources(self) -> list[tuple[str, str]]:
        """(path, YAML text) of every file the set was built from."""
        return list(self._sources)

    @classmethod
    def from_texts(
        cls,
        sources: Iterable[tuple[str, str]] | Mapping[str, str],
        variables: Mapping[str, list[str]] | None = None,
        collect_errors: bool = False,
    ) -> RuleSet:
        """Build from (name, YAML text) pairs; the name is used as the file in messages."""
        items = list(sources.items()) if isinstance(sources, Mapping) else list(sources)
        return _build(items, variables or {}, collect_errors)

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled closures do not pickle; the rule text does, and recompiles quickly.
        return (_rebuild, (self._sources, self.variables))

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules, {len(self.errors)} errors)"


def _rebuild(sources: list[tuple[str, str]], variables: dict[str, list[str]]) -> RuleSet:
    return _build_cached(sources, variables, True)


def load_rules(
    paths: Iterable[str | Path] | str | Path | None = None,
    builtin: bool = True,
    variables: Mapping[str, list[str]] | None = None,
    collect_errors: bool = False,
) -> RuleSet:
    """Load rule files and directories (``**/*.yml``, ``**/*.yaml``), plus the built-in pack.

    Raises the first :class:`RuleLoadError` unless ``collect_errors`` is set, in which
    case bad rules are left out and their errors are in ``ruleset.errors``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    errors: list[RuleLoadError] = []
    files: list[Path] = []
    if builtin and BUILTIN_DIR.is_dir():
        files.extend(_rule_files(BUILTIN_DIR))
    for p in paths or []:
        p = Path(p)
        if p.is_dir():
            found = _rule_files(p)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            err = RuleLoadError(f"{p}: no such rule file or directory", str(p))
            if not collect_errors:
                raise err
            errors.append(err)
    sources: list[tuple[str, str]] = []
    for f in files:
        try:
            sources.append((str(f), f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            err = RuleLoadError(f"{f}: cannot read: {e}", str(f))
            if not collect_errors:
                raise err from None
            errors.append(err)
    rs = _build_cached(sources, variables or {}, collect_errors)
    rs.errors[:0] = errors
    return rs


def _rule_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
                  and not p.name.endswith(TEST_SUFFIXES))


# --- building -----------------------------------------------------------------------------


class _Errors:
    def __init__(self, collect: bool):
        self.collect = collect
        self.items: list[RuleLoadError] = []

    def add(self, path: str, message: str) -> None:
        err = RuleLoadError(f"{path}: {message}", path)
        if not self.collect:
            raise err
        self.items.append(err)


def _sigma_message(e: BaseException) -> str:
    """A pySigma error without its absolute-path location suffix (we prefix the file)."""
    from sigma.exceptions import SigmaError

    if isinstance(e, SigmaError) and e.args:
        return str(e.args[0])
    return str(e)


def _parse_file(path: str, text: str, errs: _Errors) -> list[Any]:
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError, SigmaRuleLocation
    from sigma.policy.profiles import TrustedPolicy
    from sigma.rule.base import SigmaYAMLLoader

    try:
        docs = list(yaml.load_all(text, Loader=SigmaYAMLLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        errs.add(path, f"bad YAML: {where}{e.problem or e.context}")
        return []
    except yaml.YAMLError as e:
        errs.add(path, f"bad YAML: {e}")
        return []
    docs = [d for d in docs if d is not None]
    for i, d in enumerate(docs, 1):
        if not isinstance(d, dict):
            errs.add(path, f"document {i} is a {type(d).__name__}, not a Sigma rule mapping")
            return []
    if not docs:
        return []
    try:
        col = SigmaCollection.from_dicts(
            docs,
            collect_errors=True,
            source=SigmaRuleLocation(path),
            collect_filters=True,
            resolve_references=False,
            policy=TrustedPolicy,
        )
    except (SigmaError, ValueError, TypeError, AttributeError) as e:
        errs.add(path, _sigma_message(e))
        return []
    out: list[Any] = []
    reported = set()
    for item in [*col.rules, *col.filters]:
        if item.errors:
            title = getattr(item, "title", None) or "rule"
            for e in item.errors:
                reported.add(id(e))
            errs.add(path, f"{title!r}: {_sigma_message(item.errors[0])}")
            continue
        out.append(item)
    for e in col.errors:
        if id(e) not in reported:
            errs.add(path, _sigma_message(e))
    return out


def _build_cached(sources: list[tuple[str, str]], variables: Mapping[str, list[str]], collect: bool) -> RuleSet:
    """:func:`_build`, or what it built last time for the same inputs (see :mod:`kubehawk.rules.cache`)."""
    key = cache.entry_key(sources, variables, collect)
    hit = cache.load(key)
    if hit is not None:
        rules, errors = hit
        for rule in rules:
            if rule.kind == "event" and rule.ir is not None:
                # compiled once already (or it would not be cached): the engine reads the IR
                # and a rule's own predicate is rarely called, so it is built on first call
                rule.predicate = _Deferred(rule.ir)
        return RuleSet(rules, [RuleLoadError(m, p) for m, p in errors], sources, variables)
    rs = _build(sources, variables, collect)
    if key is not None and all(r.predicate is not None for r in rs.rules if r.kind == "event"):
        cache.store(key, rs.rules, [(str(e), e.path) for e in rs.errors])
    return rs


def _build(sources: list[tuple[str, str]], variables: Mapping[str, list[str]], collect: bool) -> RuleSet:
    from sigma.exceptions import SigmaError
    from sigma.filters import SigmaFilter
    from sigma.rule import SigmaRule

    errs = _Errors(collect)
    items: list[tuple[str, Any]] = []  # (path, sigma object)
    for path, text in sources:
        for obj in _parse_file(path, text, errs):
            items.append((path, obj))

    # Sigma filters (e.g. site allowlists shipped beside the rules) apply to the rules they name.
    filters = [obj for _, obj in items if isinstance(obj, SigmaFilter)]
    items = [(p, o) for p, o in items if not isinstance(o, SigmaFilter)]
    if filters:
        applied = []
        for p, o in items:
            for f in filters:
                if isinstance(o, SigmaRule):
                    try:
                        o = f.apply_on_rule(o)
                    except SigmaError as e:
                        errs.add(p, f"filter {f.title!r}: {_sigma_message(e)}")
            applied.append((p, o))
        items = applied

    rules: list[Rule] = []
    by_key: dict[str, Rule] = {}
    sigma_of: dict[int, Any] = {}
    for path, obj in items:
        try:
            rule = _event_rule(path, obj, variables) if isinstance(obj, SigmaRule) else _corr_head(path, obj)
        except RuleLoadError as e:
            errs.add(path, str(e))
            continue
        prev = by_key.get(rule.id)
        if prev is not None:
            errs.add(path, f"duplicate rule id {rule.id} ({rule.title!r}); also in {prev.source}")
            continue
        if rule.name and rule.name in by_key and by_key[rule.name] is not rule:
            other = by_key[rule.name]
            errs.add(path, f"duplicate rule name {rule.name!r}; also in {other.source}")
            continue
        by_key[rule.id] = rule
        if rule.name:
            by_key[rule.name] = rule
        sigma_of[id(rule)] = obj
        rules.append(rule)

    # Bind correlations to their base rules.
    final: list[Rule] = []
    referenced_generate: dict[str, bool] = {}
    for rule in rules:
        if rule.kind != "correlation":
            final.append(rule)
            continue
        try:
            _bind_correlation(rule, sigma_of[id(rule)], by_key)
        except RuleLoadError as e:
            errs.add(rule.source, f"correlation {rule.title!r}: {e}")
            continue
        final.append(rule)
        for rid in rule.correlation.rules:
            referenced_generate[rid] = referenced_generate.get(rid, False) or bool(rule.custom.get("_generate"))
    for rule in final:
        rule.custom.pop("_generate", None)
        if rule.kind == "event" and rule.id in referenced_generate:
            rule.generate = referenced_generate[rule.id]
    for i, rule in enumerate(final):
        rule.ordinal = i
    return RuleSet(final, errs.items, sources, variables)


# --- event rules --------------------------------------------------------------------------


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
        irs = [compiler.to_ir(t, variables) for t in trees]
    except CompileError as e:
        raise RuleLoadError(f"{title!r}: {e}") from None
    except SigmaError as e:
        raise RuleLoadError(f"{title!r}: bad condition: {_sigma_message(e)}") from None
    ir = irs[0] if len(irs) == 1 else compiler._simplify(Or(irs))
    try:
        predicate = _compile(ir)
    except CompileError as e:
        raise RuleLoadError(f"{title!r}: {e}") from None
    fields = _fields(ir)
    level = audit_level_of(fields)
    conjuncts = compiler.dnf(ir)
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
    for leaf in compiler.leaves(ir):
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


# --- correlations -------------------------------------------------------------------------

_OPS = {"GT": "gt", "GTE": "gte", "EQ": "eq"}  # SigmaCorrelationConditionOperator names


def _corr_head(path: str, obj: SigmaCorrelationRule) -> Rule:
    from sigma.correlations import (
        SigmaCorrelationCondition,
        SigmaCorrelationConditionOperator,
        SigmaCorrelationType,
    )

    meta = _metadata(path, obj)
    title = meta["title"]
    ctype = obj.type.name.lower() if isinstance(obj.type, SigmaCorrelationType) else str(obj.type)
    if ctype not in SUPPORTED_CORRELATIONS:
        raise RuleLoadError(
            f"{title!r}: correlation type {ctype} is not supported (use {', '.join(SUPPORTED_CORRELATIONS)})"
        )
    cond = obj.condition
    if not isinstance(cond, SigmaCorrelationCondition):
        raise RuleLoadError(f"{title!r}: extended (boolean) correlation conditions are not supported")
    op = _OPS.get(cond.op.name) if isinstance(cond.op, SigmaCorrelationConditionOperator) else None
    if op is None:
        raise RuleLoadError(
            f"{title!r}: condition {cond.op.name.lower()} cannot be decided as events stream in;"
            " use gt, gte or eq"
        )
    value_field = None
    if ctype == "value_count":
        value_field = cond.fieldref if isinstance(cond.fieldref, str) else (cond.fieldref or [None])[0]
    aliases: dict[str, dict[str, str]] = {}
    for alias in obj.aliases or []:
        aliases[alias.alias] = {ref.reference: str(f) for ref, f in alias.mapping.items()}
    spec = CorrelationSpec(
        type=ctype,
        rules=[r.reference for r in (obj.rules or [])],
        group_by=list(obj.group_by or []),
        timespan=float(obj.timespan.seconds),
        op=op,
        count=cond.count,
        value_field=value_field,
        aliases=aliases,
    )
    meta["custom"]["_generate"] = bool(obj.generate)
    return Rule(kind="correlation", correlation=spec, generate=True, **meta)


def _bind_correlation(rule: Rule, obj: SigmaCorrelationRule, by_key: dict[str, Rule]) -> None:
    spec = rule.correlation
    assert spec is not None
    bound: list[Rule] = []
    ref_to_id: dict[str, str] = {}
    for ref in spec.rules:
        base = by_key.get(ref)
        if base is None:
            raise RuleLoadError(f"references unknown rule {ref!r} (no loaded rule has this id or name)")
        if base.kind != "event":
            raise RuleLoadError(f"references correlation {ref!r}; chained correlations are not supported")
        if base in bound:
            raise RuleLoadError(f"references rule {ref!r} twice")
        bound.append(base)
        ref_to_id[ref] = base.id
    if not bound:
        raise RuleLoadError("references no rules")
    if spec.type in ("temporal", "temporal_ordered") and len(bound) < 2:
        raise RuleLoadError(f"{spec.type} needs at least two rules")
    aliases: dict[str, dict[str, str]] = {}
    for alias, mapping in spec.aliases.items():
        m: dict[str, str] = {}
        for ref, f in mapping.items():
            if ref not in ref_to_id:
                b = by_key.get(ref)
                if b is None or b.id not in [x.id for x in bound]:
                    raise RuleLoadError(f"alias {alias!r} names rule {ref!r}, which the correlation does not use")
                m[b.id] = f
            else:
                m[ref_to_id[ref]] = f
        aliases[alias] = m
    spec.aliases = aliases
    spec.rules = [b.id for b in bound]
    fields: set[str] = set()
    for b in bound:
        fields |= b.fields
    wanted = list(spec.group_by) + ([spec.value_field] if spec.value_field else [])
    for name in wanted:
        if name in aliases:
            fields.update(aliases[name].values())
        else:
            fields.add(name)
    rule.custom["_generate"] = bool(getattr(obj, "generate", False))
    rule.fields = frozenset(fields)
    rule.audit_level = max(
        (audit_level_of(fields), *(b.audit_level for b in bound)), key=AUDIT_LEVELS.index
    )
    scopes: list[Scope] = []
    for b in bound:
        for s in b.scopes:
            s = Scope(
                verbs=s.verbs,
                resources=s.resources,
                subresources=s.subresources,
                api_groups=s.api_groups,
                namespaces=s.namespaces,
                users=s.users,
                level=rule.audit_level,
            )
            if s not in scopes:
                scopes.append(s)
    rule.scopes = scopes
