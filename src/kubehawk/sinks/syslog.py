"""Alerts as RFC 5424 syslog messages over UDP, TCP or TLS.

TCP and TLS use octet-counting framing (RFC 6587 3.4.1, RFC 5425 4.3), which is safe
for messages that contain newlines; ``framing: newline`` exists for old receivers.
UDP sends one datagram per alert (RFC 5426) and cannot know about loss. The MSG part
is the alert JSON, so a SIEM can parse it; STRUCTURED-DATA repeats the key fields.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import ssl
import time
from typing import Any

import msgspec

from kubehawk.sinks.base import Sink, alert_key, alert_level

__all__ = ["FACILITIES", "SyslogSink", "format_rfc5424"]

FACILITIES = {name: i for i, name in enumerate(
    ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
     "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
     "local7"])}
# kubehawk level -> syslog severity (RFC 5424 table 2).
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}
# 32473 is the private enterprise number reserved for documentation (RFC 5612).
SD_ID = "kubehawk@32473"
MAX_UDP = 65000


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the NILVALUE."""
    out = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


def format_rfc5424(alert: dict[str, Any], *, facility: int, hostname: str, app_name: str, procid: str,
                   now: dt.datetime | None = None) -> bytes:
    pri = facility * 8 + SEVERITY[alert_level(alert)]
    ts = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds").replace("+00:00", "Z")
    rule_id, audit_id = alert_key(alert)
    sd_params = {"rule": rule_id, "level": alert_level(alert), "auditID": audit_id}
    if alert.get("user"):
        sd_params["user"] = str(alert["user"])
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_escape(v)}"' for k, v in sd_params.items() if v) + "]"
    header = f"<{pri}>1 {ts} {_token(hostname, 255)} {_token(app_name, 48)} {_token(procid, 128)} " \
             f"{_token(rule_id, 32)} {sd} "
    return header.encode() + msgspec.json.encode(alert)


class SyslogSink(Sink):
    type_name = "syslog"

    def __init__(self, name: str, host: str, port: int | None = None, *, protocol: str = "udp",
                 facility: str = "local0", app_name: str = "kubehawk", framing: str = "octet-counting",
                 ca: str | None = None, verify: bool = True, cert: str | None = None, key: str | None = None,
                 timeout: float = 5.0, retries: int = 2, backoff: float = 0.5,
                 min_level: str = "informational") -> None:
        super().__init__(name, min_level)
        self.host = host
        self.protocol = protocol
        self.port = port or (6514 if protocol == "tls" else 514)
        self.facility = FACILITIES[facility]
        self.app_name = app_name
        self.framing = framing
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.hostname = socket.gethostname()
        self.procid = str(os.getpid())
        self._sock: socket.socket | None = None
        self._ctx: ssl.SSLContext | None = None
        if protocol == "tls":
            ctx = ssl.create_default_context(cafile=ca)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cert:
                ctx.load_cert_chain(cert, key)
            self._ctx = ctx

    def frame(self, msg: bytes) -> bytes:
        if self.protocol == "udp":
            return msg
        if self.framing == "newline":
            return msg.replace(b"\n", b" ") + b"\n"
        return str(len(msg)).encode() + b" " + msg

    def _connect(self) -> socket.socket:
        if self.protocol == "udp":
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            family, stype, proto, _, addr = infos[0]
            s = socket.socket(family, stype, proto)
            s.connect(addr)
            return s
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._ctx is not None:
            try:
                s = self._ctx.wrap_socket(s, server_hostname=self.host)
            except BaseException:
                s.close()
                raise
        return s

    def _close_sock(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        frames = []
        for a in alerts:
            msg = format_rfc5424(self.shape(a), facility=self.facility, hostname=self.hostname, app_name=self.app_name,
                                 procid=self.procid)
            if self.protocol == "udp" and len(msg) > MAX_UDP:
                msg = msg[:MAX_UDP]  # RFC 5426 4.3.1: a receiver may truncate; we do it predictably
            frames.append(self.frame(msg))
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                if self._sock is None:
                    self._sock = self._connect()
                if self.protocol == "udp":
                    for f in frames:
                        self._sock.send(f)
                else:
                    self._sock.sendall(b"".join(frames))
                self.stats.add("delivered", len(frames))
                if attempt:
                    self.stats.add("retried", len(frames))
                return
            except OSError as e:  # ssl.SSLError is an OSError too
                self.stats.add("failed_attempts")
                self._close_sock()
                if attempt == self.retries:
                    self.drop(len(frames), f"syslog {self.protocol}://{self.host}:{self.port}: {e}")
                    return
                time.sleep(delay)
                delay *= 2

    def close(self) -> None:
        self._close_sock()
