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

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubehawk.rules import cache
from kubehawk.rules.correlation_rule import _bind_correlation, _corr_head
from kubehawk.rules.event_rule import _Deferred, _event_rule
from kubehawk.rules.model import Rule, RuleLoadError, _sigma_message

if TYPE_CHECKING:
    pass

__all__ = ["BUILTIN_DIR", "RuleSet", "load_rules"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
RULE_SUFFIXES = (".yml", ".yaml")


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
        self._warnings: list[str] | None = None
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
    def warnings(self) -> list[str]:
        """Rules that load but name a field no audit event holds, one line each naming the file
        (:func:`kubehawk.rules.schema.rule_field_warnings`); computed on first use."""
        if self._warnings is None:
            from kubehawk.rules.schema import rule_field_warnings

            self._warnings = rule_field_warnings(self.rules)
        return self._warnings

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
    return sorted(p for p in d.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


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
