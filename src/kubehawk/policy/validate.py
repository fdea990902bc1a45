"""The apiserver's own policy checks: ``ValidatePolicy`` and the loader's refusals.

Messages are worded exactly as kube-apiserver words them (``field.Error`` and
``utilerrors.Aggregate`` formatting), so the text a person sees here is the text
they would find in the apiserver's start-up log.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kubehawk.policy.parts import API_VERSION, LEVELS, REMOVED_VERSIONS, STAGES, PolicyError, PolicyRule

if TYPE_CHECKING:  # in annotations only: the Policy checks itself with this module
    from kubehawk.policy.model import Policy

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def go_quote(s: str) -> str:
    """Go's ``%q`` for the strings that occur in policies."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_slice(values: tuple[str, ...]) -> str:
    """Go's ``%#v`` of a ``[]string`` (how field.Invalid prints a list value)."""
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def dns_subdomain_errors(value: str) -> list[str]:
    """``validation.IsDNS1123Subdomain`` messages."""
    msgs = []
    if len(value) > 253:
        msgs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        msgs.append(_DNS1123_SUBDOMAIN_MSG)
    return msgs


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {value}: {detail}"


def _omit_stage_errors(stages: tuple[str, ...], path: str) -> list[str]:
    errs = []
    for k, stage in enumerate(stages):
        if stage not in STAGES:
            errs.append(_invalid(f"{path}[{k}]", go_quote(stage), "allowed stages are " + ",".join(STAGES)))
    return errs


def validate_rule(rule: PolicyRule, path: str) -> list[str]:
    """``validatePolicyRule``: level, nonResourceURLs, resources, omitStages, then the kind mix."""
    errs: list[str] = []
    if rule.level == "":
        errs.append(f"{path}.level: Required value")
    elif rule.level not in LEVELS:
        supported = ", ".join(go_quote(v) for v in LEVELS)
        errs.append(f"{path}.level: Unsupported value: {go_quote(rule.level)}: supported values: {supported}")
    for j, url in enumerate(rule.non_resource_urls):
        if url == "*":
            continue
        upath = f"{path}.nonResourceURLs[{j}]"
        if not url.startswith("/"):
            errs.append(_invalid(upath, go_quote(url), "non-resource URL rules must begin with a '/' character"))
        if url != "" and "*" in url[:-1]:
            errs.append(
                _invalid(upath, go_quote(url), "non-resource URL wildcards '*' must be the final character of the rule")
            )
    for gr in rule.resources:
        # Note: the apiserver's path has no entry index here.
        if gr.group not in ("", "*"):
            msgs = dns_subdomain_errors(gr.group)
            if msgs:
                errs.append(_invalid(f"{path}.resources.group", go_quote(gr.group), ",".join(msgs)))
        if gr.resource_names and not gr.resources:
            errs.append(
                _invalid(
                    f"{path}.resources.resourceNames",
                    _go_slice(gr.resource_names),
                    "using resourceNames requires at least one resource",
                )
            )
    errs.extend(_omit_stage_errors(rule.omit_stages, f"{path}.omitStages"))
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        errs.append(
            _invalid(
                f"{path}.nonResourceURLs",
                _go_slice(rule.non_resource_urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        )
    return errs


def validate_policy(policy: Policy) -> list[str]:
    """``ValidatePolicy``: every error, in the apiserver's order."""
    errs = _omit_stage_errors(policy.omit_stages, "omitStages")
    for i, rule in enumerate(policy.rules):
        errs.extend(validate_rule(rule, f"rules[{i}]"))
    return errs


def _error_line(policy: Policy, message: str) -> int | None:
    path = message.split(":", 1)[0]
    while path:
        line = policy.line_of(path)
        if line is not None:
            return line
        # "rules[2].resources.group" has no entry index: fall back to the rule.
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def header_error(policy: Policy) -> str | None:
    """The loader's apiVersion/kind refusal, worded as the apiserver's decoder does."""
    api, kind = policy.api_version, policy.kind
    if not api and not kind:
        return (
            "unknown group version field /, Kind= in policy "
            f"(the file needs apiVersion: {API_VERSION} and kind: Policy)"
        )
    if not kind:
        return f"failed decoding: Object 'Kind' is missing (apiVersion {api}; add kind: Policy)"
    if not api:
        return f"failed decoding: Object 'apiVersion' is missing (set apiVersion: {API_VERSION})"
    if api in REMOVED_VERSIONS:
        return (
            f'failed decoding: no kind "{kind}" is registered for version "{api}" '
            f"({api} was removed in Kubernetes 1.24; use {API_VERSION})"
        )
    if api != API_VERSION:
        return f'failed decoding: no kind "{kind}" is registered for version "{api}" (use {API_VERSION})'
    if kind != "Policy":
        return f'failed decoding: no kind "{kind}" is registered for version "{api}" (the kind must be Policy)'
    return None


def load_errors(policy: Policy) -> list[str]:
    """Everything that stops ``LoadPolicyFromBytes``, in its order (first failing step only)."""
    head = header_error(policy)
    if head:
        return [head]
    errs = validate_policy(policy)
    if errs:
        return errs
    if not policy.rules:
        return ["loaded illegal policy with 0 rules"]
    return []


def check_loadable(policy: Policy) -> None:
    """Raise :class:`PolicyError` unless the apiserver would start with this policy."""
    errs = load_errors(policy)
    if errs:
        raise PolicyError(errs, policy.source, [_error_line(policy, e) for e in errs])
