"""Yandex Managed Kubernetes: Audit Trails events and Cloud Logging entries."""

from __future__ import annotations

import json

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources.normalize import SkipRecord, to_events

from helpers import SAMPLES, audit, need

EXEC_ID = "0a2c4e6a-8c0e-4a2c-8e6a-8c0e2a4c6e8a"


def sample(name: str):
    return json.loads((need(SAMPLES / "yandex") / name).read_text())


def test_audit_trails_event_code_string_becomes_int():
    (ev,) = list(to_events(sample("01-audit-trails-k8s-data-event.json")))
    assert ev.head.auditID == EXEC_ID and ev.head.responseStatus == {"metadata": {}, "code": 101}
    assert ev.get("x.exec.command") == ["sh"]
    assert ev.extra["cluster"] == {"id": "cat0example0cluster1", "cloud_id": "b1g0example0cloud01",
                                   "folder_id": "b1g0example0folder1", "name": "prod-k8s"}
    assert ev.extra["cloud_identity"]["subject_name"] == "sam.ops@example.com"
    assert ev.extra["source_type"] == "yandex" and ev.head.annotations == sample(
        "01-audit-trails-k8s-data-event.json")["details"]["native_api_server_event"]["annotations"]


def test_bucket_object_array_with_a_non_k8s_event():
    arr = sample("02-audit-trails-bucket-object.json")
    iam = {"event_id": "e2", "event_source": "iam", "event_type": "yandex.cloud.audit.iam.CreateServiceAccount",
           "details": {"service_account_name": "x"}}
    got = []
    for i, item in enumerate([*arr, iam]):
        try:
            got.extend(to_events(item, f"o[{i}]"))
        except SkipRecord as e:
            got.append(str(e))
    assert got[0].head.auditID == EXEC_ID
    assert "CreateServiceAccount" in got[1] and "not a Kubernetes API server event" in got[1]


def test_cloud_logging_trigger_and_entries():
    (ev,) = list(to_events(sample("03-cloud-logging-trigger-invocation.json")))
    assert ev.head.auditID == EXEC_ID and ev.extra["cluster"] == {"id": "cat0example0cluster1"}
    entry = {"uid": "u1", "resource": {"type": "k8s.cluster", "id": "c1"}, "timestamp": "2025-03-14T15:00:01Z",
             "level": "INFO", "message": "", "json_payload": audit(auditID="jp"), "stream_name": "audit"}
    (ev,) = list(to_events(entry))
    assert ev.head.auditID == "jp" and ev.extra["entry_id"] == "u1"
    other = {"uid": "u2", "resource": {"type": "k8s.cluster", "id": "c1"}, "message": "I0314 started",
             "stream_name": "kube-apiserver"}
    with pytest.raises(SkipRecord, match="kube-apiserver"):
        list(to_events(other))
    cut = dict(other, message=json.dumps(audit(auditID="cut"))[:90], stream_name="audit")
    with pytest.raises(SkipRecord, match="auditID cut"):
        list(to_events(cut))


def test_bad_native_event():
    obj = sample("01-audit-trails-k8s-data-event.json")
    obj["details"]["native_api_server_event"] = ["not", "an", "object"]
    with pytest.raises(EventDecodeError, match="not an object"):
        list(to_events(obj))
