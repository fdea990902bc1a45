"""GKE Cloud Logging entries to audit Events: mapping, losses, every export shape."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources import gke
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

from helpers import SAMPLES, need


def sample(name: str):
    return json.loads((need(SAMPLES / "gke") / name).read_text())


def one(obj, origin="t"):
    events = list(to_events(obj, origin))
    assert len(events) == 1
    return events[0]


def test_privileged_pod_create_maps_every_field():
    ev = one(sample("01-activity-pod-create-privileged.json"))
    h = ev.head
    assert (h.kind, h.apiVersion, h.verb, h.stage) == ("Event", "audit.k8s.io/v1", "create", "ResponseComplete")
    assert h.auditID == "5c1e9a7b-3d2f-4e8a-b6c0-9d1e2f3a4b5c"
    assert h.objectRef == {"resource": "pods", "namespace": "payments", "name": "debug-shell",
                           "apiGroup": "", "apiVersion": "v1"}
    # A create is POSTed to the collection.
    assert h.requestURI == "/api/v1/namespaces/payments/pods"
    assert ev.username == "dev.lead@example.com" and h.sourceIPs == ["203.0.113.41"]
    assert h.userAgent.startswith("kubectl/v1.31.1")
    assert h.level == "RequestResponse" and h.responseStatus == {"code": 201}
    assert h.requestReceivedTimestamp == h.stageTimestamp == "2025-03-14T09:40:21.637512Z"
    assert ev.request_object["spec"]["hostPID"] is True and "@type" not in ev.request_object
    assert ev.first("requestObject.spec.containers.securityContext.privileged") is True
    assert h.annotations["authorization.k8s.io/decision"] == "allow"
    assert ev.extra["source_type"] == "gke"
    assert ev.extra["cluster"] == {"project": "acme-prod-4821", "location": "europe-west1", "name": "payments-prod"}
    assert ev.extra["log"] == "activity"
    assert ev.extra["received"] == "2025-03-14T09:40:29.118204Z"
    for field in ("requestURI", "stage", "level", "responseStatus.code"):
        assert field in ev.extra["synthetic"]
    # Provenance never leaks into the annotations.
    assert not any(k.startswith(("source", "x-kad")) for k in h.annotations)


def test_forbidden_secret_get_maps_grpc_status_and_data_access_log():
    ev = one(sample("02-data-access-secret-get-forbidden.json"))
    assert ev.head.verb == "get" and ev.head.level == "Metadata"
    assert ev.head.responseStatus["code"] == 403 and ev.head.responseStatus["status"] == "Failure"
    assert "forbidden" in ev.head.responseStatus["message"]
    assert ev.ref("namespace") == "kube-system" and ev.ref("name") == "cloud-sql-creds"
    assert ev.extra["log"] == "data_access"
    assert ev.head.annotations["authorization.k8s.io/decision"] == "forbid"


def test_exec_gets_101_and_subresource_but_no_command():
    ev = one(sample("03-activity-pod-exec.json"))
    assert ev.ref("subresource") == "exec" and ev.head.verb == "create"
    assert ev.head.requestURI == "/api/v1/namespaces/payments/pods/api-7d9f8c6b5-q2xkz/exec"
    assert ev.head.responseStatus == {"code": 101}
    assert ev.get("x.exec.command") == []  # the query string is lost on GKE


def test_impersonation_and_exact_status_from_response():
    ev = one(sample("04-activity-crb-create-impersonated-conflict.json"))
    assert ev.username == "system:serviceaccount:tools:rbac-proxy"
    assert ev.head.impersonatedUser == {"username": "ops-admin@example.com"}
    assert "impersonatedUser" in ev.extra["synthetic"]
    assert ev.head.responseStatus["code"] == 409 and ev.head.responseStatus["reason"] == "AlreadyExists"
    # The exact code came from the Status response: not inferred.
    assert "responseStatus.code" not in ev.extra["synthetic"]
    assert ev.head.objectRef["apiGroup"] == "rbac.authorization.k8s.io"
    assert ev.head.requestURI == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


def test_pubsub_push_envelope_is_the_same_entry():
    ev = one(sample("05-pubsub-push-envelope.json"))
    direct = one(sample("01-activity-pod-create-privileged.json"))
    assert ev.to_dict() == direct.to_dict()


def test_gcloud_array_and_bigquery_row():
    events = list(to_events(sample("06-gcloud-logging-read-output.json"), "g"))
    assert [e.head.verb for e in events] == ["create", "get"]
    bq = one(sample("07-bigquery-export-row.json"))
    direct = one(sample("01-activity-pod-create-privileged.json"))
    assert bq.head.objectRef == direct.head.objectRef and bq.head.verb == "create"
    assert bq.request_object == direct.request_object  # requestJson string decoded, @type dropped
    assert bq.head.stageTimestamp == "2025-03-14T09:40:21.637512Z"  # "... UTC" form normalised
    # Sanitised label column names are restored to annotation keys.
    assert bq.head.annotations["authorization.k8s.io/decision"] == "allow"
    assert bq.head.annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    assert "annotations" in bq.extra["synthetic"]


@pytest.mark.parametrize(
    ("method", "name", "ref"),
    [
        # The Namespace object itself: namespace == name, like the apiserver's RequestInfo.
        ("io.k8s.core.v1.namespaces.get", "core/v1/namespaces/kube-system",
         {"resource": "namespaces", "namespace": "kube-system", "name": "kube-system"}),
        ("io.k8s.core.v1.namespaces.status.update", "core/v1/namespaces/dev/status",
         {"resource": "namespaces", "namespace": "dev", "name": "dev", "subresource": "status"}),
        # Namespaced collection (5 segments) and cluster-scoped collection (3 segments).
        ("io.k8s.core.v1.pods.list", "core/v1/namespaces/payments/pods",
         {"resource": "pods", "namespace": "payments"}),
        ("io.k8s.core.v1.nodes.list", "core/v1/nodes", {"resource": "nodes"}),
        ("io.k8s.core.v1.nodes.status.patch", "core/v1/nodes/n1/status",
         {"resource": "nodes", "name": "n1", "subresource": "status"}),
        ("io.k8s.apps.v1.deployments.scale.update", "apps/v1/namespaces/shop/deployments/web/scale",
         {"resource": "deployments", "namespace": "shop", "name": "web", "subresource": "scale", "apiGroup": "apps"}),
    ],
)
def test_resource_name_resolution(method, name, ref):
    entry = {"protoPayload": {"serviceName": "k8s.io", "methodName": method, "resourceName": name,
                              "authenticationInfo": {"principalEmail": "a@example.com"}},
             "timestamp": "2025-01-01T00:00:00Z"}
    got = one(entry).head.objectRef
    for k, v in ref.items():
        assert got.get(k) == v, (k, got)
    for k in ("namespace", "name", "subresource"):
        if k not in ref:
            assert k not in got
    assert got["apiGroup"] == ref.get("apiGroup", "")


def test_parse_method_group_reversal_and_non_resource():
    assert gke.parse_method("io.k8s.authorization.rbac.v1.clusterrolebindings.create") == {
        "version": "v1", "group": "rbac.authorization.k8s.io", "verb": "create", "resource": "clusterrolebindings"}
    assert gke.parse_method("io.k8s.apps.v1beta2.deployments.get")["group"] == "apps"
    assert gke.parse_method("io.k8s.readyz") == {}


def test_grpc_codes_and_inferred_codes():
    base = {"protoPayload": {"serviceName": "k8s.io", "methodName": "io.k8s.core.v1.pods.delete",
                             "resourceName": "core/v1/namespaces/a/pods/p"}}
    for grpc, http in ((5, 404), (6, 409), (7, 403), (10, 409), (16, 401), (3, 400), (99, 500)):
        e = copy.deepcopy(base)
        e["protoPayload"]["status"] = {"code": grpc, "message": "x"}
        assert one(e).head.responseStatus["code"] == http
    assert one(base).head.responseStatus == {"code": 200}
    # authorizationInfo granted:false with no status still says the call was refused.
    e = copy.deepcopy(base)
    e["protoPayload"]["authorizationInfo"] = [{"permission": "io.k8s.core.v1.pods.delete", "granted": False}]
    assert one(e).head.responseStatus["code"] == 403


def test_response_started_from_operation_flags():
    entry = sample("03-activity-pod-exec.json")
    entry["operation"].update(first=True, last=False)
    assert one(entry).head.stage == "ResponseStarted"
    # Without operation.id the insertId is the auditID.
    del entry["operation"]
    assert one(entry).head.auditID == entry["insertId"]


def test_panther_style_entries_and_missing_pieces():
    entry = {
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {"at_sign_type": "type.googleapis.com/google.cloud.audit.AuditLog",
                         "authenticationInfo": {"principalEmail": "u@example.com"},
                         "methodName": "io.k8s.core.v1.pods.create",
                         "requestMetadata": {"callerIP": "1.2.3.4"},
                         "request": {"at_sign_type": "core.k8s.io/v1.Pod", "spec": {"hostPID": True}}},
        "authorizationInfo": [{"granted": True, "resource": "core/v1/namespaces/default/pods/test"}],
        "timestamp": "2024-02-16 11:48:22.742154000",
    }
    ev = one(entry)
    assert ev.head.sourceIPs == ["1.2.3.4"]
    assert ev.head.objectRef["name"] == "test"  # from the top-level authorizationInfo resource
    assert ev.head.stageTimestamp == "2024-02-16T11:48:22.742154Z"
    assert ev.request_object == {"spec": {"hostPID": True}}
    # No principalEmail, only a selector: that is the identity shown.
    entry["protoPayload"]["authenticationInfo"] = {"authoritySelector": "system:anonymous"}
    ev = one(entry)
    assert ev.username == "system:anonymous" and ev.head.impersonatedUser is None
    assert "user" in ev.extra["synthetic"]


def test_non_resource_url():
    ev = one({"protoPayload": {"serviceName": "k8s.io", "methodName": "io.k8s.readyz",
                               "authenticationInfo": {"principalEmail": "system:anonymous"}}})
    assert ev.head.requestURI == "/readyz" and ev.head.objectRef is None and ev.head.verb == "get"
    assert {"verb", "requestURI"} <= set(ev.extra["synthetic"])


def test_other_gcp_services_are_skipped_with_the_reason():
    with pytest.raises(SkipRecord, match="container.googleapis.com"):
        list(to_events({"protoPayload": {"serviceName": "container.googleapis.com",
                                         "methodName": "google.container.v1.ClusterManager.CreateCluster"}}))
    with pytest.raises(EventDecodeError, match="without a protoPayload"):
        list(to_events({"operation": {"producer": "k8s.io", "id": "x"}}))


def test_bad_pubsub_data_is_a_clear_error():
    with pytest.raises(EventDecodeError, match="base64"):
        list(to_events({"message": {"data": "***not base64***", "messageId": "1"}, "subscription": "s"}))
    bad_json = base64.b64encode(b"{nope").decode()
    with pytest.raises(EventDecodeError, match="not valid JSON"):
        list(to_events({"message": {"data": bad_json, "messageId": "1"}, "subscription": "s"}))


def test_jsonl_line_path_recognises_entries():
    line = json.dumps(sample("02-data-access-secret-get-forbidden.json")).encode()
    (ev,) = list(line_to_events(line, "f:1"))
    assert ev.head.verb == "get" and ev.origin == "f:1"


@pytest.mark.parametrize(("raw", "want"), [
    ("2025-03-14T09:40:21.637512Z", "2025-03-14T09:40:21.637512Z"),
    ("2025-03-14T09:52:09.771034120Z", "2025-03-14T09:52:09.771034Z"),  # ns precision cut, not rounded
    ("2025-03-14 09:40:21.637512 UTC", "2025-03-14T09:40:21.637512Z"),
    ("2024-02-16 11:48:22.742154000", "2024-02-16T11:48:22.742154Z"),
    ("2025-03-14T10:40:21+01:00", "2025-03-14T09:40:21.000000Z"),
    (1741953798352, "2025-03-14T12:03:18.352000Z"),  # CloudWatch epoch ms
    ("yesterday", None), ("2025-13-01T00:00:00Z", None), (None, None), (True, None),
])
def test_time_normalisation(raw, want):
    from kubehawk.sources._cloud import rfc3339

    assert rfc3339(raw) == want
