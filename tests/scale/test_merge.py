"""The split's two halves on their own: Engine.split finds, Detector.replay decides."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.event import decode_event
from kubehawk.rules import Engine
from kubehawk.scale import alert_order
from kubehawk.scale.local import Part, plan_parts
from kubehawk.sources.files import ReadStats, read_paths, read_range
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
