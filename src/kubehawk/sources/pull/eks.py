"""``kubehawk pull eks``: poll CloudWatch Logs ``FilterLogEvents`` for an EKS cluster's audit streams.

Like Falco's k8saudit-eks plugin, but resumable: the last event timestamp of every
``kube-apiserver-audit-*`` stream is kept in the state file, the next poll starts ``lag``
before the newest of them (CloudWatch ingests late and out of order across streams), and the
overlap is removed by the auditID+stage dedup window. Run one puller per log group (several
replicas would each see every event; the shared state file only dedups within one host).
IAM: ``logs:FilterLogEvents`` on ``arn:aws:logs:<region>:<acct>:log-group:/aws/eks/<cluster>/cluster:*``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubehawk.sources import eks as eks_format
from kubehawk.sources.pull.base import Feeder, Poller, PullStats, Sink, Warn, require
from kubehawk.sources.pull.state import PullState

__all__ = ["EksPuller", "make_client"]


def make_client(region: str | None, profile: str | None) -> Any:
    boto3 = require("boto3", "eks")
    session = boto3.Session(profile_name=profile, region_name=region)
    return session.client("logs")


class EksPuller(Poller):
    def __init__(self, client: Any, state: PullState, log_group: str, sink: Sink, *,
                 stream_prefix: str = eks_format.AUDIT_STREAM_PREFIX, start_ms: int | None = None,
                 lag_ms: int = 60_000, filter_pattern: str | None = None, warn: Warn | None = None,
                 stats: PullStats | None = None, clock: Callable[[], float] = time.time):
        self.client, self.state, self.log_group = client, state, log_group
        self.source = f"eks:{log_group}"
        self.stream_prefix, self.lag_ms, self.filter_pattern = stream_prefix, lag_ms, filter_pattern
        self.clock = clock
        self.feeder = Feeder(state, self.source, sink, warn, stats)
        self.ctx = eks_format._context(log_group)
        if start_ms is not None and state.get(self.source, "start") is None:
            state.put(self.source, "start", str(start_ms))

    @property
    def stats(self) -> PullStats:
        return self.feeder.stats

    def stream_positions(self) -> dict[str, int]:
        return {k[len("stream:"):]: int(v) for k, v in self.state.items(self.source, "stream:").items()}

    def start_time(self) -> int:
        positions = self.stream_positions()
        if positions:
            return max(0, max(positions.values()) - self.lag_ms)
        start = self.state.get(self.source, "start")
        return int(start) if start is not None else int((self.clock() - 600) * 1000)

    def poll_once(self) -> int:
        """One full FilterLogEvents sweep from the saved position; returns the new events handed on."""
        params: dict[str, Any] = {"logGroupName": self.log_group, "startTime": self.start_time()}
        if self.stream_prefix:
            params["logStreamNamePrefix"] = self.stream_prefix
        if self.filter_pattern:
            params["filterPattern"] = self.filter_pattern
        new = 0
        while True:
            page = self.client.filter_log_events(**params)
            with self.state:
                latest: dict[str, int] = {}
                for i, item in enumerate(page.get("events") or []):
                    stream = item.get("logStreamName") or ""
                    origin = f"{self.log_group}/{stream} event {item.get('eventId', i)}"
                    new += self.feeder.feed(eks_format.convert_log_event(item, origin, self.ctx), origin)
                    ts = item.get("timestamp")
                    if isinstance(ts, int) and ts > latest.get(stream, -1):
                        latest[stream] = ts
                saved = self.stream_positions()
                for stream, ts in latest.items():
                    if ts > saved.get(stream, -1):
                        self.state.put(self.source, f"stream:{stream}", str(ts))
            token = page.get("nextToken")
            if not token:
                return new
            params["nextToken"] = token
