"""The pull state file: positions, the bounded dedup window, transactions, bad files."""

from __future__ import annotations

import pytest

from kubehawk.sources.normalize import to_events
from kubehawk.sources.pull.base import Feeder
from kubehawk.sources.pull.state import PullState

from helpers import audit


def test_positions_survive_reopen_and_prefixes_are_literal(tmp_path):
    path = tmp_path / "s.sqlite"
    s = PullState(path)
    s.put("eks:g", "stream:a_1", "5")
    s.put("eks:g", "stream:a_1", "6")
    s.put("eks:g", "streamXb", "7")
    s.put("gke:p", "timestamp", "t")
    s.close()
    s = PullState(path)
    assert s.items("eks:g", "stream:") == {"stream:a_1": "6"}
    assert s.get("gke:p", "timestamp") == "t" and s.get("gke:p", "nope", "d") == "d"


def test_dedup_window_is_bounded(tmp_path):
    s = PullState(tmp_path / "s.sqlite", max_seen=50)
    assert s.first_time("src", "k0") and not s.first_time("src", "k0")
    assert s.first_time("other", "k0")  # per source
    for i in range(1, 1200):
        s.first_time("src", f"k{i}")
    assert s.seen_count() <= 50 + 1000  # trimmed every 1000 inserts
    s.trim()
    assert s.seen_count() == 50
    assert s.first_time("src", "k0")  # long gone from the window


def test_rolled_back_page_forgets_its_keys(tmp_path):
    s = PullState(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), s:
        s.first_time("src", "a")
        s.put("src", "pos", "1")
        raise RuntimeError("sink failed")
    assert s.first_time("src", "a") and s.get("src", "pos") is None


def test_feeder_keys_on_audit_id_and_stage(tmp_path):
    got = []
    f = Feeder(PullState(tmp_path / "s.sqlite"), "src", got.append)
    for stage in ("RequestReceived", "ResponseComplete", "ResponseComplete"):
        f.feed(to_events(audit(stage=stage), "t"), "t")
    no_id = {k: v for k, v in audit().items() if k != "auditID"}
    f.feed(to_events(no_id, "t"), "t")
    f.feed(to_events(no_id, "t"), "t")
    assert len(got) == 3 and f.stats.duplicates == 2


def test_not_a_state_file(tmp_path):
    bad = tmp_path / "junk.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a usable kubehawk pull state file"):
        PullState(bad)
