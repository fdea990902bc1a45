"""Level names: one case-insensitive set everywhere, ``info`` accepted for ``informational``."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubehawk.config import ConfigError
from kubehawk.levels import LEVELS, parse_level
from kubehawk.policy.cli import policy
from kubehawk.sinks.config import build_sink_list

sys.path.insert(0, str(Path(__file__).parent / "policy"))
from policy_fixtures import GOOD  # noqa: E402

from test_cli import run  # noqa: E402


@pytest.mark.parametrize(("written", "level"), [("info", "informational"), ("INFO", "informational"),
                                                 ("Informational", "informational"), (" High ", "high"),
                                                 ("critical", "critical"), ("crit", None), ("", None), (3, None)])
def test_parse_level(written, level):
    assert parse_level(written) == level


def test_detect_min_level_takes_info_in_any_case(tmp_path):
    for written in ("info", "INFO", "informational", "Low"):
        r = run("detect", "--min-level", written, "--no-builtin", str(tmp_path / "none.log"))
        assert b"Invalid value for '--min-level'" not in r.stderr, written
    r = run("detect", "--min-level", "severe", str(tmp_path / "none.log"))
    assert r.returncode == 2 and b"'severe' is not a level" in r.stderr


def test_policy_lint_fail_on_takes_informational(tmp_path):
    f = tmp_path / "good.yaml"
    f.write_text(yaml.safe_dump(copy.deepcopy(GOOD), sort_keys=False))
    codes = {w: CliRunner().invoke(policy, ["lint", str(f), "--fail-on", w]).exit_code
             for w in ("info", "informational", "INFO", "Informational")}
    assert set(codes.values()) == {1}, codes  # the good policy still has low findings
    assert CliRunner().invoke(policy, ["lint", str(f), "--fail-on", "LOW"]).exit_code == 1


def test_output_min_level_in_the_config_takes_the_same_names():
    sinks = build_sink_list([{"type": "stdout", "min_level": "INFO"}, {"type": "stdout", "name": "b",
                                                                         "min_level": "High"}])
    assert [s.min_rank for s in sinks] == [0, 3]
    with pytest.raises(ConfigError, match="min_level"):
        build_sink_list([{"type": "stdout", "min_level": "loud"}])


def test_one_set_of_names():
    from kubehawk import alerts
    from kubehawk.rules import model

    assert alerts.LEVELS == model.LEVELS == LEVELS
