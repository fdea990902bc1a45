"""The library pipeline: Detector.alerts (the stream loop) against Detector.process, event by event."""

from __future__ import annotations

from itertools import islice

from kubehawk.config import Config
from kubehawk.detect import Detector, detect
from kubehawk.event import event_from_dict
from kubehawk.sources.files import ReadStats, read_paths

from helpers import REPO, audit

SAMPLE = REPO / "examples" / "sample-audit.log"
CONFIG = REPO / "examples" / "kubehawk.yaml"


def _key(alert) -> tuple:
    d = alert.to_dict()
    return d["rule"]["id"], d["auditID"], d["message"]


def _sample_events() -> list:
    return list(read_paths([SAMPLE], ReadStats()))


def test_stream_loop_gives_the_alerts_of_process_in_order():
    config = Config.load(CONFIG)
    one = Detector(None, config)
    by_event = [a for ev in _sample_events() for a in one.process(ev)] + one.flush()
    two = Detector(None, config)
    streamed = list(two.alerts(_sample_events()))
    assert by_event, "the sample log has attacks: the comparison must not be empty"
    assert [_key(a) for a in streamed] == [_key(a) for a in by_event]
    assert any(a.correlation for a in streamed), "correlations are fed by the stream loop too"
    # the first-seen baselines took part in both (started at the first timed event, then gating)
    assert two.baselines is not None and not two.baselines.pending_start
    assert two.engine.stats == one.engine.stats


def test_stream_loop_counts_every_event_even_when_the_reader_stops_early():
    events = _sample_events()
    det = Detector(None, Config.load(CONFIG))
    list(islice(det.alerts(events), 1))  # the consumer stops at the first alert
    seen = det.engine.stats["events"]
    assert 0 < seen < len(events)
    det2 = Detector(None, Config.load(CONFIG))
    list(det2.alerts(events))
    assert det2.engine.stats["events"] == len(events)


def test_request_received_never_alerts_by_either_path():
    anonymous = {"user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
                 "verb": "list", "objectRef": {"resource": "secrets", "apiVersion": "v1"},
                 "requestURI": "/api/v1/secrets"}
    received = event_from_dict(audit(stage="RequestReceived", auditID="r-1", **anonymous))
    complete = event_from_dict(audit(stage="ResponseComplete", auditID="r-1", **anonymous))
    assert Detector().process(received) == []
    assert list(Detector().alerts([received])) == []
    alerts = list(detect([received, complete]))
    assert alerts and {a.event.head.stage for a in alerts} == {"ResponseComplete"}
