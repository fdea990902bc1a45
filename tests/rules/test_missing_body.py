"""A body that was not logged is unknown, not empty (issue 13, item 1).

The property: every built-in rule, every event of every corpus under ../shared/corpus: the event as a
Metadata-level policy would have logged it (bodies removed, level Metadata) never raises an alert the
full event does not raise. Checked on each rule's own predicate and through the whole pipeline (index,
correlations, baselines), so neither evaluation path can read an absent body as an empty one.
"""

from __future__ import annotations

from collections import Counter

import pytest
from corpora import CORPORA, as_dict_event, strip_to_metadata

from kubehawk.config import Config
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import RuleSet, load_rules

from helpers import audit

# A less specific alert on the same finding is not a new alert: an exec whose command is in the body
# (GKE logs PodExecOptions there) is a shell exec when the body is logged, an exec when it is not.
COARSER = {"pod-exec": {"pod-exec-shell"}}


def _new(stripped: set[str], full: set[str]) -> set[str]:
    return {r for r in stripped - full if not (COARSER.get(r, set()) & full)}


@pytest.fixture(scope="module")
def pack():
    return load_rules(builtin=True)


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_stripping_bodies_never_adds_an_alert(corpus, pack):
    config = Config.from_dict({})
    events_rules = [r for r in pack.rules if r.kind == "event"]
    n, extra_rule, extra_pipeline = 0, Counter(), []
    streams = list(CORPORA[corpus]())
    if not streams:
        pytest.skip(f"corpus {corpus} is absent under ../shared/corpus")
    for stream, events in streams:
        full = [as_dict_event(e) for e in events]
        stripped = [strip_to_metadata(e) for e in events]
        for f, s in zip(full, stripped, strict=True):
            f.bind_context(config)
            s.bind_context(config)
            n += 1
            fired = [{r.name for r in events_rules if r.matches(x)} for x in (f, s)]
            extra_rule.update(_new(fired[1], fired[0]))
        seen: list[dict[str, set[str]]] = []
        for run in (full, stripped):
            det = Detector(pack, config)
            alerts: dict[str, set[str]] = {}
            for e in run:
                for a in det.process(e):
                    alerts.setdefault(e.head.auditID or "", set()).add(a.rule.name)
            alerts.setdefault("flush", set()).update(a.rule.name for a in det.flush())
            seen.append(alerts)
        extra_pipeline.extend(f"{stream}: {aid} {sorted(_new(names, seen[0].get(aid, set())))}"
                              for aid, names in seen[1].items() if _new(names, seen[0].get(aid, set())))
    assert n > 0
    assert dict(extra_rule) == {}, "rules fire on the stripped event only"
    assert extra_pipeline == [], extra_pipeline[:20]


def _ns_create(**kw):
    return audit(verb="create", requestURI="/api/v1/namespaces", objectRef={"resource": "namespaces", "apiVersion": "v1"},
                 responseStatus={"code": 201}, **kw)


def test_label_removed_needs_the_body(pack):
    """pod-security-label-weakened's 'label removed' branch: a namespace created at Metadata is not weakened."""
    rule = next(r for r in pack.rules if r.name == "pod-security-label-weakened")
    det = Detector(pack, Config.from_dict({}))
    meta = event_from_dict(_ns_create(level="Metadata"))
    assert not rule.matches(meta)
    assert "pod-security-label-weakened" not in {a.rule.name for a in det.process(meta)}
    # the label removed by a merge patch (written as null in the body) still alerts
    patch = audit(verb="patch", level="Request", requestURI="/api/v1/namespaces/team",
                  objectRef={"resource": "namespaces", "name": "team", "apiVersion": "v1"},
                  requestObject={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": None}}})
    assert rule.matches(event_from_dict(patch))
    assert "pod-security-label-weakened" in {a.rule.name for a in Detector(pack).process(event_from_dict(patch))}


def test_absence_rules_still_work_at_request_level(pack):
    """A bare pod (no ownerReferences in a logged body) still alerts; unlogged, it is unknown."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "alpine"}]}}
    d = audit(verb="create", level="Request", requestURI="/api/v1/namespaces/default/pods",
              objectRef={"resource": "pods", "namespace": "default", "apiVersion": "v1"},
              responseStatus={"code": 201}, requestObject=pod)
    names = {a.rule.name for a in Detector(pack).process(event_from_dict(d))}
    assert "bare-pod-created" in names
    meta = {k: v for k, v in d.items() if k != "requestObject"} | {"level": "Metadata", "auditID": "a-2"}
    assert "bare-pod-created" not in {a.rule.name for a in Detector(pack).process(event_from_dict(meta))}


RULES = """
title: t
id: 7e0e6a40-0000-4000-8000-000000000001
logsource: {product: kubernetes, service: audit}
detection:
  sel: {verb: create}
  other: {verb: delete}
  kept: {requestObject.spec.keep: true}
  gone: {requestObject.spec.gone: null}
  exe: {x.containers.securityContext.privileged: true}
  condition: %s
level: high
"""


@pytest.mark.parametrize(("condition", "expected"), [
    # fires on: (the event at Metadata, a body without the fields, a body with keep: true, gone: null and a
    # privileged container): an unlogged body is unknown (Kleene), a logged body without the field is not
    ("sel and not kept", (False, True, False)),
    ("sel and gone", (False, True, True)),
    ("sel and not gone", (False, False, False)),
    ("sel and not (kept and sel)", (False, True, False)),
    ("sel and not (kept or not sel)", (False, True, False)),
    ("not (not sel or kept)", (False, True, False)),
    ("sel and not exe", (False, True, False)),
    ("sel and not (kept and other)", (True, True, True)),  # decided without the body: not unknown
    ("sel and (kept or not other)", (True, True, True)),
])
def test_kleene_semantics(condition, expected):
    rs = RuleSet.from_texts([("t.yml", RULES % condition)])
    rule = rs.rules[0]
    base = dict(verb="create", objectRef={"resource": "pods", "namespace": "default", "apiVersion": "v1"})
    with_body = {"kind": "Pod", "spec": {"keep": True, "gone": None, "containers": [
        {"name": "c", "image": "a", "securityContext": {"privileged": True}}]}}
    events = [audit(**base, level="Metadata"), audit(**base, level="Request", requestObject={"kind": "Pod", "spec": {}}),
              audit(**base, level="Request", requestObject=with_body)]
    got = tuple(rule.matches(event_from_dict(d)) for d in events)
    via_engine = tuple(bool(Detector(rs).process(event_from_dict(d))) for d in events)
    assert got == expected
    assert via_engine == expected
