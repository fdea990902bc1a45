"""Rule tuning in the config, as Falco users expect: turn a rule off, change its level, add
exceptions, without copying or editing the rule file::

    rules:
      hostpath-volume: {enabled: false}          # by name (or id)
      secret-access-denied-burst: {level: high}  # info, low, medium, high, critical (any case)
      exec-into-pod:
        exceptions:                               # any one mapping that matches suppresses the alert
          - {user.username: "system:serviceaccount:ci:*", objectRef.namespace: ci}
          - {user.groups: system:masters, verb: get}

An exception is a Sigma selection: the keys are rule fields (``x.*`` included, ``|modifiers``
allowed), every key of a mapping must match, a list of values matches any of them, and ``*``
is a wildcard; it is compiled by the same compiler as the rules. It suppresses the rule's own
alerts (a first-seen rule does not learn the excepted event either); for a correlation it is
matched against the event that completes it. A disabled event rule still feeds the
correlations that use it. Tuning is applied by :class:`kubehawk.detect.Detector` from its
config, so ``detect``, ``serve``, ``pull`` and the library all honour it; the rule set itself
is not changed (the Detector works on tuned copies).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubehawk.config import ConfigError
from kubehawk.levels import level_names, parse_level

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent
    from kubehawk.rules.loader import RuleSet
    from kubehawk.rules.model import Rule

__all__ = ["KEYS", "RuleTuning", "Tuning"]

KEYS = ("enabled", "level", "exceptions")


@dataclass(frozen=True)
class RuleTuning:
    """What the config says about one rule (``key`` is the name or id as written)."""

    key: str
    enabled: bool = True
    level: str | None = None
    exceptions: tuple[dict[str, Any], ...] = ()

    def describe(self) -> str:
        """``disabled``, ``level high``, ``2 exceptions``: for ``rules list``."""
        parts = [] if self.enabled else ["disabled"]
        if self.level:
            parts.append(f"level {self.level}")
        if self.exceptions:
            parts.append(f"{len(self.exceptions)} exception{'s' if len(self.exceptions) > 1 else ''}")
        return ", ".join(parts)


class Tuning:
    """The ``rules:`` mapping of a config, validated; every mistake is a ConfigError naming its key."""

    def __init__(self, entries: Mapping[str, RuleTuning], source: str = "<config>",
                 variables: Mapping[str, list[str]] | None = None):
        self.entries = dict(entries)
        self.source = source
        self.variables = dict(variables or {})

    def __bool__(self) -> bool:
        return bool(self.entries)

    @classmethod
    def from_config(cls, config: Config | None) -> Tuning:
        raw: Any = (config.raw.get("rules") if config is not None else None) or {}
        source = config.source if config is not None else "<config>"

        def fail(key: str, msg: str) -> None:
            raise ConfigError(f"{source}: rules.{key}: {msg}" if key else f"{source}: rules: {msg}")

        if not isinstance(raw, Mapping):
            fail("", "expected a mapping of rule name (or id) to its tuning")
        entries: dict[str, RuleTuning] = {}
        for key, body in raw.items():
            key = str(key)
            if body is False:  # `rule-name: false` is short for {enabled: false}
                body = {"enabled": False}
            if not isinstance(body, Mapping):
                fail(key, "expected a mapping with any of: " + ", ".join(KEYS))
            for k in body:
                if k not in KEYS:
                    fail(f"{key}.{k}", f"unknown key (expected one of: {', '.join(KEYS)})")
            enabled = body.get("enabled", True)
            if not isinstance(enabled, bool):
                fail(f"{key}.enabled", f"expected true or false, got {enabled!r}")
            level = None
            if body.get("level") is not None:
                level = parse_level(body["level"])
                if level is None:
                    fail(f"{key}.level", f"expected one of {level_names()}, got {body['level']!r}")
            exc = body.get("exceptions") or []
            if isinstance(exc, Mapping):
                exc = [exc]
            if not isinstance(exc, list):
                fail(f"{key}.exceptions", "expected a list of field-match mappings")
            for i, e in enumerate(exc):
                if not isinstance(e, Mapping) or not e:
                    fail(f"{key}.exceptions[{i}]", "expected a non-empty mapping of field: value(s)")
            entries[key] = RuleTuning(key, enabled, level, tuple(dict(e) for e in exc))
        tuning = cls(entries, source, config.vars if config is not None else {})
        tuning._compile_all()  # a bad field or modifier is reported at load, naming the key
        return tuning

    # --- rules ----------------------------------------------------------------------------

    def resolve(self, ruleset: RuleSet) -> dict[str, RuleTuning]:
        """Rule id -> its tuning, for the entries that name a loaded rule."""
        out: dict[str, RuleTuning] = {}
        for key, t in self.entries.items():
            rule = ruleset.get(key)
            if rule is not None:
                out[rule.id] = t
        return out

    def unknown(self, ruleset: RuleSet) -> list[str]:
        """One line per entry that names no loaded rule, with the closest names."""
        names = [r.name for r in ruleset.rules if r.name] + [r.id for r in ruleset.rules]
        out = []
        for key in self.entries:
            if ruleset.get(key) is None:
                close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else " (see `kubehawk rules list`)"
                out.append(f"{self.source}: rules.{key}: no loaded rule has this name or id, the tuning "
                           f"does nothing{hint}")
        return out

    def apply(self, ruleset: RuleSet) -> RuleSet:
        """A RuleSet of tuned copies: levels changed, disabled event rules not alerting (they still
        feed correlations), disabled correlations left out. The given set is not changed."""
        from kubehawk.rules.loader import RuleSet as _RuleSet

        by_id = self.resolve(ruleset)
        if not by_id:
            return ruleset
        rules: list[Rule] = []
        for r in ruleset.rules:
            t = by_id.get(r.id)
            if t is None:
                rules.append(r)
                continue
            if not t.enabled and r.kind == "correlation":
                continue
            changes: dict[str, Any] = {}
            if t.level:
                changes["level"] = t.level
            if not t.enabled:
                changes["generate"] = False
            rules.append(dataclasses.replace(r, **changes) if changes else r)
        for i, r in enumerate(rules):
            if r.ordinal != i and r in ruleset.rules:
                rules[i] = r = dataclasses.replace(r)
            r.ordinal = i
        tuned = _RuleSet(rules, list(ruleset.errors), ruleset.sources, ruleset.variables)
        return tuned

    def exceptions(self, ruleset: RuleSet) -> dict[str, Callable[[AuditEvent], bool]]:
        """Rule id -> a predicate true for the events its exceptions suppress."""
        compiled = self._compile_all()
        return {rid: compiled[t.key] for rid, t in self.resolve(ruleset).items() if t.key in compiled}

    def _compile_all(self) -> dict[str, Callable[[AuditEvent], bool]]:
        cached = getattr(self, "_compiled", None)
        if cached is not None:
            return cached
        self._compiled: dict[str, Callable[[AuditEvent], bool]] = {}
        for key, t in self.entries.items():
            if t.exceptions:
                self._compiled[key] = _compile(t, self.source, self.variables)
        return self._compiled


def _compile(t: RuleTuning, source: str, variables: Mapping[str, list[str]]) -> Callable[[AuditEvent], bool]:
    """The exceptions of one entry as one predicate, built by the rule compiler from a Sigma rule."""
    import yaml

    from kubehawk.rules.loader import RuleSet
    from kubehawk.rules.model import RuleLoadError

    detection: dict[str, Any] = {f"exception{i}": dict(e) for i, e in enumerate(t.exceptions)}
    detection["condition"] = "1 of exception*"
    text = yaml.safe_dump({"title": f"exceptions of {t.key}", "logsource": {"product": "kubernetes",
                                                                             "service": "audit"},
                           "detection": detection}, sort_keys=False)
    where = f"{source}: rules.{t.key}.exceptions"
    try:
        rs = RuleSet.from_texts([(where, text)], variables=variables)
    except RuleLoadError as e:
        msg = str(e)
        prefix = f"{where}: 'exceptions of {t.key}': "
        raise ConfigError(f"{where}: {msg[len(prefix):] if msg.startswith(prefix) else msg}") from None
    predicate = rs.rules[0].predicate
    assert predicate is not None
    return predicate
