"""The audit Policy model and its decoding, as kube-apiserver's reader does it.

Decoding mirrors ``LoadPolicyFromBytes``: unknown (or duplicate) fields are not an
error, they are dropped with a warning -- which silently broadens the rule they sat
in, so every one is kept in :attr:`Policy.warnings` for the linter. Type errors
(a string where a list belongs) fail the load with the field named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubehawk.policy.evaluate import Decision, evaluate
from kubehawk.policy.parts import (
    API_VERSION,
    GROUP_RESOURCE_FIELDS,
    LEVEL_RANK,
    LEVELS,
    POLICY_FIELDS,
    REMOVED_VERSIONS,
    RULE_FIELDS,
    STAGES,
    GroupResources,
    PolicyError,
    PolicyRule,
    PolicyWarning,
    level_rank,
)
from kubehawk.policy.request import Request, request_from_event
from kubehawk.policy.validate import check_loadable

# The parts are named here too: ``from kubehawk.policy.model import PolicyRule`` is how the
# toolkit reads them.
__all__ = ["API_VERSION", "GROUP_RESOURCE_FIELDS", "LEVELS", "LEVEL_RANK", "POLICY_FIELDS", "REMOVED_VERSIONS",
           "RULE_FIELDS", "STAGES", "GroupResources", "Policy", "PolicyError", "PolicyRule", "PolicyWarning",
           "level_rank", "parse_document"]


@dataclass
class Policy:
    """A decoded audit policy. Build with :meth:`from_dict`, :meth:`load` or :meth:`loads`."""

    rules: tuple[PolicyRule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    metadata: dict[str, Any] | None = None
    api_version: str | None = API_VERSION
    kind: str | None = "Policy"
    warnings: list[PolicyWarning] = field(default_factory=list)
    source: str | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # NewPolicyRuleEvaluator: each rule's omitStages becomes the union with the policy's.
        self._effective_stages = tuple(_union(self.omit_stages, r.omit_stages) for r in self.rules)
        # Logs repeat the same request shapes endlessly; a bounded memo makes replay cheap.
        self._memo: dict[Request, Decision] = {}

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        source: str | None = None,
        check: bool = True,
        lines: dict[str, int] | None = None,
        warnings: list[PolicyWarning] | None = None,
    ) -> Policy:
        """Decode ``data`` (the parsed YAML/JSON document).

        With ``check`` (the default) the document must pass everything the apiserver
        checks at start-up: apiVersion/kind, :func:`validate_policy`, at least one rule.
        ``check=False`` only decodes, for the linter that reports those itself.
        """
        policy = _decode(data, source, lines or {}, list(warnings or []))
        if check:
            check_loadable(policy)
        return policy

    @classmethod
    def loads(cls, text: str | bytes, source: str | None = None, *, check: bool = True) -> Policy:
        """Parse YAML or JSON text the way the apiserver reads ``--audit-policy-file``."""
        data, lines, warnings = parse_document(text, source)
        return cls.from_dict(data, source=source, check=check, lines=lines, warnings=warnings)

    @classmethod
    def load(cls, path: str | Path, *, check: bool = True) -> Policy:
        """Read a policy file (YAML or JSON)."""
        src = str(path)
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise PolicyError([f"failed to read file path {src!r}: {e.strerror or e}"], source=src) from None
        return cls.loads(text, source=src, check=check)

    # --- use --------------------------------------------------------------------------
    def effective_omit_stages(self, index: int) -> tuple[str, ...]:
        return self._effective_stages[index]

    def evaluate(self, request: Request) -> Decision:
        d = self._memo.get(request)
        if d is None:
            d = evaluate(self, request)
            if len(self._memo) >= 65536:
                self._memo.clear()
            self._memo[request] = d
        return d

    def evaluate_event(self, event: Any) -> Decision:
        """Decision for an audit Event (``AuditEvent`` or plain dict), as the apiserver made it."""
        return self.evaluate(request_from_event(event))

    def line_of(self, path: str) -> int | None:
        return self.lines.get(path)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"apiVersion": self.api_version or API_VERSION, "kind": self.kind or "Policy"}
        if self.metadata:
            d["metadata"] = self.metadata
        if self.omit_stages:
            d["omitStages"] = list(self.omit_stages)
        if self.omit_managed_fields:
            d["omitManagedFields"] = True
        d["rules"] = [r.to_dict() for r in self.rules]
        return d


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for s in (*a, *b):
        if s not in out:
            out.append(s)
    return tuple(out)


# --- document parsing --------------------------------------------------------------------


def parse_document(text: str | bytes, source: str | None = None) -> tuple[Any, dict[str, int], list[PolicyWarning]]:
    """Parse YAML/JSON into plain data plus a map ``field path -> line`` and duplicate-key warnings."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PolicyError([f"failed decoding: not UTF-8 text ({e.reason} at byte {e.start})"], source) from None
    if not text.strip():
        raise PolicyError(["failed decoding: the policy is empty (loaded illegal policy with 0 rules)"], source)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text), {}, []
        except json.JSONDecodeError:
            pass  # YAML is a superset in practice; let the YAML parser report the problem.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.composer.ComposerError as e:
        raise PolicyError([f"failed decoding: {_yaml_problem(e)}"], source) from None
    except yaml.YAMLError as e:
        raise PolicyError([f"failed decoding: {_yaml_problem(e)}"], source, [_yaml_line(e)]) from None
    finally:
        loader.dispose()
    if node is None:
        raise PolicyError(["failed decoding: the policy is empty (loaded illegal policy with 0 rules)"], source)
    lines: dict[str, int] = {}
    warnings: list[PolicyWarning] = []
    try:
        data = _convert(loader, node, "", lines, warnings)
    except yaml.YAMLError as e:
        raise PolicyError([f"failed decoding: {_yaml_problem(e)}"], source, [_yaml_line(e)]) from None
    return data, lines, warnings


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return problem


def _yaml_line(e: yaml.YAMLError) -> int | None:
    mark = getattr(e, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: str, lines: dict[str, int], warnings: list) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = key if isinstance(key, str) else str(key)
            child = f"{path}.{key}" if path else key
            if key in out:
                warnings.append(
                    PolicyWarning(
                        child,
                        "duplicate field (the apiserver keeps the last value and logs a warning)",
                        key_node.start_mark.line + 1,
                        _rule_index(child),
                    )
                )
            out[key] = _convert(loader, value_node, child, lines, warnings)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, f"{path}[{i}]", lines, warnings) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _rule_index(path: str) -> int | None:
    if path.startswith("rules["):
        end = path.find("]")
        try:
            return int(path[6:end])
        except ValueError:
            return None
    return None


# --- decoding into the model -------------------------------------------------------------


class _Decoder:
    def __init__(self, source: str | None, lines: dict[str, int], warnings: list[PolicyWarning]):
        self.source = source
        self.lines = lines
        self.warnings = warnings
        self.errors: list[str] = []
        self.error_lines: list[int | None] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"failed decoding: {path}: {message}")
        self.error_lines.append(self.lines.get(path))

    def unknown(self, mapping: Mapping[str, Any], known: tuple[str, ...], path: str, why: str) -> None:
        for key in mapping:
            if key not in known:
                child = f"{path}.{key}" if path else key
                hint = _close_match(key, known)
                msg = "unknown field, ignored by the apiserver (lenient decoding)"
                if hint:
                    msg += f"; did you mean {hint!r}?"
                if why:
                    msg += f" {why}"
                self.warnings.append(PolicyWarning(child, msg, self.lines.get(child), _rule_index(child)))

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(path, f"expected a list of strings, got {_typename(value)} {_short(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if item is None:
                out.append("")  # JSON null in a []string decodes to ""
            elif isinstance(item, str):
                out.append(item)
            else:
                self.fail(f"{path}[{i}]", f"expected a string, got {_typename(item)} {_short(item)}")
        return tuple(out)

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_typename(value)} {_short(value)}")
            return ""
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(path, f"expected a boolean, got {_typename(value)} {_short(value)}")
            return None
        return value


def _typename(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _short(v: Any) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


def _close_match(key: str, known: tuple[str, ...]) -> str | None:
    import difflib

    lowered = {k.lower(): k for k in known}
    if key.lower() in lowered:
        return lowered[key.lower()]
    m = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return m[0] if m else None


_RULE_WHY = "The rule matches as if the field were absent, i.e. more broadly."
_GR_WHY = "The entry matches as if the field were absent, i.e. more broadly."


def _decode(data: Any, source: str | None, lines: dict[str, int], warnings: list[PolicyWarning]) -> Policy:
    dec = _Decoder(source, lines, warnings)
    if data is None:
        raise PolicyError(["failed decoding: the policy is empty (loaded illegal policy with 0 rules)"], source)
    if not isinstance(data, Mapping):
        raise PolicyError([f"failed decoding: expected a Policy object, got {_typename(data)}"], source)
    dec.unknown(data, POLICY_FIELDS, "", "")
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    api_version = api_version if isinstance(api_version, str) else None if api_version is None else str(api_version)
    kind = kind if isinstance(kind, str) else None if kind is None else str(kind)
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        dec.fail("metadata", f"expected an object, got {_typename(metadata)}")
        metadata = None
    omit_stages = dec.strings(data.get("omitStages"), "omitStages")
    omf = dec.boolean(data.get("omitManagedFields"), "omitManagedFields")
    raw_rules = data.get("rules")
    rules: list[PolicyRule] = []
    if raw_rules is not None and not isinstance(raw_rules, list):
        dec.fail("rules", f"expected a list of rules, got {_typename(raw_rules)} {_short(raw_rules)}")
        raw_rules = []
    for i, raw in enumerate(raw_rules or []):
        path = f"rules[{i}]"
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            dec.fail(path, f"expected a rule object, got {_typename(raw)} {_short(raw)}")
            continue
        dec.unknown(raw, RULE_FIELDS, path, _RULE_WHY)
        groups: list[GroupResources] = []
        raw_res = raw.get("resources")
        if raw_res is not None and not isinstance(raw_res, list):
            dec.fail(f"{path}.resources", f"expected a list of group/resources entries, got {_typename(raw_res)}")
            raw_res = []
        for j, gr in enumerate(raw_res or []):
            gpath = f"{path}.resources[{j}]"
            if gr is None:
                gr = {}
            if not isinstance(gr, Mapping):
                dec.fail(gpath, f"expected an object with group/resources, got {_typename(gr)} {_short(gr)}")
                continue
            dec.unknown(gr, GROUP_RESOURCE_FIELDS, gpath, _GR_WHY)
            groups.append(
                GroupResources(
                    group=dec.string(gr.get("group"), f"{gpath}.group"),
                    resources=dec.strings(gr.get("resources"), f"{gpath}.resources"),
                    resource_names=dec.strings(gr.get("resourceNames"), f"{gpath}.resourceNames"),
                )
            )
        rules.append(
            PolicyRule(
                level=dec.string(raw.get("level"), f"{path}.level"),
                users=dec.strings(raw.get("users"), f"{path}.users"),
                user_groups=dec.strings(raw.get("userGroups"), f"{path}.userGroups"),
                verbs=dec.strings(raw.get("verbs"), f"{path}.verbs"),
                resources=tuple(groups),
                namespaces=dec.strings(raw.get("namespaces"), f"{path}.namespaces"),
                non_resource_urls=dec.strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs"),
                omit_stages=dec.strings(raw.get("omitStages"), f"{path}.omitStages"),
                omit_managed_fields=dec.boolean(raw.get("omitManagedFields"), f"{path}.omitManagedFields"),
                index=i,
                line=lines.get(path),
            )
        )
    if dec.errors:
        raise PolicyError(dec.errors, source, dec.error_lines)
    return Policy(
        rules=tuple(rules),
        omit_stages=omit_stages,
        omit_managed_fields=bool(omf),
        metadata=dict(metadata) if metadata is not None else None,
        api_version=api_version,
        kind=kind,
        warnings=warnings,
        source=source,
        lines=lines,
    )
