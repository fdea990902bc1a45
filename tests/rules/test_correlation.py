"""Correlation rules over sliding windows: counts, distinct values, temporal order, memory."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
from ruletools import ev, rule_yaml, ruleset

from kubehawk.rules import Engine, RuleLoadError, RuleSet

T0 = dt.datetime(2026, 11, 23, 10, 0, 0, tzinfo=dt.UTC)

FORBIDDEN = rule_yaml(
    "sel:\n  annotations.authorization.k8s.io/decision: forbid\ncondition: sel",
    title="forbidden",
    extra="name: forbidden\n",
)


def corr(body: str, title: str = "corr") -> str:
    return f"title: {title}\nname: {title.replace(' ', '_')}\nlevel: high\ncorrelation:\n{body}"


BURST = corr(
    """\
  type: event_count
  rules: [forbidden]
  group-by: [user.username]
  timespan: 5m
  condition: {gte: 10}
""",
    title="forbidden burst",
)


def at(seconds: float, **kw):
    t = (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    kw.setdefault("auditID", f"a{seconds}-{kw.get('user', {}).get('username', '')}")
    return ev(stageTimestamp=t, **kw)


def forbid(seconds: float, user: str = "mallory", **kw):
    return at(seconds, user={"username": user}, annotations={"authorization.k8s.io/decision": "forbid"}, **kw)


def run(engine: Engine, events) -> list:
    out = []
    for e in events:
        out.extend(engine.process(e))
    return out


def test_ten_forbidden_by_one_identity_within_five_minutes():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    matches = run(eng, [forbid(i * 20) for i in range(10)])  # 10 events over 3 minutes
    assert len(matches) == 1
    m = matches[0]
    assert m.rule.title == "forbidden burst" and m.rule.kind == "correlation"
    assert m.group == {"user.username": "mallory"} and m.count == 10
    assert m.event.head.auditID == "a180-mallory"
    assert m.window_start == "2026-11-23T10:00:00Z" and m.window_end == "2026-11-23T10:03:00Z"
    assert len(m.events) == 10 and m.events[0] == "a0-mallory"


def test_nine_is_not_enough_and_base_rule_does_not_alert_alone():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    assert run(eng, [forbid(i) for i in range(9)]) == []
    assert eng.ruleset.get("forbidden").generate is False
    assert eng.stats["matches_by_rule"][eng.ruleset.get("forbidden").id] == 9


def test_window_slides_old_events_expire():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    # one event every 40 s: any 5-minute window holds at most 8
    assert run(eng, [forbid(i * 40) for i in range(30)]) == []
    # then a quick burst completes a window with the recent ones
    assert len(run(eng, [forbid(1200 + i) for i in range(3)])) == 1


def test_identities_are_counted_apart():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    events = [forbid(i, user="alice" if i % 2 else "bob") for i in range(18)]
    assert run(eng, events) == []
    matches = run(eng, [forbid(100, user="alice"), forbid(101, user="bob")])
    assert [m.group["user.username"] for m in matches] == ["alice", "bob"]


def test_burst_alerts_once_per_window_not_per_event():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    matches = run(eng, [forbid(i) for i in range(35)])
    assert [m.count for m in matches] == [10]  # 35 events inside one 5-minute window: one alert
    assert len(eng.correlations[0]) == 1


def test_continuing_burst_alerts_once_per_timespan_and_never_reuses_an_event():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    # one forbidden request every 10 s for 20 minutes
    matches = run(eng, [forbid(i * 10) for i in range(120)])
    starts = [m.window_start for m in matches]
    ends = [dt.datetime.fromisoformat(m.window_end) for m in matches]
    assert len(matches) == 4  # at 90 s, then the first event more than 5 minutes after each alert
    assert all(b - a > dt.timedelta(minutes=5) for a, b in zip(ends, ends[1:], strict=False))
    assert all(dt.datetime.fromisoformat(s) > e for s, e in zip(starts[1:], ends[:-1], strict=True))
    # other identities are not muted by mallory's alert
    assert len(run(eng, [forbid(1200 + i, user="eve") for i in range(10)])) == 1


def test_same_request_counts_once():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    events = []
    for i in range(10):
        events.append(forbid(i, auditID=f"req{i % 5}", stage="ResponseStarted"))
    assert run(eng, events) == []
    # two base rules matching the same event count it once too
    other = rule_yaml("sel: {verb: list}\ncondition: sel", title="lists", extra="name: lists\n")
    both = corr(
        "  type: event_count\n  rules: [forbidden, lists]\n  group-by: [user.username]\n"
        "  timespan: 1m\n  condition: {gte: 2}\n"
    )
    eng = Engine(ruleset(FORBIDDEN, other, both))
    assert run(eng, [forbid(0, verb="list")]) == []
    assert len(run(eng, [forbid(1, verb="list")])) == 1


def test_idle_groups_are_dropped():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    run(eng, [forbid(i / 2, user=f"u{i}") for i in range(500)])
    assert len(eng.correlations[0]) == 500  # all within five minutes
    run(eng, [forbid(10_000, user="late")])
    assert len(eng.correlations[0]) == 1
    assert eng.stats["correlation_groups"] == 1


def test_value_count_distinct_names():
    get_secret = rule_yaml(
        "sel: {verb: get, objectRef.resource: secrets}\ncondition: sel", title="get secret", extra="name: get_secret\n"
    )
    enum = corr(
        """\
  type: value_count
  rules: get_secret
  group-by: [user.username]
  timespan: 10m
  condition: {gte: 3, field: objectRef.name}
"""
    )
    eng = Engine(ruleset(get_secret, enum))

    def get(s, name):
        return at(s, verb="get", user={"username": "eve"}, objectRef={"resource": "secrets", "name": name})

    # the same name again and again does not count
    assert run(eng, [get(0, "a"), get(1, "a"), get(2, "b"), get(3, "b")]) == []
    (m,) = run(eng, [get(4, "c")])
    assert m.count == 3 and m.group == {"user.username": "eve"}
    # values older than the window are forgotten
    eng = Engine(ruleset(get_secret, enum))
    assert run(eng, [get(0, "a"), get(100, "b"), get(700, "c")]) == []


def test_temporal_all_rules_in_window_any_order():
    token = rule_yaml(
        "sel: {objectRef.resource: serviceaccounts, objectRef.subresource: token}\ncondition: sel",
        title="token", extra="name: token\n",
    )
    secret = rule_yaml(
        "sel: {verb: get, objectRef.resource: secrets}\ncondition: sel", title="secret", extra="name: secret\n"
    )
    temporal = corr("  type: temporal\n  rules: [token, secret]\n  group-by: [user.username]\n  timespan: 5m\n")
    ordered = corr(
        "  type: temporal_ordered\n  rules: [token, secret]\n  group-by: [user.username]\n  timespan: 5m\n",
        title="ordered",
    )
    rs = ruleset(token, secret, temporal, ordered)

    def tok(s):
        return at(s, verb="create", objectRef={"resource": "serviceaccounts", "subresource": "token"})

    def sec(s):
        return at(s, verb="get", objectRef={"resource": "secrets"})

    eng = Engine(rs)
    titles = [m.rule.title for m in run(eng, [sec(0), tok(10)])]
    assert titles == ["corr"]  # temporal fires in any order; ordered needs token first
    eng = Engine(rs)
    titles = [m.rule.title for m in run(eng, [tok(0), sec(10)])]
    assert titles == ["corr", "ordered"]
    eng = Engine(rs)
    assert run(eng, [tok(0), sec(400)]) == []  # too far apart
    # base rules referenced only by correlations do not alert on their own
    assert [r.generate for r in rs.rules] == [False, False, True, True]


def test_generate_true_keeps_base_alerts_and_aliases_rename_group_fields():
    mine = rule_yaml("sel: {verb: create}\ncondition: sel", title="a", extra="name: a\n")
    other = rule_yaml("sel: {verb: delete}\ncondition: sel", title="b", extra="name: b\n")
    c = corr(
        """\
  type: temporal
  rules: [a, b]
  generate: true
  group-by: [who]
  aliases:
    who:
      a: user.username
      b: objectRef.name
  timespan: 1m
"""
    )
    rs = ruleset(mine, other, c)
    assert rs.get("corr").fields >= {"user.username", "objectRef.name"}
    eng = Engine(rs)
    m1 = eng.process(at(0, verb="create", user={"username": "zed"}))
    m2 = eng.process(at(5, verb="delete", user={"username": "admin"}, objectRef={"resource": "users", "name": "zed"}))
    assert [m.rule.title for m in m1] == ["a"]
    assert [m.rule.title for m in m2] == ["b", "corr"]
    assert m2[1].group == {"who": "zed"}


def test_correlation_rule_metadata():
    rs = ruleset(FORBIDDEN, BURST)
    c = rs.get("forbidden_burst")
    assert c.kind == "correlation" and c.level == "high" and c.generate
    assert c.correlation.type == "event_count" and c.correlation.timespan == 300
    assert c.correlation.rules == [rs.get("forbidden").id]
    assert c.fields == {"annotations.authorization.k8s.io/decision", "user.username"}
    assert c.predicate is None


def test_correlation_audit_level_is_the_max_of_its_bases():
    body = rule_yaml("sel: {requestObject.spec.hostPID: true}\ncondition: sel", title="hp", extra="name: hp\n")
    c = corr("  type: event_count\n  rules: [hp, forbidden]\n  timespan: 1h\n  condition: {gte: 2}\n")
    rs = ruleset(body, FORBIDDEN, c)
    assert rs.get("corr").audit_level == "Request"
    assert {s.level for s in rs.get("corr").scopes} == {"Request"}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("  type: event_count\n  rules: [nosuch]\n  timespan: 1m\n  condition: {gte: 2}\n", "unknown rule 'nosuch'"),
        ("  type: event_count\n  rules: [forbidden]\n  timespan: 1m\n  condition: {lt: 2}\n", "cannot be decided"),
        ("  type: value_sum\n  rules: [forbidden]\n  timespan: 1m\n  condition: {gte: 2, field: x}\n", "not supported"),
        ("  type: event_count\n  rules: [forbidden]\n  timespan: 5x\n  condition: {gte: 2}\n", "[Tt]imespan"),
    ],
)
def test_bad_correlations_name_the_file(body, what):
    with pytest.raises(RuleLoadError, match=r"rule1\.yml: .*" + what):
        ruleset(FORBIDDEN, corr(body))


def test_correlation_engine_pickles():
    eng = pickle.loads(pickle.dumps(Engine(RuleSet.from_texts({"a.yml": FORBIDDEN, "b.yml": BURST}))))
    assert len(run(eng, [forbid(i) for i in range(10)])) == 1


def test_events_without_timestamp_use_stream_time():
    eng = Engine(ruleset(FORBIDDEN, BURST))
    events = [
        ev(auditID=f"n{i}", stageTimestamp=None, requestReceivedTimestamp=None,
           annotations={"authorization.k8s.io/decision": "forbid"})
        for i in range(10)
    ]
    assert len(run(eng, events)) == 1
