"""The split's two halves on their own: Engine.split finds, Detector.replay decides."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.event import decode_event
from kubehawk.rules import Engine
from kubehawk.scale import alert_order
from kubehawk.scale.local import Part, plan_parts
from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.ranges import read_range
from scaletools import CONFIG, key, mixed_lines, one_process, write

ROOT = Path(__file__).resolve().parents[2]


def _exec(stage: str, aid: str = "a-1") -> bytes:
    return json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": aid, "stage": stage,
                       "verb": "create", "requestURI": "/api/v1/namespaces/bank/pods/web-0/exec",
                       "user": {"username": "mallory"}, "sourceIPs": ["203.0.113.9"],
                       "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "bank", "name": "web-0"},
                       "responseStatus": {"code": 101}, "stageTimestamp": "2026-11-23T10:00:00Z"}).encode()


def test_split_engine_gives_every_matching_rule_before_dedup():
    rules = load_ruleset(None)
    engine = Engine(rules)
    engine.split = True
    first = engine.process(decode_event(_exec("ResponseStarted")))
    second = engine.process(decode_event(_exec("ResponseComplete")))
    assert first and first == second  # both stages: dedup is the merge's
    normal = Engine(rules)
    assert normal.process(decode_event(_exec("ResponseStarted")))
    assert normal.process(decode_event(_exec("ResponseComplete"))) == []


def test_replay_of_split_matches_in_stream_order_is_one_process(tmp_path):
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    log = write(tmp_path / "audit.log", mixed_lines(1500, seed=12))
    rules = load_ruleset(config)
    single, _ = one_process([str(log)], Detector(rules, config))
    engine = Engine(rules, config)
    engine.split = True
    detector = Detector(rules, config)
    replayed = []
    for ev in read_paths([str(log)], ReadStats()):
        detector.start_baselines(ev) if ev.head.stageTimestamp else None
        matched = engine.process(ev)
        if matched:
            replayed.extend(detector.replay(ev, [(r, None) for r in matched]))
    replayed.extend(detector.flush())
    assert Counter(map(key, replayed)) == Counter(map(key, single))
    assert any(a.rule.kind == "correlation" for a in single)


def test_alert_order_is_event_time_then_audit_id_then_rule(tmp_path):
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    log = write(tmp_path / "audit.log", mixed_lines(1500, seed=13))
    alerts, _ = one_process([str(log)], Detector(load_ruleset(config), config))
    ordered = sorted(alerts, key=alert_order)
    assert ordered != alerts  # the corpus has events out of time order: stream order is not time order
    rows = [(epoch(a), a.event.head.auditID, a.rule.id) for a in ordered]
    assert rows == sorted(rows)
    same_event = Counter((t, aid) for t, aid, _ in rows)
    assert max(same_event.values()) > 1  # ties on time and auditID, broken by rule id


def epoch(alert) -> float:
    from kubehawk.rules.correlation import event_epoch

    return event_epoch(alert.event)


def test_a_byte_order_mark_and_blank_lines_read_as_one_process_reads_them(tmp_path):
    lines = mixed_lines(300, seed=4)
    log = tmp_path / "audit.log"
    log.write_bytes(b"\xef\xbb\xbf" + b"\n\n".join(line.encode() for line in lines) + b"\n")
    parts = plan_parts([str(log)], 2, part_bytes=3000)
    assert len(parts) > 10 and parts[0] == Part(str(log), 0, parts[0].end, True)
    one = ReadStats()
    expected = [(ev.head.auditID, ev.head.stage) for ev in read_paths([str(log)], one)]
    got, stats = [], ReadStats()
    for p in parts:
        got += [(ev.head.auditID, ev.head.stage) for ev in read_range(p.path, p.start, p.end, stats)]
    assert got == expected and (stats.lines, stats.bad) == (one.lines, one.bad)


def test_the_line_screen_works_in_a_worker(tmp_path):
    from kubehawk.scale import local

    log = write(tmp_path / "audit.log", mixed_lines(3000, seed=14))
    rules = load_ruleset(None)
    local._init(rules, None)
    if local._engine.line_screen is None:
        import pytest

        pytest.skip("the compiled line screen is off or not built (KUBEHAWK_NATIVE=0, no C compiler)")
    before = local._engine.line_screen.skipped()
    for part in plan_parts([str(log)], 2, part_bytes=100_000):
        res = local._read_part(part)
    assert res.stats["screened_out"] > before  # lines skipped undecoded, in the worker's own screen


def _sa_get(aid: str, stage: str, ip: str, second: int) -> str:
    """A ServiceAccount's successful request: matched by the first-seen rule
    baseline-serviceaccount-new-network alone, so it crosses as an entry."""
    return json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": aid,
                       "stage": stage, "verb": "get", "requestURI": "/api/v1/namespaces/web/configmaps/settings",
                       "user": {"username": "system:serviceaccount:web:frontend"}, "sourceIPs": [ip],
                       "objectRef": {"resource": "configmaps", "namespace": "web", "name": "settings",
                                     "apiVersion": "v1"},
                       "responseStatus": {"code": 200}, "userAgent": "frontend/1.0",
                       "stageTimestamp": f"2026-11-23T10:00:{second:02d}.000000Z"})


def test_first_seen_matches_cross_as_entries_and_only_an_entrys_first_line_whole(tmp_path):
    from kubehawk.scale import local

    lines = [_sa_get(f"r{i}", "ResponseComplete", f"10.1.{i % 3}.{i}", i) for i in range(30)]
    log = write(tmp_path / "audit.log", lines)
    rules = load_ruleset(None)
    detector = Detector(rules, None)
    local._init(rules, None, first_seen=detector.first_seen_only())
    (res,) = [local._read_part(p) for p in plan_parts([str(log)], 1)]
    assert len(res) == 30 and res.entries == [(SA_NET_ID, "system:serviceaccount:web:frontend", "10.1.0.0/16")]
    assert list(res.fs_entries) == [0] * 30 and res.entry_blob == lines[0].encode() + b"\n"  # one line crosses
    assert not res.rules and not res.blob and list(res.entry_first) == [0]
    assert res.fs_aids == [f"r{i}" for i in range(30)] and res.fs_stamps[3] == "2026-11-23T10:00:03.000000Z"
    noise = write(tmp_path / "other.log", [_exec("ResponseComplete").decode()])  # rules with no gate: replayed whole
    (other,) = [local._read_part(p) for p in plan_parts([str(noise)], 1)]
    fs_only = detector.first_seen_only()
    assert len(other.rules) == 1 and other.blob and other.rules[0][0] not in fs_only  # the rest of its rules
    assert set(other.fs_rules) <= set(fs_only)  # its first-seen rules in front: records of their own


SA_NET_ID = "062099d2-1a30-5710-8a45-b87ebc605f7a"  # baseline-serviceaccount-new-network


def test_a_new_value_whose_line_did_not_cross_is_read_again_from_its_part(tmp_path, monkeypatch):
    """Request x's two stages land in two files, the second with another network; one process drops
    it as a repeat of (rule, x), so request y is the first from that network and alerts. y's worker
    sent x's line for that entry, not y's: the merge reads y's line again from its part."""
    from kubehawk.scale import local

    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text("baseline:\n  learning_days: 0\n")
    config = Config.load(cfg)
    first = write(tmp_path / "1.log", [_sa_get("x", "ResponseStarted", "10.1.0.5", 1)])
    second = write(tmp_path / "2.log", [_sa_get("x", "ResponseComplete", "203.0.113.5", 2),
                                        _sa_get("y", "ResponseComplete", "203.0.113.6", 3)])
    paths = [str(first), str(second)]
    rules = load_ruleset(config)
    single, _ = one_process(paths, Detector(rules, config))
    assert [(a.event.head.auditID, a.event.origin) for a in single] == [("x", f"{first}:1"), ("y", f"{second}:2")]
    read_again, original = [], local.read_again

    def counted(part, n, **kw):
        read_again.append(n)
        return original(part, n, **kw)

    monkeypatch.setattr(local, "read_again", counted)
    detector = Detector(rules, config)
    split, _ = local.run_local(paths, detector, 2)
    assert Counter(map(key, split)) == Counter(map(key, single)) and read_again == [2]


def test_a_line_needed_again_without_a_way_to_read_it_is_an_error_not_a_silent_miss(tmp_path):
    from kubehawk.scale import local
    from kubehawk.scale.merge import Merge, ScaleError

    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text("baseline:\n  learning_days: 0\n")
    config = Config.load(cfg)
    log = write(tmp_path / "2.log", [_sa_get("x", "ResponseComplete", "203.0.113.5", 2),
                                     _sa_get("y", "ResponseComplete", "203.0.113.6", 3)])
    rules = load_ruleset(config)
    detector = Detector(rules, config)
    local._init(rules, config, first_seen=detector.first_seen_only())
    (res,) = [local._read_part(p) for p in plan_parts([str(log)], 1)]
    detector.engine.admit([rules.get("baseline-serviceaccount-new-network").ordinal], ["x"])  # x: a repeat
    with pytest.raises(ScaleError, match=r"2\.log: line 2 is needed again"):
        Merge(detector).add(res)


def test_admitting_in_runs_is_the_engine_s_dedup():
    """Engine.admit (the merge's dedup of first-seen matches, in runs) keeps and forgets exactly as
    the engine's own dedup does, rotation included."""
    import random

    rng = random.Random(5)
    keys = [(rng.randint(0, 3), rng.choice([None, *map(str, range(40))])) for _ in range(3000)]
    rules = load_ruleset(None)
    engine = Engine(rules, dedup_size=16)
    reference = Engine(rules, dedup_size=16)._dedup
    got, at = [], 0
    while at < len(keys):
        n = rng.randint(1, 50)
        run = keys[at:at + n]
        got += [at + i for i in engine.admit([o for o, _ in run], [a for _, a in run])]
        at += n
    want = [i for i, (o, a) in enumerate(keys) if a is None or not reference.seen((o, a))]
    assert got == want and 0 < len(want) < len(keys)
    assert sum(engine._counts) == len(want)


def test_an_event_the_fast_reader_refused_still_crosses_whole(tmp_path):
    """A native Event the reader's typed fast path refuses (a level outside its list) is read by the
    general path, whose origin is text; it must not cross as a line the merge decodes with the
    fast path's decoder (which would refuse it), but whole, as before."""
    from kubehawk.scale import local

    odd = json.loads(_exec("ResponseComplete", "odd-1"))
    odd["level"] = "Verbose"
    log = write(tmp_path / "audit.log", [_sa_get("a", "ResponseComplete", "10.1.0.5", 1), json.dumps(odd),
                                         _sa_get("b", "ResponseComplete", "10.1.0.6", 6)])
    rules = load_ruleset(None)
    single, _ = one_process([str(log)], Detector(rules))
    assert any(a.event.head.auditID == "odd-1" for a in single), "a rule must match the odd event"
    split, _ = local.run_local([str(log)], Detector(rules), 2)
    assert Counter(map(key, split)) == Counter(map(key, single))
