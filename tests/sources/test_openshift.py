"""OpenShift: native audit files, log-forwarder records, node-logs output."""

from __future__ import annotations

import json

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

from helpers import SAMPLES, audit, need


def sample(name: str) -> str:
    return (need(SAMPLES / "openshift") / name).read_text()


def test_native_files_and_oauth_annotations():
    lines = sample("01-kube-apiserver-audit.log.jsonl").splitlines()
    evs = [e for line in lines for e in line_to_events(line.encode(), "audit.log")]
    assert [e.head.verb for e in evs] == ["get", "create"]
    (oauth,) = list(to_events(json.loads(sample("03-oauth-server-login-denied.json"))))
    assert oauth.head.annotations["authentication.openshift.io/decision"] == "deny"
    assert oauth.head.annotations["authentication.openshift.io/username"] == "kubeadmin"


def test_forwarder_record_with_kind_is_read_as_native():
    (ev,) = list(to_events(json.loads(sample("04-clusterlogforwarder-audit-record.json"))))
    assert ev.head.auditID == "8e0a2c4e-6a8c-4e0a-9c4e-6a8c0e2a4c6e" and ev.head.responseStatus["code"] == 403


def test_forwarder_record_without_kind_gets_provenance():
    rec = json.loads(sample("04-clusterlogforwarder-audit-record.json"))
    del rec["kind"], rec["stage"]
    (ev,) = list(to_events(rec))
    assert ev.head.verb == "get" and ev.ref("name") == "htpass-secret"
    assert ev.extra == {"source_type": "openshift", "cluster": {"id": "3f5a7c9e-1b3d-4f5a-8c9e-1b3d5f7a9c1e"},
                        "synthetic": [], "node": "master-1.ocp.example.internal", "log_source": "kubeAPI"}
    assert ev.top("log_type") is None  # forwarder keys are not Event fields


@pytest.mark.parametrize(("rec", "reason"), [
    ({"log_type": "audit", "log_source": "auditd", "hostname": "m1", "message": "type=SYSCALL msg=audit(1:2)"},
     "auditd"),
    ({"log_type": "audit", "log_source": "ovn", "hostname": "m1", "message": "acl_log verdict=drop"}, "ovn"),
    ({"log_type": "application", "hostname": "w1", "message": "hello"}, "application"),
])
def test_other_forwarded_records_are_skipped(rec, reason):
    with pytest.raises(SkipRecord, match=reason):
        list(to_events(rec))


def test_older_forwarder_message_string_and_junk():
    rec = {"log_type": "audit", "hostname": "m1", "message": json.dumps(audit(auditID="old"))}
    (ev,) = list(to_events(rec))
    assert ev.head.auditID == "old" and ev.extra["node"] == "m1"
    with pytest.raises(EventDecodeError):
        list(to_events({"log_type": "audit", "hostname": "m1", "message": "??"}))


def test_node_logs_prefixed_lines():
    line = ("master-0.ocp.example.internal " + json.dumps(audit(auditID="n1"))).encode()
    (ev,) = list(line_to_events(line, "node-logs:1"))
    assert ev.head.auditID == "n1" and ev.extra["node"] == "master-0.ocp.example.internal"
