"""Exit codes a CI job or a cron can rely on, and a summary that names what went wrong (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import test_cli
from test_cli import SAMPLE, exec_event, run

FIRST_SEEN = """title: First delete by an identity
name: test-first-deleter
logsource: {product: kubernetes, service: audit}
detection:
  selection: {verb: delete}
  condition: selection
baseline: {key: [], value: user.username}
level: medium
"""


rules_dir = test_cli.rules_dir  # the fixture: a folder with one exec rule


@pytest.fixture()
def rules(rules_dir: Path) -> Path:
    """A folder with one exec rule (test_cli's)."""
    return rules_dir


def _log(tmp_path: Path, *events: dict, name: str = "a.log") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(e) + "\n" for e in events))
    return p


def test_a_path_that_does_not_exist_is_exit_2_before_anything_is_loaded(tmp_path):
    res = run("detect", str(tmp_path / "nope.log"))
    assert res.returncode == 2
    assert res.stderr.decode().splitlines() == [f"kubehawk: {tmp_path / 'nope.log'}: no such file or directory"]


@pytest.mark.parametrize("content", [b"user,verb,resource\nalice,get,pods\nbob,list,secrets\n",
                                     bytes(range(256)) * 8, b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200])
def test_input_without_any_audit_event_is_exit_2(tmp_path, content, rules):
    f = tmp_path / "not-audit.csv"
    f.write_bytes(content)
    res = run("detect", "-q", "--no-builtin", "--rules", str(rules), str(f))
    assert res.returncode == 2
    assert "no audit event was recognised in the input" in res.stderr.decode()


def test_an_empty_log_is_not_an_error(tmp_path, rules):
    f = tmp_path / "empty.log"
    f.write_bytes(b"")
    assert run("detect", "--no-builtin", "--rules", str(rules), str(f)).returncode == 0


def test_fail_on_level(tmp_path, rules):
    log = _log(tmp_path, exec_event(1))  # the exec rule is high
    for level, code in (("high", 1), ("HIGH", 1), ("info", 1), ("medium", 1), ("critical", 0)):
        res = run("detect", "--no-builtin", "--rules", str(rules), "--fail-on", level, str(log))
        assert res.returncode == code, (level, res.stderr)
        assert len(res.stdout.splitlines()) == 1  # the alerts are still written
    res = run("detect", "--no-builtin", "--rules", str(rules), "--fail-on", "high", str(log))
    assert "1 alert(s) at or above high (--fail-on)" in res.stderr.decode()
    # below --min-level an alert is not raised, so it cannot fail the run either
    res = run("detect", "--no-builtin", "--rules", str(rules), "--min-level", "critical", "--fail-on", "low",
              str(log))
    assert res.returncode == 0


def test_strict_fails_on_a_rule_file_that_does_not_load(tmp_path, rules):
    (rules / "broken.yml").write_text("title: broken\nlogsource: {product: kubernetes, service: audit}\n"
                                      "detection: {condition: sel}\n")
    log = _log(tmp_path, exec_event(1))
    res = run("detect", "--no-builtin", "--rules", str(rules), str(log))
    assert res.returncode == 0 and "warning: rule not loaded" in res.stderr.decode()
    res = run("detect", "--strict", "--no-builtin", "--rules", str(rules), str(log))
    err = res.stderr.decode()
    assert res.returncode == 2 and "error: rule not loaded" in err and "broken.yml" in err
    assert res.stdout == b""  # nothing was read


def test_quiet_summary_still_names_the_files_with_bad_records(tmp_path, rules):
    good = _log(tmp_path, exec_event(1), name="good.log")
    bad = tmp_path / "bad.log"
    bad.write_text("{broken\n" * 7 + json.dumps(exec_event(2)) + "\n")
    res = run("detect", "-q", "--no-builtin", "--rules", str(rules), str(good), str(bad))
    err = res.stderr.decode().splitlines()
    assert res.returncode == 0
    assert not any("warning" in line for line in err)
    assert f"kubehawk: bad records in {bad} (7)" in err


def test_the_memory_baseline_note_only_when_a_first_seen_rule_matched(tmp_path):
    rules = tmp_path / "fs"
    rules.mkdir()
    (rules / "fs.yml").write_text(FIRST_SEEN)
    quiet_log = _log(tmp_path, exec_event(1), exec_event(2), name="quiet.log")
    res = run("detect", "--no-builtin", "--rules", str(rules), str(quiet_log))
    assert "baseline.path" not in res.stderr.decode()
    deletes = _log(tmp_path, *(exec_event(i, verb="delete", objectRef={"resource": "pods", "name": f"p{i}"})
                               for i in range(5)), name="deletes.log")
    res = run("detect", "--no-builtin", "--rules", str(rules), str(deletes))
    assert res.stderr.decode().count("no baseline.path") == 1


def test_sample_runs_clean_with_exit_0():
    res = run("detect", "--format", "json", str(SAMPLE))
    assert res.returncode == 0 and res.stdout
