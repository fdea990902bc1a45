"""kubehawk pull gke with a stand-in for google.cloud.logging.Client (the SDK is not installed)."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from kubehawk.sources.pull import gke as pull_gke
from kubehawk.sources.pull.cli import parse_since, pull
from kubehawk.sources.pull.gke import GkePuller, base_filter
from kubehawk.sources.pull.state import PullState

from helpers import SAMPLES, need


class Entry:
    """What list_entries yields: an object whose to_api_repr() is the LogEntry JSON."""

    def __init__(self, data: dict):
        self.data = data

    def to_api_repr(self) -> dict:
        return copy.deepcopy(self.data)


class FakeLoggingClient:
    """Exposes the one SDK method the puller calls, and applies its timestamp filter."""

    def __init__(self, entries: list[dict]):
        self.entries = entries
        self.calls: list[dict] = []

    def list_entries(self, *, resource_names, filter_, order_by, page_size):
        self.calls.append({"resource_names": resource_names, "filter_": filter_, "order_by": order_by,
                           "page_size": page_size})
        since = filter_.rsplit('timestamp>="', 1)[1].rstrip('"')
        for e in sorted(self.entries, key=lambda e: e["timestamp"]):
            if e["timestamp"] >= since:
                yield Entry(e)


def entry(n: int, ts: str, **kw) -> dict:
    base = json.loads((need(SAMPLES / "gke") / "03-activity-pod-exec.json").read_text())
    base["insertId"] = base["operation"]["id"] = f"op-{n}"
    base["timestamp"] = ts
    base.update(kw)
    return base


def test_resume_from_the_last_timestamp_and_dedup_the_boundary(tmp_path):
    path = tmp_path / "s.sqlite"
    client = FakeLoggingClient([entry(1, "2025-03-14T10:00:00.000001Z"), entry(2, "2025-03-14T10:00:05.000000Z")])
    got = []
    p = GkePuller(client, PullState(path), "acme", got.append, cluster="payments-prod",
                  start="2025-03-14T09:00:00.000000Z")
    assert p.poll_once() == 2
    call = client.calls[0]
    assert call["resource_names"] == ["projects/acme"] and call["order_by"] == "timestamp asc"
    assert call["filter_"] == (base_filter("payments-prod") + ' AND timestamp>="2025-03-14T09:00:00.000000Z"')
    assert 'resource.labels.cluster_name="payments-prod"' in call["filter_"]
    assert [e.head.auditID for e in got] == ["op-1", "op-2"] and got[0].ref("subresource") == "exec"

    client.entries.append(entry(3, "2025-03-14T10:00:09.500000Z"))
    p2 = GkePuller(client, PullState(path), "acme", got.append, cluster="payments-prod", start="ignored")
    assert p2.poll_once() == 1
    assert client.calls[1]["filter_"].endswith('timestamp>="2025-03-14T10:00:05.000000Z"')
    assert [e.head.auditID for e in got] == ["op-1", "op-2", "op-3"] and p2.stats.duplicates == 1


def test_non_k8s_and_broken_entries_are_counted(tmp_path):
    other = {"protoPayload": {"serviceName": "container.googleapis.com", "methodName": "CreateCluster"},
             "timestamp": "2025-03-14T10:00:01Z", "insertId": "o"}
    broken = entry(9, "2025-03-14T10:00:02Z")
    broken["protoPayload"]["methodName"] = 42
    client = FakeLoggingClient([entry(1, "2025-03-14T10:00:00Z"), other, broken])
    warnings: list[str] = []
    p = GkePuller(client, PullState(tmp_path / "s.sqlite"), "acme", lambda e: None, warn=warnings.append,
                  start="2025-03-14T00:00:00Z")
    p.poll_once()
    assert (p.stats.events, p.stats.skipped, p.stats.bad) == (1, 1, 1)
    assert "methodName" in warnings[0]


def test_cli_gke_with_the_fake_client(tmp_path, monkeypatch):
    client = FakeLoggingClient([entry(1, "2025-03-14T10:00:00.000001Z")])
    monkeypatch.setattr(pull_gke, "make_client", lambda project: client)
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(pull, ["gke", "--project", "acme", "--since", "2025-03-14T00:00:00Z",
                                       "--state", str(tmp_path / "s.sqlite"), "--emit", "events", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["auditID"] == "op-1"


def test_missing_sdk_is_a_clear_error(tmp_path):
    try:
        import google.cloud.logging  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("google-cloud-logging is installed here")
    result = CliRunner().invoke(pull, ["gke", "--project", "acme", "--state", str(tmp_path / "s.sqlite"),
                                       "--emit", "events"])
    assert result.exit_code == 1
    assert "pip install 'kubehawk[gke]'" in result.output


def test_parse_since():
    assert parse_since("15m", now=1000.0) == 100.0
    assert parse_since("2025-03-14T00:00:00Z") == 1741910400.0
    with pytest.raises(Exception, match="neither a duration"):
        parse_since("yesterday")
