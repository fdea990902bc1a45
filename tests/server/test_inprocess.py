"""The app and its pipeline in-process (real journal file, real detector): overload, admission, probes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from servetools import RULE_ID, event, event_list

from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.server.app import Service, create_app
from kubehawk.server.settings import ServerSettings
from kubehawk.sinks import build_sink_list

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "samples" / "kube-audit-rest"


def make_service(tmp_path: Path, rules_dir: Path, outputs: list[dict] | None = None, **server) -> Service:
    settings = ServerSettings.build({"journal": str(tmp_path / "j" / "journal.db"), **server})
    config = Config()
    detector = Detector(load_ruleset(config, [rules_dir], builtin=False), config)
    sinks = build_sink_list(outputs or [{"type": "file", "path": str(tmp_path / "alerts.jsonl")}])
    return Service(settings, detector, sinks, config)


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kubehawk")


async def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_overload_answers_429_then_recovers(tmp_path: Path, rules_dir: Path) -> None:
    service = make_service(tmp_path, rules_dir, max_backlog=100)
    app = create_app(service, manage_lifecycle=False)  # detection not started yet: the backlog grows

    async def scenario() -> None:
        async with client(app) as c:
            batch = lambda n: event_list([event(f"o-{n}-{i}", intruder=(i == 0)) for i in range(60)])  # noqa: E731
            assert (await c.post("/audit", json=batch(1))).status_code == 200
            assert (await c.post("/audit", json=batch(2))).status_code == 200
            r = await c.post("/audit", json=batch(3))
            assert r.status_code == 429
            assert r.headers["retry-after"] == "5" and r.json()["error"] == "backlog"
            assert (await c.get("/readyz")).status_code == 503
            metrics = (await c.get("/metrics")).text
            assert 'kubehawk_overload_rejections_total{endpoint="audit",reason="backlog"} 1' in metrics
            assert "kubehawk_journal_backlog_events 120" in metrics

            service.start()  # detection catches up; the apiserver's retry then succeeds
            await wait_until(lambda: service.journal.backlog == 0)
            assert (await c.post("/audit", json=batch(3))).status_code == 200
            assert (await c.get("/readyz")).status_code == 200
            await wait_until(lambda: service.journal.backlog == 0)
            await wait_until(lambda: (tmp_path / "alerts.jsonl").exists()
                             and len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 3)

    try:
        asyncio.run(scenario())
    finally:
        service.stop()
    ids = sorted(json.loads(line)["auditID"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines())
    assert ids == ["o-1-0", "o-2-0", "o-3-0"]


def test_inflight_limit_answers_429(tmp_path: Path, rules_dir: Path) -> None:
    service = make_service(tmp_path, rules_dir, max_inflight=0)
    app = create_app(service, manage_lifecycle=False)

    async def scenario() -> None:
        async with client(app) as c:
            r = await c.post("/audit", json=event_list([event("x")]))
            assert r.status_code == 429 and r.json()["error"] == "inflight"

    try:
        asyncio.run(scenario())
    finally:
        service.stop()


def _review(name: str) -> dict:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared is not beside this clone")
    return json.loads(path.read_text())


def test_admission_always_allows_and_feeds_detection(tmp_path: Path, rules_dir: Path) -> None:
    pytest.importorskip("kubehawk.sources.admission")
    # A rule on the admission view of an exec: CONNECT pods/exec.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "exec.yml").write_text(
        "title: exec seen by admission\nid: 99999999-2222-4333-8444-555555555555\nstatus: test\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "detection:\n  sel:\n    objectRef.subresource: exec\n  condition: sel\nlevel: medium\n")
    service = make_service(tmp_path, tmp_path / "rules", tokens=["tok"])
    app = create_app(service, manage_lifecycle=False)
    service.start()
    review = _review("02-pod-exec-connect.json")
    uid = review["request"]["uid"]

    async def scenario() -> None:
        async with client(app) as c:
            assert (await c.post("/admission", json=review)).status_code == 401
            h = {"Authorization": "Bearer tok"}
            r = await c.post("/admission", json=review, headers=h)
            assert r.status_code == 200
            assert r.json() == {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                "response": {"uid": uid, "allowed": True}}
            # Re-invocation with the same uid: allowed again, journaled once.
            assert (await c.post("/admission", json=review, headers=h)).json()["response"]["allowed"] is True
            for name in ("01-pod-create.json", "03-crb-patch-update.json", "04-secret-delete.json"):
                assert (await c.post("/admission", json=_review(name), headers=h)).status_code == 200
            bad = await c.post("/admission", content=b'{"kind": "AdmissionReview", "request": {}}', headers=h)
            assert bad.status_code == 400 and "uid" in bad.json()["message"]
            await wait_until(lambda: service.metrics.events_processed.total() == 4 and service.journal.backlog == 0)
            await wait_until(lambda: (tmp_path / "alerts.jsonl").exists())
            metrics = (await c.get("/metrics", headers=h)).text
            assert 'kubehawk_events_received_total{endpoint="admission"} 4' in metrics
            assert 'kubehawk_events_duplicate_total{endpoint="admission"} 1' in metrics

    try:
        asyncio.run(scenario())
    finally:
        service.stop()
    [alert] = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alert["auditID"] == uid and alert["subresource"] == "exec" and alert["verb"] == "create"


def test_metrics_exposition_is_prometheus_text(tmp_path: Path, rules_dir: Path) -> None:
    service = make_service(tmp_path, rules_dir)
    app = create_app(service, manage_lifecycle=False)
    service.start()

    async def scenario() -> str:
        async with client(app) as c:
            await c.post("/audit", json=event_list([event("m-1", intruder=True)]))
            await wait_until(lambda: service.journal.backlog == 0 and (tmp_path / "alerts.jsonl").exists())
            await asyncio.sleep(0.2)
            r = await c.get("/metrics")
            assert r.headers["content-type"].startswith("text/plain")
            return r.text

    try:
        text = asyncio.run(scenario())
    finally:
        service.stop()
    assert f'kubehawk_alerts_total{{rule="{RULE_ID}",level="high"}} 1' in text
    assert 'kubehawk_alert_latency_seconds_count{sink="file-0"} 1' in text
    assert 'kubehawk_output_alerts_total{output="file-0",outcome="delivered"} 1' in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)
            assert name.startswith("kubehawk_")


def test_a_handler_that_raises_is_counted_as_500() -> None:
    """The error handler outside the app answers an exception with 500: the request metrics count it
    (they used to count only the answers the handlers wrote themselves)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from kubehawk.server.metrics import CountRequests, Metrics

    m = Metrics()

    async def broken(request):
        raise RuntimeError("a bug in a handler")

    app = Starlette(routes=[Route("/audit", broken, methods=["POST"])],
                    middleware=[Middleware(CountRequests, metrics=m, endpoints={"audit"})])

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kubehawk") as c:
            assert (await c.post("/audit", content=b"{}")).status_code == 500
            assert (await c.get("/nowhere")).status_code == 404

    asyncio.run(scenario())
    assert m.requests.value(endpoint="audit", code="500") == 1
    assert m.requests.value(endpoint="other", code="404") == 1


def _configmap_review(uid: str, size: int) -> dict:
    """An AdmissionReview creating a ConfigMap of ``size`` bytes of data (built here, not a sample)."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": f"big-{uid}", "namespace": "default",
                       "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]},
          "data": {"blob": "x" * size}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"}, "name": cm["metadata"]["name"],
        "namespace": "default", "operation": "CREATE",
        "userInfo": {"username": "intruder", "groups": ["system:authenticated"]},
        "object": cm, "oldObject": None, "dryRun": False}}


def test_admission_reviews_are_journaled_within_a_size_bound(tmp_path: Path, rules_dir: Path) -> None:
    """Twenty reviews of 2 MiB objects used to put 40 MiB into the journal: each review is now kept
    within admission_max_bytes (bookkeeping and object contents go first) and still detected."""
    service = make_service(tmp_path, rules_dir, tokens=["tok"], admission_max_bytes="64KiB")
    app = create_app(service, manage_lifecycle=False)
    service.start()
    h = {"Authorization": "Bearer tok"}

    async def scenario() -> None:
        async with client(app) as c:
            for i in range(20):
                r = await c.post("/admission", json=_configmap_review(f"cm-{i}", 2 * 1024 * 1024), headers=h)
                assert r.status_code == 200 and r.json()["response"]["allowed"] is True
            await wait_until(lambda: service.metrics.events_processed.total() == 20)
            alerts = tmp_path / "alerts.jsonl"
            await wait_until(lambda: alerts.exists() and len(alerts.read_text().splitlines()) == 20)

    try:
        asyncio.run(scenario())
    finally:
        service.stop()
    import sqlite3

    with sqlite3.connect(tmp_path / "j" / "journal.db") as db:
        sizes = [n for (n,) in db.execute("SELECT length(payload) FROM events WHERE source = 'admission'")]
    assert len(sizes) == 20 and max(sizes) <= 64 * 1024
    assert service.metrics.admission_trimmed.total() == 20
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 20 and {a["rule"]["id"] for a in alerts} == {RULE_ID}  # the marker rule: user intruder


def test_admission_bodies_count_against_the_memory_budget(tmp_path: Path, rules_dir: Path) -> None:
    service = make_service(tmp_path, rules_dir, max_inflight_bytes="1MiB", max_body_bytes="1MiB")
    app = create_app(service, manage_lifecycle=False)
    service.budget.take(900 * 1024)  # bodies of other requests being read

    async def scenario() -> None:
        async with client(app) as c:
            r = await c.post("/admission", json=_configmap_review("cm-budget", 200 * 1024))
            assert r.status_code == 429 and r.json()["error"] == "memory"

    try:
        asyncio.run(scenario())
    finally:
        service.stop()


def test_alerts_from_serve_carry_the_event_as_received(tmp_path: Path, rules_dir: Path) -> None:
    """ECS's event.original and OCSF's evidence hold the event as the apiserver sent it, as from
    detect; the JSON contract has no event."""
    formats = ("json", "ecs", "ocsf")
    outputs = [{"type": "file", "path": str(tmp_path / f"{f}.jsonl"), "format": f} for f in formats]
    service = make_service(tmp_path, rules_dir, outputs)
    app = create_app(service, manage_lifecycle=False)
    service.start()
    sent = event("orig-1", intruder=True)
    sent["annotations"] = {"a.example/kept": "not modelled by kubehawk"}

    async def scenario() -> None:
        async with client(app) as c:
            assert (await c.post("/audit", json=event_list([sent]))).status_code == 200
            await wait_until(lambda: all((tmp_path / f"{f}.jsonl").exists() and (tmp_path / f"{f}.jsonl").stat().st_size
                                         for f in formats))

    try:
        asyncio.run(scenario())
    finally:
        service.stop()
    (plain,), (ecs,), (ocsf,) = ([json.loads(x) for x in (tmp_path / f"{f}.jsonl").read_text().splitlines()]
                                 for f in formats)
    assert plain["auditID"] == "orig-1" and "event" not in plain
    assert json.loads(ecs["event"]["original"]) == sent
    assert [e["data"] for e in ocsf["evidences"]] == [sent]
