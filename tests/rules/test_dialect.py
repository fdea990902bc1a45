"""The Sigma dialect of the README, as a table: one row per point (detection, event, expected).

Each row is evaluated directly and through the indexed engine (:func:`ruletools.matches`).
"""

from __future__ import annotations

import pytest
from ruletools import matches

# (id, detection, event fields, expected)
CASES: list[tuple[str, str, dict, bool]] = [
    # --- case-insensitive wildcards: the rule value is folded like the event value -----------
    ("qmark-capital", "sel: {verb: 'CR?ATE'}\ncondition: sel", {"verb": "create"}, True),
    ("qmark-capital-miss", "sel: {verb: 'CR?ATE'}\ncondition: sel", {"verb": "update"}, False),
    ("inner-star-capital", "sel: {user.username: 'System:*:Default'}\ncondition: sel",
     {"user": {"username": "system:serviceaccount:kube-system:default"}}, True),
    ("inner-star-capital-miss", "sel: {user.username: 'System:*:Default'}\ncondition: sel",
     {"user": {"username": "system:serviceaccount:kube-system:builder"}}, False),
    ("contains-qmark-capital", "sel: {requestURI|contains: 'EX?C'}\ncondition: sel",
     {"requestURI": "/api/v1/namespaces/a/pods/p/exec?command=sh"}, True),
    ("keyword-inner-star-capital", "kw: ['EVIL*Pod']\ncondition: kw",
     {"requestObject": {"metadata": {"name": "evil-pod"}}}, True),
    ("keyword-inner-star-capital-miss", "kw: ['EVIL*Pod']\ncondition: kw",
     {"requestObject": {"metadata": {"name": "good-pod"}}}, False),
    ("cased-qmark-keeps-case", "sel: {verb|cased: 'CR?ATE'}\ncondition: sel", {"verb": "create"}, False),
    # --- numbers: the JSON number, or a string written exactly as a JSON number --------------
    *[(f"number-{name}", "sel: {responseStatus.code: 403}\ncondition: sel", {"responseStatus": {"code": v}}, hit)
      for name, v, hit in [("int", 403, True), ("float", 403.0, True), ("str", "403", True),
                           ("str-float", "403.0", True), ("str-exp", "4.03e2", True), ("other", 404, False),
                           ("padded", " 403 ", False), ("leading-zero", "0403", False),
                           ("underscore", "4_03", False), ("plus", "+403", False), ("bool", True, False)]],
    *[(f"number-cmp-{name}", "sel: {responseStatus.code|gte: 400}\ncondition: sel",
       {"responseStatus": {"code": v}}, hit)
      for name, v, hit in [("str", "401", True), ("inf", "inf", False), ("Infinity", "Infinity", False),
                           ("nan", "nan", False), ("padded", " 500", False), ("underscore", "1_000", False)]],
    ("number-big-int-exact", "sel: {requestObject.spec.n: 12345678901234567891}\ncondition: sel",
     {"requestObject": {"spec": {"n": "12345678901234567890"}}}, False),
    # --- booleans: the JSON boolean or the string true/false (any case, nothing around it) ----
    ("bool-str", "sel: {requestObject.spec.hostPID: true}\ncondition: sel",
     {"requestObject": {"spec": {"hostPID": "True"}}}, True),
    ("bool-padded", "sel: {requestObject.spec.hostPID: true}\ncondition: sel",
     {"requestObject": {"spec": {"hostPID": " true"}}}, False),
    # --- nested lists: walked fully at the end of a path, as in its middle ---------------------
    ("nested-end-body", "sel: {requestObject.spec.args: evil}\ncondition: sel",
     {"requestObject": {"spec": {"args": [["a", "b"], [["evil"]]]}}}, True),
    ("nested-end-body-miss", "sel: {requestObject.spec.args: evil}\ncondition: sel",
     {"requestObject": {"spec": {"args": [["a", "b"], [["good"]]]}}}, False),
    ("nested-middle-body", "sel: {requestObject.spec.x.y: evil}\ncondition: sel",
     {"requestObject": {"spec": {"x": [[{"y": "good"}], [[{"y": "evil"}]]]}}}, True),
    ("nested-end-head", "sel: {user.groups: 'system:masters'}\ncondition: sel",
     {"user": {"username": "u", "groups": [["system:authenticated"], ["system:masters"]]}}, True),
    ("nested-end-contains", "sel: {user.extra.scopes|contains: admin}\ncondition: sel",
     {"user": {"username": "u", "extra": {"scopes": [["read"], ["cluster-admin"]]}}}, True),
    ("nested-end-exists", "sel: {requestObject.spec.args|exists: true}\ncondition: sel",
     {"requestObject": {"spec": {"args": [["a"]]}}}, True),
    ("nested-end-null", "sel: {requestObject.spec.args: null}\ncondition: sel",
     {"requestObject": {"spec": {"args": [[None]]}}}, True),
    ("nested-fieldref", "sel: {objectRef.name|fieldref: requestObject.names}\ncondition: sel",
     {"objectRef": {"resource": "pods", "name": "api"}, "requestObject": {"names": [["x"], ["api"]]}}, True),
    # --- |exists: presence, "not its value, be it empty or null" (the Sigma spec) --------------
    *[(f"exists-{want}-{name}", f"sel: {{{path}|exists: {want}}}\ncondition: sel", event, (want == "true") is hit)
      for want in ("true", "false")
      for name, path, event, hit in [
          ("null", "objectRef.subresource", {"objectRef": {"resource": "pods", "subresource": None}}, True),
          ("empty-list", "requestObject.spec.externalIPs", {"requestObject": {"spec": {"externalIPs": []}}}, True),
          ("list-of-null", "user.groups", {"user": {"username": "u", "groups": [None]}}, True),
          ("empty-string", "objectRef.namespace", {"objectRef": {"resource": "pods", "namespace": ""}}, True),
          ("missing", "objectRef.subresource", {"objectRef": {"resource": "pods"}}, False),
          ("through-list-missing", "requestObject.spec.containers.command",
           {"requestObject": {"spec": {"containers": [{"name": "a"}]}}}, False),
          ("through-list-null", "requestObject.spec.containers.command",
           {"requestObject": {"spec": {"containers": [{"name": "a"}, {"command": None}]}}}, True),
          ("dotted-key-null", "annotations.example.com/x", {"annotations": {"example.com/x": ""}}, True),
          ("top-level-null", "impersonatedUser", {"impersonatedUser": None}, True),
          ("top-level-missing", "impersonatedUser", {}, False),
          ("body-null", "requestObject", {"requestObject": None}, True),
          ("body-missing", "requestObject", {}, False),
      ]],
    ("null-still-matches-null", "sel: {objectRef.subresource: null}\ncondition: sel",
     {"objectRef": {"resource": "pods", "subresource": None}}, True),
    ("cased-qmark-exact", "sel: {userAgent|cased: 'K?bectl*X'}\ncondition: sel", {"userAgent": "Kubectl/1 X"}, True),
]


@pytest.mark.parametrize(("detection", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dialect(detection: str, event: dict, expected: bool) -> None:
    assert matches(detection, **event) is expected


@pytest.mark.parametrize("detection", ["sel: {verb: create}\ncondition: sel",
                                       "sel: {stage: RequestReceived}\ncondition: sel"])
def test_request_received_never_alerts_even_for_a_rule_asking_for_it(detection):
    from ruletools import ev, rule_yaml, ruleset

    from kubehawk.rules import Engine

    eng = Engine(ruleset(rule_yaml(detection)))
    assert eng.process(ev(verb="create", stage="RequestReceived", auditID="r1")) == []
    assert len(eng.process(ev(verb="create", stage="ResponseComplete", auditID="r1"))) == (
        0 if "stage" in detection else 1)


@pytest.mark.parametrize(("line", "present"), [
    (b'{"kind":"Event","verb":"get","auditID":"a","impersonatedUser":null}', True),
    (b'{"kind":"Event","verb":"get","auditID":"a"}', False),
    (b'{"kind":"Event","verb":"get","auditID":"a","requestObject":null}', True),
])
def test_exists_tells_a_top_level_null_from_a_missing_field_in_a_line_as_read(line, present):
    # the typed head reads both as None; the line as written tells them apart
    from ruletools import rule_yaml, ruleset

    from kubehawk.event import decode_event
    from kubehawk.rules import Engine

    field = "impersonatedUser" if b"impersonatedUser" in line or b"request" not in line else "requestObject"
    rs = ruleset(rule_yaml(f"sel: {{{field}|exists: true}}\ncondition: sel"))
    e = decode_event(line, "audit.log:1")
    assert rs.rules[0].matches(e) is present
    assert bool(Engine(rs).process(decode_event(line, "audit.log:1"))) is present


EXISTS_RULES = [
    "sel: {verb: get, objectRef.subresource|exists: true}\ncondition: sel",
    "sel: {verb: get, objectRef.namespace|exists: false}\ncondition: sel",
    "sel: {verb: get, objectRef.name|exists: true}\nf: {objectRef.subresource|exists: true}\ncondition: sel and not f",
    "sel: {verb: get, impersonatedUser|exists: true}\ncondition: sel",
]


def _exists_events() -> list[dict]:
    from helpers import audit

    out = []
    for i in range(40):  # the same shapes again and again: the index and the line screen remember them
        ref = {"resource": "pods"}
        if i % 4 == 1:
            ref.update(subresource=None, namespace=None, name=None)
        elif i % 4 == 2:
            ref.update(subresource="log", namespace="web", name="api")
        elif i % 4 == 3:
            ref.update(subresource=[], name=[None])
        ev = audit(verb="get", auditID=f"a{i}", objectRef=ref)
        if i % 5 == 0:
            ev["impersonatedUser"] = None
        out.append(ev)
    return out


@pytest.mark.parametrize("screened", [False, True])
def test_exists_the_index_and_line_screen_never_take_a_null_for_a_missing_field(tmp_path, screened):
    # the index remembers plans by slot values, the line screen by the raw text: a field written
    # as null must not get the plan of a missing one
    import json

    from ruletools import rule_yaml, ruleset

    from kubehawk.event import decode_event
    from kubehawk.rules import Engine
    from kubehawk.sources.files import ReadStats, read_paths

    rs = ruleset(*[rule_yaml(d, title=f"e{i}") for i, d in enumerate(EXISTS_RULES)])
    events = _exists_events()
    log = tmp_path / "audit.log"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    expected = [sorted(r.title for r in rs.rules if r.matches(decode_event(json.dumps(e).encode())))
                for e in events]
    assert len({tuple(x) for x in expected}) >= 4  # null and missing give different answers
    eng = Engine(rs)
    got: dict[str, list[str]] = {}
    stream = read_paths([str(log)], ReadStats(), screen=eng.line_screen if screened else None)
    for event, found in eng.stream(stream):
        got[event.head.auditID] = sorted(m.rule.title for m in found)
    assert [got.get(e["auditID"], []) for e in events] == expected
