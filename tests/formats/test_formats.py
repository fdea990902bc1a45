"""ECS, OCSF and Falco output of real alerts (the bundled sample and Falco's fixtures), checked
against the official ECS field list and OCSF schema."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from schemas import ecs_errors, ocsf_errors

from kubehawk.config import Config
from kubehawk.detect import Detector
from kubehawk.formats import ALERT_FORMATS, alert_parts, key_of, parse_time, render
from kubehawk.sources.files import ReadStats, read_paths

from helpers import CORPUS, REPO, need

KUBEHAWK = str(Path(sys.executable).with_name("kubehawk"))
SAMPLE = REPO / "examples" / "sample-audit.log"


@lru_cache(maxsize=2)
def _alerts(which: str) -> list[tuple[dict, dict | None]]:
    if which == "sample":
        config, paths = Config.load(REPO / "examples" / "kubehawk.yaml"), [str(SAMPLE)]
    else:
        config, paths = None, [str(need(CORPUS / "falco"))]
    det = Detector(config=config)
    try:
        return [alert_parts(a) for a in det.alerts(read_paths(paths, ReadStats()))]
    finally:
        det.close()


@pytest.mark.parametrize("which", ["sample", "falco"])
def test_ecs_fields_are_ecs_fields(which: str) -> None:
    alerts = _alerts(which)
    assert len(alerts) > 10
    for alert, event in alerts:
        doc = render(alert, "ecs", event)
        assert ecs_errors(doc) == [], alert["rule"]["title"]
        assert doc["event"]["kind"] == "alert" and doc["rule"]["id"] == alert["rule"]["id"]
        assert json.loads(doc["event"]["original"])["auditID"] == alert["auditID"]
        assert ecs_errors(render(alert, "ecs")) == []  # without the event too


def test_ecs_check_catches_a_made_up_field_and_a_bad_value() -> None:
    alert, event = _alerts("sample")[0]
    doc = render(alert, "ecs", event)
    doc["kubernetes"] = {"audit": {"verb": "get"}}
    doc["source"]["ip"] = "not-an-ip"
    doc["event"]["kind"] = "finding"
    errors = "\n".join(ecs_errors(doc))
    assert "kubernetes.audit.verb: not an ECS field" in errors
    assert "source.ip: expected an IP address" in errors
    assert "event.kind: 'finding' is not one of the allowed values" in errors


def test_ecs_source_ip_is_an_ip_or_only_an_address() -> None:
    alert, _ = _alerts("sample")[0]
    doc = render({**alert, "sourceIP": "proxy.internal"}, "ecs")
    assert ecs_errors(doc) == []
    assert doc["source"] == {"address": "proxy.internal"} and "ip" not in doc.get("related", {})


def test_ecs_threat_splits_subtechniques() -> None:
    alert = next(a for a, _ in _alerts("sample") if any("." in t for t in a["attack"]))
    doc = render(alert, "ecs")
    sub = [t for t in alert["attack"] if "." in t]
    assert doc["threat"]["technique"]["subtechnique"]["id"] == sorted(sub)
    assert {s.split(".")[0] for s in sub} <= set(doc["threat"]["technique"]["id"])
    assert doc["threat"]["framework"] == "MITRE ATT&CK"


@pytest.mark.parametrize("which", ["sample", "falco"])
def test_ocsf_findings_validate_against_the_schema(which: str) -> None:
    for alert, event in _alerts(which):
        doc = render(alert, "ocsf", event)
        assert ocsf_errors(doc) == [], alert["rule"]["title"]
        assert doc["class_uid"] == 2004 and doc["type_uid"] == 200401
        assert doc["evidences"][0]["data"] == event  # the original event as evidence
        assert doc["time"] == int(parse_time(alert["time"]).timestamp() * 1000)
        assert ocsf_errors(render(alert, "ocsf")) == []


def test_ocsf_check_rejects_what_the_schema_does_not_define() -> None:
    alert, event = _alerts("sample")[0]
    doc = render(alert, "ocsf", event)
    doc["finding_info"]["mitre"] = "T1610"
    doc["severity_id"] = 9
    errors = "\n".join(ocsf_errors(doc))
    assert "mitre" in errors and "severity_id" in errors


def test_falco_shape_is_falcos_json_output() -> None:
    falco_priorities = {"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}
    for alert, event in _alerts("sample"):
        doc = render(alert, "falco", event, hostname="h")
        assert {"output", "priority", "rule", "time", "source", "hostname", "tags", "output_fields"} <= set(doc)
        assert doc["priority"] in falco_priorities and doc["source"] == "k8s_audit"
        assert parse_time(doc["time"]) is not None
        assert doc["output_fields"]["ka.auditid"] == alert["auditID"]


@pytest.mark.parametrize("fmt", ALERT_FORMATS)
def test_key_of_reads_the_identity_back(fmt: str) -> None:
    alert, event = _alerts("sample")[3]
    assert key_of(render(alert, fmt, event), fmt) == (alert["rule"]["id"], alert["auditID"])


@pytest.mark.parametrize("fmt", ["ecs", "ocsf", "falco"])
def test_detect_format_on_the_command_line(fmt: str) -> None:
    base = [KUBEHAWK, "detect", "--config", str(REPO / "examples/kubehawk.yaml"), str(SAMPLE)]
    plain = subprocess.run([*base, "--format", "json"], capture_output=True, text=True, timeout=120, check=True)
    shaped = subprocess.run([*base, "--format", fmt], capture_output=True, text=True, timeout=120, check=True)
    alerts = [json.loads(x) for x in plain.stdout.splitlines()]
    docs = [json.loads(x) for x in shaped.stdout.splitlines()]
    assert len(docs) == len(alerts) > 10
    assert [key_of(d, fmt) for d in docs] == [(a["rule"]["id"], a["auditID"]) for a in alerts]
    if fmt == "ocsf":
        assert all(ocsf_errors(d) == [] for d in docs)
        assert all(d["evidences"][0]["data"]["auditID"] == a["auditID"] for d, a in zip(docs, alerts, strict=True))
    if fmt == "ecs":
        assert all(ecs_errors(d) == [] for d in docs)
