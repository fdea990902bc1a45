"""`rules show` takes what a person types: a name, an id, or a unique start of either."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubehawk.detect import load_ruleset
from kubehawk.rulefind import RuleNotFound, find_rule, short_ids
from test_cli import RULE, run


@pytest.fixture()
def two_rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "exec.yml").write_text(RULE)
    other = RULE.replace("0b4a3f7e-8a7d-4c1e-9d55-1f1f00000001", "0b4a3f7e-0000-4c1e-9d55-1f1f00000002")
    (d / "attach.yml").write_text(other.replace("name: test-exec", "name: test-attach")
                                  .replace("Exec into a pod (test rule)", "Attach to a pod (test rule)"))
    return d


def test_find_by_name_id_and_unique_prefix(two_rules):
    rules = load_ruleset(rule_paths=[two_rules], builtin=False)
    assert find_rule(rules, "test-exec").name == "test-exec"
    assert find_rule(rules, "test-ex").name == "test-exec"
    assert find_rule(rules, "TEST-AT").name == "test-attach"
    assert find_rule(rules, "0b4a3f7e-8").name == "test-exec"
    with pytest.raises(RuleNotFound, match=r"'test-' is the start of 2 rules: .*test-exec"):
        find_rule(rules, "test-")
    with pytest.raises(RuleNotFound, match=r"did you mean test-exec\b"):
        find_rule(rules, "test-exce")


def test_short_ids_are_unique_prefixes_of_at_least_eight():
    ids = ["0b4a3f7e-8a7d", "0b4a3f7e-0000", "c29d3c24-1111"]
    assert short_ids(ids) == {"0b4a3f7e-8a7d": "0b4a3f7e-8", "0b4a3f7e-0000": "0b4a3f7e-0", "c29d3c24-1111": "c29d3c24"}


def test_rules_show_on_the_command_line(two_rules):
    shown = run("rules", "show", "test-ex", "--rules", str(two_rules), check=True).stdout.decode()
    assert "test-exec" in shown and "Exec into a pod" in shown
    res = run("rules", "show", "test-exce", "--rules", str(two_rules))
    assert res.returncode == 1 and b"did you mean test-exec" in res.stderr and b"Traceback" not in res.stderr
    # the built-in pack: a typo of a real name gets that name back
    res = run("rules", "show", "privilegd-pod")
    assert b"did you mean" in res.stderr and b"privileged-" in res.stderr
