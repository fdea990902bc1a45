"""`kubehawk rules validate DIR` and `kubehawk rules test DIR` (issue 15, item 10)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_cli  # noqa: E402
from kubehawk.rules import BUILTIN_DIR, load_rules  # noqa: E402
from test_cli import run  # noqa: E402

EXEC_EVENT = """\
    kind: Event
    apiVersion: audit.k8s.io/v1
    auditID: {aid}
    stage: ResponseStarted
    verb: create
    requestURI: /api/v1/namespaces/web/pods/api/exec?command=sh
    user: {{username: alice}}
    objectRef: {{resource: pods, namespace: web, name: api, subresource: {sub}}}
    stageTimestamp: "2025-06-03T10:00:00Z"
"""


def _tests(*cases: tuple[str, bool, str]) -> str:
    out = []
    for name, alert, sub in cases:
        out.append(f"- name: {name}\n  alert: {str(alert).lower()}\n  event:\n"
                   + EXEC_EVENT.format(aid=name.replace(" ", "-"), sub=sub))
    return "".join(out)


rules_dir = test_cli.rules_dir  # the fixture: a folder with one exec rule


@pytest.fixture()
def rules(rules_dir: Path) -> Path:
    """A folder with one exec rule (test_cli's)."""
    return rules_dir


def test_the_built_in_pack_validates_and_its_examples_pass():
    res = run("rules", "validate", str(BUILTIN_DIR))
    assert res.returncode == 0, res.stderr
    assert b": ok" in res.stdout
    res = run("rules", "test", str(BUILTIN_DIR))
    assert res.returncode == 0, res.stdout
    out = res.stdout.decode()
    assert "0 failed" in out and "9 passed" in out


def test_examples_files_are_never_loaded_as_rules():
    assert list(BUILTIN_DIR.glob("*.tests.yml"))
    rs = load_rules(builtin=True)
    assert all(not str(r.source).endswith(".tests.yml") for r in rs.rules)


def test_rules_test_reports_a_failing_example_with_exit_1(rules):
    (rules / "exec.tests.yml").write_text(_tests(("exec alerts", True, "exec"), ("logs do not", False, "log")))
    res = run("rules", "test", "-v", str(rules))
    assert res.returncode == 0, res.stdout
    assert b"2 passed, 0 failed; 1 rule(s) tested" in res.stdout
    (rules / "exec.tests.yml").write_text(_tests(("exec alerts", True, "exec"), ("logs alert", True, "log")))
    res = run("rules", "test", str(rules))
    assert res.returncode == 1
    out = res.stdout.decode()
    assert "FAIL test-exec: logs alert" in out and "expected an alert, got none" in out and "case 2" in out


def test_rules_test_names_a_broken_examples_file_with_exit_2(rules):
    (rules / "exec.tests.yml").write_text("- alert: maybe\n  event: {verb: get}\n")
    res = run("rules", "test", str(rules))
    assert res.returncode == 2
    assert f"{rules / 'exec.tests.yml'}: case 1: `alert:` must be true or false" in res.stderr.decode()
    res = run("rules", "validate", str(rules))
    assert res.returncode == 2 and b"`alert:` must be true or false" in res.stderr


def test_validate_reports_load_errors_and_fields_no_event_has(rules):
    (rules / "typo.yml").write_text("title: typo\nname: typo\nlogsource: {product: kubernetes, service: audit}\n"
                                    "detection:\n  sel: {objectRef.resources: secrets, usr.username: bob,"
                                    " x.no_such: true}\n  condition: sel\n")
    (rules / "broken.yml").write_text("title: broken\nlogsource: {product: kubernetes, service: audit}\n"
                                      "detection: {condition: sel}\n")
    res = run("rules", "validate", str(rules))
    err = res.stderr.decode()
    assert res.returncode == 2
    assert "broken.yml" in err
    assert "objectRef.resources: objectRef has no field 'resources'" in err
    assert "usr.username: an audit event has no field 'usr'" in err
    assert "x.no_such: no such derived field" in err
    assert "3 rules" not in res.stdout.decode()  # the broken one did not load
