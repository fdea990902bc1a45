"""Panther's EKS, GKE and AKS test events (../shared/corpus/panther) through the normaliser.

Every case that is a Kubernetes audit record in one of those formats must become an Event
whose verb, objectRef and user come from the record; ARM Activity Log and unrelated Azure
or GCP records must be recognised and skipped with a reason. Expectations are derived from
each source record, so the test follows the corpus rather than a list of answers.
"""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest

from kubehawk.event import EventDecodeError
from kubehawk.sources.gke import parse_method
from kubehawk.sources.normalize import SkipRecord, to_events

from helpers import CORPUS, SAMPLES, need


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    path = need(CORPUS / "panther" / "cases.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def convert(event: dict, origin: str):
    try:
        return list(to_events(event, origin)), None
    except (SkipRecord, EventDecodeError) as e:
        return None, e


def _gke_is_k8s(ev: dict) -> bool:
    pp = ev.get("protoPayload")
    if not isinstance(pp, dict):
        return False
    method = pp.get("methodName") or ""
    return pp.get("serviceName") == "k8s.io" or (pp.get("serviceName") is None and method.startswith("io.k8s."))


def test_eks_native_events_keep_their_fields(cases):
    seen = Counter()
    for n, case in enumerate(cases):
        if case["source_format"] != "eks":
            continue
        src = case["event"]
        events, err = convert(src, f"case {n}")
        if not any(k in src for k in ("verb", "requestURI", "auditID")):
            assert isinstance(err, EventDecodeError), n  # a fragment: a clear error, not a crash
            seen["fragment"] += 1
            continue
        assert err is None, (n, err)
        (ev,) = events
        assert ev.head.verb == src.get("verb") and ev.head.objectRef == src.get("objectRef"), n
        assert ev.head.user == src.get("user"), n
        seen["converted"] += 1
    assert seen["converted"] > 150


def test_gke_k8s_entries_get_verb_objectref_user(cases):
    seen = Counter()
    for n, case in enumerate(cases):
        if case["source_format"] != "gke":
            continue
        src = case["event"]
        events, err = convert(src, f"case {n}")
        if not _gke_is_k8s(src):
            pp = src.get("protoPayload")
            if isinstance(pp, dict):
                assert isinstance(err, SkipRecord) and str(pp.get("serviceName")) in str(err), (n, err)
                seen["skipped other GCP service"] += 1
            else:
                assert isinstance(err, EventDecodeError), (n, err)
                seen["fragment without payload"] += 1
            continue
        assert err is None, (n, err)
        (ev,) = events
        pp = src["protoPayload"]
        m = parse_method(pp["methodName"])
        assert ev.head.verb == (m.get("verb") or "get"), n
        if m:
            assert ev.head.objectRef["resource"] == m["resource"], n
            assert ev.head.objectRef["apiVersion"] == m["version"], n
            rn = pp.get("resourceName") or ""
            if "/namespaces/" in rn and m["resource"] != "namespaces":
                assert ev.ref("namespace") == rn.split("/namespaces/")[1].split("/")[0], n
        else:
            assert ev.head.objectRef is None and ev.head.requestURI, n  # non-resource URL
            seen["non-resource"] += 1
        authn = pp.get("authenticationInfo") or {}
        who = authn.get("principalEmail") or authn.get("authoritySelector")
        if who:
            assert ev.username == who, n
        else:
            assert ev.head.user is None, n  # no identity in the record: none made up
            seen["no identity in record"] += 1
        assert ev.extra["source_type"] == "gke"
        seen["converted"] += 1
    assert seen["converted"] >= 45 and seen["skipped other GCP service"] >= 5


def test_aks_diagnostic_records_and_arm_activity(cases):
    seen = Counter()
    for n, case in enumerate(cases):
        if case["source_format"] not in ("aks", "other"):
            continue
        src = case["event"]
        events, err = convert(src, f"case {n}")
        if src.get("category") in ("kube-audit", "kube-audit-admin"):
            assert err is None, (n, err)
            (ev,) = events
            inner = json.loads(src["properties"]["log"])
            assert ev.head.verb == inner["verb"] and ev.head.objectRef == inner["objectRef"], n
            assert ev.head.user == inner["user"] and ev.username, n
            assert ev.extra["source_type"] == "aks"
            seen["converted"] += 1
        else:
            assert isinstance(err, SkipRecord), (n, err)
            assert "Activity Log" in str(err) and src["operationName"] in str(err), n
            seen["skipped"] += 1
    assert seen == {"converted": 34, "skipped": 6}


def test_whole_corpus_never_raises_anything_else(cases):
    outcomes = Counter()
    for n, case in enumerate(cases):
        events, err = convert(case["event"], f"case {n}")
        outcomes["events" if events else type(err).__name__] += 1
    assert sum(outcomes.values()) == len(cases)
    assert outcomes["events"] > 230


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, (*prefix, i))


def test_wrong_types_anywhere_in_a_cloud_record_never_crash():
    """Every field of every cloud fixture replaced by each wrong JSON type: an event or a counted
    error/skip, never another exception (the readers and pullers must not die on bad input)."""

    files = [f for d in ("gke", "eks", "aks", "yandex", "openshift", "kube-audit-rest")
             for f in sorted(need(SAMPLES / d).glob("*.json"))]
    crashes, cases = [], 0
    for f in files:
        base = json.loads(f.read_text())
        for path in [p for p in _paths(base) if p]:
            for wrong in (None, 1, "x", [], {}, True, "{", [1, 2]):
                obj = copy.deepcopy(base)
                holder = obj
                for k in path[:-1]:
                    holder = holder[k]
                holder[path[-1]] = wrong
                cases += 1
                try:
                    for ev in to_events(obj, "fuzz"):
                        ev.to_dict()
                except (SkipRecord, EventDecodeError):
                    pass
                except Exception as e:  # noqa: BLE001 - the point of the test
                    crashes.append(f"{f.name} {path} = {wrong!r}: {type(e).__name__}: {e}")
    assert cases > 5000
    assert crashes == []
