"""``kubehawk report`` without a browser: what the file holds, from a log or from alert lines,
with a policy, capped; and the clustering of attack steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import yaml

from kubehawk.report.model import build_data

from helpers import REPO

KUBEHAWK = str(Path(sys.executable).with_name("kubehawk"))
SAMPLE = str(REPO / "examples" / "sample-audit.log")
CONFIG = str(REPO / "examples" / "kubehawk.yaml")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBEHAWK, *args], capture_output=True, text=True, timeout=240)


def _alert(i: int, user: str, rule: str, minute: int, level: str = "high") -> dict:
    return {"rule": {"id": rule, "title": f"rule {rule}", "level": level}, "techniques": ["MS-TA9018"],
            "attack": ["T1610"], "auditID": f"a{i}", "time": f"2026-11-23T10:{minute:02d}:00Z", "user": user,
            "verb": "create", "resource": "pods", "subresource": None, "namespace": "bank", "name": f"p{i}",
            "sourceIP": "10.0.0.1", "userAgent": "kubectl", "message": f"m{i}"}


def test_report_from_a_log_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = run("report", "--config", CONFIG, "-o", str(out), SAMPLE)
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    alerts = [json.loads(x) for x in run("detect", "--format", "json", "--config", CONFIG, SAMPLE).stdout.splitlines()]
    assert html.count('<tbody class="alert"') == len(alerts)
    assert '<b id="kpi-events">620</b>' in html
    assert "default-src 'none'" in unescape(html)  # the browser may fetch nothing
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "@import" not in html and "url(" not in html
    assert html.count('<g class="cluster"') == 2  # the sample's two attack chains
    assert 'class="lvl-critical"' in html and "Honeytoken" in html
    assert f"{len(alerts)} alerts" in res.stderr


def test_report_from_alert_lines_warns_on_bad_ones(tmp_path: Path) -> None:
    lines = run("detect", "--format", "json", "--config", CONFIG, SAMPLE).stdout.splitlines()
    src = tmp_path / "alerts.jsonl"
    src.write_text("\n".join([lines[0], "{not json", '{"rule": "x"}', *lines[1:]]) + "\n")
    out = tmp_path / "r.html"
    res = run("report", "--alerts", str(src), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"{src}:2: not JSON" in res.stderr and f"{src}:3: not an alert" in res.stderr
    html = out.read_text()
    assert html.count('<tbody class="alert"') == len(lines)
    assert "Not available: the report was built from alert JSON lines" in html
    assert "n/a" in html  # events read: unknown from alert lines


def test_alert_lines_of_the_wrong_shape_never_break_the_report(tmp_path: Path) -> None:
    odd = [{"rule": {"id": 7, "title": None, "level": ["high"]}, "time": 1732350000, "techniques": "MS-TA9018",
            "attack": None, "user": {"name": "x"}, "namespace": 3, "message": None},
           {"rule": {}, "time": "not a time"}, {"rule": {"title": "<script>alert(1)</script>", "level": "high"}}]
    src = tmp_path / "odd.jsonl"
    src.write_text("\n".join(json.dumps(a) for a in odd) + "\n")
    out = tmp_path / "r.html"
    res = run("report", "--alerts", str(src), "-o", str(out))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    html = out.read_text()
    assert html.count('<tbody class="alert"') == 3
    high = run("report", "--alerts", str(src), "--min-level", "high", "-o", str(out))
    assert high.returncode == 0 and "Traceback" not in high.stderr, high.stderr
    assert out.read_text().count('<tbody class="alert"') == 1  # only the line whose level is "high"
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_with_a_policy_shows_blind_spots_and_leaks(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "None", "resources": [{"group": "", "resources": ["pods"]}]},
        {"level": "RequestResponse"}]}))
    out = tmp_path / "r.html"
    res = run("report", "--config", CONFIG, "--policy", str(policy), "-o", str(out), SAMPLE)
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    cov = json.loads(run("policy", "coverage", str(policy), "--config", CONFIG, "--format", "json").stdout)
    s = cov["summary"]
    assert s["blind"] and f"leaves <b class=\"lvl-text-medium\">{s['partial']}</b> partly blind" in html
    assert f"<b class=\"lvl-text-high\">{s['blind']}</b> blind" in html
    blind_rows = re.search(r'<table id="policy-blind">.*?</table>', html, re.S).group(0)
    assert blind_rows.count("<tr>") - 1 == sum(1 for r in cov["rules"] if r["status"] != "fed" and r["gap_count"])
    leaks = re.search(r'<ul id="policy-leaks">.*?</ul>', html, re.S).group(0)
    assert "logs secrets at RequestResponse" in leaks


def test_policy_the_apiserver_refuses_is_an_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    # a log too long to read before failing: the policy is checked first
    res = run("report", "--policy", str(policy), "-o", str(tmp_path / "r.html"), "/dev/zero")
    assert not (tmp_path / "r.html").exists()
    assert res.returncode == 2 and "Traceback" not in res.stderr and "kubehawk report: error:" in res.stderr


def test_cap_keeps_the_most_severe_and_counts_the_rest() -> None:
    alerts = [(_alert(i, f"u{i % 3}", f"r{i % 4}", i % 60, level="critical" if i % 10 == 0 else "low"), None)
              for i in range(40)]
    data = build_data(alerts, rules={}, source="t", cap=8)
    assert len(data.rows) == 8 and data.total_alerts == 40
    assert sum(r.level == "critical" for r in data.rows) == 4  # all four critical alerts are listed
    assert sum(g["count"] for g in data.aggregated) == 32
    assert [r.time for r in data.rows] == sorted(r.time for r in data.rows)


def test_attack_chains_cluster_one_identitys_close_alerts() -> None:
    alerts = [_alert(1, "eve", "a", 0), _alert(2, "eve", "b", 10), _alert(3, "eve", "a", 24),  # gaps <= 15 min
              _alert(4, "eve", "c", 50),  # 26 minutes later: not part of it
              _alert(5, "bob", "a", 1), _alert(6, "bob", "a", 2), _alert(7, "bob", "a", 3)]  # one rule only
    data = build_data([(a, None) for a in alerts], rules={}, source="t")
    (chain,) = data.clusters
    assert chain.user == "eve" and [r.rule_id for r in chain.rows] == ["a", "b", "a"]
    assert {r.index for r in data.rows if r.cluster == 1} == {r.index for r in chain.rows}


def test_usage_mistakes() -> None:
    both = run("report", "-o", "x.html", "--alerts", "a.jsonl", SAMPLE)
    assert both.returncode == 2 and "either audit log PATHS or --alerts" in both.stderr
    neither = run("report", "-o", "x.html")
    assert neither.returncode == 2 and "nothing to report on" in neither.stderr


def test_a_missing_log_path_is_one_line_and_exit_2(tmp_path):
    """As detect: nothing can be read from a path that is not there (it used to write an empty report)."""
    res = run("report", "-o", str(tmp_path / "r.html"), str(tmp_path / "nope.log"))
    assert res.returncode == 2 and "nope.log: no such file or directory" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "r.html").exists()
