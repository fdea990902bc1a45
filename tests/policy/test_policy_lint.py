"""Each lint check: a policy that fails it and one that passes it."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import yaml
from policy_fixtures import GOOD

from kubehawk.policy import Policy
from kubehawk.policy.flags import ApiserverFlags, ManifestError, parse_args
from kubehawk.policy.lint import LintOptions, lint_file, lint_policy
from kubehawk.policy.lint_structure import shadows

LAST = -1  # index of the catch-all in GOOD


def run(d: dict, **opts):
    return lint_policy(Policy.from_dict(d, check=False), options=LintOptions(**opts) if opts else None)


def ids(report) -> set[str]:
    return {f.id for f in report.findings}


def test_good_policy_is_clean():
    r = run(copy.deepcopy(GOOD))
    serious = [f for f in r.findings if f.severity not in ("info", "low")]
    assert serious == []
    # Only the STIG literal deviation (and informational notes) remain.
    assert {f.id for f in r.findings if f.severity == "low"} == {"STIG-V-242403"}
    assert "CIS-3.2.2a" in r.passed and "POL-SHADOWED" in r.passed
    assert set(r.skipped) >= {"CIS-1.2.17", "STIG-V-242464"}


def _set(path: list, value) -> Callable[[dict], None]:
    def f(d: dict) -> None:
        cur = d
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = value

    return f


def _insert(i: int, rule: dict) -> Callable[[dict], None]:
    return lambda d: d["rules"].insert(i, rule)


def _remove(i: int) -> Callable[[dict], None]:
    return lambda d: d["rules"].pop(i)


def _none_first(rule: dict) -> Callable[[dict], None]:
    return _insert(0, {"level": "None", **rule})


CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("POL-INVALID", _insert(0, {"level": "Foo"}), "critical"),
    ("POL-LITERAL-WILDCARD", _insert(0, {"level": "None", "users": ["*"]}), "medium"),
    ("POL-LITERAL-WILDCARD", _insert(0, {"level": "None", "resources": [{"resources": ["secrets"],
                                                                          "resourceNames": ["*"]}]}), "medium"),
    ("POL-DEAD-PATTERN", _insert(0, {"level": "None", "resources": [{"resources": ["*/*"]}]}), "medium"),
    ("POL-UNKNOWN-RESOURCE", _insert(0, {"level": "None", "resources": [{"group": "", "resources": ["deployments"]}]}),
     "medium"),
    ("POL-UNKNOWN-RESOURCE", _insert(0, {"level": "None", "resources": [
        {"group": "authentication.k8s.io", "resources": ["tokenrequests"]}]}), "medium"),
    ("POL-RESOURCENAMES-NAMELESS", _insert(0, {"level": "None", "verbs": ["create", "list"], "resources": [
        {"resources": ["configmaps"], "resourceNames": ["x"]}]}), "high"),
    ("POL-EXEC-CREATE-ONLY", _insert(0, {"level": "RequestResponse", "verbs": ["create"],
                                         "resources": [{"resources": ["pods/exec", "pods/attach"]}]}), "high"),
    ("POL-NAMESPACE-OBJECT", _insert(0, {"level": "Request", "namespaces": [""],
                                         "resources": [{"resources": ["namespaces"]}]}), "low"),
    ("POL-NONRESOURCE-LEVEL", _insert(0, {"level": "RequestResponse", "nonResourceURLs": ["/logs*"]}), "info"),
    ("POL-NO-CATCHALL", _remove(LAST), "medium"),
    ("POL-CATCHALL-NOT-LAST", _insert(3, {"level": "Metadata"}), "high"),
    ("POL-SHADOWED", _insert(9, {"level": "Request", "verbs": ["create"],
                                 "resources": [{"group": "rbac.authorization.k8s.io", "resources": ["roles"]}]}),
     "medium"),
    ("POL-OMIT-RESPONSESTARTED", _set(["omitStages"], ["RequestReceived", "ResponseStarted"]), "high"),
    ("POL-OMIT-RESPONSECOMPLETE", _set(["omitStages"], ["ResponseComplete"]), "high"),
    ("POL-OMIT-PANIC", _set(["omitStages"], ["RequestReceived", "Panic"]), "medium"),
    ("POL-REQUESTRECEIVED", _set(["omitStages"], []), "low"),
    ("POL-SECRET-LEAK", _set(["rules", 7, "level"], "RequestResponse"), "high"),
    ("POL-SECRET-LEAK", _insert(0, {"level": "Request", "verbs": ["update"],
                                    "resources": [{"resources": ["configmaps"]}]}), "medium"),
    ("POL-BROAD-NONE", _none_first({"userGroups": ["system:authenticated"], "resources": [{"group": "apps"}]}), "high"),
    ("POL-NOISE-KEPT", lambda d: [d["rules"].pop(0) for _ in range(7)], "low"),
    ("CIS-3.2.1", _set(["rules", LAST, "level"], "None"), "high"),
    ("CIS-3.2.2a", _insert(0, {"level": "None", "resources": [{"resources": ["secrets"]}]}), "high"),
    ("CIS-3.2.2b", _none_first({"verbs": ["delete"], "resources": [{"resources": ["pods"]}]}), "high"),
    ("CIS-3.2.2c", _none_first({"verbs": ["get"], "resources": [{"resources": ["pods/exec"]}]}), "high"),
    ("CIS-3.2.2d", _none_first({"resources": [{"resources": ["services"]}]}), "medium"),
    ("NSA-LOG-2", _none_first({"resources": [{"group": "rbac.authorization.k8s.io"}]}), "high"),
    ("NSA-LOG-5", _none_first({"userGroups": ["system:unauthenticated"]}), "medium"),
    ("NSA-LOG-5", _set(["rules", 9, "level"], "Metadata"), "medium"),
    ("PCI-10.2.1", _none_first({"nonResourceURLs": ["/logs*"]}), "high"),
    ("PCI-10.2.1.2", _none_first({"userGroups": ["system:masters"], "verbs": ["get"]}), "high"),
    ("PCI-10.2.1.4", _none_first({"verbs": ["get"], "resources": [{"resources": ["pods"]}]}), "high"),
    ("PCI-10.2.1.5", _none_first({"verbs": ["create"], "resources": [{"resources": ["serviceaccounts/token"]}]}),
     "high"),
    ("PCI-10.2.1.7", _none_first({"verbs": ["create"], "resources": [{"resources": ["namespaces"]}]}), "high"),
    ("PCI-10.2.2", _set(["rules", LAST, "omitStages"], ["ResponseComplete"]), "high"),
    ("NIST-800-190-4.3.1", _set(["rules", 8, "level"], "Metadata"), "low"),
    ("NIST-800-190-4.3.2", _set(["omitStages"], ["ResponseStarted"]), "high"),
    ("NIST-800-190-4.4.3", _set(["rules", 9, "level"], "Metadata"), "medium"),
]


@pytest.mark.parametrize(("check", "mutate", "severity"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_fails_on_a_bad_policy_and_passes_on_the_good_one(check, mutate, severity):
    d = copy.deepcopy(GOOD)
    mutate(d)
    bad = run(d)
    found = [f for f in bad.findings if f.id == check]
    assert found, f"{check} not reported: {[(f.id, f.message) for f in bad.findings]}"
    assert severity in {f.severity for f in found}
    assert all(f.message and f.fix and f.reference for f in found)
    good = run(copy.deepcopy(GOOD))
    assert check not in ids(good) or check == "NSA-LOG-2"


def test_pci_cardholder_namespaces_option():
    d = copy.deepcopy(GOOD)
    d["rules"].insert(0, {"level": "None", "namespaces": ["cards"], "verbs": ["get", "list", "watch"]})
    assert "PCI-10.2.1.1" not in ids(run(d))
    assert "PCI-10.2.1.1" in ids(run(d, chd_namespaces=("cards",)))


def test_pci_admin_groups_option():
    d = copy.deepcopy(GOOD)
    d["rules"].insert(0, {"level": "None", "userGroups": ["sre"], "verbs": ["list"]})
    assert "PCI-10.2.1.2" not in ids(run(d))
    assert "PCI-10.2.1.2" in ids(run(d, admin_groups=("system:masters", "sre")))


def test_unknown_and_duplicate_fields(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(GOOD, sort_keys=False).replace("resources:\n  - group: ''\n    resources:\n    - events",
                                                               "resources:\n  - group: ''\n    resource:\n    - events")
                 + "omitStages: [RequestReceived]\n")
    r = lint_file(f)
    unknown = [x for x in r.findings if x.id == "POL-UNKNOWN-FIELD"]
    assert len(unknown) == 1 and unknown[0].severity == "high" and unknown[0].line
    assert "resource" in unknown[0].message and unknown[0].rule_index == 6
    assert [x.id for x in r.findings if x.id == "POL-DUPLICATE-FIELD"]
    assert "POL-UNKNOWN-FIELD" in run(copy.deepcopy(GOOD)).passed


def test_stig_literal_policy_passes_stig_but_leaks_secrets():
    r = run({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "RequestResponse"}]})
    assert "STIG-V-242403" in r.passed
    assert "POL-SECRET-LEAK" in ids(r)


def test_invalid_policy_skips_probe_checks(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metdata\n")
    r = lint_file(f)
    assert ids(r) == {"POL-INVALID"}
    assert r.findings[0].line == 4 and r.findings[0].rule_index == 0
    assert "secret_leaks" in r.skipped
    g = tmp_path / "bad.yaml"
    g.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: [\n")
    assert ids(lint_file(g)) == {"POL-INVALID"}


def test_shadowing_relation():
    def rule(**kw):
        return Policy.from_dict({"rules": [{"level": "None", **kw}]}, check=False).rules[0]

    assert shadows(rule(), rule(users=["a"]))
    assert shadows(rule(resources=[{"group": "*"}]), rule(resources=[{"group": "apps", "resources": ["x"]}]))
    assert shadows(rule(resources=[{"resources": ["pods/*"]}]), rule(resources=[{"resources": ["pods", "pods/log"]}]))
    assert not shadows(rule(resources=[{"resources": ["pods"]}]), rule(resources=[{"resources": ["pods/log"]}]))
    assert not shadows(rule(users=["a"]), rule())
    assert not shadows(rule(verbs=["get"]), rule(verbs=["get", "list"]))
    assert shadows(rule(nonResourceURLs=["/health*"]), rule(nonResourceURLs=["/healthz", "/healthz/x*"]))
    assert not shadows(rule(nonResourceURLs=["/healthz"]), rule(resources=[{"resources": ["pods"]}]))
    assert not shadows(rule(resources=[{"resources": ["secrets"], "resourceNames": ["a"]}]),
                       rule(resources=[{"resources": ["secrets"]}]))


# --- apiserver flags -------------------------------------------------------------------------

GOOD_FLAGS = [
    "kube-apiserver", "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log", "--audit-log-maxage=90", "--audit-log-maxbackup=10",
    "--audit-log-maxsize=100", "--audit-webhook-config-file=/nonexistent/webhook.kubeconfig",
]


def manifest(tmp_path, args: list[str], mount: str = "/var/log/kubernetes/audit"):
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
        "spec": {
            "containers": [{"name": "kube-apiserver", "command": args,
                            "volumeMounts": [{"name": "audit-log", "mountPath": mount}]}],
            "volumes": [{"name": "audit-log", "hostPath": {"path": "/var/log/kubernetes/audit"}}],
        },
    }
    f = tmp_path / "kube-apiserver.yaml"
    f.write_text(yaml.safe_dump(pod))
    return ApiserverFlags.load(f)


FLAG_CASES = [
    ("CIS-1.2.16", lambda a: [x for x in a if not x.startswith("--audit-log-path")]),
    ("CIS-1.2.16", lambda a: [*a, "--audit-log-path=-"]),
    ("STIG-V-242402", lambda a: [x for x in a if not x.startswith("--audit-log-path")]),
    ("CIS-1.2.17", lambda a: [x for x in a if not x.startswith("--audit-log-maxage")]),
    ("STIG-V-242464", lambda a: [*a, "--audit-log-maxage=7"]),
    ("CIS-1.2.18", lambda a: [*a, "--audit-log-maxbackup=3"]),
    ("STIG-V-242463", lambda a: [*a, "--audit-log-maxbackup=3"]),
    ("CIS-1.2.19", lambda a: [*a, "--audit-log-maxsize=0"]),
    ("STIG-V-242462", lambda a: [x for x in a if not x.startswith("--audit-log-maxsize")]),
    ("STIG-V-242398", lambda a: [*a, "--feature-gates=Foo=true,DynamicAuditing=true"]),
    ("STIG-V-242461", lambda a: [x for x in a if not x.startswith("--audit-policy-file")]),
    ("STIG-V-242465", lambda a: [*a, "--audit-log-path=/tmp/audit.log"]),
    ("NSA-LOG-1", lambda a: [x for x in a if not x.startswith(("--audit-policy-file",))]),
    ("NSA-LOG-4", lambda a: [x for x in a if not x.startswith("--audit-webhook-config-file")]),
    ("PCI-10.5.1", lambda a: [x for x in a if not x.startswith("--audit-webhook-config-file")] + ["--audit-log-maxage=30"]),
]


@pytest.mark.parametrize(("check", "mutate"), FLAG_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FLAG_CASES)])
def test_flag_checks(tmp_path, check, mutate):
    pol = Policy.from_dict(copy.deepcopy(GOOD))
    good = lint_policy(pol, manifest(tmp_path, GOOD_FLAGS))
    assert check in good.passed or check == "NSA-LOG-4", [(f.id, f.message) for f in good.findings if f.id == check]
    bad = lint_policy(pol, manifest(tmp_path, mutate(list(GOOD_FLAGS))))
    assert check in ids(bad)
    assert check not in bad.passed


def test_webhook_kubeconfig_tls(tmp_path):
    kc = tmp_path / "wh.kubeconfig"
    kc.write_text(yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": "http://sink:8080",
                                                                         "insecure-skip-tls-verify": True}}]}))
    args = [x for x in GOOD_FLAGS if not x.startswith("--audit-webhook")] + [f"--audit-webhook-config-file={kc}"]
    r = lint_policy(Policy.from_dict(copy.deepcopy(GOOD)), manifest(tmp_path, args))
    msgs = [f.message for f in r.findings if f.id == "NSA-LOG-4"]
    assert any("not https" in m for m in msgs) and any("insecure-skip-tls-verify" in m for m in msgs)
    kc.write_text(yaml.safe_dump({"clusters": [{"name": "c", "cluster": {"server": "https://sink:8443"}}]}))
    r = lint_policy(Policy.from_dict(copy.deepcopy(GOOD)), manifest(tmp_path, args))
    assert "NSA-LOG-4" in r.passed


def test_flags_from_plain_arguments_and_errors(tmp_path):
    assert parse_args(["--a=1", "--b", "2", "--c", "--d=x=y"]) == {"a": "1", "b": "2", "c": "true", "d": "x=y"}
    f = tmp_path / "args.txt"
    f.write_text("kube-apiserver \\\n  --audit-log-path=/var/log/a.log \\\n  --audit-log-maxage 30\n")
    flags = ApiserverFlags.load(f)
    assert flags.get("audit-log-path") == "/var/log/a.log" and flags.int_flag("audit-log-maxage") == 30
    assert not flags.static_pod
    bad = tmp_path / "x.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: web\n    image: nginx\n")
    with pytest.raises(ManifestError, match="no kube-apiserver container"):
        ApiserverFlags.load(bad)
    with pytest.raises(ManifestError, match="cannot read"):
        ApiserverFlags.load(tmp_path / "missing.yaml")


# --- citations: sources a user can open, never files kubehawk does not ship -----------------

_PUBLIC = __import__("re").compile(
    r"https://(kubernetes\.io|github\.com/kubernetes)/|CIS Kubernetes \d|DISA STIG V-\d|NSA/CISA Kubernetes Hardening"
    r"|PCI DSS v4\.0 \d|NIST SP 800-190 \d")
_INTERNAL = __import__("re").compile(r"\.md\b|\.go\b|policy\.md|reference policy|checker|reader")


def _public(reference: str) -> bool:
    parts = reference.split("; ")
    return all(_PUBLIC.search(p) and not _INTERNAL.search(p) for p in parts)


def test_every_reference_in_the_linter_is_a_public_source():
    """Every reference the linter can give (each call site, read from its source, with the
    constants it names resolved), not only those a test policy happens to trigger."""
    import ast
    import inspect

    from kubehawk.policy import (
        citations,
        findings,
        lint,
        lint_flags,
        lint_probes,
        lint_structure,
        lint_volume,
    )

    tree = ast.Module(body=[n for m in (lint, findings, lint_structure, lint_probes, lint_volume, lint_flags)
                            for n in ast.parse(inspect.getsource(m)).body], type_ignores=[])
    env = {"C": citations, "cite": citations.cite}
    refs: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        pos = {"add": 5, "_fail_below": 7, "need_int": 3, "_failed_authn": 2, "Finding": 5}.get(name)
        if pos is None or len(node.args) <= pos:
            continue
        arg = node.args[pos]
        if isinstance(arg, ast.Name):  # a parameter or a local prefix: checked where it is given
            continue
        if isinstance(arg, ast.BinOp):  # ref + "4.3.1 ...": the NIST prefix
            arg = arg.right
            refs.append("NIST SP 800-190 " + eval(compile(ast.Expression(arg), "<ref>", "eval"), env))
            continue
        refs.append(eval(compile(ast.Expression(arg), "<ref>", "eval"), env))
    assert len(refs) > 50
    bad = [r for r in refs if not _public(r)]
    assert bad == []


def test_findings_of_a_bad_policy_cite_public_sources():
    bad = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["ResponseStarted", "Panic"],
           "rules": [{"level": "None", "userGroups": ["system:authenticated"]},
                     {"level": "RequestResponse", "resources": [{"group": "", "resources": ["secrets", "*/*"],
                                                                  "resourceNames": ["a*"]}]},
                     {"level": "Request", "verbs": ["create"], "resources": [{"resources": ["pods/exec"]}]},
                     {"level": "Metadata", "nonResourceURLs": ["/healthz"]}]}
    report = run(bad)
    assert len(report.findings) >= 8
    assert [f.reference for f in report.findings if not _public(f.reference)] == []
    assert any("kubernetes.io/docs" in f.reference for f in report.findings)
