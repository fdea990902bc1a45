"""EKS: every CloudWatch wrapper around the native Event, truncation, non-audit streams."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources import eks
from kubehawk.sources.normalize import SkipRecord, line_to_events, to_events

from helpers import SAMPLES, audit, events_and_error, need

CRB_ID = "c0ffee12-3456-4789-abcd-ef0123456789"
NODE_ID = "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def sample(name: str) -> str:
    return (need(SAMPLES / "eks") / name).read_text()




def test_raw_events_are_native():
    ev = next(to_events(json.loads(sample("01-audit-event-access-entry-crb.json"))))
    assert ev.head.auditID == CRB_ID
    assert ev.first("user.extra.canonicalArn") == "arn:aws:iam::111122223333:role/PlatformAdmin"


@pytest.mark.parametrize("name", ["03-filter-log-events-response.json", "04-subscription-filter-payload-decoded.json",
                                  "05-kinesis-get-records-response.json", "06-lambda-subscription-event.json",
                                  "09-logs-insights-get-query-results.json"])
def test_every_wrapper_gives_the_events(name):
    events, err = events_and_error(json.loads(sample(name)))
    assert err is None
    ids = [e.head.auditID for e in events]
    assert ids == ([CRB_ID] if name.startswith("09") else [CRB_ID, NODE_ID])
    crb = events[0]
    assert crb.head.verb == "create" and crb.ref("resource") == "clusterrolebindings"
    assert crb.first("requestObject.roleRef.name") == "cluster-admin"
    assert crb.extra["source_type"] == "eks" and crb.extra["synthetic"] == []
    assert crb.extra["log_stream"].startswith("kube-apiserver-audit-")


def test_subscription_payload_names_the_cluster():
    events, _ = events_and_error(json.loads(sample("04-subscription-filter-payload-decoded.json")))
    assert events[0].extra["cluster"] == {"name": "orders-prod", "account": "111122223333",
                                          "log_group": "/aws/eks/orders-prod/cluster"}
    assert events[1].extra["event_id"] == "38852937986133821749017633380295018820110042178210217984"


def test_control_message_is_skipped():
    with pytest.raises(SkipRecord, match="control message"):
        list(to_events(json.loads(sample("07-subscription-control-message-decoded.json"))))


def test_s3_export_and_truncated_lines():
    lines = sample("08-s3-export-task-000000.txt").splitlines()
    evs = [e for line in lines for e in line_to_events(line.encode(), "s3:1")]
    assert [e.head.auditID for e in evs] == [CRB_ID, NODE_ID]
    with pytest.raises(SkipRecord, match=f"Truncated.*auditID {CRB_ID}"):
        list(line_to_events(sample("10-truncated-message-example.txt").encode(), "f:1"))
    # Truncated and timestamp-prefixed (an export of a cut event).
    cut = "2025-03-14T12:03:18.352Z " + sample("10-truncated-message-example.txt").strip()
    with pytest.raises(SkipRecord, match="Truncated"):
        list(line_to_events(cut.encode(), "f:2"))


def test_aws_logs_tail_line_keeps_the_stream():
    line = ("2025-03-14T12:03:18.352000+00:00 kube-apiserver-audit-abc " + json.dumps(audit())).encode()
    (ev,) = list(line_to_events(line, "tail:1"))
    assert ev.head.auditID == "a-1" and ev.extra["log_stream"] == "kube-apiserver-audit-abc"


def test_one_truncated_message_does_not_lose_the_batch():
    good1, good2 = json.dumps(audit(auditID="g1")), json.dumps(audit(auditID="g2"))
    page = {"events": [
        {"logStreamName": "kube-apiserver-audit-1", "timestamp": 1, "message": good1, "eventId": "1"},
        {"logStreamName": "kube-apiserver-audit-1", "timestamp": 2, "message": good1[:80] + "[Truncated...]",
         "eventId": "2"},
        {"logStreamName": "authenticator-1", "timestamp": 3, "message": 'time="x" level=info msg="access granted"',
         "eventId": "3"},
        {"logStreamName": "kube-apiserver-audit-1", "timestamp": 4, "message": good2, "eventId": "4"},
    ], "nextToken": "t"}
    events, err = events_and_error(page)
    assert [e.head.auditID for e in events] == ["g1", "g2"]
    assert isinstance(err, SkipRecord) and err.count == 2
    assert "2 of 4" in str(err) and "Truncated" in str(err)


def test_malformed_message_in_audit_stream_is_an_error_after_the_good_ones():
    page = {"events": [
        {"logStreamName": "kube-apiserver-audit-1", "timestamp": 1, "message": json.dumps(audit())},
        {"logStreamName": "kube-apiserver-audit-1", "timestamp": 2, "message": '{"verb": 5}'},
    ], "searchedLogStreams": []}
    events, err = events_and_error(page)
    assert len(events) == 1
    assert isinstance(err, EventDecodeError) and "field verb" in str(err)


def _blob(obj) -> str:
    return base64.b64encode(gzip.compress(json.dumps(obj).encode())).decode()


def test_firehose_transformation_batch_and_control_message_inside_kinesis():
    data = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/eks/dev/cluster",
            "logStream": "kube-apiserver-audit-9", "subscriptionFilters": ["f"],
            "logEvents": [{"id": "1", "timestamp": 1, "message": json.dumps(audit(auditID="fh"))}]}
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
               "subscriptionFilters": [], "logEvents": []}
    firehose = {"invocationId": "i", "records": [{"recordId": "r1", "data": _blob(data)},
                                                  {"recordId": "r2", "data": _blob(control)}]}
    events, err = events_and_error(firehose)
    assert [e.head.auditID for e in events] == ["fh"] and events[0].extra["cluster"]["name"] == "dev"
    assert isinstance(err, SkipRecord) and "control message" in str(err)
    lambda_kinesis = {"Records": [{"kinesis": {"data": _blob(data)}, "eventSource": "aws:kinesis"}]}
    assert [e.head.auditID for e in to_events(lambda_kinesis)] == ["fh"]


def test_firehose_s3_object_with_concatenated_payloads():
    def payload(i):
        return {"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "/aws/eks/c/cluster",
                "logStream": "kube-apiserver-audit-1", "subscriptionFilters": [],
                "logEvents": [{"id": str(i), "timestamp": i, "message": json.dumps(audit(auditID=f"c{i}"))}]}
    line = (json.dumps(payload(1)) + json.dumps(payload(2))).encode()
    assert [e.head.auditID for e in line_to_events(line, "fh:1")] == ["c1", "c2"]


def test_logs_insights_without_message_rebuilds_a_partial_event():
    resp = {"status": "Complete", "results": [[
        {"field": "@timestamp", "value": "2025-03-14 12:03:18.352"},
        {"field": "verb", "value": "delete"},
        {"field": "objectRef.resource", "value": "secrets"},
        {"field": "objectRef.namespace", "value": "prod"},
        {"field": "user.username", "value": "mallory"},
        {"field": "sourceIPs.0", "value": "203.0.113.5"},
        {"field": "responseStatus.code", "value": "200"},
    ]]}
    (ev,) = list(to_events(resp))
    assert ev.head.verb == "delete" and ev.ref("resource") == "secrets" and ev.username == "mallory"
    assert ev.head.sourceIPs == ["203.0.113.5"] and ev.head.responseStatus == {"code": 200}
    assert ev.extra["synthetic"] and "partial" in ev.extra["synthetic"][0]
    with pytest.raises(SkipRecord, match="Running"):
        list(to_events({"status": "Running", "results": []}))


def test_console_insights_export_row_and_cluster_from_log_group():
    row = {"@timestamp": "2025-03-14 12:03:18.352", "@message": json.dumps(audit(auditID="row")),
           "@log": "111122223333:/aws/eks/orders/cluster", "@logStream": "kube-apiserver-audit-1"}
    (ev,) = list(to_events(row))
    assert ev.head.auditID == "row" and ev.extra["cluster"]["name"] == "orders"
    assert eks.cluster_from_log_group("/aws/eks/x-y/cluster") == "x-y"
    assert eks.cluster_from_log_group("/aws/lambda/f") is None


def test_bad_blobs_are_clear_errors():
    events, err = events_and_error({"awslogs": {"data": "%%%"}})
    assert events == [] and isinstance(err, EventDecodeError) and "base64" in str(err)
    corrupt = base64.b64encode(b"\x1f\x8b\x08\x00garbage").decode()
    events, err = events_and_error({"awslogs": {"data": corrupt}})
    assert isinstance(err, EventDecodeError) and "gzip" in str(err)
