"""Lint an audit policy: compliance items (CIS, DISA STIG, NSA/CISA, PCI DSS, NIST SP 800-190)
and the rules that do something other than what they read like.

Policy checks evaluate the policy on synthetic requests (:mod:`kubehawk.policy.probes`)
so the apiserver's first-match order and literal matching are honoured exactly; flag
checks read a kube-apiserver static-pod manifest when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubehawk.policy import citations as C
from kubehawk.policy import probes as P
from kubehawk.policy.catalog import CATALOG, SENSITIVE_CAPS, check_resource_pattern
from kubehawk.policy.citations import cite
from kubehawk.policy.flags import ApiserverFlags
from kubehawk.policy.model import Policy, PolicyError, PolicyRule, level_rank
from kubehawk.policy.request import Request
from kubehawk.policy.validate import _error_line, load_errors

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    id: str
    severity: str
    message: str
    fix: str
    rule_index: int | None = None
    reference: str = ""
    line: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LintReport:
    source: str | None
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def at_or_above(self, severity: str) -> list[Finding]:
        floor = SEVERITY_RANK[severity]
        return [f for f in self.findings if SEVERITY_RANK[f.severity] >= floor]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def to_dict(self) -> dict:
        return {
            "policy": self.source,
            "findings": [f.to_dict() for f in self.findings],
            "counts": self.counts(),
            "passed": self.passed,
            "skipped": self.skipped,
        }


@dataclass
class LintOptions:
    admin_groups: tuple[str, ...] = ("system:masters",)
    admin_users: tuple[str, ...] = ()
    chd_namespaces: tuple[str, ...] = ()


class _Ctx:
    def __init__(self, policy: Policy | None, report: LintReport, opts: LintOptions):
        self.policy = policy
        self.report = report
        self.opts = opts
        self._cache: dict[Request, P.Probe] = {}

    def add(
        self,
        id: str,
        severity: str,
        message: str,
        fix: str,
        rule: int | None = None,
        reference: str = "",
        line: int | None = None,
    ) -> None:
        if line is None and rule is not None and self.policy is not None and 0 <= rule < len(self.policy.rules):
            line = self.policy.rules[rule].line
        self.report.findings.append(Finding(id, severity, message, fix, rule, reference, line))

    def ok(self, id: str) -> None:
        if id not in self.report.passed:
            self.report.passed.append(id)

    def result(self, id: str, before: int) -> None:
        """Record ``id`` as passed when no finding was added since ``before``."""
        if not any(f.id == id for f in self.report.findings[before:]):
            self.ok(id)

    def probe(self, requests: Iterable[Request]) -> list[P.Probe]:
        assert self.policy is not None
        out = []
        for r in requests:
            p = self._cache.get(r)
            if p is None:
                p = self._cache[r] = P.Probe(r, self.policy.evaluate(r))
            out.append(p)
        return out


def _examples(probes: list[P.Probe], n: int = 3) -> str:
    shown = "; ".join(p.describe() for p in probes[:n])
    more = f" (+{len(probes) - n} more)" if len(probes) > n else ""
    return shown + more


def _first_rule(probes: list[P.Probe]) -> int | None:
    for p in probes:
        if p.decision.rule_index is not None:
            return p.decision.rule_index
    return None


# --- entry points ----------------------------------------------------------------------------


def lint_file(
    path: str | Path,
    manifest: ApiserverFlags | None = None,
    options: LintOptions | None = None,
) -> LintReport:
    """Lint a policy file. Undecodable files give one critical finding, not an exception."""
    src = str(path)
    try:
        policy = Policy.load(path, check=False)
    except PolicyError as e:
        report = LintReport(src)
        for msg, line in zip(e.errors, e.lines, strict=False):
            report.findings.append(
                Finding("POL-INVALID", "critical", msg, "Fix the file: the apiserver refuses to start with it.",
                        None, "apiserver LoadPolicyFromBytes; CIS 3.2.1; STIG V-242461", line)
            )
        _flag_checks(_Ctx(None, report, options or LintOptions()), manifest)
        return report
    return lint_policy(policy, manifest, options)


def lint_policy(
    policy: Policy,
    manifest: ApiserverFlags | None = None,
    options: LintOptions | None = None,
) -> LintReport:
    report = LintReport(policy.source)
    ctx = _Ctx(policy, report, options or LintOptions())
    for check in STRUCTURE_CHECKS:
        check(ctx)
    if any(f.id == "POL-INVALID" for f in report.findings):
        # The apiserver would not start: what it would log is moot until the errors are fixed.
        for check in PROBE_CHECKS:
            report.skipped[check.__name__.removeprefix("check_")] = "the policy does not load"
    else:
        for check in PROBE_CHECKS:
            check(ctx)
    _flag_checks(ctx, manifest)
    report.findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.rule_index if f.rule_index is not None else -1))
    return report


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


# --- stages ----------------------------------------------------------------------------------


def check_stages(ctx: _Ctx) -> None:
    pol = ctx.policy
    before = len(ctx.report.findings)
    if "ResponseStarted" in pol.omit_stages:
        ctx.add("POL-OMIT-RESPONSESTARTED", "high",
                "policy-level omitStages has ResponseStarted: failed-authentication events (their only stage) and "
                "the start of exec/attach/port-forward/watch are never logged",
                "Remove ResponseStarted from the policy-level omitStages.", None, cite(C.AUDIT, "PCI DSS v4.0 10.2.1.4"))
    if "ResponseComplete" in pol.omit_stages:
        ctx.add("POL-OMIT-RESPONSECOMPLETE", "high",
                "policy-level omitStages has ResponseComplete: no event carries the final status code, and short "
                "requests are only logged at RequestReceived (no result)",
                "Omit RequestReceived instead.", None, cite(C.AUDIT, "PCI DSS v4.0 10.2.2"))
    if "Panic" in pol.omit_stages:
        ctx.add("POL-OMIT-PANIC", "medium", "policy-level omitStages has Panic: requests that crash a handler leave "
                "no record", "Remove Panic from omitStages.", None, C.AUDIT)
    for rule in pol.rules:
        if rule.level == "None":
            continue
        if "ResponseComplete" in rule.omit_stages:
            ctx.add("POL-OMIT-RESPONSECOMPLETE", "high",
                    f"rules[{rule.index}] omits ResponseComplete: requests it selects have no final status",
                    "Omit RequestReceived instead.", rule.index, "PCI DSS v4.0 10.2.2")
        if "ResponseStarted" in rule.omit_stages and not (rule.users or rule.user_groups):
            ctx.add("POL-OMIT-RESPONSESTARTED", "medium",
                    f"rules[{rule.index}] omits ResponseStarted and can match requests without a user: failed "
                    "authentication events it selects are dropped", "Remove ResponseStarted from the rule.",
                    rule.index, C.AUDIT)
    for cid in ("POL-OMIT-RESPONSESTARTED", "POL-OMIT-RESPONSECOMPLETE", "POL-OMIT-PANIC"):
        ctx.result(cid, before)
    if "RequestReceived" not in pol.omit_stages:
        keep = [r.index for r in pol.rules if r.level != "None" and "RequestReceived" not in r.omit_stages]
        if keep:
            ctx.add("POL-REQUESTRECEIVED", "low",
                    f"RequestReceived is not omitted (rules {keep[:8]}{'...' if len(keep) > 8 else ''}): every "
                    "request is logged twice, the first event without a result or body",
                    "Add 'omitStages: [RequestReceived]' at the policy level.", None, C.AUDIT_POLICY)
            return
    ctx.ok("POL-REQUESTRECEIVED")


# --- secrets ---------------------------------------------------------------------------------

_SENSITIVE = (
    ("", "secrets", "", "high", "secret data"),
    ("", "configmaps", "", "medium", "configuration values (often credentials)"),
    ("", "serviceaccounts", "token", "high", "issued service-account tokens (in the responses)"),
    ("authentication.k8s.io", "tokenreviews", "", "high", "bearer tokens under review"),
)
_LEAK_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def check_secret_leaks(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    seen: set[tuple[int, str]] = set()
    for rule in ctx.policy.rules:
        if level_rank(rule.level) <= level_rank("Metadata"):
            continue
        for group, res, sub, sev, what in _SENSITIVE:
            if level_rank(rule.level) <= level_rank(SENSITIVE_CAPS[(group, res, sub)]):
                continue
            req = P.witness(rule, group, res, sub, _LEAK_VERBS)
            if req is None:
                continue
            # Only a leak if this rule is the one that decides (no earlier rule took it).
            for verb in ([req.verb] + [v for v in _LEAK_VERBS if v != req.verb]):
                cand = P.witness(rule, group, res, sub, (verb,))
                if cand is None:
                    continue
                d = ctx.policy.evaluate(cand)
                if d.rule_index == rule.index and (rule.index, res) not in seen:
                    seen.add((rule.index, res))
                    target = f"{res}/{sub}" if sub else res
                    ctx.add("POL-SECRET-LEAK", sev,
                            f"rules[{rule.index}] logs {target} at {rule.level} (e.g. {cand.describe()}): the log "
                            f"then holds {what}",
                            f"Add a {SENSITIVE_CAPS[(group, res, sub)]} rule for {target} before rules[{rule.index}].",
                            rule.index,
                            cite("CIS Kubernetes 3.2.2(a)", C.AUDIT_POLICY))
                    break
    ctx.result("POL-SECRET-LEAK", before)


# --- probe based compliance ------------------------------------------------------------------

_PRIVILEGED = (
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "roles"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
)
_WORKLOADS = (("", "pods"), ("apps", "deployments"), ("apps", "daemonsets"), ("apps", "statefulsets"),
              ("batch", "jobs"), ("batch", "cronjobs"))
_CONNECT_TARGETS = (("", "pods", "exec"), ("", "pods", "attach"), ("", "pods", "portforward"),
                    ("", "pods", "proxy"), ("", "services", "proxy"), ("", "nodes", "proxy"))
_WRITES = ("create", "update", "patch", "delete")
_CUSTOM = ("widgets.example.com", "widgets")


def _fail_below(ctx: _Ctx, id: str, sev: str, probes: list[P.Probe], level: str, what: str, fix: str, ref: str):
    bad = P.below(probes, level)
    if bad:
        ctx.add(id, sev, f"{what} below {level}: {_examples(bad)}", fix, _first_rule(bad), ref)
    else:
        ctx.ok(id)


def check_cis(ctx: _Ctx) -> None:
    m = P.matrix
    default = ctx.probe(m(P.ORDINARY, ("get", "create", "delete"), [_CUSTOM]))
    _fail_below(ctx, "CIS-3.2.1", "high", default, "Metadata",
                "an ordinary authenticated resource request (a custom resource nobody wrote a rule for) is logged",
                "End the policy with a catch-all '- level: Metadata'.", "CIS Kubernetes 3.2.1")
    sens = ctx.probe(m(P.ORDINARY, _LEAK_VERBS, [("", "secrets"), ("", "configmaps"),
                                                   ("authentication.k8s.io", "tokenreviews")], P.NAMESPACES))
    _fail_below(ctx, "CIS-3.2.2a", "high", sens, "Metadata",
                "access to secrets/configmaps/tokenreviews must be recorded (exactly Metadata); some are",
                "Add '- level: Metadata' for secrets, configmaps and tokenreviews near the top.",
                "CIS Kubernetes 3.2.2(a)")
    work = ctx.probe(m(P.ORDINARY, _WRITES, [("", "pods"), ("apps", "deployments")], P.NAMESPACES))
    _fail_below(ctx, "CIS-3.2.2b", "high", work, "Metadata", "changes to pods and deployments are logged",
                "Log pod and deployment writes at Request or higher.", "CIS Kubernetes 3.2.2(b)")
    conn = ctx.probe(m(P.ORDINARY, ("get", "create"), _CONNECT_TARGETS, P.NAMESPACES))
    _fail_below(ctx, "CIS-3.2.2c", "high", conn, "Metadata",
                "exec/attach/port-forward/proxy (both verbs: get for WebSocket, create for SPDY) are logged",
                "Log pods/exec, pods/attach, pods/portforward, pods/proxy, services/proxy and nodes/proxy for verbs "
                "get and create at Metadata or higher.", "CIS Kubernetes 3.2.2(c)")
    targets = [(r.group, r.resource) for r in CATALOG
               if ".openshift.io" not in r.group and r.group not in ("metrics.k8s.io", "extensions")
               and r.resource != "events"]
    generic = ctx.probe(m((P.HUMAN,), ("create", "delete"), targets))
    _fail_below(ctx, "CIS-3.2.2d", "medium", generic, "Metadata",
                "writes by a person to built-in resources are logged by default",
                "Keep a catch-all Metadata rule and narrow the None rules to known noise.", "CIS Kubernetes 3.2.2(d)")


def check_stig_literal(ctx: _Ctx) -> None:
    rules = ctx.policy.rules
    if len(rules) == 1 and rules[0].unconditional and rules[0].level == "RequestResponse":
        ctx.ok("STIG-V-242403")
        return
    last = rules[-1] if rules else None
    lenient = last is not None and last.unconditional and last.level == "RequestResponse"
    privileged = ctx.probe(P.matrix(P.ORDINARY, _WRITES, [*_PRIVILEGED, *_WORKLOADS]))
    lowered = P.below(privileged, "RequestResponse")
    if lenient and not lowered:
        ctx.add("STIG-V-242403", "info",
                "deviates from the STIG literal check (a single 'level: RequestResponse' rule) but logs every "
                "privileged probe at RequestResponse", "None needed; document the deviation.", None,
                "DISA STIG V-242403 (CNTR-K8-000700)")
        return
    ctx.add("STIG-V-242403", "low",
            "the STIG check text wants one rule 'level: RequestResponse' with no selectors; this policy logs "
            + (f"less for: {_examples(lowered)}" if lowered else "at lower levels by default")
            + " (note: that literal policy would also write secrets into the log, against CIS 3.2.2)",
            "Accept and document the deviation, or raise privileged actions to RequestResponse.", _first_rule(lowered),
            "DISA STIG V-242403 (CNTR-K8-000700)")


def check_nsa(ctx: _Ctx) -> None:
    privileged = ctx.probe(P.matrix(P.ORDINARY, _WRITES, [*_PRIVILEGED, *_WORKLOADS]))
    privileged += ctx.probe(P.matrix(P.ORDINARY, ("get", "create"), _CONNECT_TARGETS[:3]))
    none = [p for p in privileged if p.level == "None"]
    if none:
        ctx.add("NSA-LOG-2", "high", f"privileged actions are not logged: {_examples(none)}",
                "Log RBAC, webhook configuration, CRD and workload writes and exec/attach/port-forward.",
                _first_rule(none), "NSA/CISA Kubernetes Hardening Guidance, App. L")
    else:
        frac = len(P.below(privileged, "RequestResponse")) / max(1, len(privileged))
        ctx.add("NSA-LOG-2", "info", f"{frac:.0%} of privileged-action probes are logged below RequestResponse "
                "(NSA/CISA suggest RequestResponse unless volume forces lower)", "None needed.", None,
                "NSA/CISA Kubernetes Hardening Guidance, App. L")
    before = len(ctx.report.findings)
    anon = ctx.probe([P.resource_request(P.ANONYMOUS, v, "", r) for v in ("get", "list") for r in ("pods", "secrets")]
                     + [P.non_resource_request(P.ANONYMOUS, "/api/v1"), P.non_resource_request(P.ANONYMOUS, "/")])
    bad = P.below(anon, "Metadata")
    if bad:
        ctx.add("NSA-LOG-5", "medium", f"anonymous requests are not logged: {_examples(bad)}",
                "Do not drop system:anonymous / system:unauthenticated outside health checks.", _first_rule(bad),
                "NSA/CISA Kubernetes Hardening Guidance, Alerting")
    _failed_authn(ctx, "NSA-LOG-5", "NSA/CISA Kubernetes Hardening Guidance, Alerting")
    pods = ctx.probe(P.matrix(P.ORDINARY, ("create",), _WORKLOADS, P.NAMESPACES))
    bad = P.below(pods, "Request")
    if bad:
        ctx.add("NSA-LOG-5", "medium", f"workload creation is logged without the spec (privileged, hostPath, image "
                f"cannot be seen): {_examples(bad)}", "Log create/update/patch of pods and workloads at Request.",
                _first_rule(bad), "NSA/CISA Kubernetes Hardening Guidance, Alerting")
    ctx.result("NSA-LOG-5", before)


def _failed_authn(ctx: _Ctx, id: str, ref: str) -> None:
    d = ctx.policy.evaluate(P.resource_request(P.UNAUTHENTICATED, "get", "", "pods"))
    d2 = ctx.policy.evaluate(P.non_resource_request(P.UNAUTHENTICATED, "/api"))
    for dec in (d, d2):
        if not dec.records("ResponseStarted"):
            why = "level None" if dec.level == "None" else "ResponseStarted omitted"
            where = f"rules[{dec.rule_index}]" if dec.rule_index is not None else "the default"
            ctx.add(id, "high", f"failed authentication is invisible: the event (only stage ResponseStarted, no "
                    f"user) gets {why} from {where}", "Keep ResponseStarted and a user-independent catch-all.",
                    dec.rule_index, ref)
            return


def check_pci(ctx: _Ctx) -> None:
    o = ctx.opts
    m = P.matrix
    before = len(ctx.report.findings)
    base = ctx.probe([*m(P.ORDINARY, ("get", "create"), [_CUSTOM]), P.non_resource_request(P.HUMAN, "/openapi/v3"),
                      P.non_resource_request(P.HUMAN, "/logs/")])
    bad = P.below(base, "Metadata")
    if bad:
        ctx.add("PCI-10.2.1", "high", f"authenticated requests are not logged by default: {_examples(bad)}",
                "End the policy with a catch-all Metadata rule.", _first_rule(bad), "PCI DSS v4.0 10.2.1")
    ctx.result("PCI-10.2.1", before)
    nss = o.chd_namespaces or P.NAMESPACES[:2]
    chd = ctx.probe(m((P.HUMAN,), ("get", "list", "watch"), [("", "secrets"), ("", "configmaps"), ("", "pods")], nss))
    chd += ctx.probe(m((P.HUMAN,), ("get", "create"), _CONNECT_TARGETS[:5], nss))
    _fail_below(ctx, "PCI-10.2.1.1", "high", chd, "Metadata",
                f"individual access to cardholder-data namespaces {list(nss)} is logged", "Log reads and exec in "
                "those namespaces at Metadata or higher.", "PCI DSS v4.0 10.2.1.1")
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if rule.level == "None" and (set(rule.user_groups) & set(o.admin_groups) or set(rule.users) & set(o.admin_users)):
            ctx.add("PCI-10.2.1.2", "high", f"rules[{rule.index}] drops requests of administrators "
                    f"({', '.join(sorted((set(rule.user_groups) & set(o.admin_groups)) | (set(rule.users) & set(o.admin_users))))})",
                    "Never give administrator identities a None rule.", rule.index, "PCI DSS v4.0 10.2.1.2")
    admins = [P.ADMIN] + [P.Identity(u, ("system:authenticated",), "admin") for u in o.admin_users]
    admins += [P.Identity("admin-probe", (g, "system:authenticated"), "admin") for g in o.admin_groups
               if g != "system:masters"]
    adm = ctx.probe(m(admins, ("get", "list", "create", "update", "patch", "delete"),
                      [("", "secrets"), ("", "pods"), ("rbac.authorization.k8s.io", "clusterrolebindings"), _CUSTOM]))
    bad = P.below(adm, "Metadata")
    if bad:
        ctx.add("PCI-10.2.1.2", "high", f"administrator actions are not logged: {_examples(bad)}",
                "Log every action of administrator identities.", _first_rule(bad), "PCI DSS v4.0 10.2.1.2")
    ctx.result("PCI-10.2.1.2", before)
    before = len(ctx.report.findings)
    _failed_authn(ctx, "PCI-10.2.1.4", "PCI DSS v4.0 10.2.1.4")
    ctx.result("PCI-10.2.1.4", before)
    creds = ctx.probe(m(P.ORDINARY, _WRITES, [("rbac.authorization.k8s.io", r) for r in
                                              ("roles", "rolebindings", "clusterroles", "clusterrolebindings")]
                        + [("", "serviceaccounts"), ("certificates.k8s.io", "certificatesigningrequests")]))
    creds += ctx.probe(m(P.ORDINARY, ("create",), [("", "serviceaccounts", "token")]))
    creds += ctx.probe(m(P.ORDINARY, ("update",), [("certificates.k8s.io", "certificatesigningrequests", "approval")]))
    _fail_below(ctx, "PCI-10.2.1.5", "high", creds, "Metadata",
                "changes to credentials and privileges (RBAC, service accounts, tokens, CSRs) are logged",
                "Log RBAC, serviceaccount, token and CSR writes (Request recommended for RBAC).", "PCI DSS v4.0 10.2.1.5")
    ctx.add("PCI-10.2.1.6", "info", "starting/stopping audit logging is not visible in the audit stream: watch "
            "apiserver restarts, flag changes and gaps in the log", "Monitor the audit pipeline itself.", None,
            "PCI DSS v4.0 10.2.1.6")
    system = [("", "namespaces"), ("", "nodes"), ("", "persistentvolumes"),
              ("apiextensions.k8s.io", "customresourcedefinitions"),
              ("rbac.authorization.k8s.io", "clusterroles"), ("rbac.authorization.k8s.io", "clusterrolebindings"),
              ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
              ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
              ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
              ("apiregistration.k8s.io", "apiservices"), ("storage.k8s.io", "storageclasses"),
              ("scheduling.k8s.io", "priorityclasses"), ("node.k8s.io", "runtimeclasses")]
    sysp = ctx.probe(m(P.ORDINARY, ("create", "delete"), system))
    _fail_below(ctx, "PCI-10.2.1.7", "high", sysp, "Metadata", "creation/deletion of system-level objects is logged",
                "Log create/delete of cluster-scoped objects.", "PCI DSS v4.0 10.2.1.7")
    before = len(ctx.report.findings)
    rc = [p for p in [*base, *creds, *sysp] if p.level != "None" and p.decision.omits("ResponseComplete")]
    if rc:
        ctx.add("PCI-10.2.2", "high", f"records lack success/failure (ResponseComplete omitted): {_examples(rc)}",
                "Do not omit ResponseComplete.", _first_rule(rc), "PCI DSS v4.0 10.2.2")
    ctx.result("PCI-10.2.2", before)


def check_nist(ctx: _Ctx) -> None:
    ref = "NIST SP 800-190 "
    rbac = ctx.probe(P.matrix(P.ORDINARY, _WRITES, _PRIVILEGED[:4]))
    adm = ctx.probe(P.matrix((P.ADMIN,), ("get", "create", "delete"), [("", "secrets"), _CUSTOM]))
    bad = P.below(rbac + adm, "Metadata")
    if bad:
        ctx.add("NIST-800-190-4.3.1", "high", f"administrative access to the orchestrator is not logged: "
                f"{_examples(bad)}", "Log RBAC writes and all actions of administrators.", _first_rule(bad),
                ref + "4.3.1 Unbounded administrative access")
    else:
        weak = P.below(rbac, "Request")
        if weak:
            ctx.add("NIST-800-190-4.3.1", "low", f"RBAC changes are logged without their content: {_examples(weak)}",
                    "Log RBAC writes at Request so granted roles and subjects are visible.", _first_rule(weak),
                    ref + "4.3.1 Unbounded administrative access")
        else:
            ctx.ok("NIST-800-190-4.3.1")
    before = len(ctx.report.findings)
    _failed_authn(ctx, "NIST-800-190-4.3.2", ref + "4.3.2 Unauthorized access")
    ctx.result("NIST-800-190-4.3.2", before)
    pods = ctx.probe(P.matrix(P.ORDINARY, ("create", "update", "patch"), _WORKLOADS, P.NAMESPACES))
    bad = P.below(pods, "Request")
    if bad:
        ctx.add("NIST-800-190-4.4.3", "medium", f"workload specs are not logged, so insecure runtime configurations "
                f"(privileged, host namespaces, hostPath) and rogue images go unseen: {_examples(bad)}",
                "Log pod and workload writes at Request.", _first_rule(bad),
                ref + "4.4.3 Insecure container runtime configurations / 4.4.5 Rogue containers")
    else:
        ctx.ok("NIST-800-190-4.4.3")


_BROAD = ("system:authenticated", "system:serviceaccounts", "system:masters", "system:unauthenticated")


def check_broad_none(ctx: _Ctx) -> None:
    before = len(ctx.report.findings)
    for rule in ctx.policy.rules:
        if rule.level != "None":
            continue
        broad = [g for g in rule.user_groups if g in _BROAD]
        if not broad:
            continue
        if rule.non_resource_urls:
            continue
        wide = not rule.resources or any(gr.group == "*" or not gr.resources or "*" in gr.resources
                                          for gr in rule.resources)
        if wide:
            ctx.add("POL-BROAD-NONE", "high",
                    f"rules[{rule.index}] drops {'all' if not rule.resources else 'whole groups of'} requests of "
                    f"{', '.join(broad)} (almost every identity)",
                    "Narrow the None rule to specific users and noisy resources.", rule.index, C.AUDIT_POLICY)
    ctx.result("POL-BROAD-NONE", before)


def _noise_probes() -> list[tuple[str, Request]]:
    kp = P.Identity("system:kube-proxy", ("system:authenticated",), "kube-proxy")
    node = P.Identity("system:node:node-1", ("system:nodes", "system:authenticated"), "kubelet")
    kcm = P.Identity("system:kube-controller-manager", ("system:authenticated",), "controller-manager")
    sched = P.Identity("system:kube-scheduler", ("system:authenticated",), "scheduler")
    apis = P.Identity("system:apiserver", ("system:masters", "system:authenticated"), "apiserver")
    mon = P.Identity("system:serviceaccount:monitoring:prometheus",
                     ("system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"), "prom")
    out = [
        ("kube-proxy watches endpoints/services", P.resource_request(kp, "watch", "", "endpoints", namespace="")),
        ("kube-proxy watches endpointslices", P.resource_request(kp, "watch", "discovery.k8s.io", "endpointslices",
                                                                namespace="")),
        ("kubelets read their Node", P.resource_request(node, "get", "", "nodes", name="node-1")),
        ("kubelets update node status", P.resource_request(node, "patch", "", "nodes", "status", name="node-1")),
        ("kubelet heartbeat leases", P.resource_request(node, "update", "coordination.k8s.io", "leases",
                                                        namespace="kube-node-lease", name="node-1")),
        ("leader-election leases", P.resource_request(kcm, "update", "coordination.k8s.io", "leases",
                                                      namespace="kube-system", name="kube-controller-manager")),
        ("scheduler leader election", P.resource_request(sched, "get", "coordination.k8s.io", "leases",
                                                         namespace="kube-system", name="kube-scheduler")),
        ("apiserver reads namespaces", P.resource_request(apis, "get", "", "namespaces", name="default")),
        ("core events", P.resource_request(node, "create", "", "events", namespace="default")),
        ("health checks /healthz", P.non_resource_request(mon, "/healthz")),
        ("health checks /readyz", P.non_resource_request(mon, "/readyz")),
        ("health checks /livez", P.non_resource_request(mon, "/livez")),
        ("metrics scrapes /metrics", P.non_resource_request(mon, "/metrics")),
        ("version checks /version", P.non_resource_request(mon, "/version")),
    ]
    return out


def check_noise(ctx: _Ctx) -> None:
    kept = []
    for label, req in _noise_probes():
        d = ctx.policy.evaluate(req)
        if d.level != "None":
            kept.append((label, d))
    if kept:
        labels = ", ".join(label for label, _ in kept[:6]) + (" ..." if len(kept) > 6 else "")
        ctx.add("POL-NOISE-KEPT", "low", f"{len(kept)} kinds of known high-volume routine requests are logged: {labels}",
                "Drop them with narrow None rules near the top (see 'kubehawk policy generate').",
                kept[0][1].rule_index, C.GCE_POLICY)
    else:
        ctx.ok("POL-NOISE-KEPT")


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
PROBE_CHECKS: tuple[Callable[[_Ctx], None], ...] = (
    check_stages,
    check_secret_leaks,
    check_broad_none,
    check_noise,
    check_cis,
    check_stig_literal,
    check_nsa,
    check_pci,
    check_nist,
)


# --- flags -----------------------------------------------------------------------------------

_FLAG_IDS = ("CIS-1.2.16", "CIS-1.2.17", "CIS-1.2.18", "CIS-1.2.19", "STIG-V-242398", "STIG-V-242402",
             "STIG-V-242461", "STIG-V-242462", "STIG-V-242463", "STIG-V-242464", "STIG-V-242465", "NSA-LOG-1",
             "NSA-LOG-3", "NSA-LOG-4", "PCI-10.5.1")


def _flag_checks(ctx: _Ctx, f: ApiserverFlags | None) -> None:
    if f is None:
        for cid in _FLAG_IDS:
            ctx.report.skipped[cid] = "needs --apiserver-manifest"
        return
    src = f.source or "apiserver flags"

    def need_int(cid: str, flag: str, minimum: int, ref: str, sev: str = "high") -> None:
        v = f.int_flag(flag)
        raw = f.get(flag)
        if raw is None:
            ctx.add(cid, sev, f"{src}: --{flag} is not set (checks need the flag on the command line; the binary "
                    "default does not count)", f"Add --{flag}={max(minimum, 1)} or more.", None, ref)
        elif v is None or v < minimum:
            ctx.add(cid, sev, f"{src}: --{flag}={raw} is below {minimum}", f"Set --{flag}={minimum} or more.", None, ref)
        else:
            ctx.ok(cid)

    path = f.get("audit-log-path")
    if not path:
        ctx.add("CIS-1.2.16", "high", f"{src}: --audit-log-path is not set: the log backend is off",
                "Set --audit-log-path=/var/log/kubernetes/audit/audit.log.", None, "CIS Kubernetes 1.2.16")
        ctx.add("STIG-V-242402", "high", f"{src}: --audit-log-path is not set", "Set --audit-log-path.", None,
                "DISA STIG V-242402 (CNTR-K8-000610)")
    else:
        ctx.ok("STIG-V-242402")
        if path == "-":
            ctx.add("CIS-1.2.16", "low", f"{src}: --audit-log-path=- writes to stdout: passes CIS but not STIG",
                    "Write to a file on a host-mounted path.", None, "CIS Kubernetes 1.2.16")
        else:
            ctx.ok("CIS-1.2.16")
    if not path or path == "-" or not path.startswith("/"):
        ctx.add("STIG-V-242465", "medium", f"{src}: --audit-log-path {path!r} is not an absolute file path",
                "Use an absolute path on a hostPath mount.", None, "DISA STIG V-242465 (CNTR-K8-003320)")
    elif f.static_pod and not f.host_mounted(path):
        ctx.add("STIG-V-242465", "medium", f"{src}: {path} is not on a hostPath volume of the apiserver Pod: the log "
                "is lost with the container", "Mount the log directory from the host.", None,
                "DISA STIG V-242465 (CNTR-K8-003320)")
    else:
        ctx.ok("STIG-V-242465")
    need_int("CIS-1.2.17", "audit-log-maxage", 30, "CIS Kubernetes 1.2.17")
    need_int("CIS-1.2.18", "audit-log-maxbackup", 10, "CIS Kubernetes 1.2.18")
    need_int("CIS-1.2.19", "audit-log-maxsize", 100, "CIS Kubernetes 1.2.19")
    need_int("STIG-V-242464", "audit-log-maxage", 30, "DISA STIG V-242464 (CNTR-K8-003310)", "medium")
    need_int("STIG-V-242463", "audit-log-maxbackup", 10, "DISA STIG V-242463 (CNTR-K8-003300)", "medium")
    need_int("STIG-V-242462", "audit-log-maxsize", 100, "DISA STIG V-242462 (CNTR-K8-003290)", "medium")
    gates = f.feature_gates()
    if gates.get("DynamicAuditing", "").lower() == "true" or f.has("audit-dynamic-configuration"):
        ctx.add("STIG-V-242398", "high", f"{src}: dynamic auditing is enabled", "Remove DynamicAuditing and "
                "--audit-dynamic-configuration (removed in 1.19; a start-up error on modern releases).", None,
                "DISA STIG V-242398 (CNTR-K8-000450)")
    else:
        ctx.ok("STIG-V-242398")
    if not f.get("audit-policy-file"):
        ctx.add("STIG-V-242461", "critical", f"{src}: --audit-policy-file is not set: nothing is audited, whatever "
                "the backends", "Set --audit-policy-file.", None, "DISA STIG V-242461 (CNTR-K8-003280); CIS Kubernetes 3.2.1")
    elif ctx.policy is None or any(x.id == "POL-INVALID" for x in ctx.report.findings):
        ctx.add("STIG-V-242461", "critical", f"{src}: the audit policy does not load", "Fix the policy errors.", None,
                "DISA STIG V-242461 (CNTR-K8-003280)")
    else:
        ctx.ok("STIG-V-242461")
    webhook = f.get("audit-webhook-config-file")
    if f.get("audit-policy-file") and ((path and path != "") or webhook):
        ctx.ok("NSA-LOG-1")
    else:
        ctx.add("NSA-LOG-1", "critical", f"{src}: audit logging is not enabled (needs --audit-policy-file and a log "
                "or webhook backend)", "Set --audit-policy-file and --audit-log-path or --audit-webhook-config-file.",
                None, "NSA/CISA Kubernetes Hardening Guidance, App. M")
    maxage = f.int_flag("audit-log-maxage")
    ctx.add("NSA-LOG-3", "info", f"{src}: local retention --audit-log-maxage={f.get('audit-log-maxage') or 'unset'} "
            f"days (NSA/CISA example: 1825); {'logs are also shipped off-cluster' if webhook else 'no webhook backend'}",
            "Ship logs off-cluster for long retention.", None, "NSA/CISA Kubernetes Hardening Guidance, App. M")
    if not webhook:
        ctx.add("NSA-LOG-4", "medium", f"{src}: no --audit-webhook-config-file: logs stay on the control-plane node",
                "Ship the audit log to an external, append-only store (webhook backend or a node forwarder).", None,
                "NSA/CISA Kubernetes Hardening Guidance, App. N; PCI DSS v4.0 10.3")
    else:
        _check_webhook(ctx, webhook, f)
    if webhook:
        ctx.ok("PCI-10.5.1")
    elif maxage is None or maxage < 90:
        ctx.add("PCI-10.5.1", "medium", f"{src}: logs are local only and --audit-log-maxage is "
                f"{f.get('audit-log-maxage') or 'unset'} (< 90 days immediately available)",
                "Keep >= 90 days locally (maxage and maxsize x maxbackup) or ship off-cluster for 12 months.", None,
                "PCI DSS v4.0 10.5.1")
    else:
        ctx.ok("PCI-10.5.1")


def _check_webhook(ctx: _Ctx, path: str, f: ApiserverFlags) -> None:
    import yaml

    ref = "NSA/CISA Kubernetes Hardening Guidance, App. N"
    mode = f.get("audit-webhook-mode") or "batch"
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        ctx.add("NSA-LOG-4", "info", f"webhook kubeconfig {path} not readable here ({e.__class__.__name__}); TLS not "
                "checked", "Run the lint where the kubeconfig is readable.", None, ref)
        return
    before = len(ctx.report.findings)
    for c in (cfg or {}).get("clusters") or []:
        cl = (c or {}).get("cluster") or {}
        server = str(cl.get("server", ""))
        if not server.startswith("https://"):
            ctx.add("NSA-LOG-4", "high", f"{path}: webhook server {server!r} is not https", "Use TLS 1.2+.", None, ref)
        if cl.get("insecure-skip-tls-verify"):
            ctx.add("NSA-LOG-4", "high", f"{path}: insecure-skip-tls-verify is set", "Verify the receiver's "
                    "certificate (certificate-authority).", None, ref)
    if mode != "batch":
        ctx.add("NSA-LOG-4", "low", f"--audit-webhook-mode={mode}: every request waits for the receiver",
                "Use batch mode.", None, ref)
    ctx.result("NSA-LOG-4", before)
