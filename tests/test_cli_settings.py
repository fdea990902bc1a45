"""Settings that do nothing are reported; tuned rules show in `rules list` (issue 15, items 6, 9, 10)."""

from __future__ import annotations

import json
from pathlib import Path

from kubehawk.config import Config
from kubehawk.rules import load_rules
from kubehawk.unused import unused_settings
from test_cli import SAMPLE, run

TUNED = """\
rules:
  privileged-container: {enabled: false}
  secret-access-denied-burst: {level: High}
  exec-suspicious-command:
    exceptions: [{user.username: "system:serviceaccount:ci:*", objectRef.namespace: ci}]
"""


def test_rules_list_reports_the_tuning(tmp_path: Path):
    cfg = tmp_path / "k.yaml"
    cfg.write_text(TUNED)
    res = run("rules", "list", "--config", str(cfg), "--format", "json")
    assert res.returncode == 0
    tuning = {r["name"]: r["tuning"] for r in json.loads(res.stdout) if r["tuning"]}
    assert tuning == {"privileged-container": "disabled", "secret-access-denied-burst": "level high",
                      "exec-suspicious-command": "1 exception"}


def test_detect_honours_the_tuning(tmp_path: Path):
    base = [json.loads(x) for x in run("detect", "--format", "json", str(SAMPLE)).stdout.splitlines()]
    names = {a["rule"]["name"] for a in base}
    assert "privileged-container" in names  # the sample has one
    cfg = tmp_path / "k.yaml"
    cfg.write_text("rules: {privileged-container: {enabled: false}}\n")
    tuned = [json.loads(x) for x in run("detect", "--format", "json", "--config", str(cfg), str(SAMPLE)).stdout
             .splitlines()]
    assert "privileged-container" not in {a["rule"]["name"] for a in tuned}
    assert len(tuned) == len(base) - sum(a["rule"]["name"] == "privileged-container" for a in base)


def test_settings_that_do_nothing_are_named(tmp_path: Path):
    cfg = tmp_path / "k.yaml"
    cfg.write_text("allowlists: {privilegd: [{namespace: kube-system}], privileged: [{namespace: x}]}\n"
                   "outputs: [{type: stdout}]\nserver: {port: 9443}\n"
                   "rules: {privilegd-container: {enabled: false}}\n")
    res = run("detect", "--config", str(cfg), str(SAMPLE))
    err = res.stderr.decode()
    assert res.returncode == 0
    assert f"{cfg}: allowlists.privilegd: no loaded rule reads this allowlist" in err
    assert "did you mean privileged?" in err
    assert "allowlists.privileged:" not in err
    assert f"{cfg}: outputs: ignored by `kubehawk detect`" in err and "--output" in err
    assert f"{cfg}: server: ignored by `kubehawk detect`" in err
    assert "rules.privilegd-container: no loaded rule" in err and "did you mean privileged-container" in err
    res = run("rules", "list", "--config", str(cfg), "--format", "json")
    assert "outputs: ignored" not in res.stderr.decode() and "allowlists.privilegd" in res.stderr.decode()


def test_allowlists_read_by_placeholder_count_as_read(tmp_path: Path):
    rule = tmp_path / "r.yml"
    rule.write_text("title: t\nname: t\nlogsource: {product: kubernetes, service: audit}\n"
                    "detection:\n  sel: {user.username|expand: '%allowlist_admins_user%'}\n  condition: sel\n")
    cfg = Config.from_dict({"allowlists": {"admins": [{"user": "alice"}], "nobody": [{"user": "bob"}]}})
    rs = load_rules(paths=[rule], builtin=False, variables=cfg.vars)
    notes = unused_settings(cfg, rs, "detect")
    assert len(notes) == 1 and "allowlists.nobody" in notes[0]
