"""/metrics labels an alert with the rule's name (what users type), the JSON carries both."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from servetools import MARKER_RULE, RULE_ID, event, event_list
from test_inprocess import client, make_service, wait_until

from kubehawk.server.app import create_app


def test_alert_metric_is_labelled_with_the_rule_name(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "marker.yml").write_text(MARKER_RULE.replace("status: test", "name: intruder-acted\nstatus: test"))
    service = make_service(tmp_path, rules)
    app = create_app(service, manage_lifecycle=False)
    service.start()

    async def scenario() -> str:
        async with client(app) as c:
            await c.post("/audit", json=event_list([event("n-1", intruder=True)]))
            await wait_until(lambda: service.journal.backlog == 0 and (tmp_path / "alerts.jsonl").exists())
            await asyncio.sleep(0.2)
            return (await c.get("/metrics")).text

    try:
        text = asyncio.run(scenario())
    finally:
        service.stop()
    assert 'kubehawk_alerts_total{rule="intruder-acted",level="high"} 1' in text
    [alert] = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alert["rule"]["id"] == RULE_ID and alert["rule"]["name"] == "intruder-acted"
