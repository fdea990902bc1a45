"""The event filters shared by detect and investigate: times absolute and relative, names and globs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubehawk.event import event_from_dict
from kubehawk.filters import FilterError, build_filter, parse_duration, parse_when

from helpers import REPO, audit

KUBEHAWK = str(Path(sys.executable).with_name("kubehawk"))
UTC = dt.UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-30T09:00Z", dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
    ("2026-11-30T09:00:30.123456789Z", dt.datetime(2026, 11, 30, 9, 0, 30, 123456, tzinfo=UTC)),
    ("2026-11-30 10:00:00+01:00", dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
    ("2026-11-30", dt.datetime(2026, 11, 30, tzinfo=UTC)),
    ("2026-11-30T09:00", dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
])
def test_absolute_times(text: str, expected: dt.datetime) -> None:
    assert parse_when(text, "--since") == expected


def test_relative_times() -> None:
    since = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_when("+2h", "--until", base=since) == since + dt.timedelta(hours=2)
    assert parse_when("-30m", "--since", now=now) == now - dt.timedelta(minutes=30)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    f = build_filter(since="2026-11-30T09:00Z", until="+1d")
    assert f.until - f.since == dt.timedelta(days=1)


@pytest.mark.parametrize(("kw", "message"), [
    ({"until": "+2h"}, "--until: +2h is relative to --since; give --since too"),
    ({"since": "yesterday"}, "--since: expected a time such as 2026-11-30T09:00Z"),
    ({"since": "2026-11-30T10:00Z", "until": "2026-11-30T09:00Z"}, "is before --since"),
    ({"since": "-2x"}, "--since: expected a duration"),
])
def test_bad_values_name_the_option(kw: dict, message: str) -> None:
    with pytest.raises(FilterError) as e:
        build_filter(**kw)
    assert message in str(e.value)


def test_matches_each_dimension() -> None:
    ev = event_from_dict(audit(user={"username": "alice@corp.example"}, sourceIPs=["1.2.3.4", "10.0.0.7"],
                               objectRef={"resource": "pods", "subresource": "exec", "namespace": "bank", "name": "p"},
                               stageTimestamp="2026-11-30T09:30:00.000000Z"))
    assert build_filter(user=("alice@corp.example",)).matches(ev)
    assert build_filter(user=("*@corp.example",)).matches(ev)
    assert not build_filter(user=("bob",)).matches(ev)
    assert build_filter(namespace=("bank",), resource=("pods/exec",)).matches(ev)
    assert build_filter(resource=("pods",)).matches(ev)
    assert not build_filter(resource=("secrets",)).matches(ev)
    assert build_filter(source_ip=("10.0.0.7",)).matches(ev)
    assert build_filter(since="2026-11-30T09:00Z", until="+30m").matches(ev)
    assert not build_filter(since="2026-11-30T09:31Z").matches(ev)
    assert not build_filter(until="2026-11-30T09:29:59Z").matches(ev)


def test_detect_takes_the_filters() -> None:
    base = [KUBEHAWK, "detect", "--format", "json", "--config", str(REPO / "examples/kubehawk.yaml"),
            str(REPO / "examples/sample-audit.log")]
    every = [json.loads(x) for x in subprocess.run(base, capture_output=True, text=True, check=True,
                                                   timeout=120).stdout.splitlines()]
    got = subprocess.run([*base, "--user", "mallory", "--since", "2026-11-23T20:40:12Z", "--until", "+1m"],
                         capture_output=True, text=True, check=True, timeout=120)
    alerts = [json.loads(x) for x in got.stdout.splitlines()]
    expected = [a for a in every if a["user"] == "mallory" and a["time"] >= "2026-11-23T20:40:12"]
    assert alerts and [a["auditID"] for a in alerts] == [a["auditID"] for a in expected]
    bad = subprocess.run([*base, "--until", "+2h"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "kubehawk: --until: +2h is relative to --since" in bad.stderr


def test_a_filter_pickles_as_its_options():
    """detect --workers sends the filter to worker processes (spawned ones pickle it)."""
    import pickle

    f = build_filter(user=("system:serviceaccount:*",), namespace=("bank",), since="2026-11-23T09:00:00Z")
    back = pickle.loads(pickle.dumps(f))
    assert back == f and back.active
    sa = event_from_dict({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "auditID": "a",
                          "user": {"username": "system:serviceaccount:bank:api"}, "requestURI": "/x",
                          "objectRef": {"namespace": "bank"}, "stageTimestamp": "2026-11-23T10:00:00Z"})
    human = event_from_dict({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "auditID": "b",
                             "user": {"username": "alice"}, "requestURI": "/x", "objectRef": {"namespace": "bank"},
                             "stageTimestamp": "2026-11-23T10:00:00Z"})
    assert back.matches(sa) and not back.matches(human)
