"""The CLI as a user meets it: a real subprocess of the installed ``kubehawk`` command."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, audit

KUBEHAWK = Path(sys.executable).with_name("kubehawk")
SAMPLE = REPO / "examples" / "sample-audit.log"
CONFIG = REPO / "examples" / "kubehawk.yaml"

RULE = """
title: Exec into a pod (test rule)
id: 0b4a3f7e-8a7d-4c1e-9d55-1f1f00000001
name: test-exec
status: test
level: high
logsource: {product: kubernetes, service: audit}
tags: [attack.execution, attack.t1609, ms-k8s.ms-ta9006]
message: "{user.username} ran {x.exec.command_line} in {objectRef.namespace}/{objectRef.name}"
detection:
  sel:
    objectRef.resource: pods
    objectRef.subresource: exec
    verb: [create, get]
  condition: sel
"""


def run(*args: str, stdin: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(KUBEHAWK), *args], input=stdin, capture_output=True, timeout=120, env=env,
                          check=check)


def exec_event(i: int, **kw) -> dict:
    fields = {"auditID": f"id-{i}", "verb": "create",
              "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "web", "name": "api"},
              "requestURI": "/api/v1/namespaces/web/pods/api/exec?command=sh&tty=true"}
    return audit(**{**fields, **kw})


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "exec.yml").write_text(RULE)
    return d


def test_demo_sample_raises_alerts_in_json():
    res = run("detect", "--format", "json", "--config", str(CONFIG), str(SAMPLE), check=True)
    alerts = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert alerts, res.stderr.decode()
    assert {"rule", "techniques", "attack", "auditID", "message"} <= set(alerts[0])
    levels = {a["rule"]["level"] for a in alerts}
    assert levels & {"high", "critical"}
    summary = res.stderr.decode()
    assert "620 events read" in summary and "0 bad records" in summary


def test_piped_output_is_json_and_table_on_request(rules_dir, tmp_path):
    log = tmp_path / "a.log"
    log.write_text(json.dumps(exec_event(1)) + "\n")
    piped = run("detect", "--no-builtin", "--rules", str(rules_dir), str(log), check=True)
    assert json.loads(piped.stdout)["message"] == "alice ran sh in web/api"
    table = run("detect", "--no-builtin", "--rules", str(rules_dir), "--format", "table", str(log), check=True)
    assert "Exec into a pod" in table.stdout.decode() and "alert" in table.stdout.decode()


def test_stdin_gzip_dirs_and_dedup(rules_dir, tmp_path):
    started = exec_event(7, stage="ResponseStarted")
    done = exec_event(7)
    data = (json.dumps(started) + "\n" + json.dumps(done) + "\n").encode()
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), "-", stdin=data, check=True)
    assert len(res.stdout.decode().splitlines()) == 1  # one alert per (rule, auditID)
    logs = tmp_path / "logs" / "nested"
    logs.mkdir(parents=True)
    with gzip.open(logs / "audit-1.log.gz", "wt") as fh:
        fh.write(json.dumps(exec_event(8)) + "\n")
    (logs / "audit.log").write_text(json.dumps(exec_event(9)) + "\n")
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), str(tmp_path / "logs"), check=True)
    assert sorted(json.loads(x)["auditID"] for x in res.stdout.decode().splitlines()) == ["id-8", "id-9"]


def test_bad_lines_warn_count_and_strict(rules_dir, tmp_path):
    log = tmp_path / "mixed.log"
    log.write_text("\n".join([json.dumps(exec_event(1)), "{broken", json.dumps(exec_event(2, verb=5)),
                              json.dumps(exec_event(3))]) + "\n")
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), str(log))
    err = res.stderr.decode()
    assert res.returncode == 0
    assert f"{log}:2" in err and f"{log}:3" in err and "verb" in err
    assert "2 bad records" in err
    assert len(res.stdout.decode().splitlines()) == 2
    assert run("detect", "--strict", "--no-builtin", "--rules", str(rules_dir), str(log)).returncode == 1


def test_min_level_and_output_file(rules_dir, tmp_path):
    log = tmp_path / "a.log"
    log.write_text(json.dumps(exec_event(1)) + "\n")
    out = tmp_path / "alerts.jsonl"
    run("detect", "--no-builtin", "--rules", str(rules_dir), "-o", str(out), str(log), check=True)
    assert json.loads(out.read_text())["rule"]["level"] == "high"
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), "--min-level", "critical", str(log), check=True)
    assert res.stdout == b""


def test_user_mistakes_are_clear_errors_not_tracebacks(tmp_path):
    bad_cfg = tmp_path / "k.yaml"
    bad_cfg.write_text("timezone: Mars/Base\n")
    res = run("detect", "--config", str(bad_cfg), str(SAMPLE))
    assert res.returncode == 2 and b"timezone" in res.stderr and b"Traceback" not in res.stderr
    bad_rules = tmp_path / "bad"
    bad_rules.mkdir()
    (bad_rules / "broken.yml").write_text("title: x\ndetection: {condition: nope}\n")
    res = run("detect", "--no-builtin", "--rules", str(bad_rules), str(SAMPLE))
    assert b"broken.yml" in res.stderr and b"Traceback" not in res.stderr
    res = run("detect", str(tmp_path / "missing.log"))
    assert b"missing.log" in res.stderr and b"Traceback" not in res.stderr


def test_rules_list_and_show(rules_dir):
    res = run("rules", "list", "--no-builtin", "--rules", str(rules_dir), "--format", "json", check=True)
    rows = json.loads(res.stdout)
    assert rows == [{"id": "0b4a3f7e-8a7d-4c1e-9d55-1f1f00000001", "name": "test-exec",
                     "title": "Exec into a pod (test rule)", "level": "high", "kind": "event",
                     "techniques": ["MS-TA9006"], "attack": ["T1609"], "audit_level": "Metadata",
                     "source": str(rules_dir / "exec.yml")}]
    shown = run("rules", "show", "test-exec", "--rules", str(rules_dir), check=True).stdout.decode()
    assert "Exec into a pod" in shown and "MS-TA9006" in shown
    assert run("rules", "show", "no-such-rule").returncode == 1


def test_rules_show_prints_only_that_rules_yaml_from_a_file_of_many():
    rows = json.loads(run("rules", "list", "--format", "json", check=True).stdout)
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["source"], []).append(r)
    many = max(by_file.values(), key=len)
    assert len(many) > 2
    target = many[len(many) // 2]  # neither the first nor the last document of its file
    shown = run("rules", "show", target["id"], check=True).stdout.decode()
    yaml_part = shown.split(f"# {target['source']}\n", 1)[1]
    assert f"id: {target['id']}" in yaml_part and f"title: {target['title']}" in yaml_part
    others = [r["id"] for r in many if r["id"] != target["id"]]
    assert not any(o in shown for o in others)


def test_builtin_pack_loads():
    rows = json.loads(run("rules", "list", "--format", "json", check=True).stdout)
    assert len(rows) >= 4
    assert all(r["techniques"] for r in rows if r["kind"] == "event")


def test_request_received_stage_is_not_judged(rules_dir):
    """A RequestReceived event has no outcome yet; only its completed twin may alert."""
    data = (json.dumps(exec_event(1, stage="RequestReceived")) + "\n").encode()
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), "-", stdin=data, check=True)
    assert res.stdout == b""


def test_follow_streams_new_lines_and_stops_on_sigterm(rules_dir, tmp_path):
    import signal
    import time

    log = tmp_path / "audit.log"
    log.write_text(json.dumps(exec_event(1)) + "\n")
    proc = subprocess.Popen([str(KUBEHAWK), "detect", "--follow", "--no-builtin", "--rules", str(rules_dir),
                             "--format", "json", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        with log.open("a") as fh:
            fh.write(json.dumps(exec_event(2)) + "\n")
        log.rename(tmp_path / "audit.log.1")  # rotation by rename, then a new file
        (tmp_path / "audit.log").write_text(json.dumps(exec_event(3)) + "\n")
        deadline = time.time() + 20
        lines: list[bytes] = []
        while len(lines) < 2 and time.time() < deadline:
            lines.append(proc.stdout.readline())
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    ids = [json.loads(x)["auditID"] for x in [*lines, *out.splitlines()] if x.strip()]
    assert ids == ["id-2", "id-3"]  # follow starts at the end, survives rotation
    assert b"events read" in err and proc.returncode == 0


def test_evidence_points_at_the_record_behind_each_alert(rules_dir, tmp_path):
    log = tmp_path / "audit.log"
    noise = json.dumps(audit(auditID="quiet"))
    hit = json.dumps({**exec_event(1), "x-extra": 1})
    log.write_text(f"{noise}\n{hit}\n")
    res = run("detect", "--evidence", "--no-builtin", "--rules", str(rules_dir), "--format", "json", str(log),
              check=True)
    (alert,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert alert["evidence"] == {"origin": f"{log}:2", "event": json.loads(hit)}
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), "--format", "json", str(log), check=True)
    assert "evidence" not in json.loads(res.stdout)


def test_regex_redos_rule_is_refused_at_load_not_run_on_a_crafted_user_agent(tmp_path):
    # (a+)+ then a lookbehind: RE2 cannot compile it, Python's engine takes exponential time on
    # "aaaa…!"; the rule is refused with the file and the feature named, the run never starts it
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "redos.yml").write_text(RULE.replace("objectRef.resource: pods", "userAgent|re: '^(a+)+(?<!x)$'"))
    log = tmp_path / "a.log"
    log.write_text(json.dumps(exec_event(1, userAgent="a" * 40 + "!")) + "\n")
    res = subprocess.run([str(KUBEHAWK), "detect", "--no-builtin", "--rules", str(rules), str(log)],
                         capture_output=True, timeout=60)
    err = res.stderr.decode()
    assert "redos.yml" in err and "lookahead or lookbehind" in err and "RE2" in err, err
    assert "Traceback" not in err


def test_rule_naming_a_field_no_event_holds_is_a_load_warning_and_the_run_goes_on(rules_dir, tmp_path):
    (rules_dir / "sigmahq.yml").write_text(RULE.replace("0b4a3f7e-8a7d-4c1e-9d55-1f1f00000001",
                                                        "0b4a3f7e-8a7d-4c1e-9d55-1f1f00000002")
                                           .replace("name: test-exec", "name: odd")
                                           .replace("objectRef.resource: pods", "hostPath: '/etc'"))
    log = tmp_path / "a.log"
    log.write_text(json.dumps(exec_event(1)) + "\n")
    res = run("detect", "--no-builtin", "--rules", str(rules_dir), str(log))
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert f"{rules_dir / 'sigmahq.yml'}: " in err and "'hostPath'" in err and "warning" in err
    assert len(res.stdout.decode().splitlines()) == 1  # the good rule still alerts


@pytest.mark.parametrize("value", [5, True, ["a", 1], {"ns": "web"}])
def test_wrong_typed_object_ref_gets_a_warning_and_an_alert_and_the_run_goes_on(tmp_path, value):
    # the default message (a rule without message:) used to stop detect with a TypeError
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "plain.yml").write_text(RULE.replace("message:", "x-message:"))
    log = tmp_path / "a.log"
    odd = exec_event(1)
    odd["objectRef"]["namespace"] = value
    log.write_text("\n".join(json.dumps(e) for e in (exec_event(0), odd, exec_event(2))) + "\n")
    res = run("detect", "--format", "json", "--no-builtin", "--rules", str(rules), str(log))
    err = res.stderr.decode()
    assert res.returncode == 0 and "Traceback" not in err, err
    alerts = [json.loads(x) for x in res.stdout.decode().splitlines()]
    assert [a["auditID"] for a in alerts] == ["id-0", "id-1", "id-2"]
    shown = json.dumps(value, separators=(",", ":"))
    assert f" {shown}/api" in alerts[1]["message"] and alerts[1]["namespace"] == value
    assert f"{log}:2: objectRef.namespace is {type(value).__name__} {shown}, not a string" in err
    assert "1 alerted records with odd values" in err
