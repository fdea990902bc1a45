"""Lint checks that evaluate the policy on synthetic requests (:mod:`kubehawk.policy.probes`),
so the apiserver's first-match order and literal matching are honoured exactly: stages, secrets
in the log, the compliance items (CIS, DISA STIG, NSA/CISA, PCI DSS, NIST SP 800-190); with
the volume checks of :mod:`.lint_volume`, in the order the report lists them."""

from __future__ import annotations

from collections.abc import Callable

from kubehawk.policy import citations as C
from kubehawk.policy import probes as P
from kubehawk.policy.catalog import CATALOG, SENSITIVE_CAPS
from kubehawk.policy.citations import cite
from kubehawk.policy.findings import _Ctx, _examples, _first_rule
from kubehawk.policy.lint_volume import check_broad_none, check_noise
from kubehawk.policy.model import level_rank

__all__ = ["PROBE_CHECKS"]

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
