"""The ``format:`` key of the stdout, file and webhook outputs (kubehawk.formats)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sinktools import Receiver, alert

from kubehawk.config import ConfigError
from kubehawk.sinks import build_sink_list

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "formats"))
from schemas import ecs_errors, ocsf_errors  # noqa: E402


@pytest.mark.parametrize("fmt", ["ecs", "ocsf", "falco"])
def test_file_output_writes_the_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "alerts.jsonl"
    (sink,) = build_sink_list([{"type": "file", "path": str(path), "format": fmt}])
    sink.deliver([alert(1), alert(2, level="critical")])
    docs = [json.loads(x) for x in path.read_text().splitlines()]
    sink.close()
    assert len(docs) == 2
    if fmt == "ecs":
        assert all(ecs_errors(d) == [] for d in docs)
        assert docs[1]["event"]["severity"] == 5 and docs[0]["event"]["id"] == "aid-1"
    elif fmt == "ocsf":
        assert all(ocsf_errors(d) == [] for d in docs)
        assert docs[1]["severity"] == "Critical"
    else:
        assert docs[1]["priority"] == "Critical" and docs[0]["output_fields"]["ka.auditid"] == "aid-1"


def test_file_output_reads_its_last_alert_back_in_any_format(tmp_path: Path) -> None:
    """After a crash the server asks the file which alert it ends with: the answer must not depend
    on the shape written, or an alert would be written twice."""
    path = tmp_path / "alerts.jsonl"
    (sink,) = build_sink_list([{"type": "file", "path": str(path), "format": "ocsf"}])
    sink.deliver([alert(1), alert(7)])
    sink.close()
    (again,) = build_sink_list([{"type": "file", "path": str(path), "format": "ocsf"}])
    assert again.last_delivered_key() == ("rule-x", "aid-7")
    again.close()


def test_webhook_posts_the_format(receiver: Receiver) -> None:
    (sink,) = build_sink_list([{"type": "webhook", "url": receiver.url, "format": "ecs"}])
    sink.deliver([alert(1)])
    sink.close()
    (body,) = receiver.bodies
    assert body["rule"]["id"] == "rule-x" and body["event"]["kind"] == "alert" and "auditID" not in body


def test_stdout_json_is_unchanged(capsys) -> None:
    (sink,) = build_sink_list([{"type": "stdout"}])
    sink.deliver([alert(1)])
    assert json.loads(capsys.readouterr().out) == alert(1)


@pytest.mark.parametrize(("output", "message"), [
    ({"type": "file", "path": "x", "format": "cef"}, "outputs[0].format: expected one of json, ecs, ocsf, falco, got 'cef'"),
    ({"type": "syslog", "host": "h", "format": "ecs"}, "outputs[0].format: unknown key for a syslog output"),
    ({"type": "falcosidekick", "url": "http://h/", "format": "ecs"}, "outputs[0].format: unknown key"),
])
def test_format_mistakes_name_the_key(tmp_path: Path, output: dict, message: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        build_sink_list([output])
    assert message in str(e.value)
