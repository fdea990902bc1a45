"""The ``server:`` section of kubehawk.yaml plus command-line overrides, validated.

Errors are :class:`~kubehawk.config.ConfigError` naming the key (``server.port: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kubehawk.config import ConfigError
from kubehawk.sinks.config import parse_size

__all__ = ["ServerSettings"]

KEYS = {
    "listen", "port", "tls_cert", "tls_key", "client_ca", "client_names", "tokens", "token_file",
    "max_body_bytes", "journal", "journal_sync", "max_backlog", "max_pending_batches", "max_inflight",
    "dedup_window", "alert_window", "admission", "admission_auth", "metrics_auth", "liveness_timeout",
    "max_inflight_bytes", "max_connections", "header_timeout", "body_timeout", "admission_max_bytes",
}
SIZES = {"max_body_bytes", "max_inflight_bytes", "admission_max_bytes"}


@dataclass
class ServerSettings:
    listen: str = "0.0.0.0"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    client_names: list[str] = field(default_factory=list)  # allowed client-certificate CN / DNS SAN; empty = any
    tokens: list[str] = field(default_factory=list)
    token_file: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    journal: str = "kubehawk-journal/journal.db"
    journal_sync: str = "full"
    max_backlog: int = 200_000  # events stored but not yet detected before answering 429
    max_pending_batches: int = 256  # batches waiting for the journal writer before answering 429
    max_inflight: int = 1024  # concurrent /audit and /admission requests before answering 429
    # bytes of request bodies in memory at once (memory is bounded by bytes, not by requests);
    # a body that would pass it is answered 429. serve's memory at this limit: see the README
    max_inflight_bytes: int = 128 * 1024 * 1024
    max_connections: int = 1024  # open connections (kept below the process's file-descriptor limit)
    header_timeout: float = 10.0  # seconds for a new connection to send its request headers
    body_timeout: float = 30.0  # seconds for a request body to arrive (then 408)
    admission_max_bytes: int = 256 * 1024  # journaled per admission review (larger: objects trimmed)
    dedup_window: float = 3600.0  # seconds an auditID+stage is remembered after processing
    alert_window: float = 86400.0  # seconds a (rule, auditID) alert is remembered
    admission: bool = True
    # The apiserver sends admission webhooks without credentials unless its AdmissionConfiguration
    # gives it a kubeconfig; false accepts /admission unauthenticated (protect it with a NetworkPolicy).
    admission_auth: bool = True
    # /metrics asks for the same credentials as /audit; false lets anyone scrape the counters
    # without rule names (which rules fired would tell an intruder whether they were seen)
    metrics_auth: bool = True
    # seconds detection or an output may keep failing (and retrying) before /healthz answers 503
    liveness_timeout: float = 120.0

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def all_tokens(self) -> list[str]:
        tokens = list(self.tokens)
        if self.token_file:
            try:
                text = Path(self.token_file).read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f"server.token_file: cannot read {self.token_file}: {e.strerror or e}") from None
            tokens += [t.strip() for t in text.splitlines() if t.strip() and not t.lstrip().startswith("#")]
            if not tokens:
                raise ConfigError(f"server.token_file: {self.token_file} holds no token")
        return tokens

    @property
    def auth_required(self) -> bool:
        return bool(self.client_ca or self.tokens or self.token_file)

    @classmethod
    def build(cls, raw: dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> ServerSettings:
        """Settings from the config's ``server:`` mapping, then non-None ``overrides`` (CLI options)."""
        data = dict(raw or {})
        if not isinstance(raw, dict | type(None)):
            raise ConfigError(f"server: expected a mapping, got {type(raw).__name__}")
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise ConfigError(f"server.{unknown[0]}: unknown key (known: {', '.join(sorted(KEYS))})")
        for k, v in (overrides or {}).items():
            if v is not None:
                data[k] = v
        s = cls()
        types = {f.name: f.type for f in fields(cls)}
        for key, value in data.items():
            setattr(s, key, _check(key, value, types[key]))
        s._validate()
        return s

    def _validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port: expected 0-65535, got {self.port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "tls_key" if self.tls_cert else "tls_cert"
            raise ConfigError(f"server.{missing}: required when {'tls_cert' if self.tls_cert else 'tls_key'} is set")
        for key in ("tls_cert", "tls_key", "client_ca", "token_file"):
            p = getattr(self, key)
            if p and not Path(p).is_file():
                raise ConfigError(f"server.{key}: file not found: {p}")
        if self.client_ca and not self.tls_cert:
            raise ConfigError("server.client_ca: client certificates need TLS (set tls_cert and tls_key)")
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ConfigError(f"server.max_inflight_bytes: {self.max_inflight_bytes} is less than max_body_bytes "
                              f"({self.max_body_bytes}): the largest allowed body could never be read")
        if self.journal_sync not in ("full", "normal"):
            raise ConfigError(f"server.journal_sync: expected full or normal, got {self.journal_sync!r}")
        if any(not t for t in self.tokens):
            raise ConfigError("server.tokens: empty token")
        self.all_tokens()  # read the token file now so a bad file fails at startup


def _check(key: str, value: Any, typ: Any) -> Any:
    typ = str(typ)
    if key in SIZES:
        return parse_size(value, f"server.{key}")
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"server.{key}: expected a non-negative integer, got {value!r}")
        return value
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"server.{key}: expected a non-negative number, got {value!r}")
        return float(value)
    if typ == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"server.{key}: expected true or false, got {value!r}")
        return value
    if typ.startswith("list"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"server.{key}: expected a list of strings, got {value!r}")
        return value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"server.{key}: expected a non-empty string, got {value!r}")
    return value
