import json

import pytest

from kubehawk.event import EventDecodeError, decode_event, event_from_dict
from kubehawk.fieldpath import resolve

from helpers import audit


def test_fast_decode_keeps_bodies_raw_until_read():
    ev = decode_event(json.dumps(audit(requestObject={"spec": {"hostPID": True}})).encode(), "f.log:3")
    assert ev.head.requestObject is not None and ev._req is not ev.request_object  # decoded lazily
    assert ev.get("requestObject.spec.hostPID") == [True]
    assert ev.origin == "f.log:3"


def test_wrong_typed_field_names_the_field():
    with pytest.raises(EventDecodeError, match=r"field verb"):
        decode_event(json.dumps(audit(verb=5)))


@pytest.mark.parametrize("data, reason", [
    (b"{not json", "malformed JSON"),
    (json.dumps({"kind": "Pod"}).encode(), "not Event"),
    (json.dumps({"apiVersion": "v1", "verb": "get"}).encode(), "not an audit.k8s.io Event"),
    (json.dumps({"hello": 1}).encode(), "not an audit Event"),
])
def test_not_an_event(data, reason):
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(data)


def test_v1beta1_accepted_with_legacy_timestamp():
    ev = decode_event(json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1beta1", "verb": "get",
                                  "auditID": "x", "timestamp": "2018-10-25T13:58:49Z"}))
    assert ev.time == "2018-10-25T13:58:49Z"


def test_list_paths_match_any_element():
    d = {"spec": {"containers": [{"image": "a"}, {"image": "b", "ports": [{"hostPort": 80}]}]}}
    assert resolve(d, ("spec", "containers", "image")) == ["a", "b"]
    assert resolve(d, ("spec", "containers", "ports", "hostPort")) == [80]
    assert resolve(d, ("spec", "volumes")) == []


def test_dotted_keys_resolve_by_longest_existing_key():
    d = {"annotations": {"authorization.k8s.io/decision": "forbid", "authorization": {"k8s": "short"}}}
    assert resolve(d, ("annotations", "authorization", "k8s", "io/decision")) == ["forbid"]
    user = {"extra": {"authentication.kubernetes.io/pod-name": ["web-1"]}}
    assert resolve(user, ("extra", "authentication", "kubernetes", "io/pod-name")) == ["web-1"]


def test_null_and_missing_differ():
    assert resolve({"a": None}, ("a",)) == [None]
    assert resolve({}, ("a",)) == []


def test_trusted_source_ip_is_the_last():
    ev = event_from_dict(audit(sourceIPs=["1.2.3.4", "10.0.0.9"]))
    assert ev.source_ip == "10.0.0.9"
    assert ev.get("x.source_ip") == ["10.0.0.9"]


def test_from_dict_round_trip():
    d = audit(requestObject={"kind": "Pod"}, responseObject={"kind": "Pod", "status": {}})
    ev = event_from_dict(d)
    assert ev.to_dict() == {k: v for k, v in d.items()}
    assert json.loads(ev.to_json())["requestObject"] == {"kind": "Pod"}


def test_events_compare_by_identity_and_format_a_file_origin_when_asked():
    from kubehawk.event import AuditEvent, decode_head

    head = decode_head(json.dumps(audit()).encode())
    a, b = AuditEvent(head, ("f.log", 7)), AuditEvent(head, ("f.log", 7))
    assert a != b and a == a and len({a, b}) == 2
    assert a.origin == "f.log:7" and a.origin == "f.log:7"
    a.origin = "elsewhere"
    assert a.origin == "elsewhere" and b.extra == {} and b.request_object is None
    c = AuditEvent(head, "o", {"source_type": "gke"})
    assert c.top("source_type") == "gke" and c.derived_value("identity") == "user"


@pytest.mark.parametrize("req,resp,want", [
    ({"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}, "a"),
    ({"metadata": {"generateName": "web-"}}, {"metadata": {"name": "web-x1"}}, "web-x1"),
    ({"metadata": {"name": ""}}, {"metadata": {"name": "srv"}}, "srv"),
    ({"metadata": {"name": 5}}, None, None),
    ({"metadata": "oops"}, {"metadata": {"name": "b"}}, "b"),
    ([{"op": "add", "path": "/metadata/name", "value": "x"}], None, None),
    ({"metadata": None, "spec": {}}, {"kind": "Status"}, None),
    ("text", 7, None),
    (None, None, None),
    ({"metadata": {"name": "dup", "labels": {"name": "not-this"}}, "name": "nor-this"}, None, "dup"),
])
def test_body_name_reads_metadata_name_like_the_decoded_bodies(req, resp, want):
    from kubehawk.event import _metadata_name

    fields = {k: v for k, v in (("requestObject", req), ("responseObject", resp)) if v is not None}
    line = json.dumps(audit(verb="create", **fields)).encode()
    lazy = decode_event(line)
    assert lazy.body_name() == want
    if isinstance(req, dict) and isinstance(req.get("metadata"), dict | None):
        assert lazy._req is _UNSET_SENTINEL()  # the typed read of one field: no body decoded for it
    eager = decode_event(line)
    eager.request_object, eager.response_object  # noqa: B018 - decoded first: the cached path
    assert eager.body_name() == want
    reference = next((n for n in (_metadata_name(req), _metadata_name(resp)) if isinstance(n, str) and n), None)
    assert want == reference


def _UNSET_SENTINEL():  # noqa: N802 - the event module's marker of a body not decoded yet
    from kubehawk.event import _UNSET

    return _UNSET
