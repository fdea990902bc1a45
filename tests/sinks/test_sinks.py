"""Every output against a real receiver on loopback: files, webhooks, falcosidekick, syslog."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from sinktools import Receiver, TcpCollector, alert, dead_url

from kubehawk.config import ConfigError
from kubehawk.sinks import build_sink_list, build_sinks
from kubehawk.sinks.base import Sink
from kubehawk.sinks.file import FileSink
from kubehawk.sinks.runner import SinkSet
from kubehawk.sinks.syslog import format_rfc5424


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


# --- file --------------------------------------------------------------------------------

def test_file_sink_rotates_and_keeps_every_alert(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    sink = FileSink("f", path, max_bytes=2000, backups=3)
    for n in range(20):
        sink.deliver([alert(n)])
    sink.close()
    files = sorted(tmp_path.glob("out/alerts.jsonl*"))
    assert [f.name for f in files] == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2", "alerts.jsonl.3"]
    assert all(f.stat().st_size <= 2000 for f in files)
    # Oldest rotated away beyond the 3 backups; what is kept is whole, ordered JSON lines.
    kept = [json.loads(x)["auditID"] for f in reversed(files) for x in f.read_text().splitlines()]
    assert kept == [f"aid-{n}" for n in range(20 - len(kept), 20)]
    assert sink.stats.as_dict()["delivered"] == 20


def test_file_sink_recovery_after_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink("f", path)
    sink.deliver([alert(1), alert(2)])
    sink.close()
    with open(path, "ab") as fh:
        fh.write(b'{"rule": {"id": "rule-x"}, "auditID": "aid-3", "mess')  # power cut mid-line
    sink = FileSink("f", path)
    assert sink.last_delivered_key() == ("rule-x", "aid-2")
    sink.deliver([alert(3)])
    sink.close()
    assert [json.loads(x)["auditID"] for x in path.read_text().splitlines()] == ["aid-1", "aid-2", "aid-3"]


def test_min_level_filters(tmp_path: Path) -> None:
    [sink] = build_sink_list([{"type": "file", "path": str(tmp_path / "a.jsonl"), "min_level": "high"}])
    sink.deliver([alert(1, "low"), alert(2, "high"), alert(3, "critical")])
    sink.close()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    assert sink.stats.as_dict()["filtered"] == 1


# --- webhook -------------------------------------------------------------------------------

def test_webhook_retries_transient_failures(receiver: Receiver) -> None:
    receiver.script = [500, 503]
    [sink] = build_sink_list([{"type": "webhook", "url": receiver.url, "retries": 2, "backoff": 0.01,
                               "headers": {"X-Team": "soc"}}])
    sink.deliver([alert(1)])
    assert [b["auditID"] for b in receiver.bodies] == ["aid-1"]
    assert receiver.headers[0]["Idempotency-Key"] == "rule-x/aid-1"
    assert receiver.headers[0]["X-Team"] == "soc"
    assert sink.stats.as_dict() | {} == {"delivered": 1, "failed_attempts": 2, "retried": 1, "spooled": 0,
                                          "dropped": 0, "filtered": 0}
    sink.close()


def test_webhook_spools_to_disk_while_down_and_delivers_in_order_later(tmp_path: Path, receiver: Receiver) -> None:
    url = dead_url()
    spool = tmp_path / "spool.db"
    [sink] = build_sink_list([{"type": "webhook", "url": url, "retries": 1, "backoff": 0.01,
                               "spool": str(spool)}])
    sink.deliver([alert(1), alert(2)])
    sink.deliver([alert(3)])  # endpoint known down: straight to the spool, no waiting
    assert sink.stats.as_dict()["spooled"] == 3 and len(sink.spool) == 3
    sink.close()

    # A restart (new process) pointed at a live endpoint drains the on-disk queue.
    [sink] = build_sink_list([{"type": "webhook", "url": receiver.url, "backoff": 0.01, "spool": str(spool)}])
    assert len(sink.spool) == 3
    sink.tick()
    assert [b["auditID"] for b in receiver.bodies] == ["aid-1", "aid-2", "aid-3"]
    assert len(sink.spool) == 0 and sink.stats.as_dict()["retried"] == 3
    sink.close()


def test_webhook_spool_is_bounded_and_counts_evictions(tmp_path: Path, caplog) -> None:
    [sink] = build_sink_list([{"type": "webhook", "url": dead_url(), "retries": 0, "backoff": 0.01,
                               "spool": str(tmp_path / "s.db"), "spool_max": 5}])
    for n in range(8):
        sink.deliver([alert(n)])
    assert len(sink.spool) == 5
    assert sink.stats.as_dict()["dropped"] == 3
    assert "oldest alerts evicted" in caplog.text
    kept = [json.loads(p)["auditID"] for _, p, _ in sink.spool.peek()]
    assert kept == [f"aid-{n}" for n in range(3, 8)]
    sink.close()


def test_webhook_permanent_rejection_is_dropped_and_logged(receiver: Receiver, caplog) -> None:
    receiver.script = [400]
    [sink] = build_sink_list([{"type": "webhook", "url": receiver.url}])
    sink.deliver([alert(1), alert(2)])
    assert [b["auditID"] for b in receiver.bodies] == ["aid-2"]
    assert sink.stats.as_dict()["dropped"] == 1
    assert "rejected the alert: HTTP 400" in caplog.text
    sink.close()


def test_webhook_without_spool_drops_after_retries_with_a_count(caplog) -> None:
    [sink] = build_sink_list([{"type": "webhook", "url": dead_url(), "retries": 1, "backoff": 0.01}])
    sink.deliver([alert(1), alert(2)])
    assert sink.stats.as_dict()["dropped"] == 2
    assert "dropped 2 alert(s)" in caplog.text
    sink.close()


# --- falcosidekick -------------------------------------------------------------------------

def test_falcosidekick_payload(receiver: Receiver) -> None:
    [sink] = build_sink_list([{"type": "falcosidekick", "url": receiver.url}])
    sink.deliver([alert(1, "critical"), alert(2, "medium")])
    sink.close()
    first, second = receiver.bodies
    assert first["priority"] == "Critical" and second["priority"] == "Warning"
    assert first["rule"] == "Something bad" and first["source"] == "k8s_audit"
    assert first["time"] == "2026-11-23T10:00:00.100000Z"
    assert first["output"] == "2026-11-23T10:00:00.100000Z: Critical mallory created pod evil #1"
    f = first["output_fields"]
    assert f["ka.auditid"] == "aid-1" and f["ka.user.name"] == "mallory" and f["ka.target.resource"] == "pods"
    assert f["ka.target.namespace"] == "bank" and f["kubehawk.rule.id"] == "rule-x"
    assert {"MS-TA9018", "T1610", "k8s_audit"} <= set(first["tags"])
    assert first["uuid"] != second["uuid"]
    assert receiver.headers[0]["Idempotency-Key"] == "rule-x/aid-1"


# --- syslog --------------------------------------------------------------------------------

RFC5424 = re.compile(
    rb"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) kubehawk (\d+) (\S+) \[kubehawk@32473 ([^\]]|\\\])*\] (\{.*\})$"
)


def test_rfc5424_format_and_escaping() -> None:
    msg = format_rfc5424(alert(1, "critical", user='ev"il]\\'), facility=16, hostname="node-1",
                         app_name="kubehawk", procid="42")
    m = RFC5424.match(msg)
    assert m, msg
    assert int(m.group(1)) == 16 * 8 + 2  # local0.crit
    assert m.group(5) == b"rule-x"
    assert b'user="ev\\"il\\]\\\\"' in msg
    assert json.loads(m.group(7))["auditID"] == "aid-1"


def test_syslog_udp() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    [sink] = build_sink_list([{"type": "syslog", "host": "127.0.0.1", "port": rx.getsockname()[1],
                               "facility": "auth"}])
    sink.deliver([alert(1, "low"), alert(2, "high")])
    msgs = [rx.recv(70000), rx.recv(70000)]
    rx.close()
    sink.close()
    assert [int(RFC5424.match(m).group(1)) for m in msgs] == [4 * 8 + 5, 4 * 8 + 3]


def _octet_frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        n, _, rest = data.partition(b" ")
        out.append(rest[: int(n)])
        data = rest[int(n):]
    return out


def test_syslog_tcp_octet_counting_and_reconnect() -> None:
    srv = TcpCollector()
    [sink] = build_sink_list([{"type": "syslog", "host": "127.0.0.1", "port": srv.port, "protocol": "tcp"}])
    sink.deliver([alert(1, message="two\nlines")])
    sink.deliver([alert(2)])
    wait_for(lambda: len(_octet_frames(bytes(srv.data))) == 2)
    frames = _octet_frames(bytes(srv.data))
    assert all(RFC5424.match(f) for f in frames)
    assert json.loads(RFC5424.match(frames[0]).group(7))["message"] == "two\nlines"
    srv.shutdown()
    srv.server_close()
    sink.close()


def test_syslog_tcp_down_counts_drops(caplog) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [sink] = build_sink_list([{"type": "syslog", "host": "127.0.0.1", "port": port, "protocol": "tcp",
                               "retries": 1}])
    sink.deliver([alert(1)])
    assert sink.stats.as_dict()["dropped"] == 1 and "syslog tcp://127.0.0.1" in caplog.text
    sink.close()


def test_syslog_tls(pki) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    srv = TcpCollector(ctx)
    [sink] = build_sink_list([{"type": "syslog", "host": "localhost", "port": srv.port, "protocol": "tls",
                               "ca": str(pki.ca)}])
    sink.deliver([alert(1), alert(2)])
    wait_for(lambda: len(_octet_frames(bytes(srv.data))) == 2)
    assert [json.loads(RFC5424.match(f).group(7))["auditID"] for f in _octet_frames(bytes(srv.data))] == \
        ["aid-1", "aid-2"]
    srv.shutdown()
    srv.server_close()
    sink.close()


# --- the queue in front of sinks, and config errors ----------------------------------------

class GatedSink(Sink):
    """A sink whose delivery waits for the test: a stand-in for an endpoint that hangs."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.gate = threading.Event()
        self.got: list[str] = []

    def _deliver(self, alerts):
        self.gate.wait(10)
        self.got += [a["auditID"] for a in alerts]
        self.stats.add("delivered", len(alerts))


def test_sinkset_never_blocks_and_counts_overflow(caplog) -> None:
    sink = GatedSink()
    sinks = SinkSet([sink], maxsize=5)
    t0 = time.monotonic()
    for n in range(50):
        sinks.emit(alert(n))
    assert time.monotonic() - t0 < 1.0  # emit never waited for the hung endpoint
    sink.gate.set()
    sinks.close()
    delivered = sinks.stats["gated"]["delivered"]
    # the queue holds 5; the worker may already hold one drained batch (at most the 5 it took) while it hangs
    assert delivered + sinks.stats["gated"]["dropped"] == 50 and 5 <= delivered <= 10
    assert "in-memory queue full" in caplog.text


def test_build_sinks_default_is_stdout(capsys) -> None:
    s = build_sinks(None)
    s.emit(alert(1))
    s.close()
    assert json.loads(capsys.readouterr().out)["auditID"] == "aid-1"


@pytest.mark.parametrize(("outputs", "message"), [
    ([{"type": "stdout"}, {"type": "file"}], r"outputs\[1\]\.path: required"),
    ([{"type": "stdout"}, {"type": "stdout"}, {"type": "webhook"}], r"outputs\[2\]\.url: required"),
    ([{"type": "webhook", "url": "ftp://x"}], r"outputs\[0\]\.url: expected an http"),
    ([{"type": "kafka"}], r"outputs\[0\]\.type: unknown output type 'kafka'"),
    ([{"url": "http://x"}], r"outputs\[0\]\.type: required"),
    ([{"type": "file", "path": "/tmp/x", "max_byte": 3}], r"outputs\[0\]\.max_byte: unknown key"),
    ([{"type": "file", "path": "/tmp/x", "max_bytes": "lots"}], r"outputs\[0\]\.max_bytes: expected a size"),
    ([{"type": "syslog", "host": "h", "protocol": "sctp"}], r"outputs\[0\]\.protocol: expected one of"),
    ([{"type": "syslog", "host": "h", "port": 70000}], r"outputs\[0\]\.port: expected 1-65535"),
    ([{"type": "stdout", "min_level": "urgent"}], r"outputs\[0\]\.min_level: expected one of"),
    ([{"type": "stdout", "name": "a"}, {"type": "stdout", "name": "a"}], r"outputs\[1\]\.name: duplicate"),
    ([{"type": "webhook", "url": "http://x", "headers": {"A": "${KUBEHAWK_TEST_UNSET_VAR}"}}],
     r"outputs\[0\]\.headers\.A: environment variable KUBEHAWK_TEST_UNSET_VAR is not set"),
    (["stdout"], r"outputs\[0\]: expected a mapping"),
])
def test_config_errors_name_the_key(outputs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_sink_list(outputs)
