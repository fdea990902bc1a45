"""First-seen baselines: learning, alerting once, a real SQLite file kept across Detector restarts."""

from __future__ import annotations

import functools
import sqlite3

import pytest
from tests.rules.builtin_events import ev, sa

import kubehawk.rules.baseline_spec as baseline_spec
from kubehawk.config import Config, ConfigError
from kubehawk.detect import Detector
from kubehawk.event import event_from_dict
from kubehawk.rules import RuleLoadError, load_rules
from kubehawk.rules.baseline import Baselines, BaselineStore, baseline_config

DAY0 = "2025-06-02T10:00:00.000000Z"
DAY1 = "2025-06-03T10:00:00.000000Z"
DAY3 = "2025-06-05T10:00:00.000000Z"
DAY9 = "2025-06-11T10:00:00.000000Z"
EXEC = "baseline-first-exec-by-identity"
SA_NET = "baseline-serviceaccount-new-network"
CLIENT = "baseline-new-client-for-person"
FRONTEND = sa("shop", "frontend")


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(builtin=True)


def _cfg(tmp_path, **baseline) -> Config:
    return Config.from_dict({"baseline": {"path": str(tmp_path / "state" / "baseline.sqlite"), **baseline}})


def _exec(user: str, time: str, ip: str = "10.0.0.5") -> dict:
    return ev("create", "pods", name="web-1", sub="exec", user=user, time=time, code=101, ip=ip,
              uri="/api/v1/namespaces/default/pods/web-1/exec?command=ls&container=app&stdout=true")


def _names(detector: Detector, *events: dict) -> list[str]:
    return [a.rule.name for d in events for a in detector.process(event_from_dict(d))]


def test_learns_then_alerts_once_per_new_value(tmp_path, ruleset):
    det = Detector(ruleset, _cfg(tmp_path, learning_days=2))
    # Learning: every identity is recorded, nothing alerts (the ordinary exec rule still does).
    got = _names(det, _exec("alice", DAY0), _exec("bob", DAY1))
    assert EXEC not in got and got.count("pod-exec") == 2
    # After the learning period: known identities are quiet, a new one alerts once.
    assert EXEC not in _names(det, _exec("alice", DAY3), _exec("bob", DAY3))
    assert _names(det, _exec("mallory", DAY3)).count(EXEC) == 1
    assert EXEC not in _names(det, _exec("mallory", DAY9))
    assert det.baselines.store.count(ruleset.get(EXEC).id) == 3  # alice, bob, mallory
    det.close()


def test_restart_keeps_knowledge_and_learning_start(tmp_path, ruleset):
    cfg = _cfg(tmp_path, learning_days=2)
    first = Detector(ruleset, cfg)
    _names(first, _exec("alice", DAY0))
    first.flush()
    first.close()
    path = tmp_path / "state" / "baseline.sqlite"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM seen WHERE value='alice'").fetchone()[0] == 1

    second = Detector(ruleset, cfg)
    # alice was learned by the first process; the learning period did not restart with the second.
    assert EXEC not in _names(second, _exec("alice", DAY3))
    assert _names(second, _exec("mallory", DAY3)).count(EXEC) == 1
    second.close()
    third = Detector(ruleset, cfg)
    assert EXEC not in _names(third, _exec("mallory", DAY9))
    third.close()


def test_serviceaccount_token_from_new_network(tmp_path, ruleset):
    det = Detector(ruleset, _cfg(tmp_path, learning_days=1))
    pod = {"authentication.kubernetes.io/pod-name": ["frontend-7d9"]}

    def sa_get(time: str, ip: str) -> dict:
        return ev("get", "configmaps", ns="shop", name="cfg", user=FRONTEND, time=time, ip=ip, extra=pod,
                  ua="frontend/1.0 (linux/amd64) kubernetes/abc")

    assert SA_NET not in _names(det, sa_get(DAY0, "10.244.1.7"))
    # A restarted pod gets another IP in the same pod network: known.
    assert SA_NET not in _names(det, sa_get(DAY3, "10.244.9.200"))
    # The token replayed from outside: new network, once.
    assert _names(det, sa_get(DAY3, "203.0.113.66")).count(SA_NET) == 1
    assert SA_NET not in _names(det, sa_get(DAY9, "203.0.113.99"))
    # No source IP (an admission-webhook source): not judged.
    no_ip = sa_get(DAY9, "10.0.0.1")
    del no_ip["sourceIPs"]
    assert SA_NET not in _names(det, no_ip)
    assert det.baselines.stats["undecided"] == 1
    det.close()


def test_client_product_ignores_versions(tmp_path, ruleset):
    det = Detector(ruleset, _cfg(tmp_path, learning_days=1))
    read = dict(name="db", user="alice@example.com")
    assert CLIENT not in _names(det, ev("get", "secrets", time=DAY0, ua="kubectl/v1.30.1 (linux/amd64)", **read))
    assert CLIENT not in _names(det, ev("get", "secrets", time=DAY3, ua="kubectl/v1.31.0 (darwin/arm64)", **read))
    assert _names(det, ev("get", "secrets", time=DAY3, ua="python-requests/2.31", **read)).count(CLIENT) == 1
    det.close()


def test_writes_are_batched_and_memory_is_bounded(tmp_path, ruleset):
    det = Detector(ruleset, _cfg(tmp_path, learning_days=1, cache_entries=20, flush_every=100_000))
    path = tmp_path / "state" / "baseline.sqlite"
    ips = [f"10.{i % 200}.{i // 200}.9" for i in range(300)]  # 200 distinct /16 networks
    for ip in ips:
        det.process(event_from_dict(ev("get", "pods", user=FRONTEND, time=DAY0, ip=ip)))
    assert len(det.baselines.store) <= 20
    with sqlite3.connect(path) as db:  # nothing committed yet: the batch is pending
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] == 0
    det.flush()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] == 200
    # Values evicted from the cache are still known (read back from the file).
    got = [n for ip in ips[:50] for n in _names(det, ev("get", "pods", user=FRONTEND, time=DAY3, ip=ip))]
    assert SA_NET not in got
    assert _names(det, ev("get", "pods", user=FRONTEND, time=DAY3, ip="172.31.4.4")).count(SA_NET) == 1
    det.close()


def test_without_a_path_runs_in_memory_and_says_so_once_when_asked(ruleset, capsys):
    cfg = Config.from_dict({"baseline": {"learning_days": 0}})
    notes: list[str] = []
    det = Detector(ruleset, cfg, on_note=notes.append)
    Detector(ruleset, cfg).close()  # the library API says nothing unless asked
    assert det.baselines.store.path is None
    assert notes == []  # nothing matched a first-seen rule yet
    assert _names(det, ev("get", "pods", user="alice", time=DAY0)) == []
    assert notes == []
    # learning_days 0: the very first value is already new.
    assert _names(det, _exec("alice", DAY0)).count(EXEC) == 1
    assert EXEC not in _names(det, _exec("alice", DAY1))
    assert _names(det, _exec("bob", DAY1)).count(EXEC) == 1
    assert len(notes) == 1 and "no baseline.path" in notes[0] and "memory" in notes[0]
    assert capsys.readouterr().err == ""
    det.close()


def test_with_a_path_there_is_no_memory_note(tmp_path):
    rules = load_rules(builtin=False, paths=[_rule_file(tmp_path, "learn_days: 0")])
    notes: list[str] = []
    det = Detector(rules, _cfg(tmp_path, learning_days=0), on_note=notes.append)
    assert _names(det, ev("delete", "configmaps", name="a", time=DAY0)) == ["test-first-deleter"]
    assert notes == []
    det.close()


def test_rule_learning_period_overrides_config(tmp_path):
    rules = load_rules(builtin=False, paths=[_rule_file(tmp_path, "learn_days: 0")])
    det = Detector(rules, _cfg(tmp_path, learning_days=30))
    assert _names(det, ev("delete", "configmaps", name="a", time=DAY0)) == ["test-first-deleter"]
    assert _names(det, ev("delete", "configmaps", name="b", time=DAY1)) == []
    assert _names(det, ev("delete", "configmaps", name="c", time=DAY1, user="eve")) == ["test-first-deleter"]
    det.close()


def _rule_file(tmp_path, extra: str, key: str = "[]", value: str = "user.username"):
    p = tmp_path / "rules" / "first-deleter.yml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f"""title: First delete by an identity
name: test-first-deleter
logsource: {{product: kubernetes, service: audit}}
detection:
  selection: {{verb: delete}}
  condition: selection
baseline:
  key: {key}
  value: {value}
  {extra}
level: medium
""")
    return p


@pytest.mark.parametrize(("extra", "where"), [
    ("network: 40", "baseline.network"),
    ("colour: red", "baseline.colour"),
    ("transform: upper", "baseline.transform"),
    ("learn_days: -1", "baseline.learn_days"),
])
def test_bad_rule_attribute_names_the_key(tmp_path, extra, where):
    rules = load_rules(builtin=False, paths=[_rule_file(tmp_path, extra)])
    with pytest.raises(RuleLoadError, match=rf"first-deleter.yml: 'First delete by an identity': {where}"):
        Detector(rules, Config.from_dict({}))


def test_bad_rule_value_names_the_key(tmp_path):
    rules = load_rules(builtin=False, paths=[_rule_file(tmp_path, "", value="[1, 2]")])
    with pytest.raises(RuleLoadError, match="baseline.value"):
        Baselines(rules.rules)


@pytest.mark.parametrize(("baseline", "where"), [
    ({"paht": "/tmp/x"}, "baseline.paht: unknown key"),
    ({"path": ""}, "baseline.path"),
    ({"learning_days": "a week"}, "baseline.learning_days"),
    ({"learning_days": -2}, "baseline.learning_days"),
    ({"cache_entries": 0}, "baseline.cache_entries"),
    ({"flush_every": True}, "baseline.flush_every"),
])
def test_bad_config_names_the_key(baseline, where):
    with pytest.raises(ConfigError, match=where):
        baseline_config(Config.from_dict({"baseline": baseline}, source="k.yaml"))


def test_relative_path_is_relative_to_the_config_file(tmp_path):
    conf = tmp_path / "etc" / "kubehawk.yaml"
    conf.parent.mkdir()
    conf.write_text("baseline: {path: state/b.sqlite}\n")
    assert baseline_config(Config.load(conf)).path == str((tmp_path / "etc" / "state" / "b.sqlite").resolve())


def test_unopenable_store_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="baseline.path: cannot open"):
        BaselineStore(str(blocker / "sub" / "b.sqlite"))


def test_no_baseline_rules_no_store(tmp_path):
    rules = load_rules(builtin=False, paths=[_rule_file(tmp_path, "")])
    plain = [r for r in rules.rules if not r.custom.get("baseline")]
    assert Baselines.for_rules(plain, Config.from_dict({})) is None


@pytest.mark.parametrize(("ip", "prefix", "want"), [
    ("10.244.3.17", 16, "10.244.0.0/16"), ("203.0.113.66", 24, "203.0.113.0/24"), ("1.2.3.4", 32, "1.2.3.4/32"),
    ("2001:db8:1:2::7", 16, "2001:db8:1::/48"), ("300.1.1.1", 16, "300.1.1.1"), ("api.example", 16, "api.example"),
])
def test_network_of_an_address(ip, prefix, want):
    assert baseline_spec._network(ip, prefix, 48) == want


def test_a_key_first_seen_later_learns_on_its_own(tmp_path, ruleset):
    """per_key: a ServiceAccount deployed after the learning period learns its networks first."""
    det = Detector(ruleset, _cfg(tmp_path, learning_days=1))
    newapp = sa("shop", "newapp")
    assert SA_NET not in _names(det, ev("get", "pods", user=FRONTEND, time=DAY0, ip="10.244.1.1"))
    # newapp appears on day 3: its first networks are learned, not alerted...
    assert SA_NET not in _names(det, ev("get", "pods", user=newapp, time=DAY3, ip="10.244.1.1"),
                                ev("get", "pods", user=newapp, time=DAY3, ip="10.10.1.1"))
    # ...until its own learning period is over.
    assert _names(det, ev("get", "pods", user=newapp, time=DAY9, ip="198.51.100.7")).count(SA_NET) == 1
    det.flush()
    det.close()
    again = Detector(ruleset, _cfg(tmp_path, learning_days=1))  # the key's first sighting survives a restart
    assert SA_NET not in _names(again, ev("get", "pods", user=newapp, time=DAY9, ip="10.10.200.1"))
    assert _names(again, ev("get", "pods", user=newapp, time=DAY9, ip="192.0.2.1")).count(SA_NET) == 1
    again.close()


def test_bench_corpus_after_learning_stays_quiet_and_the_intrusion_is_new(tmp_path, ruleset):
    """Ordinary traffic after a short learning period raises no baseline alert; the demo intrusion does."""
    import datetime as dt
    import importlib.util

    from helpers import REPO

    spec = importlib.util.spec_from_file_location("kubehawk_bench_corpus", REPO / "bench" / "corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    det = Detector(ruleset, _cfg(tmp_path, learning_days=30 / 86400))  # 30 s of a 400 events/s cluster
    start = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    benign = [a.rule.name for i, d in enumerate(corpus.generate(30_000, 5, start))
              for a in det.process(event_from_dict(d, f"bench:{i}")) if a.rule.name.startswith("baseline-")]
    assert benign == []
    assert det.baselines.stats["known"] > 5000
    later = start + dt.timedelta(minutes=5)
    hits = {a.rule.name for d in corpus.attacks(start=later) for a in det.process(event_from_dict(d))}
    # mallory is new: her first shell and her first workload change are first-seen events.
    assert {"baseline-first-exec-by-identity", "baseline-first-workload-writer"} <= hits
    det.close()


def test_hot_memo_answers_like_the_store(tmp_path, ruleset):
    """The in-memory shortcut for repeated (key, value) pairs decides exactly as the store alone:
    random streams (values repeating within and across days, events out of order) give the same
    alerts, stats and stored last-seen times with the shortcut as with it disabled."""
    import random

    from kubehawk.rules.correlation import event_epoch

    rule = ruleset.get(SA_NET)
    days = [f"2025-06-{d:02d}T{h:02d}:{m:02d}:00.000000Z" for d in range(2, 14) for h in (1, 13) for m in (0, 30)]
    # the gate's same-UTC-day shortcut at its edges: around midnight, other spellings, offsets
    days[8:8] = ["2025-06-03T23:59:59.999999Z", "2025-06-04T00:00:00Z", "2025-06-04T02:30:00+03:00",
                 "2025-06-04T00:00:00.5Z", "2025-06-04T23:30:00-05:00", "2025-06-05T00:00:00.000001Z"]

    def run(hot: bool, seed: int, gate: bool = False) -> tuple[list[bool], dict, list]:
        rng = random.Random(seed)
        b = Baselines([rule], _cfg(tmp_path / f"{hot}-{seed}-{gate}", learning_days=2, cache_entries=3))
        if not hot:
            b._hot_size = 0  # cleared before each insert: every decision goes to the store
        decide = b.gates()[rule.id] if gate else functools.partial(b.decide, rule.id)
        out = []
        i = 0
        for step in range(400):
            i = max(0, min(len(days) - 1, i + rng.choice([0, 0, 1, 1, 2, -1])))
            user = sa("shop", rng.choice(["a", "b", "c"]))
            d = ev("get", "configmaps", ns="shop", user=user, time=days[i], ip=f"10.{rng.choice([1, 2, 3, 4])}.0.9")
            if rng.random() < 0.05:  # 1 and true name the same text-less key; never a string's entry
                d["user"]["username"] = rng.choice([1, True, 1.0])
            e = event_from_dict(d)
            if step == 0:
                b.observe(e)
            out.append(decide(e))
            assert event_epoch(e) is not None
        b.flush()
        rows = sorted(b.store._db.execute("SELECT key, value, first, last FROM seen").fetchall())
        b.close()
        return out, dict(b.stats), rows

    for seed in range(4):
        fast, slow = run(True, seed), run(False, seed)
        assert fast == slow
        assert run(True, seed, gate=True) == slow  # the engine's gate: decide with the hot case inlined
        assert True in fast[0] and fast[1]["known"] > 100


def test_engine_builds_no_match_for_known_values(tmp_path, ruleset):
    det = Detector(ruleset, _cfg(tmp_path, learning_days=0))
    rule = ruleset.get(SA_NET)
    d = ev("get", "configmaps", ns="shop", name="cfg", user=FRONTEND, time=DAY0, ip="10.244.1.7")
    first = det.process(event_from_dict(d))
    assert [a.rule.name for a in first].count(SA_NET) == 1  # learning_days 0: the first network is new
    again = dict(d, auditID="other-request")
    assert SA_NET not in [m.rule.name for m in det.engine.process(event_from_dict(again))]
    assert det.engine.stats["matches_by_rule"][rule.id] == 2  # counted as matches before the baseline
    det.close()


def test_entry_memo_never_mixes_equal_but_different_values(tmp_path, ruleset):
    """(key, value) are remembered per raw values read; 1, 1.0 and true are equal in Python but
    give different text, so they must not share an entry."""
    rule = ruleset.get(CLIENT)
    b = Baselines([rule], _cfg(tmp_path))
    spec = b.specs[rule.id]
    users = ["alice", 1, 1.0, True, "1", "True", None, "", ["x"]]
    agents = ["kubectl/v1.30 (linux)", "curl/8", None, ""]
    for _ in range(2):  # the second round is answered from the memo
        for u in users:
            for ua in agents:
                d = ev("get", "secrets", ns="shop", name="s", user="alice", time=DAY0)
                d["user"]["username"] = u
                if ua is None:
                    d.pop("userAgent", None)
                else:
                    d["userAgent"] = ua
                e = event_from_dict(d)
                key, value = spec.key_of(e), spec.value_of(e)
                want = None if key is None or value is None else (rule.id, key, value)
                assert b.entries.entry(rule.id, e) == want, (u, ua)
    b.close()
