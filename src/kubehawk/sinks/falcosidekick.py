"""Alerts in Falco's JSON output shape, POSTed to falcosidekick (and from there to its outputs).

Field names follow Falco's k8saudit plugin (``ka.*``) so sidekick templates and
downstream dashboards written for Falco keep working; kubehawk-specific data goes
under ``kubehawk.*``.
"""

from __future__ import annotations

import socket
from typing import Any

import msgspec

from kubehawk.formats.falco import PRIORITY, falco_payload
from kubehawk.sinks.webhook import WebhookSink

__all__ = ["PRIORITY", "FalcosidekickSink", "falco_payload"]


class FalcosidekickSink(WebhookSink):
    type_name = "falcosidekick"

    def __init__(self, name: str, url: str, **kw: Any) -> None:
        super().__init__(name, url, **kw)
        self.hostname = socket.gethostname()

    def payload(self, alert: dict[str, Any]) -> bytes:
        return msgspec.json.encode(falco_payload(alert, self.hostname))
