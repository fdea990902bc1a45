"""Validate the ``outputs:`` list of kubehawk.yaml and build the sinks it names.

Every mistake is a :class:`~kubehawk.config.ConfigError` naming the key, e.g.
``outputs[2].url: required``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubehawk.config import ConfigError
from kubehawk.formats import ALERT_FORMATS
from kubehawk.sinks.base import LEVEL_RANK, Sink
from kubehawk.sinks.falcosidekick import FalcosidekickSink
from kubehawk.sinks.file import FileSink
from kubehawk.sinks.stdout import StdoutSink
from kubehawk.sinks.syslog import FACILITIES, SyslogSink
from kubehawk.sinks.webhook import WebhookSink

__all__ = ["OUTPUT_TYPES", "build_sink_list", "parse_size"]

COMMON = {"type", "name", "min_level"}
# Outputs that write alert documents whose shape may be chosen (kubehawk.formats); falcosidekick
# always takes Falco's shape and syslog its RFC 5424 one.
FORMATTED = {"stdout", "file", "webhook"}
KEYS = {
    "stdout": set(),
    "file": {"path", "max_bytes", "backups", "fsync"},
    "webhook": {"url", "headers", "timeout", "retries", "backoff", "spool", "spool_max", "tls_verify"},
    "falcosidekick": {"url", "headers", "timeout", "retries", "backoff", "spool", "spool_max", "tls_verify"},
    "syslog": {"host", "port", "protocol", "facility", "app_name", "framing", "ca", "tls_verify", "cert", "key",
               "timeout", "retries"},
}
OUTPUT_TYPES = tuple(KEYS)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_size(value: Any, key: str) -> int:
    """``1048576``, ``"100MB"``, ``"64Mi"`` -> bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size such as 100MB, got a boolean")
    if isinstance(value, int) and value > 0:
        return value
    m = _SIZE.match(str(value))
    if not m or m.group(2) is not None and m.group(2).lower() not in _UNITS:
        raise ConfigError(f"{key}: expected a size such as 100MB or 64Mi, got {value!r}")
    n = int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    if n <= 0:
        raise ConfigError(f"{key}: must be positive, got {value!r}")
    return n


class _Out:
    """Typed access to one output mapping; errors name ``outputs[i].key``."""

    def __init__(self, d: dict[str, Any], where: str) -> None:
        self.d = d
        self.where = where

    def fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where}.{key}: {msg}")

    def str(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        v = self.d.get(key)
        if v is None:
            if required:
                raise self.fail(key, "required")
            return default
        if not isinstance(v, str) or not v:
            raise self.fail(key, f"expected a non-empty string, got {v!r}")
        return v

    def num(self, key: str, default: float, lo: float = 0, integer: bool = False) -> Any:
        v = self.d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)) or v < lo:
            kind = "an integer" if integer else "a number"
            raise self.fail(key, f"expected {kind} >= {lo}, got {v!r}")
        return v

    def bool(self, key: str, default: bool) -> bool:
        v = self.d.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"expected true or false, got {v!r}")
        return v

    def choice(self, key: str, options: tuple[str, ...] | list[str], default: str) -> str:
        v = self.d.get(key, default)
        if v not in options:
            raise self.fail(key, f"expected one of {', '.join(options)}, got {v!r}")
        return v

    def url(self) -> str:
        u = self.str("url", required=True)
        assert u is not None
        p = urlparse(u)
        if p.scheme not in ("http", "https") or not p.netloc:
            raise self.fail("url", f"expected an http:// or https:// URL, got {u!r}")
        return u

    def headers(self) -> dict[str, str]:
        h = self.d.get("headers") or {}
        if not isinstance(h, dict) or not all(isinstance(k, str) and isinstance(v, str | int) for k, v in h.items()):
            raise self.fail("headers", "expected a mapping of header name to string value")
        out = {}
        for k, v in h.items():
            def env(m: re.Match[str], k: str = k) -> str:
                if m.group(1) not in os.environ:
                    raise self.fail(f"headers.{k}", f"environment variable {m.group(1)} is not set")
                return os.environ[m.group(1)]
            out[k] = _ENV.sub(env, str(v))
        return out

    def verify(self) -> bool | str:
        v = self.d.get("tls_verify", True)
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and Path(v).is_file():
            return v
        raise self.fail("tls_verify", f"expected true, false or the path of a CA bundle file, got {v!r}")


def build_sink_list(outputs: list[Any] | None, *, spool_dir: str | Path | None = None) -> list[Sink]:
    """Sinks for the ``outputs:`` list (stdout when empty). Raises ConfigError.

    ``spool_dir``: where webhook outputs keep their retry queue when ``spool`` is not
    given (the server passes its journal directory); without it they retry in memory only.
    """
    if not outputs:
        return [StdoutSink("stdout")]
    if not isinstance(outputs, list):
        raise ConfigError(f"outputs: expected a list, got {type(outputs).__name__}")
    sinks: list[Sink] = []
    names: set[str] = set()
    try:
        for i, raw in enumerate(outputs):
            sinks.append(_build_one(raw, f"outputs[{i}]", i, names, spool_dir))
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks


def _build_one(raw: Any, where: str, i: int, names: set[str], spool_dir: str | Path | None) -> Sink:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with a type: key, got {raw!r}")
    o = _Out(raw, where)
    kind = raw.get("type")
    if kind is None:
        raise o.fail("type", f"required (one of {', '.join(OUTPUT_TYPES)})")
    if kind not in KEYS:
        raise o.fail("type", f"unknown output type {kind!r} (expected one of {', '.join(OUTPUT_TYPES)})")
    unknown = sorted(set(raw) - COMMON - KEYS[kind] - ({"format"} if kind in FORMATTED else set()))
    if unknown:
        known = KEYS[kind] | COMMON | ({"format"} if kind in FORMATTED else set())
        raise o.fail(unknown[0], f"unknown key for a {kind} output (known: {', '.join(sorted(known))})")
    name = o.str("name", f"{kind}-{i}") or f"{kind}-{i}"
    if name in names:
        raise o.fail("name", f"duplicate output name {name!r}")
    names.add(name)
    level = o.choice("min_level", tuple(LEVEL_RANK), "informational")
    fmt = o.choice("format", ALERT_FORMATS, "json") if kind in FORMATTED else "json"
    sink = _build_kind(o, kind, raw, where, name, level, spool_dir)
    sink.fmt = fmt
    return sink


def _build_kind(o: _Out, kind: str, raw: dict[str, Any], where: str, name: str, level: str,
                spool_dir: str | Path | None) -> Sink:
    if kind == "stdout":
        return StdoutSink(name, level)
    if kind == "file":
        path = o.str("path", required=True)
        max_bytes = parse_size(raw.get("max_bytes", "100MiB"), f"{where}.max_bytes")
        backups = o.num("backups", 5, 0, integer=True)
        try:
            return FileSink(name, path, max_bytes=max_bytes, backups=backups, fsync=o.bool("fsync", False),
                            min_level=level)
        except OSError as e:
            raise o.fail("path", f"cannot open {path}: {e.strerror or e}") from None
    if kind in ("webhook", "falcosidekick"):
        url = o.url()
        spool = o.str("spool")
        if spool is None and spool_dir is not None:
            spool = str(Path(spool_dir) / f"spool-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.db")
        cls = WebhookSink if kind == "webhook" else FalcosidekickSink
        try:
            return cls(name, url, headers=o.headers(), timeout=o.num("timeout", 5.0, 0.1),
                       retries=o.num("retries", 2, 0, integer=True), backoff=o.num("backoff", 0.5, 0),
                       spool=spool, spool_max=o.num("spool_max", 10000, 1, integer=True), verify=o.verify(),
                       min_level=level)
        except OSError as e:
            raise o.fail("spool", f"cannot open the retry queue {spool}: {e}") from None
    # syslog
    host = o.str("host", required=True)
    protocol = o.choice("protocol", ("udp", "tcp", "tls"), "udp")
    port = o.num("port", 6514 if protocol == "tls" else 514, 1, integer=True)
    if port > 65535:
        raise o.fail("port", f"expected 1-65535, got {port}")
    verify = o.d.get("tls_verify", True)
    if not isinstance(verify, bool):
        raise o.fail("tls_verify", f"expected true or false, got {verify!r}")
    for key in ("ca", "cert", "key"):
        p = o.str(key)
        if p is not None and not Path(p).is_file():
            raise o.fail(key, f"file not found: {p}")
    try:
        return SyslogSink(name, host, port, protocol=protocol,
                          facility=o.choice("facility", list(FACILITIES), "local0"),
                          app_name=o.str("app_name", "kubehawk") or "kubehawk",
                          framing=o.choice("framing", ("octet-counting", "newline"), "octet-counting"),
                          ca=o.str("ca"), verify=verify, cert=o.str("cert"), key=o.str("key"),
                          timeout=o.num("timeout", 5.0, 0.1), retries=o.num("retries", 2, 0, integer=True),
                          min_level=level)
    except (OSError, ValueError) as e:  # ssl errors loading the CA or client certificate
        raise o.fail("ca", f"cannot set up TLS: {e}") from None
