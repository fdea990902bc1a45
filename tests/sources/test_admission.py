"""AdmissionReview -> audit-like Event: kube-audit-rest lines and the live webhook body."""

from __future__ import annotations

import json
import re

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources.admission import admission_review_to_event
from kubehawk.sources.normalize import line_to_events, to_events

from helpers import CORPUS, SAMPLES, need


def sample(name: str) -> dict:
    return json.loads((need(SAMPLES / "kube-audit-rest") / name).read_text())


def test_create():
    ev = admission_review_to_event(sample("01-pod-create.json"), "r")
    h = ev.head
    assert (h.verb, h.stage, h.level, h.auditID) == ("create", "ResponseComplete", "Request",
                                                    "705ab4f5-6393-11e8-b7cc-42010a800002")
    assert h.objectRef == {"resource": "pods", "namespace": "payments", "name": "debug-shell",
                           "uid": "7e3a1c5b-9d2f-4b6e-8a0c-1f3e5a7c9b2d", "apiGroup": "", "apiVersion": "v1"}
    assert h.requestURI == "/api/v1/namespaces/payments/pods"
    assert ev.username == "dev.lead@example.com" and h.user["groups"] == ["devs", "system:authenticated"]
    assert ev.first("requestObject.spec.containers.securityContext.privileged") is True
    assert h.requestReceivedTimestamp == h.stageTimestamp == "2025-03-14T09:40:21.631877Z"
    assert h.annotations is None and h.sourceIPs is None and h.responseStatus is None
    assert ev.extra["source_type"] == "admission"
    assert {"auditID", "stage", "level", "requestURI"} <= set(ev.extra["synthetic"])


def test_connect_exec_builds_the_exec_uri():
    ev = admission_review_to_event(sample("02-pod-exec-connect.json"), "r")
    assert ev.head.verb == "create" and "verb" in ev.extra["synthetic"]
    assert ev.head.requestURI == ("/api/v1/namespaces/payments/pods/api-7d9f8c6b5-q2xkz/exec"
                                  "?command=sh&container=api&stdin=true&stdout=true&tty=true")
    assert ev.get("x.exec.command") == ["sh"] and ev.get("x.exec.shell") == [True]
    assert ev.get("x.exec.container") == ["api"] and ev.get("x.exec.tty") == [True]
    assert ev.ref("subresource") == "exec" and ev.ref("uid") is None


def test_connect_multi_word_command_and_portforward_and_proxy():
    review = sample("02-pod-exec-connect.json")
    review["request"]["object"]["command"] = ["/bin/sh", "-c", "cat /var/run/secrets/x && id"]
    ev = admission_review_to_event(review)
    assert ev.get("x.exec.command") == ["/bin/sh", "-c", "cat /var/run/secrets/x && id"]
    pf = sample("02-pod-exec-connect.json")
    pf["request"].update(subResource="portforward", object={"kind": "PodPortForwardOptions", "ports": [5432, 8080]})
    assert admission_review_to_event(pf).head.requestURI.endswith("/portforward?ports=5432&ports=8080")
    px = sample("02-pod-exec-connect.json")
    px["request"].update(namespace="", name="node-1", subResource="proxy",
                         resource={"group": "", "version": "v1", "resource": "nodes"},
                         object={"kind": "NodeProxyOptions", "path": "/pods"})
    assert admission_review_to_event(px).head.requestURI == "/api/v1/nodes/node-1/proxy/pods"


def test_update_with_patch_options_is_patch_and_keeps_old_object():
    ev = admission_review_to_event(sample("03-crb-patch-update.json"))
    assert ev.head.verb == "patch"
    assert ev.head.requestURI == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/view-all"
    assert ev.get("requestObject.subjects.name") == ["system:authenticated"]
    assert ev.get("oldObject.subjects.name") == ["sre"]  # prior state beside the event
    review = sample("03-crb-patch-update.json")
    review["request"]["options"] = {"kind": "UpdateOptions"}
    assert admission_review_to_event(review).head.verb == "update"


def test_delete_puts_old_object_in_the_response():
    ev = admission_review_to_event(sample("04-secret-delete.json"))
    assert ev.head.verb == "delete" and ev.head.level == "RequestResponse"
    assert ev.request_object["kind"] == "DeleteOptions"
    assert ev.response_object["type"] == "Opaque" and "responseObject" in ev.extra["synthetic"]
    assert ev.head.requestURI == "/api/v1/namespaces/payments/secrets/db-creds"


def test_live_body_without_timestamp_and_dry_run():
    review = sample("01-pod-create.json")
    del review["requestReceivedTimestamp"]
    review["request"]["dryRun"] = True
    ev = admission_review_to_event(review)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ev.head.stageTimestamp)
    assert "requestReceivedTimestamp" in ev.extra["synthetic"] and ev.extra["dry_run"] is True


@pytest.mark.parametrize(("mutate", "msg"), [
    (lambda r: r.pop("request"), "without a request"),
    (lambda r: r["request"].pop("uid"), "without a uid"),
    (lambda r: r["request"].update(operation="READ"), "operation 'READ'"),
])
def test_bad_reviews(mutate, msg):
    review = sample("01-pod-create.json")
    mutate(review)
    with pytest.raises(EventDecodeError, match=msg):
        admission_review_to_event(review)


def test_jsonl_sample_and_auto_detection():
    path = need(SAMPLES / "kube-audit-rest" / "kube-audit-rest.log.jsonl")
    evs = [e for i, line in enumerate(path.read_bytes().splitlines()) for e in line_to_events(line, f"l:{i}")]
    assert [e.head.verb for e in evs] == ["create", "create", "patch", "delete"]


def test_real_kube_audit_rest_capture():
    path = need(CORPUS / "kube-audit-rest" / "kube-audit-rest.log")
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    events = [e for i, line in enumerate(lines) for e in line_to_events(line, f"{path.name}:{i + 1}")]
    assert len(events) == len(lines) == 59
    by_resource: dict[str, int] = {}
    for e in events:
        by_resource[e.ref("resource")] = by_resource.get(e.ref("resource"), 0) + 1
        assert e.head.auditID and e.username and e.head.verb in ("create", "update", "patch")
    assert by_resource["selfsubjectaccessreviews"] == 44 and by_resource["events"] == 13
    via_dict = list(to_events(json.loads(lines[0])))
    assert via_dict[0].head.auditID == events[0].head.auditID
