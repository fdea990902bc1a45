"""Helpers and fixtures for the server tests: test PKI, a Sigma rule, event batches, a real `kubehawk serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pkitools import Pki, make_pki

REPO = Path(__file__).resolve().parents[2]

# The rule the server tests run instead of the built-in pack, so they do not depend on it.
MARKER_RULE = """
title: Test marker user acted
id: 11111111-2222-4333-8444-555555555555
status: test
logsource: {product: kubernetes, service: audit}
detection:
  sel:
    user.username: intruder
  condition: sel
level: high
"""
RULE_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rules")
    (d / "marker.yml").write_text(MARKER_RULE)
    return d


def event(audit_id: str, *, intruder: bool = False, stage: str = "ResponseComplete") -> dict[str, Any]:
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
        "stage": stage, "verb": "get", "requestURI": "/api/v1/namespaces/default/pods/p",
        "user": {"username": "intruder" if intruder else "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl/v1.30",
        "objectRef": {"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-11-23T10:00:00.000000Z",
        "stageTimestamp": "2026-11-23T10:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def event_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The body the apiserver's webhook backend posts."""
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_alerts(path: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(path.parent.glob(path.name + "*")):
        out += [json.loads(line) for line in p.read_text().splitlines()]
    return out


class ServerProcess:
    """`kubehawk serve` in a subprocess on a loopback port."""

    def __init__(self, workdir: Path, rules_dir: Path, server: dict[str, Any], outputs: list[dict[str, Any]],
                 *, tls: Pki | None = None, extra: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        cfg = {"server": {"listen": "127.0.0.1", "port": self.port, "journal": str(workdir / "journal" / "j.db"),
                          **server},
               "outputs": outputs, **(extra or {})}
        self.config = workdir / "kubehawk.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.rules_dir = rules_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "serve.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0, *, wait_for: str = "/readyz", preexec_fn: Any = None) -> ServerProcess:
        """Start and wait until ``wait_for`` answers 200; ``preexec_fn`` runs in the child (resource limits)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from kubehawk.cli import main; main()", "serve", "--config",
                 str(self.config), "--no-builtin", "--rules", str(self.rules_dir), "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, preexec_fn=preexec_fn)
        deadline = time.monotonic() + timeout
        verify: Any = ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else True
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + wait_for, verify=verify, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not become ready:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def serve(tmp_path: Path, rules_dir: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def make(server: dict[str, Any] | None = None, outputs: list[dict[str, Any]] | None = None,
             tls: Pki | None = None, workdir: Path | None = None, extra: dict[str, Any] | None = None,
             rules: Path | None = None) -> ServerProcess:
        sp = ServerProcess(workdir or tmp_path, rules or rules_dir, server or {},
                           outputs if outputs is not None else [{"type": "file", "path": str(tmp_path / "alerts.jsonl")}],
                           tls=tls, extra=extra)
        started.append(sp)
        return sp

    yield make
    for sp in started:
        sp.stop()
