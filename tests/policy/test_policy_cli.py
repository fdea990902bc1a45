"""``kubehawk policy`` through click's runner and as real processes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from policy_fixtures import GOOD

from kubehawk.policy.cli import policy

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "src" / "kubehawk" / "policy" / "reference"
BIN = Path(sys.executable).parent


def invoke(*args: str):
    return CliRunner().invoke(policy, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def good_file(tmp_path):
    f = tmp_path / "good.yaml"
    f.write_text(yaml.safe_dump(copy.deepcopy(GOOD), sort_keys=False))
    return f


@pytest.fixture
def bad_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  users: alice\n")
    return f


def test_evaluate_table_and_json(good_file):
    r = invoke("evaluate", good_file, "-u", "alice", "-g", "devs", "--verb", "create", "-r", "pods", "-n", "bank")
    assert r.exit_code == 0
    assert "RequestResponse" in r.output and "rules[9]" in r.output
    r = invoke("evaluate", good_file, "--method", "GET", "--uri", "/api/v1/namespaces/bank/secrets", "-u", "alice",
               "--format", "json")
    out = json.loads(r.output)
    assert out["request"]["verb"] == "list" and out["decision"] == {
        "level": "Metadata", "omitStages": ["RequestReceived"], "omitManagedFields": False, "rule": 7}
    r = invoke("evaluate", good_file, "--path", "/healthz", "--format", "json")
    out = json.loads(r.output)
    assert out["request"]["user"] is None and out["decision"]["level"] == "None" and out["decision"]["rule"] == 0


def test_validate_exit_codes_and_messages(good_file, bad_file):
    r = invoke("validate", good_file, REFERENCE / "gke.yaml")
    assert r.exit_code == 0 and "valid (11 rules)" in r.output
    r = invoke("validate", good_file, bad_file)
    assert r.exit_code == 2
    assert f"{bad_file}:5: failed decoding: rules[0].users: expected a list of strings" in r.stderr
    r = invoke("validate", bad_file, "--format", "json")
    assert json.loads(r.stdout)[0]["valid"] is False
    r = invoke("validate", REFERENCE / "openshift-writerequestbodies.yaml")
    assert r.exit_code == 0 and "unknown field" in r.stderr


def test_lint_exit_codes(good_file, bad_file, tmp_path):
    assert invoke("lint", good_file).exit_code == 0
    r = invoke("lint", good_file, "--fail-on", "low")
    assert r.exit_code == 1  # the STIG literal deviation is low
    r = invoke("lint", REFERENCE / "openshift-writerequestbodies.yaml", "--format", "json")
    assert r.exit_code == 1
    found = {f["id"] for f in json.loads(r.stdout)["findings"]}
    assert {"POL-UNKNOWN-FIELD", "POL-UNKNOWN-RESOURCE"} <= found
    r = invoke("lint", bad_file)
    assert r.exit_code == 2 and f"{bad_file}:5:" in r.stderr
    r = invoke("lint", good_file, "--apiserver-manifest", tmp_path / "missing.yaml")
    assert r.exit_code == 2 and "cannot read the apiserver manifest" in r.stderr


def test_lint_table_shows_brackets(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: ['*']\n- level: Metadata\n")
    r = CliRunner(env={"COLUMNS": "300"}).invoke(policy, ["lint", str(f)])
    assert "rules[0].users ['*']" in r.output


def test_generate_then_validate_and_coverage(tmp_path):
    out = tmp_path / "gen.yaml"
    r = invoke("generate", "--profile", "balanced", "-o", out)
    assert r.exit_code == 0 and "wrote" in r.stderr
    assert invoke("validate", out).exit_code == 0
    r = invoke("coverage", out, "--format", "json", "--fail-under", "100")
    assert r.exit_code == 0
    summary = json.loads(r.stdout)["summary"]
    assert summary["fed"] == summary["rules"] > 0
    r = invoke("generate", "--format", "json", "--no-builtin")
    assert json.loads(r.stdout)["rules"][-1] == {"level": "Metadata"}


def test_coverage_reports_blind_rules_with_fixes():
    r = invoke("coverage", REFERENCE / "openshift-default.yaml", "--fail-under", "90")
    assert r.exit_code == 1
    assert "blind" in r.output and "fix:" in r.output
    r = invoke("coverage", REFERENCE / "openshift-default.yaml", "--format", "json")
    data = json.loads(r.stdout)
    blind = [x for x in data["rules"] if x["status"] == "blind"]
    assert blind and all(x["fix"].startswith("insert before rules[3]") for x in blind)


def test_simulate(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("\n".join(json.dumps(e) for e in _log()) + "\nnot json\n")
    pol = tmp_path / "p.yaml"
    pol.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    r = invoke("simulate", pol, log, "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["events"] == {"total": 2, "kept": 2, "dropped": 0}
    assert data["read"]["bad"] == 1 and "not json" not in r.stdout
    assert data["alerts"]["missed"] >= 1
    r = invoke("simulate", pol, log)
    assert "alerts the filtered log would miss" in r.output
    r = invoke("simulate", pol, tmp_path / "nope.log", "--no-alerts")
    assert r.exit_code == 2 and "cannot read" in r.stderr


def _log():
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}}
    base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "requestReceivedTimestamp": "2025-03-14T10:00:00Z", "stageTimestamp": "2025-03-14T10:00:01Z",
            "user": {"username": "alice", "groups": ["system:authenticated"]}, "sourceIPs": ["203.0.113.5"]}
    return [
        {**base, "auditID": "a1", "stage": "ResponseComplete", "verb": "create",
         "requestURI": "/api/v1/namespaces/default/pods", "requestObject": pod, "responseStatus": {"code": 201},
         "objectRef": {"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"}},
        {**base, "auditID": "a2", "stage": "ResponseComplete", "verb": "get", "requestURI": "/version",
         "responseStatus": {"code": 200}},
    ]


def test_errors_never_traceback_as_a_process(bad_file, good_file):
    r = subprocess.run([str(BIN / "python"), "-m", "kubehawk.policy.cli", "validate", str(bad_file)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and f"{bad_file}:5:" in r.stderr
    r = subprocess.run([str(BIN / "python"), "-m", "kubehawk.policy.cli", "evaluate", str(good_file), "-u", "bob",
                        "--verb", "delete", "-r", "secrets", "--name", "x", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["decision"]["level"] == "Metadata"


def test_console_script_registers_the_group(good_file):
    exe = BIN / "kubehawk"
    if not exe.exists():
        pytest.skip("kubehawk console script not installed in this environment")
    r = subprocess.run([str(exe), "policy", "lint", str(good_file), "--format", "json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "CIS-3.2.2a" in json.loads(r.stdout)["passed"]


def test_lint_table_numbers_its_links_and_prints_each_whole_once(tmp_path):
    import os
    import re

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted]\nrules:\n"
                   "- level: None\n  userGroups: [system:authenticated]\n"
                   "- level: Request\n  verbs: [create]\n  resources: [{group: '', resources: [pods/exec]}]\n")
    res = subprocess.run([str(BIN / "kubehawk"), "policy", "lint", str(bad)], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "80"})
    notes = re.findall(r"(?m)^\[(\d+)\] (https://\S+)", res.stdout)
    assert notes and [int(n) for n, _ in notes] == list(range(1, len(notes) + 1))
    assert len({u for _, u in notes}) == len(notes) and all("kubernetes" in u for _, u in notes)
    table = res.stdout.split("\n[1] ")[0]
    assert "https://" not in table and "[1]" in table
