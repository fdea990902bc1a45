"""Helpers and fixtures for sink tests: loopback HTTP and syslog receivers, test certificates."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from pkitools import Pki, make_pki  # noqa: E402


def alert(n: int | str, level: str = "high", **kw: Any) -> dict[str, Any]:
    a = {"rule": {"id": "rule-x", "title": "Something bad", "level": level}, "techniques": ["MS-TA9018"],
         "attack": ["T1610"], "auditID": f"aid-{n}", "time": "2026-11-23T10:00:00.100000Z", "user": "mallory",
         "verb": "create", "resource": "pods", "subresource": None, "namespace": "bank", "name": "evil",
         "sourceIP": "10.0.0.9", "userAgent": "kubectl/v1.30", "message": f"mallory created pod evil #{n}"}
    a.update(kw)
    return a


class Receiver:
    """A loopback HTTP endpoint whose answers the test scripts (status codes in order, then 200)."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    code = outer.script.pop(0) if outer.script else 200
                    if code == 200:
                        outer.bodies.append(json.loads(body))
                        outer.headers.append(dict(self.headers))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def dead_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


class TcpCollector(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, ssl_ctx=None) -> None:
        self.data = bytearray()
        self.lock = threading.Lock()
        self.ssl_ctx = ssl_ctx
        collector = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                if collector.ssl_ctx is not None:
                    conn = collector.ssl_ctx.wrap_socket(conn, server_side=True)
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    with collector.lock:
                        collector.data += chunk

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
