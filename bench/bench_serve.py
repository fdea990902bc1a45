"""Throughput and latency of ``kubehawk serve`` on loopback, fed like the apiserver's webhook backend.

Bodies are EventLists of 400 events (the apiserver's default max batch) drawn from the
realistic corpus (bench/corpus.py); each batch carries one marker event that a bench rule
turns into an alert, so POST-to-alert time can be measured at the alert file.

Phase 1, saturation: ``--clients`` concurrent posters send batches as fast as the server
acknowledges them; reports acknowledged events/s and the sustained end-to-end rate (until
detection has caught up). Phase 2, paced: batches at ``--qps`` per second (the apiserver's
default throttle is 10 batches/s = 4000 events/s); reports POST-to-alert p50/p99/max.

    python bench/bench_serve.py [--batches 150] [--clients 4] [--qps 10] [--seconds 15] [--tls]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

BATCH = 400
MARKER_RULE = """
title: bench marker
id: 00000000-0000-4000-8000-00000000be4c
status: test
logsource: {product: kubernetes, service: audit}
detection:
  sel:
    user.username: bench-marker
  condition: sel
level: high
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_batches(n: int, tag: str) -> list[tuple[str, bytes]]:
    """(marker auditID, encoded EventList) per batch; auditIDs unique per ``tag``."""
    events = corpus.generate(n * (BATCH - 1), seed=zlib.crc32(tag.encode()))
    out = []
    for b in range(n):
        items = [next(events) for _ in range(BATCH - 1)]
        for i, e in enumerate(items):
            e["auditID"] = f"{tag}-{b}-{i}"
        marker = dict(items[0], auditID=f"{tag}-{b}-marker", user={"username": "bench-marker", "groups": []})
        items.append(marker)
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
        out.append((marker["auditID"], msgspec.json.encode(body)))
    return out


class AlertTail(threading.Thread):
    """Notes when each marker alert appears in the alert file."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        pos = 0
        buf = b""
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            now = time.perf_counter()
            if chunk:
                pos += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    a = json.loads(line)
                    if a["auditID"].endswith("-marker"):
                        self.seen.setdefault(a["auditID"], now)
            else:
                time.sleep(0.002)


def start_server(work: Path, tls: bool) -> tuple[subprocess.Popen, str, ssl.SSLContext | bool]:
    port = free_port()
    server = {"listen": "127.0.0.1", "port": port, "journal": str(work / "journal" / "j.db"),
              "max_backlog": 200_000}
    verify: ssl.SSLContext | bool = True
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-subj", "/CN=localhost", "-days", "1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], cwd=work, check=True, capture_output=True)
        server |= {"tls_cert": str(work / "c.pem"), "tls_key": str(work / "k.pem")}
        verify = ssl.create_default_context(cafile=str(work / "c.pem"))
    cfg = {"server": server, "outputs": [{"type": "file", "path": str(work / "alerts.jsonl")}]}
    (work / "kubehawk.yaml").write_text(json.dumps(cfg))
    rules = work / "rules"
    rules.mkdir()
    (rules / "marker.yml").write_text(MARKER_RULE)
    log = open(work / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", "from kubehawk.cli import main; main()", "serve", "--config",
                             str(work / "kubehawk.yaml"), "--rules", str(rules), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/readyz", verify=verify, timeout=1).status_code == 200:
                return proc, url, verify
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not start:\n" + (work / "serve.log").read_text())


def backlog(url: str, verify) -> float:
    for line in httpx.get(url + "/metrics", verify=verify).text.splitlines():
        if line.startswith("kubehawk_journal_backlog_events "):
            return float(line.split()[1])
    return 0.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=150, help="batches in the saturation phase")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--qps", type=float, default=10.0, help="batches/s in the paced phase")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the paced phase")
    ap.add_argument("--tls", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kubehawk-bench-") as tmp:
        work = Path(tmp)
        sat = make_batches(args.batches, "sat")
        paced_n = int(args.qps * args.seconds)
        paced = make_batches(paced_n, "paced")
        proc, url, verify = start_server(work, args.tls)
        tail = AlertTail(work / "alerts.jsonl")
        tail.start()
        try:
            # --- phase 1: saturation ------------------------------------------------------
            nxt = iter(range(len(sat)))
            lock = threading.Lock()
            acked = [0]
            rejected = [0]

            def poster() -> None:
                with httpx.Client(verify=verify, timeout=60) as c:
                    while True:
                        with lock:
                            i = next(nxt, None)
                        if i is None:
                            return
                        while True:
                            r = c.post(url + "/audit", content=sat[i][1],
                                       headers={"Content-Type": "application/json"})
                            if r.status_code == 200:
                                with lock:
                                    acked[0] += r.json()["accepted"]
                                break
                            with lock:
                                rejected[0] += 1
                            time.sleep(0.2)  # 429: back off as the apiserver would

            t0 = time.perf_counter()
            threads = [threading.Thread(target=poster) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            t_ack = time.perf_counter() - t0
            while backlog(url, verify) > 0:
                time.sleep(0.05)
            t_done = time.perf_counter() - t0
            want = {m for m, _ in sat}
            while not want <= tail.seen.keys() and time.perf_counter() - t0 < t_done + 30:
                time.sleep(0.05)
            t_alerts = time.perf_counter() - t0

            # --- phase 2: paced, like the apiserver's throttled batches --------------------------
            sent: dict[str, float] = {}
            post_ms: list[float] = []
            with httpx.Client(verify=verify, timeout=60) as c:
                start = time.perf_counter()
                for i, (marker, body) in enumerate(paced):
                    due = start + i / args.qps
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    t = time.perf_counter()
                    sent[marker] = t
                    r = c.post(url + "/audit", content=body, headers={"Content-Type": "application/json"})
                    post_ms.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        print(f"paced batch {i}: HTTP {r.status_code}", file=sys.stderr)
            deadline = time.perf_counter() + 30
            while not sent.keys() <= tail.seen.keys() and time.perf_counter() < deadline:
                time.sleep(0.02)
            lat = [(tail.seen[m] - t) * 1000 for m, t in sent.items() if m in tail.seen]
        finally:
            tail.stop.set()
            proc.terminate()
            proc.wait(30)

        n = acked[0]
        print(f"kubehawk serve bench ({'HTTPS' if args.tls else 'HTTP'} loopback, {os.cpu_count()} CPUs, "
              f"built-in rules + marker rule, file output, journal synchronous=FULL)")
        print(f"saturation: {args.batches} batches x {BATCH} events, {args.clients} clients")
        print(f"  acknowledged (journaled)    {n / t_ack:10.0f} events/s  ({n} events in {t_ack:.2f}s, "
              f"{rejected[0]} x 429)")
        print(f"  sustained (detected)        {n / t_done:10.0f} events/s  (backlog empty after {t_done:.2f}s)")
        print(f"  all marker alerts written after {t_alerts:.2f}s")
        print(f"paced: {args.qps:g} batches/s = {args.qps * BATCH:.0f} events/s for {args.seconds:g}s")
        print(f"  POST answered   p50 {statistics.median(post_ms):7.1f} ms   p99 {pct(post_ms, 99):7.1f} ms")
        if lat:
            print(f"  POST -> alert   p50 {statistics.median(lat):7.1f} ms   p99 {pct(lat, 99):7.1f} ms   "
                  f"max {max(lat):7.1f} ms   ({len(lat)}/{len(sent)} alerts seen)")
        else:
            print("  POST -> alert   no alert seen")


if __name__ == "__main__":
    main()
