"""kubehawk pull eks against botocore's Stubber: pages, resume, lag overlap, dedup, the CLI."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner

from kubehawk.sources.pull import eks as pull_eks
from kubehawk.sources.pull.cli import pull
from kubehawk.sources.pull.eks import EksPuller
from kubehawk.sources.pull.state import PullState

from helpers import audit

GROUP = "/aws/eks/orders-prod/cluster"
STREAM = "kube-apiserver-audit-7f3c"


def client():
    return boto3.client("logs", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret")


def cw(ts: int, audit_id: str, stage: str = "ResponseComplete", stream: str = STREAM, **kw) -> dict:
    return {"logStreamName": stream, "timestamp": ts, "ingestionTime": ts + 1500, "eventId": f"id-{audit_id}-{ts}",
            "message": json.dumps(audit(auditID=audit_id, stage=stage, **kw))}


def expect(stub: Stubber, events: list, start: int, token_in: str | None = None, token_out: str | None = None):
    params = {"logGroupName": GROUP, "startTime": start, "logStreamNamePrefix": "kube-apiserver-audit"}
    if token_in:
        params["nextToken"] = token_in
    resp = {"events": events, "searchedLogStreams": []}
    if token_out:
        resp["nextToken"] = token_out
    stub.add_response("filter_log_events", resp, params)


def test_pages_resume_and_overlap_dedup(tmp_path):
    state_file = tmp_path / "state.sqlite"
    got = []
    c = client()
    with Stubber(c) as stub:
        expect(stub, [cw(1_000_000, "a"), cw(1_000_500, "b")], start=900_000, token_out="T1")
        expect(stub, [cw(1_001_000, "c"), cw(1_000_800, "x", stream="kube-apiserver-audit-other")],
               start=900_000, token_in="T1")
        puller = EksPuller(c, PullState(state_file), GROUP, got.append, start_ms=900_000, lag_ms=60_000)
        assert puller.poll_once() == 4
        stub.assert_no_pending_responses()
    assert [e.head.auditID for e in got] == ["a", "b", "c", "x"]
    assert got[0].extra["cluster"]["name"] == "orders-prod" and got[0].extra["log_stream"] == STREAM
    assert puller.stream_positions() == {STREAM: 1_001_000, "kube-apiserver-audit-other": 1_000_800}

    # A new process on the same state file: starts lag before the newest stream position, and the
    # events it sees again (c, x) are dropped; a new stage of a known auditID is not a duplicate.
    c2 = client()
    with Stubber(c2) as stub:
        expect(stub, [cw(1_000_800, "x", stream="kube-apiserver-audit-other"), cw(1_001_000, "c"),
                      cw(1_002_000, "c", stage="ResponseStarted"), cw(1_003_000, "d")],
               start=1_001_000 - 60_000)
        again = EksPuller(c2, PullState(state_file), GROUP, got.append, start_ms=0, lag_ms=60_000)
        assert again.poll_once() == 2
        stub.assert_no_pending_responses()
    assert [(e.head.auditID, e.head.stage) for e in got[4:]] == [("c", "ResponseStarted"), ("d", "ResponseComplete")]
    assert again.stats.duplicates == 2 and again.stats.events == 2


def test_truncated_and_bad_messages_are_counted_not_fatal(tmp_path):
    got, warnings = [], []
    c = client()
    good = cw(5, "ok")
    cut = dict(cw(6, "cut"), message=cw(6, "cut")["message"][:70] + "[Truncated...]")
    bad = dict(cw(7, "bad"), message='{"kind":"Event","verb":12}')
    with Stubber(c) as stub:
        expect(stub, [cut, good, bad], start=0)
        p = EksPuller(c, PullState(tmp_path / "s.sqlite"), GROUP, got.append, start_ms=0, warn=warnings.append)
        p.poll_once()
    assert [e.head.auditID for e in got] == ["ok"]
    assert p.stats.skipped == 1 and p.stats.bad == 1 and "field verb" in warnings[0]


def test_follow_loop_polls_until_stopped(tmp_path):
    c = client()
    got, sleeps = [], []
    with Stubber(c) as stub:
        expect(stub, [cw(10_000, "f1")], start=0)
        expect(stub, [cw(10_000, "f1"), cw(20_000, "f2")], start=10_000 - 1000)
        p = EksPuller(c, PullState(tmp_path / "s.sqlite"), GROUP, got.append, start_ms=0, lag_ms=1000)
        p.run(follow=True, interval=2.5, stop=lambda: len(sleeps) >= 2, sleep=sleeps.append)
    assert [e.head.auditID for e in got] == ["f1", "f2"] and sleeps == [2.5, 2.5]


def test_sdk_errors_surface_with_the_position_kept(tmp_path):
    c = client()
    state = PullState(tmp_path / "s.sqlite")
    with Stubber(c) as stub:
        expect(stub, [cw(1_000, "e1")], start=0)
        stub.add_client_error("filter_log_events", "ResourceNotFoundException", "log group does not exist",
                              expected_params={"logGroupName": GROUP, "startTime": ANY,
                                               "logStreamNamePrefix": "kube-apiserver-audit"})
        p = EksPuller(c, state, GROUP, lambda e: None, start_ms=0, lag_ms=0)
        p.poll_once()
        with pytest.raises(Exception, match="ResourceNotFoundException"):
            p.poll_once()
    assert p.stream_positions() == {STREAM: 1_000}


def test_cli_eks_events(tmp_path, monkeypatch):
    c = client()
    stub = Stubber(c)
    expect(stub, [cw(1_000, "cli-1", verb="create", requestURI="/api/v1/namespaces/default/pods/p/exec?command=sh",
                     objectRef={"resource": "pods", "subresource": "exec", "namespace": "default", "name": "p",
                                "apiVersion": "v1"})], start=ANY)
    stub.activate()
    monkeypatch.setattr(pull_eks, "make_client", lambda region, profile: c)
    state = tmp_path / "cli.sqlite"
    result = CliRunner().invoke(pull, ["eks", "--cluster", "orders-prod", "--state", str(state), "--emit", "events"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert [x["auditID"] for x in lines] == ["cli-1"]
    assert "1 events" in result.stderr
    assert PullState(state).seen_count() == 1


def test_cli_needs_a_log_group(tmp_path):
    result = CliRunner().invoke(pull, ["eks", "--state", str(tmp_path / "s.sqlite"), "--emit", "events"])
    assert result.exit_code == 2 and "--cluster or --log-group" in result.output


RULE = """
title: Shell exec in a pod (test rule)
id: 5d2c1f0e-1111-4222-8333-944455556666
status: test
level: high
tags: [attack.t1609]
logsource: {product: kubernetes, service: audit}
detection:
  selection:
    verb: create
    objectRef.subresource: exec
    x.exec.shell: true
  condition: selection
"""


def test_cli_eks_runs_the_rules(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "exec.yml").write_text(RULE)
    exec_ev = cw(1_000, "shell-1", verb="create",
                 requestURI="/api/v1/namespaces/default/pods/p/exec?command=bash&tty=true",
                 objectRef={"resource": "pods", "subresource": "exec", "namespace": "default", "name": "p",
                            "apiVersion": "v1"})
    quiet_ev = cw(1_001, "get-1")
    c = client()
    stub = Stubber(c)
    expect(stub, [exec_ev, quiet_ev], start=ANY)
    stub.activate()
    monkeypatch.setattr(pull_eks, "make_client", lambda region, profile: c)
    result = CliRunner().invoke(pull, ["eks", "--log-group", GROUP, "--state", str(tmp_path / "s.sqlite"),
                                       "--no-builtin", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    alerts = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert [(a["rule"]["title"], a["auditID"]) for a in alerts] == [("Shell exec in a pod (test rule)", "shell-1")]
    assert "2 events" in result.stderr
