from dataclasses import dataclass, field

from kubehawk.alerts import Alert, level_rank, render_message
from kubehawk.event import event_from_dict

from helpers import audit


@dataclass
class FakeRule:
    """Only the attributes an Alert reads; the real Rule comes from the loader."""

    id: str = "r-1"
    title: str = "Shell in a pod"
    level: str = "high"
    kind: str = "event"
    techniques: list = field(default_factory=lambda: ["MS-TA9006"])
    attack: list = field(default_factory=lambda: ["T1609"])
    message_template: str | None = None


@dataclass
class FakeMatch:
    rule: FakeRule
    event: object
    count: int = 0
    group: dict = field(default_factory=dict)
    window_start: str | None = None
    window_end: str | None = None
    events: list = field(default_factory=list)


EXEC = audit(verb="create", requestURI="/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=bash&tty=true",
             objectRef={"resource": "pods", "subresource": "exec", "namespace": "kube-system", "name": "etcd-0"},
             sourceIPs=["203.0.113.5", "10.0.0.7"], auditID="abc")


def test_alert_json_contract():
    alert = Alert.from_match(FakeMatch(FakeRule(), event_from_dict(EXEC)))
    d = alert.to_dict()
    assert list(d) == ["rule", "techniques", "attack", "auditID", "time", "user", "verb", "resource", "subresource",
                       "namespace", "name", "sourceIP", "userAgent", "message"]
    assert d["rule"] == {"id": "r-1", "title": "Shell in a pod", "level": "high"}
    assert d["techniques"] == ["MS-TA9006"] and d["attack"] == ["T1609"]
    assert d["auditID"] == "abc" and d["sourceIP"] == "10.0.0.7" and d["subresource"] == "exec"
    assert d["time"] == EXEC["stageTimestamp"]
    assert "alice" in d["message"] and "kube-system/etcd-0" in d["message"]


def test_message_template_and_missing_values():
    ev = event_from_dict(EXEC)
    msg = render_message("{user.username} ran {x.exec.command_line} in {objectRef.namespace}/{objectRef.name} "
                         "tty={x.exec.tty} from {nope.nothing}", ev)
    assert msg == "alice ran bash in kube-system/etcd-0 tty=true from -"


def test_a_slash_joins_two_placeholders_only_when_both_are_there():
    template = "{verb} {objectRef.resource}/{objectRef.subresource} {objectRef.namespace}/{objectRef.name} ({nope}/{nah})"
    crb = event_from_dict(audit(verb="create", objectRef={"resource": "clusterrolebindings", "name": "backup-admin"}))
    assert render_message(template, crb) == "create clusterrolebindings backup-admin (-)"
    assert render_message(template, event_from_dict(EXEC)) == "create pods/exec kube-system/etcd-0 (-)"
    listing = event_from_dict(audit(verb="list", objectRef={"resource": "secrets", "namespace": "bank"}))
    assert render_message(template, listing) == "list secrets bank (-)"
    # a slash inside literal text is text: only a bare "/" between two placeholders joins them
    assert render_message("{objectRef.namespace} / {objectRef.name} at /{objectRef.name}", crb) == \
        "- / backup-admin at /backup-admin"


def test_correlation_message():
    rule = FakeRule(kind="correlation", message_template="{count} refusals for {group.user.username}")
    m = FakeMatch(rule, event_from_dict(EXEC), count=10, group={"user.username": "mallory"},
                  window_start="t0", window_end="t1", events=["a", "b"])
    alert = Alert.from_match(m)
    assert alert.message == "10 refusals for mallory"
    assert alert.correlation["events"] == ["a", "b"]
    plain = Alert.from_match(FakeMatch(FakeRule(kind="correlation"), event_from_dict(EXEC), count=3,
                                       group={"user.username": "m"}, window_start="t0", window_end="t1"))
    assert plain.message.startswith("Shell in a pod: 3 events for user.username=m")


def test_level_rank():
    assert level_rank("critical") > level_rank("high") > level_rank("medium") > level_rank("low")
    assert level_rank("informational") == 0 and level_rank(None) == level_rank("medium")


def test_head_fields_read_in_place_render_like_the_general_path():
    """render_message reads head strings in place; the text equals the one event.get gives."""
    from kubehawk.alerts import _assemble, _compile, _show

    def general(template, event):
        pieces = _compile(template)
        return _assemble(pieces, [None if parts is None else _show(event.get(parts)) for _, parts in pieces])

    template = ("{verb} {user.username} {objectRef.namespace}/{objectRef.name} {objectRef.resource} "
                "{userAgent} {requestURI} {responseStatus.code} {user.groups} {impersonatedUser.username} "
                "{annotations.authorization.k8s.io/decision} {stage} {x.source_ip} {nothere} {objectRef.a.b}")
    odd_values = ["", None, 0, 7, True, ["a", "b"], [], {"k": "v"}, "ns-1", "ümlaut"]
    for v in odd_values:
        for where in ("username", "namespace", "name", "verb", "userAgent", "impersonated"):
            d = audit()
            if where == "username":
                d["user"]["username"] = v
            elif where in ("namespace", "name"):
                d["objectRef"][where] = v
            elif where == "impersonated":
                d["impersonatedUser"] = {"username": v}
            else:
                d[where] = v
            try:
                e = event_from_dict(d, "t")
            except Exception:  # noqa: BLE001 - a value the typed head refuses is not an event
                continue
            assert render_message(template, e) == general(template, e), (where, v)
    e = event_from_dict({**audit(), "objectRef": None, "user": None}, "t")
    assert render_message(template, e) == general(template, e)


def test_a_create_is_named_from_its_body():
    """The apiserver records no objectRef.name for a create; the alert takes it from the body."""
    pod = audit(verb="create", auditID="c-1", objectRef={"resource": "pods", "namespace": "default"},
                requestObject={"kind": "Pod", "metadata": {"name": "priv-exec-pod"}})
    rule = FakeRule(message_template="{user.username} created {objectRef.namespace}/{objectRef.name}")
    alert = Alert.from_match(FakeMatch(rule, event_from_dict(pod)))
    assert alert.to_dict()["name"] == "priv-exec-pod"
    assert alert.message == "alice created default/priv-exec-pod"
    generated = audit(verb="create", objectRef={"resource": "pods", "namespace": "web"},
                      requestObject={"metadata": {"generateName": "api-"}},
                      responseObject={"metadata": {"name": "api-x7k2p"}})
    assert Alert.from_match(FakeMatch(rule, event_from_dict(generated))).to_dict()["name"] == "api-x7k2p"
    listing = audit(verb="list", objectRef={"resource": "pods", "namespace": "web"},
                    responseObject={"metadata": {"name": "not-an-object-name"}})
    assert Alert.from_match(FakeMatch(rule, event_from_dict(listing))).to_dict()["name"] is None


def test_every_builtin_message_names_the_object_once():
    """``{objectRef.name}`` already falls back to the body's name on a create: a template that
    also writes ``{requestObject.metadata.name}`` beside it names the object twice."""
    from kubehawk.rules import load_rules

    rules = [r for r in load_rules().rules if r.message_template and "{objectRef.name}" in r.message_template]
    assert len(rules) > 20
    for verb, ref_name in (("create", None), ("update", "zz-object"), ("patch", "zz-object")):
        ref = {"resource": "configmaps", "namespace": "default"} | ({"name": ref_name} if ref_name else {})
        e = event_from_dict(audit(verb=verb, objectRef=ref, requestObject={"metadata": {"name": "zz-object"}}))
        for r in rules:
            message = render_message(r.message_template, e)
            assert message.count("zz-object") == 1, (r.title, verb, message)


def test_evidence_is_the_line_as_written_or_the_decoded_event():
    import json

    from kubehawk.event import decode_event

    raw = json.dumps({**EXEC, "x-vendor": {"kept": True}}).encode()
    alert = Alert.from_match(FakeMatch(FakeRule(), decode_event(raw, "audit.log:7")))
    ev = alert.evidence()
    assert ev["origin"] == "audit.log:7"
    assert ev["event"] == json.loads(raw)  # every field as written, even those kubehawk does not model
    from_dict = Alert.from_match(FakeMatch(FakeRule(), event_from_dict(EXEC, "request #3"))).evidence()
    assert from_dict["origin"] == "request #3" and from_dict["event"]["auditID"] == "abc"
    assert "evidence" not in alert.to_dict()  # only when asked
    corr = FakeRule(kind="correlation")
    match = FakeMatch(corr, event_from_dict(EXEC, "a.log:9"), count=2, events=["e1", "abc"])
    assert Alert.from_match(match).evidence()["window_events"] == ["e1", "abc"]
