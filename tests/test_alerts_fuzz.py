"""The whole alert path against wrong-typed values: every built-in rule's message template and the
default message, with a number, a boolean, a list or an object in every field a template reads.
An alert is always made, its message shows the value as JSON, its JSON encodes; nothing raises."""

from __future__ import annotations

import json
import random

import pytest

from kubehawk.alerts import Alert, _compile
from kubehawk.event import EventDecodeError, event_from_dict
from kubehawk.rules import Match, load_rules

from helpers import audit

WRONG = [0, 5, -1.5, True, False, [], [7, "a", None], ["x", {"k": 1}], {}, {"nested": {"n": [1, 2]}}, ""]
DEFAULT_FIELDS = ["objectRef.namespace", "objectRef.name", "objectRef.resource", "objectRef.subresource",
                  "user.username"]
BASE = audit(verb="create", auditID="a-1", userAgent="kubectl/1.30",
             objectRef={"resource": "pods", "subresource": "exec", "namespace": "web", "name": "api"},
             requestObject={"metadata": {"name": "api"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


def _rules():
    rules = [r for r in load_rules().rules if r.kind == "event"]
    assert len(rules) > 50
    return rules


def _paths(template: str) -> list[str]:
    return [".".join(parts) for _, parts in _compile(template) if parts is not None]


def _with(record: dict, path: str, value) -> dict:
    rec = json.loads(json.dumps(record))
    parts = path.split(".")
    d = rec
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    d[parts[-1]] = value
    return rec


def _alert(rule, record):
    try:
        event = event_from_dict(record, origin="audit.log:7")
    except EventDecodeError:
        return None  # a wrong type the decoder already refuses (a bad record, warned by the reader)
    alert = Alert.from_match(Match(rule, event))
    assert isinstance(alert.message, str) and alert.message
    json.dumps(alert.to_dict())
    return alert


def test_every_builtin_template_and_the_default_survive_wrong_types_in_every_field_they_read():
    rules = _rules()
    cases = 0
    for rule in rules:
        paths = _paths(rule.message_template) if rule.message_template else []
        for path in [*paths, *DEFAULT_FIELDS]:
            if path.startswith("x.") or path in ("count",) or path.startswith("group."):
                top = path.split(".")[1]
                if top not in ("images", "pod_spec", "containers"):
                    continue
                path = "requestObject.spec.containers.image"  # x.images and x.pod_spec come from here
            for value in WRONG:
                for r in (rule, _without_template(rule)):
                    if _alert(r, _with(BASE, path, value)) is not None:
                        cases += 1
    assert cases > 5000


def _without_template(rule):
    import copy

    r = copy.copy(rule)
    r.message_template = None
    return r


@pytest.mark.parametrize("value", [5, 3.5, True, ["a", "b"], {"k": [1]}])
@pytest.mark.parametrize("field", ["namespace", "name", "resource", "subresource"])
def test_default_message_shows_a_wrong_typed_object_ref_value_as_json(field, value):
    rule = _without_template(_rules()[0])
    alert = _alert(rule, _with(BASE, f"objectRef.{field}", value))
    assert json.dumps(value, separators=(",", ":")) in alert.message
    assert alert.warnings == [f"objectRef.{field} is {type(value).__name__} "
                              f"{json.dumps(value, separators=(',', ':'))}, not a string"]


def test_template_shows_objects_as_json_not_python_repr():
    rule = _without_template(_rules()[0])
    rule.message_template = "{user.username} on {objectRef.namespace}/{objectRef.name}"
    alert = _alert(rule, _with(_with(BASE, "user.username", {"a": True}), "objectRef.name", None))
    assert alert.message == '{"a":true} on web/api'  # a create: the name in the body
    assert alert.warnings == ['user.username is dict {"a":true}, not a string']


def test_random_wrong_types_in_many_fields_at_once():
    rng = random.Random(12)
    rules = _rules()
    fields = DEFAULT_FIELDS + ["objectRef.apiGroup", "user.groups", "responseStatus.code", "impersonatedUser.username",
                               "requestObject.metadata.name", "requestObject.spec.containers", "annotations.x"]
    for _ in range(400):
        rec = BASE
        for f in rng.sample(fields, 4):
            rec = _with(rec, f, rng.choice(WRONG))
        _alert(rng.choice(rules), rec)
