"""``kubehawk investigate``: the story of one identity or of what happened around one event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubehawk.event import event_from_dict
from kubehawk.filters import build_filter
from kubehawk.investigate.story import Fold, collect, fold

from helpers import REPO, audit

KUBEHAWK = str(Path(sys.executable).with_name("kubehawk"))
SAMPLE = str(REPO / "examples" / "sample-audit.log")
CONFIG = str(REPO / "examples" / "kubehawk.yaml")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBEHAWK, "investigate", *args], capture_output=True, text=True, timeout=120)


def _ev(i: int, **kw) -> dict:
    return audit(auditID=f"a-{i}", stageTimestamp=f"2026-11-23T10:00:{i:02d}.000000Z", **kw)


def test_repeats_fold_and_stages_merge() -> None:
    events = [_ev(0, verb="get", objectRef={"resource": "secrets", "namespace": "bank", "name": "s"})]
    events += [_ev(i, verb="watch", objectRef={"resource": "configmaps", "namespace": "bank"}) for i in range(1, 6)]
    # one request seen at two stages is one step, with the last stage's answer
    events.append(_ev(9, stage="RequestReceived", verb="delete", responseStatus=None,
                      objectRef={"resource": "pods", "namespace": "bank", "name": "p"}))
    events.append(_ev(9, verb="delete", responseStatus={"code": 403},
                      objectRef={"resource": "pods", "namespace": "bank", "name": "p"}))
    steps = collect((event_from_dict(e) for e in events), build_filter(user=("alice",)).matches)
    assert [s.verb for s in steps] == ["get"] + ["watch"] * 5 + ["delete"]
    assert steps[-1].code == 403 and steps[-1].stage == "ResponseComplete"
    items = fold(steps)
    assert isinstance(items[1], Fold) and items[1].text == "… 4 more watch requests on configmaps in bank"
    assert len(items) == 3


def test_odd_field_types_in_a_record_do_not_break_the_story(tmp_path: Path) -> None:
    log = tmp_path / "odd.log"
    odd = _ev(1, objectRef={"resource": "pods", "namespace": 7, "name": ["x"]}, responseStatus={"code": "200"})
    log.write_text(json.dumps(odd) + "\n" + json.dumps(_ev(2)) + "\n")
    res = run("--user", "alice", "--no-alerts", "--format", "json", str(log))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    first = json.loads(res.stdout)["events"][0]
    assert first["namespace"] == "7" and first["code"] is None
    text = run("--user", "alice", "--no-alerts", str(log))
    assert text.returncode == 0 and "pods 7/['x']" in text.stdout


def test_the_story_of_one_identity_with_alerts_inline() -> None:
    res = run("--user", "mallory", "--config", CONFIG, "--format", "json", SAMPLE)
    assert res.returncode == 0, res.stderr
    story = json.loads(res.stdout)
    assert story["query"] == {"user": ["mallory"]} and story["events_read"] == 620
    assert {e["user"] for e in story["events"]} == {"mallory"}
    assert story["alerts"] == sum(len(e["alerts"]) for e in story["events"]) > 5
    honey = next(e for e in story["events"] if e["resource"] == "secrets")
    assert any(a["level"] == "critical" for a in honey["alerts"])
    text = run("--user", "mallory", "--config", CONFIG, SAMPLE).stdout
    assert "▲ CRITICAL Honeytoken" in text and "create pods/exec kube-system/" in text


def test_around_one_event(tmp_path: Path) -> None:
    every = json.loads(run("--user", "mallory", "--no-alerts", "--format", "json", SAMPLE).stdout)["events"]
    anchor = next(e for e in every if e["resource"] == "clusterrolebindings")
    html = tmp_path / "story.html"
    res = run("--alert", anchor["auditID"], "--window", "5m", "--format", "json", "--html", str(html),
              "--config", CONFIG, SAMPLE)
    assert res.returncode == 0, res.stderr
    story = json.loads(res.stdout)
    assert story["query"]["alert"] == anchor["auditID"] and story["query"]["user"] == "mallory"
    assert [e["auditID"] for e in story["events"] if e.get("anchor")] == [anchor["auditID"]]
    ids = {e["auditID"] for e in story["events"]}
    assert {e["auditID"] for e in every} <= ids  # every request of that identity within the window
    assert all(e["user"] == "mallory" or e["sourceIP"] == "203.0.113.66" or e["name"] == "backup-admin"
               for e in story["events"])
    page = html.read_text()
    assert "Content-Security-Policy" in page and f"alert={anchor['auditID']}" in page
    assert f'<b id="step-count">{len(story["events"])}</b>' in page
    assert page.count('class="step anchor"') + page.count('class="step has-alert anchor"') == 1
    text = run("--alert", anchor["auditID"], "--window", "5m", "--config", CONFIG, SAMPLE).stdout
    (marked,) = [line for line in text.splitlines() if "◀ the event investigated" in line]
    assert "create clusterrolebindings backup-admin" in marked


def test_mistakes_are_one_line_errors() -> None:
    none = run(SAMPLE)
    assert none.returncode == 2 and "say whom or what to investigate" in none.stderr
    missing = run("--alert", "no-such-id", SAMPLE)
    assert missing.returncode == 1 and "no event with auditID 'no-such-id'" in missing.stderr
    window = run("--alert", "x", "--window", "soon", SAMPLE)
    assert window.returncode == 2 and "--window: expected a duration" in window.stderr
    for r in (none, missing, window):
        assert "Traceback" not in r.stderr


def test_a_missing_path_is_one_line_and_exit_2(tmp_path):
    """As detect: nothing can be read from a path that is not there (it used to exit 0)."""
    res = run("--user", "alice", str(tmp_path / "nope.log"))
    assert res.returncode == 2 and "nope.log: no such file or directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_around_one_event_read_from_standard_input(tmp_path: Path) -> None:
    """--alert reads its input twice: standard input (plain or gzip) is kept in a temporary file
    meanwhile, removed at the end; the story is the one the file gives."""
    import gzip
    import os

    every = json.loads(run("--user", "mallory", "--no-alerts", "--format", "json", SAMPLE).stdout)["events"]
    anchor = next(e for e in every if e["resource"] == "clusterrolebindings")["auditID"]
    args = ["--alert", anchor, "--window", "5m", "--format", "json", "--config", CONFIG]
    want = json.loads(run(*args, SAMPLE).stdout)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    data = Path(SAMPLE).read_bytes()
    for stdin in (data, gzip.compress(data)):
        res = subprocess.run([KUBEHAWK, "investigate", *args, "-"], input=stdin, capture_output=True, timeout=120,
                             env=env)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got["events"] == want["events"] and got["query"] == want["query"]
        assert not list(tmp_path.iterdir())  # the copy of stdin is gone
