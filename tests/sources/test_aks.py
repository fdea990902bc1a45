"""AKS: diagnostic records, Log Analytics rows and responses, what is skipped and why."""

from __future__ import annotations

import json

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources import aks
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

from helpers import SAMPLES, audit, events_and_error, need

EXEC_ID = "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
RB_ID = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"


def sample(name: str):
    return (need(SAMPLES / "aks") / name).read_text()




def test_event_hub_body_skips_the_non_audit_category_after_the_events():
    events, err = events_and_error(json.loads(sample("01-eventhub-event-body.json")))
    assert [e.head.auditID for e in events] == [EXEC_ID, RB_ID]
    assert isinstance(err, SkipRecord) and "kube-apiserver" in str(err) and err.count == 1
    ex = events[0]
    assert ex.ref("subresource") == "exec" and ex.get("x.exec.command") == ["/bin/bash"]
    assert ex.extra["cluster"] == {
        "subscription": "00000000-1111-2222-3333-444444444444", "resource_group": "RG-PAYMENTS-PROD",
        "name": "AKS-PAYMENTS-PROD",
        "resource_id": "/SUBSCRIPTIONS/00000000-1111-2222-3333-444444444444/RESOURCEGROUPS/RG-PAYMENTS-PROD/"
                       "PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PAYMENTS-PROD"}
    assert ex.extra["category"] == "kube-audit" and events[1].extra["category"] == "kube-audit-admin"
    assert ex.extra["received"] == "2025-03-14T13:51:40.805123Z"


def test_storage_blob_lines():
    lines = sample("02-storage-account-PT1H.json.jsonl").splitlines()
    evs = [e for i, line in enumerate(lines) for e in line_to_events(line.encode(), f"PT1H.json:{i + 1}")]
    assert [e.head.auditID for e in evs] == [EXEC_ID, RB_ID]
    assert evs[1].first("requestObject.roleRef.name") == "admin"


def test_azure_diagnostics_row():
    (ev,) = list(to_events(json.loads(sample("03-azurediagnostics-row.json"))))
    assert ev.head.auditID == EXEC_ID and ev.head.responseStatus == {"metadata": {}, "code": 101}
    assert ev.extra["cluster"]["name"] == "AKS-PAYMENTS-PROD"


def test_aks_audit_admin_row_with_too_big_object():
    (ev,) = list(to_events(json.loads(sample("04-aksauditadmin-row.json"))))
    h = ev.head
    assert (h.auditID, h.verb, h.level, h.stage) == (RB_ID, "create", "RequestResponse", "ResponseComplete")
    assert h.objectRef["resource"] == "rolebindings" and ev.username == "masterclient"
    assert ev.response_object is None and ev.request_object["roleRef"]["name"] == "admin"
    assert ev.extra["lost"] == ["responseObject (skipped-too-big-size-object)"]
    assert h.requestReceivedTimestamp == "2025-03-14T13:58:11.402000Z"
    assert ev.extra["table"] == "AKSAuditAdmin" and ev.extra["category"] == "kube-audit-admin"


def test_log_analytics_response_decodes_dynamic_string_columns():
    (ev,) = list(to_events(json.loads(sample("05-log-analytics-query-api-response.json"))))
    assert ev.username == "jamie.ops@contoso.example" and ev.head.sourceIPs == ["198.51.100.61"]
    assert ev.head.objectRef["subresource"] == "exec" and ev.head.responseStatus["code"] == 101
    assert ev.head.annotations["authorization.k8s.io/decision"] == "allow"


def test_arm_activity_and_other_azure_records_are_skipped_with_a_reason():
    arm = {"time": "2025-12-22T10:30:00Z", "category": "Administrative",
           "operationName": "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/RBAC.AUTHORIZATION.K8S.IO/ROLEBINDINGS/WRITE",
           "resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c"}
    with pytest.raises(SkipRecord, match="Activity Log"):
        list(to_events(arm))
    with pytest.raises(SkipRecord, match="Activity Log"):  # Activity Log records often carry properties
        list(to_events({**arm, "properties": {"statusCode": "Created"}}))
    guard = {"category": "guard", "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
             "properties": {"log": "I0314 guard started"}}
    with pytest.raises(SkipRecord, match="'guard'"):
        list(to_events(guard))


def test_cut_log_string_is_skipped_and_junk_is_an_error():
    text = json.dumps(audit(auditID="cut-1"))[:120]
    rec = {"category": "kube-audit", "operationName": "x/diagnosticLogs/Read", "properties": {"log": text}}
    with pytest.raises(SkipRecord, match="auditID cut-1"):
        list(to_events(rec))
    rec["properties"]["log"] = "plain text in an audit category"
    with pytest.raises(EventDecodeError):
        list(to_events(rec))
    rec["properties"] = {}
    with pytest.raises(EventDecodeError, match="without properties.log"):
        list(to_events(rec))


def test_properties_log_already_an_object():
    rec = {"category": "kube-audit-admin", "operationName": "x", "properties": {"log": audit(auditID="obj")}}
    (ev,) = list(to_events(rec))
    assert ev.head.auditID == "obj" and ev.extra["source_type"] == "aks"


def test_resource_id_parsing():
    assert aks.cluster_from_resource_id("junk") == {"resource_id": "junk"}
    assert aks.cluster_from_resource_id(None) == {}
