"""The merge's shortcut: a part's first-seen records admitted and judged all at once
(Merge._at_once) gives what the records in stream order give, and is refused when it would not."""

from __future__ import annotations

import json
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.rules.baseline import Baselines
from kubehawk.rules.engine import Dedup
from kubehawk.scale import local
from kubehawk.scale.local import PartMerge, plan_parts
from kubehawk.scale.merge import Merge
from scaletools import CONFIG, key, mixed_lines, write

keys_st = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(before=keys_st, keys=keys_st, asked=keys_st, seed=st.integers(0, 10**6))
def test_add_all_new_says_what_seen_says_in_any_order(before, keys, asked, seed):
    """When add_all_new takes the keys, seen() asked about them and about ``asked`` in any
    interleaving says False of each of them and leaves the same memory; when it refuses, nothing
    changes."""
    fast, slow = Dedup(size=24), Dedup(size=24)
    for k in before:
        fast.seen(k)
        slow.seen(k)
    state = (set(fast._cur), set(fast._old))
    if not fast.add_all_new(keys, asked):
        assert (fast._cur, fast._old) == state
        return
    order = [("k", k) for k in keys] + [("a", a) for a in asked]
    random.Random(seed).shuffle(order)
    answers = {}
    for kind, k in order:
        seen = slow.seen(k)
        if kind == "k":
            answers[k] = seen
    assert not any(answers.values())
    for a in asked:
        fast.seen(a)
    assert (fast._cur, fast._old) == (slow._cur, slow._old)


def _baselines(rules) -> Baselines:
    config = Config.from_dict({"baseline": {"learning_days": 0.01}})
    return Baselines.for_rules(rules.rules, config)


def test_judge_all_is_judge_in_turn():
    """Entries seen again the same day, the next day, out of time order, without a key, in local
    time: the verdicts, the counts and what the store learned are those of judge() in turn."""
    rules = load_ruleset(None)
    rids = sorted(_baselines(rules).specs)[:3]
    rng = random.Random(3)
    at_once, in_turn = _baselines(rules), _baselines(rules)
    for b in (at_once, in_turn):
        b.started.update({rid: 1763888400.0 for rid in rids})  # 2025-11-23T09:00:00Z
    got, want = [], []
    for run in range(60):
        n = rng.randint(1, 40)
        batch = []
        for _ in range(n):
            rid = rng.choice(rids)
            entry = None if rng.random() < 0.03 else (rid, f"k{rng.randint(0, 3)}", f"v{rng.randint(0, 12)}")
            day, hour = 23 + min(run // 20, 2), rng.randint(0, 23)
            zone = rng.choice(["Z", "Z", "Z", "-05:00", "+05:00"])  # another zone: another UTC day, maybe
            stamp = f"2025-11-{day}T{hour:02d}:{rng.randint(0, 59):02d}:00{zone}"
            batch.append((rid, entry, stamp))
        got += [(run, i) for i in at_once.judge_all(*zip(*batch, strict=True))]
        want += [(run, i) for i, (rid, entry, stamp) in enumerate(batch) if in_turn.judge(rid, entry, stamp)]
    assert got == want and want, "some values must be new"
    assert at_once.stats == in_turn.stats and at_once.stats["known"] > 0
    for rid in rids:
        for k in range(4):
            for v in range(13):
                assert at_once.store.last_seen(rid, f"k{k}", f"v{v}") == in_turn.store.last_seen(rid, f"k{k}", f"v{v}")


def _tricky_lines(n: int, seed: int) -> list[str]:
    """The mix, plus what the shortcut must refuse: both stages of one ServiceAccount request in
    one part (one (rule, auditID) twice) and a ServiceAccount request without an auditID."""
    rng = random.Random(seed)
    out = []
    for line in mixed_lines(n, seed=seed):
        try:
            ev = json.loads(line)
        except ValueError:  # the mix's bad lines
            out.append(line)
            continue
        if str(ev.get("auditID", "")).startswith("serviceaccount") and rng.random() < 0.05:
            if rng.random() < 0.5:
                out.append(json.dumps(dict(ev, stage="ResponseStarted")))
            else:
                ev.pop("auditID")
        out.append(json.dumps(ev))
    return out


def _merged(parts, rules, config, at_once: bool, monkeypatch) -> tuple[list, Detector, Counter]:
    taken: Counter = Counter()
    original = Merge._at_once

    def spy(self, *args):
        took = at_once and original(self, *args)
        taken[took] += 1
        return took

    monkeypatch.setattr(Merge, "_at_once", spy)
    detector = Detector(rules, config)
    merge = PartMerge(detector)
    for part, res in parts:
        merge.add(part, res)
    return merge.finish(), detector, taken


def test_at_once_gives_what_the_records_in_order_give(tmp_path, monkeypatch):
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(CONFIG)
    config = Config.load(cfg)
    log = write(tmp_path / "audit.log", _tricky_lines(6000, seed=21))
    rules = load_ruleset(config)
    local._init(rules, config, first_seen=Detector(rules, config).first_seen_only())
    parts = [(p, local._read_part(p)) for p in plan_parts([str(log)], 2, part_bytes=40_000)]
    fast, fast_detector, taken = _merged(parts, rules, config, True, monkeypatch)
    slow, slow_detector, _ = _merged(parts, rules, config, False, monkeypatch)
    assert taken[True] > 10 and taken[False] > 5, taken  # both ways were taken
    assert [key(a) for a in fast] == [key(a) for a in slow] and fast
    assert [a.event.origin for a in fast] == [a.event.origin for a in slow]
    assert fast_detector.baselines.stats == slow_detector.baselines.stats
    assert fast_detector.engine._counts == slow_detector.engine._counts
    assert fast_detector.alerts_by_rule == slow_detector.alerts_by_rule
    assert fast_detector.odd_records == slow_detector.odd_records


def test_at_once_is_refused_when_a_replayed_record_judges_the_same_key(tmp_path):
    """A replayed record whose first-seen rule judges the (rule, key) of the part's first-seen
    records comes first in the stream: it is the one a new value alerts on. Judging the
    first-seen records first would make it alert on another request; the merge goes in order."""
    from test_merge import SA_NET_ID, _sa_get

    config = Config.from_dict({"baseline": {"learning_days": 0}})
    lines = [_sa_get(f"x{i}", "ResponseComplete", "10.1.0.5", i + 2) for i in range(5)]
    log = write(tmp_path / "audit.log", lines)
    rules = load_ruleset(config)
    detector = Detector(rules, config)
    local._init(rules, config, first_seen=detector.first_seen_only())
    (part,) = plan_parts([str(log)], 1)
    res = local._read_part(part)
    assert len(res.fs_rules) == 5 and not res.rules
    # in front of them, a request from the same network that crossed as a replayed record
    front = _sa_get("r0", "ResponseComplete", "10.1.0.9", 30).encode() + b"\n"
    res.blob, res.ends, res.linenos = front, type(res.ends)("q", [len(front)]), type(res.linenos)("q", [99])
    res.rules, res.fs_before = [(rules.get(SA_NET_ID).ordinal,)], type(res.fs_before)("q", [0])
    detector.start_baselines(res.first_event())
    alerts = Merge(detector).add(res)
    assert [a.event.head.auditID for a in alerts] == ["r0"]
