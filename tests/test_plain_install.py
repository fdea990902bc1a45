"""A plain ``pip install kubehawk`` (no extras, no dev tools) runs ``serve``, ``detect`` and ``pull --help``.

The suite itself runs in the dev environment, where a dev-only package (httpx, pytest) can hide a
runtime import that is not a declared dependency. This test builds a fresh virtualenv, installs
the worktree into it without extras and starts the commands there, talking to ``serve`` with the
standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)],
                       capture_output=True, text=True, timeout=800, env=env)
    assert r.returncode == 0, f"pip install of the worktree failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return venv


def _env(tmp: Path) -> dict[str, str]:
    # Nothing from the dev environment leaks in: no PYTHONPATH, a cache of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["KUBEHAWK_CACHE_DIR"] = str(tmp / "cache")
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plain_install_runs_detect_and_pull_help(plain_venv: Path, tmp_path: Path) -> None:
    kubehawk = str(plain_venv / "bin" / "kubehawk")
    r = subprocess.run([kubehawk, "detect", "--format", "json", str(REPO / "examples" / "sample-audit.log")],
                       capture_output=True, text=True, timeout=300, env=_env(tmp_path), cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1), r.stderr  # 1: alerts found
    assert r.stdout.strip(), "detect printed no alert for the sample log"
    r = subprocess.run([kubehawk, "pull", "--help"], capture_output=True, text=True, timeout=120,
                       env=_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("outputs", [[], [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]],
                         ids=["no-outputs", "webhook-output"])
def test_plain_install_starts_serve(plain_venv: Path, tmp_path: Path, outputs: list) -> None:
    port = _free_port()
    cfg = tmp_path / "kubehawk.yaml"
    cfg.write_text(json.dumps({"server": {"listen": "127.0.0.1", "port": port,
                                          "journal": str(tmp_path / "j" / "journal.db")},
                               "outputs": outputs}))
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(plain_venv / "bin" / "kubehawk"), "serve", "--config", str(cfg)],
                                stdout=fh, stderr=subprocess.STDOUT, env=_env(tmp_path), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"serve did not become ready:\n{log.read_text()}"
            time.sleep(0.2)
        body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "plain-1", "stage": "ResponseComplete",
            "verb": "get", "requestURI": "/api/v1/namespaces", "user": {"username": "alice"},
            "stageTimestamp": "2026-11-23T10:00:00Z"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/audit", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["accepted"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()
