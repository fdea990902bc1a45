"""Rule CI: check a folder of rules (``rules validate``) and run each rule on the example events
kept next to it (``rules test``).

Layout: beside a rule file ``NAME.yml`` (or ``.yaml``), an optional ``NAME.tests.yml`` holds its
examples (the loader never reads ``*.tests.yml`` as rules)::

    # exec.tests.yml: examples for the rules in exec.yml
    - name: a shell in a pod alerts          # optional, shown in the report
      rule: exec-into-pod                     # name or id; optional when NAME.yml holds one rule
      alert: true                             # true: the rule must fire; false: it must not
      event: {verb: create, objectRef: {resource: pods, subresource: exec}, ...}
    - rule: denied-burst                      # a correlation: a list of events, in order
      alert: true
      events: [{...}, {...}]
      config: {allowlists: {...}}             # optional kubehawk.yaml settings for this case

Each case runs on a fresh Detector holding the folder's rules only (plus the built-in pack when
asked), so one case never leaves state for the next. An event rule that does not alert on its own
(a correlation's building block) counts as firing when it matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubehawk.rules.loader import RuleSet
    from kubehawk.rules.model import Rule

from kubehawk.rules.loader import TEST_SUFFIXES

__all__ = ["Case", "CaseError", "Outcome", "field_problems", "load_cases", "rule_files", "run_case", "test_file_of"]

_CASE_KEYS = {"name", "rule", "alert", "event", "events", "config"}
# the keys of the audit Event's mappings that a rule may name (annotations and bodies are free-form)
_SUBFIELDS = {
    "user": {"username", "uid", "groups", "extra"},
    "impersonatedUser": {"username", "uid", "groups", "extra"},
    "objectRef": {"resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion",
                  "subresource"},
    "responseStatus": {"metadata", "status", "message", "reason", "details", "code"},
}


class CaseError(ValueError):
    """A tests file that cannot be read; the message names the file and the case."""


@dataclass
class Case:
    source: str  # file:case number
    name: str
    rule: Rule
    alert: bool
    events: list[dict[str, Any]]
    config: dict[str, Any] | None = None


@dataclass
class Outcome:
    case: Case
    fired: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.fired == self.case.alert


def test_file_of(rule_file: str | Path) -> Path | None:
    """The examples file kept beside ``rule_file``, if there is one."""
    p = Path(rule_file)
    for suffix in TEST_SUFFIXES:
        t = p.with_name(p.stem + suffix)
        if t.is_file():
            return t
    return None


def field_problems(rule: Rule) -> list[str]:
    """Fields a rule reads that no audit event has (a typo never matches and never says so)."""
    from kubehawk.enrich import DERIVED_LEVELS
    from kubehawk.event import TOP_FIELDS

    out = []
    for f in sorted(rule.fields):
        parts = f.split(".")
        head = parts[0]
        if head == "x":
            rest = parts[1:]
            if not any(".".join(rest[:j]) in DERIVED_LEVELS for j in range(len(rest), 0, -1)):
                out.append(f"{f}: no such derived field (see the README's table of x.* fields)")
        elif head not in TOP_FIELDS:
            out.append(f"{f}: an audit event has no field {head!r}")
        elif head in _SUBFIELDS and len(parts) > 1 and parts[1] not in _SUBFIELDS[head]:
            out.append(f"{f}: {head} has no field {parts[1]!r} (it has {', '.join(sorted(_SUBFIELDS[head]))})")
    return out


def load_cases(path: Path, ruleset: RuleSet) -> list[Case]:
    """The cases of one tests file, bound to the rules they name; a mistake raises CaseError."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CaseError(f"{path}: cannot read: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CaseError(f"{path}{f':{mark.line + 1}' if mark else ''}: bad YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise CaseError(f"{path}: expected a list of cases")
    rule_file = next((str(path.with_name(path.name[: -len(s)] + ext)) for s in TEST_SUFFIXES
                      if path.name.endswith(s) for ext in (".yml", ".yaml")
                      if path.with_name(path.name[: -len(s)] + ext).is_file()), None)
    own = [r for r in ruleset.rules if rule_file is not None and Path(r.source) == Path(rule_file)]
    cases = []
    for i, c in enumerate(data, 1):
        where = f"{path}: case {i}"
        if not isinstance(c, Mapping):
            raise CaseError(f"{where}: expected a mapping")
        unknown = sorted(set(map(str, c)) - _CASE_KEYS)
        if unknown:
            raise CaseError(f"{where}: unknown key {unknown[0]!r} (expected: {', '.join(sorted(_CASE_KEYS))})")
        key = c.get("rule")
        if key is None:
            if len(own) != 1:
                raise CaseError(f"{where}: say which rule (`rule: NAME`): its rule file holds {len(own)} rules")
            rule = own[0]
        else:
            rule = ruleset.get(str(key))
            if rule is None:
                raise CaseError(f"{where}: no loaded rule has the name or id {key!r}")
        if not isinstance(c.get("alert"), bool):
            raise CaseError(f"{where}: `alert:` must be true or false")
        if ("event" in c) == ("events" in c):
            raise CaseError(f"{where}: give `event:` (one) or `events:` (a list)")
        events = [c["event"]] if "event" in c else c["events"]
        if not isinstance(events, list) or not events or not all(isinstance(e, Mapping) for e in events):
            raise CaseError(f"{where}: events must be audit Event mappings")
        config = c.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise CaseError(f"{where}: `config:` must be a mapping of kubehawk.yaml settings")
        cases.append(Case(where, str(c.get("name") or f"case {i}"), rule, c["alert"],
                          [dict(e) for e in events], dict(config) if config is not None else None))
    return cases


def run_case(case: Case, ruleset: RuleSet) -> Outcome:
    """Run one case on a fresh Detector; ``fired`` tells whether its rule alerted (or matched)."""
    from kubehawk.config import Config, ConfigError
    from kubehawk.detect import Detector
    from kubehawk.event import event_from_dict

    try:
        config = Config.from_dict(case.config, source=case.source) if case.config is not None else None
        events = [event_from_dict(e) for e in case.events]
    except (ConfigError, ValueError, TypeError) as e:
        return Outcome(case, False, str(e))
    det = Detector(ruleset, config)
    try:
        fired = any(a.rule.id == case.rule.id for a in det.alerts(events))
        if not fired and case.rule.kind == "event" and not case.rule.generate:
            fired = det.engine.stats["matches_by_rule"].get(case.rule.id, 0) > 0
    finally:
        det.close()
    return Outcome(case, fired)


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The rule files under ``paths``, as the loader finds them."""
    from kubehawk.rules.loader import _rule_files

    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(_rule_files(p) if p.is_dir() else [p] if p.is_file() else [])
    return out
