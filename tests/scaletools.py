"""A log that makes the split run (kubehawk.scale, kubehawk.spark) work: correlation bursts, first-seen
one request landing on either side of a part boundary, events out of time order, bad lines."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from kubehawk.alerts import Alert
from kubehawk.detect import Detector
from kubehawk.sources.files import ReadStats, read_paths

T0 = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC)
HUMANS = ["alice", "bob", "mallory", "eve"]
APPS = [("bank", "ledger"), ("web", "frontend"), ("payments", "api")]
NETWORKS = ["10.0", "10.1", "203.0", "198.51"]  # the last two appear late: first-seen networks
# first-seen rules learn for about six minutes, then a new value alerts
CONFIG = "baseline:\n  learning_days: 0.004\n"


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(rng: random.Random, t: dt.datetime, kind: str, n: int) -> dict[str, Any]:
    ev: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                          "auditID": f"{kind}-{n:06d}", "stage": "ResponseComplete",
                          "requestReceivedTimestamp": _ts(t), "stageTimestamp": _ts(t + dt.timedelta(milliseconds=5)),
                          "annotations": {"authorization.k8s.io/decision": "allow"},
                          "responseStatus": {"metadata": {}, "code": 200}}
    late = t > T0 + dt.timedelta(minutes=8)
    if kind == "forbidden":
        user, res = rng.choice(HUMANS), rng.choice(["secrets", "pods", "nodes", "configmaps", "roles"])
        ev.update(verb=rng.choice(["get", "list"]), user={"username": user, "groups": ["system:authenticated"]},
                  objectRef={"resource": res, "namespace": "bank", "apiVersion": "v1"},
                  requestURI=f"/api/v1/namespaces/bank/{res}", sourceIPs=["192.0.2.7"],
                  annotations={"authorization.k8s.io/decision": "forbid"},
                  responseStatus={"metadata": {}, "code": 403})
    elif kind == "anonymous":
        ev.update(verb="get", user={"username": "system:anonymous", "groups": ["system:unauthenticated"]},
                  requestURI=rng.choice(["/api", "/apis", "/api/v1/secrets", "/version/../etc"]),
                  sourceIPs=[f"198.51.100.{rng.randint(1, 3)}"], responseStatus={"metadata": {}, "code": 401})
    elif kind == "serviceaccount":
        ns, app = rng.choice(APPS)
        net = rng.choice(NETWORKS if late else NETWORKS[:2])
        ev.update(verb="list", user={"username": f"system:serviceaccount:{ns}:{app}", "groups": []},
                  objectRef={"resource": "configmaps", "namespace": ns, "apiVersion": "v1"},
                  requestURI=f"/api/v1/namespaces/{ns}/configmaps", userAgent=f"{app}/1.0",
                  sourceIPs=[f"{net}.{rng.randint(0, 3)}.{rng.randint(1, 250)}"])
    elif kind == "secret":
        user = rng.choice(HUMANS)
        ev.update(verb="get", user={"username": user, "groups": ["system:authenticated"]},
                  objectRef={"resource": "secrets", "namespace": "payments", "name": f"s{rng.randint(0, 30)}",
                             "apiVersion": "v1"},
                  requestURI="/api/v1/namespaces/payments/secrets/x", sourceIPs=[f"192.0.2.{rng.randint(1, 9)}"],
                  userAgent="kubectl/v1.30.2 (linux/amd64) kubernetes/3968350")
    elif kind == "delete":
        ev.update(verb="delete", user={"username": rng.choice(HUMANS), "groups": ["system:authenticated"]},
                  objectRef={"resource": "pods", "namespace": "web", "name": f"p{n}", "apiVersion": "v1"},
                  requestURI=f"/api/v1/namespaces/web/pods/p{n}", sourceIPs=["192.0.2.9"])
    else:  # noise
        node = f"node-{rng.randint(0, 5)}"
        ev.update(verb="patch", user={"username": f"system:node:{node}", "groups": ["system:nodes"]},
                  objectRef={"resource": "nodes", "name": node, "subresource": "status", "apiVersion": "v1"},
                  requestURI=f"/api/v1/nodes/{node}/status", sourceIPs=["10.0.1.5"], userAgent="kubelet/v1.30.4")
    return ev


def mixed_lines(n: int, seed: int = 1) -> list[str]:
    """``n`` records or so of the mix (bursts come in runs), as JSON lines."""
    rng = random.Random(seed)
    t = T0
    out: list[str] = ['{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","auditID":"no-time",'
                      '"user":{"username":"alice"},"requestURI":"/api"}']  # the first event has no time
    i = 0
    while len(out) < n:
        kind = rng.choices(["forbidden", "anonymous", "serviceaccount", "secret", "delete", "noise"],
                           [3, 2, 6, 2, 1, 6])[0]
        run = rng.randint(5, 14) if kind in ("forbidden", "anonymous", "delete") else 1
        for _ in range(run):
            i += 1
            t += dt.timedelta(seconds=rng.expovariate(1 / 2.0))
            ev = _event(rng, t, kind, i)
            if rng.random() < 0.05:  # a little out of time order
                ev["stageTimestamp"] = _ts(t - dt.timedelta(seconds=rng.randint(1, 30)))
            line = json.dumps(ev, separators=(",", ":"))
            out.append(line)
            if rng.random() < 0.15:  # the other stage of the request, now or many lines later
                twin = dict(ev, stage="ResponseStarted")
                pos = len(out) if rng.random() < 0.5 else max(1, len(out) - rng.randint(1, 60))
                out.insert(pos, json.dumps(twin, separators=(",", ":")))
            if rng.random() < 0.01:
                out.append('{"kind":"Event","verb": broken')
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def key(alert: Alert) -> str:
    """An alert as comparable text: its contract fields and its correlation facts."""
    return json.dumps([alert.to_dict(), alert.correlation], sort_keys=True, default=str)


def one_process(paths: list[str], detector: Detector) -> tuple[list[Alert], ReadStats]:
    """What ``kubehawk detect --workers 1`` gives (alerts in stream order)."""
    stats = ReadStats()
    alerts = list(detector.alerts(read_paths(paths, stats, screen=detector.engine.line_screen)))
    detector.close()
    return alerts, stats


def cloud_records(cases: Path) -> list[str]:
    """Panther's test records (../shared/corpus/panther/cases.jsonl: EKS, GKE and AKS exports,
    and a few records that are none of them), one JSON line each, in the file's order."""
    return [json.dumps(json.loads(line)["event"]) for line in cases.read_text().splitlines() if line.strip()]
