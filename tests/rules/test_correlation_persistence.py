"""Correlation windows survive a snapshot/restore through JSON: a stream cut in two, with the windows
carried across in between, gives exactly the matches of the uninterrupted stream."""

from __future__ import annotations

import datetime as dt

import msgspec
from ruletools import ev, rule_yaml, ruleset

from kubehawk.rules import Engine

T0 = dt.datetime(2026, 11, 23, 10, 0, 0, tzinfo=dt.UTC)

TOKEN = rule_yaml("sel: {objectRef.resource: serviceaccounts, objectRef.subresource: token}\ncondition: sel",
                  title="token", extra="name: token\n")
SECRET = rule_yaml("sel: {verb: get, objectRef.resource: secrets}\ncondition: sel", title="secret",
                   extra="name: secret\n")


def corr(body: str, title: str) -> str:
    return f"title: {title}\nname: {title}\nlevel: high\ncorrelation:\n{body}"


RULES = ruleset(
    TOKEN, SECRET,
    corr("  type: event_count\n  rules: [secret]\n  group-by: [user.username]\n  timespan: 10m\n"
         "  condition: {gte: 4}\n", "burst"),
    corr("  type: value_count\n  rules: [secret]\n  group-by: [user.username]\n  timespan: 10m\n"
         "  condition: {gte: 3, field: objectRef.name}\n", "names"),
    corr("  type: temporal\n  rules: [token, secret]\n  group-by: [user.username]\n  timespan: 10m\n", "both"),
    corr("  type: temporal_ordered\n  rules: [token, secret]\n  group-by: [user.username]\n  timespan: 10m\n",
         "ordered"),
)


def at(seconds: float, user: str, **kw):
    t = (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return ev(stageTimestamp=t, auditID=f"a{seconds}-{user}", user={"username": user}, **kw)


def stream():
    out = []
    for user in ("eve", "mallory", "trent"):
        out.append(at(1, user, verb="create", objectRef={"resource": "serviceaccounts", "subresource": "token"}))
        for i, name in enumerate(["a", "b", "a", "c", "d"]):
            out.append(at(10 + 30 * i, user, verb="get", objectRef={"resource": "secrets", "name": name}))
    out.sort(key=lambda e: e.head.stageTimestamp)
    return out


def matches(engine: Engine, events) -> list[tuple[str, str]]:
    return [(m.rule.title, m.event.head.auditID) for e in events for m in engine.process(e)]


def snapshot_through_json(engine: Engine) -> dict:
    return msgspec.json.decode(msgspec.json.encode({c.rule.id: c.snapshot() for c in engine.correlations}))


def test_windows_cut_by_a_restart_give_the_same_matches() -> None:
    events = stream()
    whole = matches(Engine(RULES), events)
    assert {t for t, _ in whole} == {"burst", "names", "both", "ordered"}
    for cut in range(1, len(events)):
        first = Engine(RULES)
        got = matches(first, events[:cut])
        snap = snapshot_through_json(first)
        second = Engine(RULES)  # a new process
        for state in second.correlations:
            assert state.restore(snap[state.rule.id])
        got += matches(second, events[cut:])
        assert got == whole, f"cut after event {cut}"


def test_a_changed_correlation_does_not_take_old_windows() -> None:
    first = Engine(RULES)
    matches(first, stream()[:4])
    snap = snapshot_through_json(first)
    changed = Engine(ruleset(TOKEN, SECRET, corr(
        "  type: event_count\n  rules: [secret]\n  group-by: [user.username]\n  timespan: 5m\n"
        "  condition: {gte: 4}\n", "burst")))
    [state] = changed.correlations
    assert state.restore(snap[state.rule.id]) is False and len(state) == 0
