"""Lint checks that read the policy's rules as written: can it load, what does each rule match,
which rule shadows which. No request is evaluated here."""

from __future__ import annotations

from collections.abc import Callable

from kubehawk.policy import citations as C
from kubehawk.policy import probes as P
from kubehawk.policy.catalog import check_resource_pattern
from kubehawk.policy.citations import cite
from kubehawk.policy.findings import _Ctx
from kubehawk.policy.model import PolicyRule, level_rank
from kubehawk.policy.validate import _error_line, load_errors

__all__ = ["STRUCTURE_CHECKS", "shadows"]

# --- load / structure ------------------------------------------------------------------------


def check_loadable(ctx: _Ctx) -> None:
    pol = ctx.policy
    errs = load_errors(pol)
    for msg in errs:
        idx = None
        if msg.startswith("rules["):
            try:
                idx = int(msg[6 : msg.index("]")])
            except ValueError:
                idx = None
        ctx.add("POL-INVALID", "critical", msg, "The apiserver refuses to start with this policy; fix the field.",
                idx, cite(C.POLICY_API, "CIS Kubernetes 3.2.1", "DISA STIG V-242461"), _error_line(pol, msg))
    if not errs:
        ctx.ok("POL-INVALID")


def check_unknown_fields(ctx: _Ctx) -> None:
    for w in ctx.policy.warnings:
        if w.message.startswith("duplicate"):
            ctx.add("POL-DUPLICATE-FIELD", "medium", f"{w.path}: {w.message}",
                    "Keep one copy of the field.", w.rule_index, C.POLICY_API, w.line)
        else:
            ctx.add("POL-UNKNOWN-FIELD", "high", f"{w.path}: {w.message}",
                    "Rename or remove the field; the apiserver drops it silently and the rule matches more than "
                    "written.", w.rule_index, C.POLICY_RULE_API, w.line)
    if not ctx.policy.warnings:
        ctx.ok("POL-UNKNOWN-FIELD")


_WILDCARD_FIELDS = (
    ("users", "users"),
    ("user_groups", "userGroups"),
    ("verbs", "verbs"),
    ("namespaces", "namespaces"),
)


def check_literal_wildcards(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        for attr, name in _WILDCARD_FIELDS:
            bad = [v for v in getattr(rule, attr) if "*" in v]
            if bad:
                ctx.add("POL-LITERAL-WILDCARD", "medium",
                        f"rules[{rule.index}].{name} {bad}: '*' is not a wildcard here; it only matches a "
                        f"{name[:-1]} literally named {bad[0]!r}",
                        f"Remove {name} to mean 'any', or list the exact values.", rule.index,
                        C.POLICY_RULE_API)
        for gr in rule.resources:
            bad = [v for v in gr.resource_names if "*" in v]
            if bad:
                ctx.add("POL-LITERAL-WILDCARD", "medium",
                        f"rules[{rule.index}].resources resourceNames {bad}: '*' is literal in resourceNames",
                        "Drop resourceNames to match every name.", rule.index, C.POLICY_RULE_API)
    ctx.result("POL-LITERAL-WILDCARD", before)


def check_resource_patterns(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        for gr in rule.resources:
            for res in gr.resources:
                if res == "*/*":
                    ctx.add("POL-DEAD-PATTERN", "medium",
                            f"rules[{rule.index}]: resource pattern '*/*' matches nothing real (only a resource "
                            "literally named '*')", "Use '*' for every resource and subresource.", rule.index,
                            C.GROUP_RESOURCES_API)
                    continue
                why = check_resource_pattern(gr.group, res)
                if why:
                    ctx.add("POL-UNKNOWN-RESOURCE", "medium", f"rules[{rule.index}]: {why}; this entry never "
                            "matches", "Use the plural resource name in its own API group (kubectl api-resources).",
                            rule.index, cite(C.GROUP_RESOURCES_API, C.API_RESOURCES))
    ctx.result("POL-UNKNOWN-RESOURCE", before)


def check_resource_names(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    nameless = {"create", "list", "watch", "deletecollection"}
    for rule in ctx.policy.rules:
        if not any(gr.resource_names and gr.resources for gr in rule.resources):
            continue
        subs_only = all(all("/" in r and not r.endswith("/*") for r in gr.resources)
                        for gr in rule.resources if gr.resource_names)
        verbs = set(rule.verbs) if rule.verbs else None
        if verbs is not None and verbs <= nameless and not subs_only:
            ctx.add("POL-RESOURCENAMES-NAMELESS", "high",
                    f"rules[{rule.index}] uses resourceNames with only verbs {sorted(verbs)}; those requests carry no "
                    "name (create has it in the body), so the rule never matches",
                    "Drop resourceNames or use get/update/patch/delete.", rule.index, cite(C.POLICY_RULE_API, C.RBAC_RESOURCE_NAMES))
        elif verbs is None or (verbs & nameless and not subs_only):
            ctx.add("POL-RESOURCENAMES-NAMELESS", "low",
                    f"rules[{rule.index}] uses resourceNames: it can never match create, list, watch or "
                    "deletecollection of those objects (no name in the request)",
                    "Add a separate rule without resourceNames for create/list/watch if they matter.", rule.index,
                    cite(C.POLICY_RULE_API, C.RBAC_RESOURCE_NAMES))
    ctx.result("POL-RESOURCENAMES-NAMELESS", before)


_CONNECT = ("exec", "attach", "portforward")


def check_exec_create_only(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if not rule.verbs or "create" not in rule.verbs or "get" in rule.verbs:
            continue
        named = {p for gr in rule.resources if gr.group in ("", "*") for p in gr.resources}
        hit = [sub for sub in _CONNECT if named & {f"pods/{sub}", "pods/*", f"*/{sub}"}
               and P.witness(rule, "", "pods", sub, ("create",))]
        if hit:
            ctx.add("POL-EXEC-CREATE-ONLY", "high" if rule.level != "None" else "low",
                    f"rules[{rule.index}] selects pods/{','.join(hit)} with verb create only: kubectl >= 1.30 uses "
                    "WebSocket (verb get), which this rule misses",
                    "Add 'get' to verbs.", rule.index, C.REQUEST_VERB)
    ctx.result("POL-EXEC-CREATE-ONLY", before)


def check_namespace_objects(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if rule.namespaces == ("",) and any(
            gr.group in ("", "*") and any(r in ("namespaces", "namespaces/*", "*") for r in gr.resources)
            for gr in rule.resources
        ):
            ctx.add("POL-NAMESPACE-OBJECT", "low",
                    f"rules[{rule.index}]: namespaces [\"\"] does not match get/update/delete of a Namespace by name "
                    "(its namespace attribute is the namespace itself)",
                    "Drop namespaces from this rule or add a rule for namespaces without it.", rule.index,
                    C.POLICY_RULE_API)
    ctx.result("POL-NAMESPACE-OBJECT", before)


def check_non_resource_levels(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if rule.non_resource_only and level_rank(rule.level) > level_rank("Metadata"):
            ctx.add("POL-NONRESOURCE-LEVEL", "info",
                    f"rules[{rule.index}] is {rule.level} on non-resource URLs: those requests have no bodies, so "
                    "it records the same as Metadata", "Use Metadata.", rule.index, C.AUDIT_POLICY)
    ctx.result("POL-NONRESOURCE-LEVEL", before)


# --- order: catch-all and shadowing ----------------------------------------------------------


def _covers_list(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """An outer list (empty = any) accepts every value the inner list (empty = any) accepts."""
    if not outer:
        return True
    return bool(inner) and set(inner) <= set(outer)


def _pattern_covers(outer: str, inner: str) -> bool:
    if outer == inner or outer == "*":
        return True
    res, _, sub = inner.partition("/")
    if outer.endswith("/*") and outer != "*/*":
        return res == outer[:-2]
    return outer.startswith("*/") and bool(sub) and sub == outer[2:]


def _resources_cover(outer: PolicyRule, inner: PolicyRule) -> bool:
    if not outer.resources:
        return True
    if not inner.resources:
        return any(gr.group == "*" and (not gr.resources or ("*" in gr.resources and not gr.resource_names))
                   for gr in outer.resources)
    for ig in inner.resources:
        for ires in ig.resources or ("*",):
            if not any(_entry_covers(og, ig, ires) for og in outer.resources):
                return False
    return True


def _entry_covers(og, ig, ires: str) -> bool:
    if og.group != "*" and (og.group != ig.group or ig.group == "*"):
        return False
    if not og.resources:
        return True
    names_ok = not og.resource_names or (
        bool(ig.resources) and bool(ig.resource_names) and set(ig.resource_names) <= set(og.resource_names)
    )
    return names_ok and any(_pattern_covers(o, ires) for o in og.resources)


def _url_covers(outer: str, inner: str) -> bool:
    if outer in ("*", "/*") or outer == inner:
        return True
    return outer.endswith("*") and inner.startswith(outer.rstrip("*"))


def shadows(outer: PolicyRule, inner: PolicyRule) -> bool:
    """Every request ``inner`` matches is matched by ``outer`` (conservative: may say False)."""
    if not _covers_list(outer.users, inner.users) or not _covers_list(outer.verbs, inner.verbs):
        return False
    if not _covers_list(outer.user_groups, inner.user_groups):
        return False
    if outer.resource_only:
        if not inner.resource_only:
            return False
        return _covers_list(outer.namespaces, inner.namespaces) and _resources_cover(outer, inner)
    if outer.non_resource_urls:
        if not inner.non_resource_only:
            return False
        return all(any(_url_covers(o, i) for o in outer.non_resource_urls) for i in inner.non_resource_urls)
    return True


def check_order(ctx: _Ctx) -> None:
    rules = ctx.policy.rules
    before = len(ctx.report.findings)
    catch_all = next((r for r in rules if r.unconditional), None)
    if catch_all is None:
        ctx.add("POL-NO-CATCHALL", "medium",
                "the policy has no final catch-all rule: requests no rule selects are not logged at all (level None)",
                "End the policy with '- level: Metadata' (no selectors).", None, cite(C.AUDIT_POLICY, "CIS Kubernetes 3.2.1"))
    else:
        ctx.ok("POL-NO-CATCHALL")
        if catch_all.index != len(rules) - 1:
            after = [r.index for r in rules[catch_all.index + 1 :]]
            ctx.add("POL-CATCHALL-NOT-LAST", "high",
                    f"rules[{catch_all.index}] matches every request, so rules {after} are never consulted",
                    "Move the catch-all to the end.", catch_all.index, C.AUDIT_POLICY)
        else:
            ctx.ok("POL-CATCHALL-NOT-LAST")
    for j, inner in enumerate(rules):
        if catch_all is not None and j > catch_all.index:
            continue
        for outer in rules[:j]:
            if shadows(outer, inner):
                sev = "low" if outer.level == inner.level else "medium"
                ctx.add("POL-SHADOWED", sev,
                        f"rules[{j}] ({inner.describe()}) can never match: every request it selects is already "
                        f"decided by rules[{outer.index}] ({outer.describe()})",
                        f"Move rules[{j}] above rules[{outer.index}] or delete it.", j, C.AUDIT_POLICY)
                break
    ctx.result("POL-SHADOWED", before)


STRUCTURE_CHECKS: tuple[Callable[[_Ctx], None], ...] = (
    check_loadable,
    check_unknown_fields,
    check_literal_wildcards,
    check_resource_patterns,
    check_resource_names,
    check_exec_create_only,
    check_namespace_objects,
    check_non_resource_levels,
    check_order,
)
