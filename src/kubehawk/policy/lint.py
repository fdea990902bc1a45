"""Lint an audit policy: compliance items (CIS, DISA STIG, NSA/CISA, PCI DSS, NIST SP 800-190)
and the rules that do something other than what they read like.

Policy checks evaluate the policy on synthetic requests (:mod:`kubehawk.policy.probes`)
so the apiserver's first-match order and literal matching are honoured exactly; flag
checks read a kube-apiserver static-pod manifest when one is given.
"""

from __future__ import annotations

from pathlib import Path

from kubehawk.policy import citations as C
from kubehawk.policy.citations import cite
from kubehawk.policy.findings import SEVERITY_RANK, Finding, LintOptions, LintReport, _Ctx
from kubehawk.policy.flags import ApiserverFlags
from kubehawk.policy.lint_flags import _flag_checks
from kubehawk.policy.lint_probes import PROBE_CHECKS
from kubehawk.policy.lint_structure import STRUCTURE_CHECKS
from kubehawk.policy.model import Policy, PolicyError

__all__ = ["Finding", "LintOptions", "LintReport", "lint_file", "lint_policy"]

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
                        None, cite(C.POLICY_API, "CIS Kubernetes 3.2.1", "DISA STIG V-242461"), line)
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
