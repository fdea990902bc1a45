"""What a policy lint produces, and the context each check writes to.

A check (:mod:`.lint_structure`, :mod:`.lint_probes`, :mod:`.lint_flags`) takes a :class:`_Ctx`
(the policy, the options, a memo of probe decisions) and adds :class:`Finding` objects, or
records its ids as passed, to one :class:`LintReport`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from kubehawk.policy import probes as P
from kubehawk.policy.model import Policy
from kubehawk.policy.request import Request

__all__ = ["SEVERITIES", "SEVERITY_RANK", "Finding", "LintOptions", "LintReport"]

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
