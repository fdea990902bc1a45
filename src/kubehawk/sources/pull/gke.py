"""``kubehawk pull gke``: read GKE audit entries with Cloud Logging ``entries.list``.

The filter is the reference one (``resource.type="k8s_cluster" AND protoPayload.serviceName="k8s.io"
AND logName:"cloudaudit.googleapis.com"``, optionally one cluster) plus ``timestamp >= <last>``
from the state file, in ascending order; entries at the boundary timestamp come again and are
dropped by the auditID+stage dedup. ``entries.list`` is quota-limited: right for backfill and
small clusters; a Log Router sink to Pub/Sub (whose push bodies ``kubehawk serve`` and
``detect`` read as-is) is the firehose path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubehawk.sources import _cloud
from kubehawk.sources import gke as gke_format
from kubehawk.sources.pull.base import Feeder, Poller, PullStats, Sink, Warn, require
from kubehawk.sources.pull.state import PullState

__all__ = ["GkePuller", "base_filter", "make_client"]


def make_client(project: str) -> Any:
    logging = require("google.cloud.logging", "gke")
    return logging.Client(project=project)


def base_filter(cluster: str | None = None, location: str | None = None) -> str:
    parts = ['resource.type="k8s_cluster"', 'protoPayload.serviceName="k8s.io"',
             'logName:"cloudaudit.googleapis.com"']
    if cluster:
        parts.append(f'resource.labels.cluster_name="{cluster}"')
    if location:
        parts.append(f'resource.labels.location="{location}"')
    return " AND ".join(parts)


class GkePuller(Poller):
    def __init__(self, client: Any, state: PullState, project: str, sink: Sink, *, cluster: str | None = None,
                 location: str | None = None, start: str | None = None, page_size: int = 1000,
                 warn: Warn | None = None, stats: PullStats | None = None,
                 clock: Callable[[], float] = time.time):
        self.client, self.state, self.project = client, state, project
        self.source = f"gke:{project}/{location or '-'}/{cluster or '*'}"
        self.filter = base_filter(cluster, location)
        self.page_size, self.clock = page_size, clock
        self.feeder = Feeder(state, self.source, sink, warn, stats)
        if start is not None and state.get(self.source, "timestamp") is None:
            state.put(self.source, "timestamp", start)

    @property
    def stats(self) -> PullStats:
        return self.feeder.stats

    def position(self) -> str:
        saved = self.state.get(self.source, "timestamp")
        if saved:
            return saved
        return datetime.fromtimestamp(self.clock() - 600, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def poll_once(self, batch: int = 500) -> int:
        since = self.position()
        flt = f'{self.filter} AND timestamp>="{since}"'
        entries = self.client.list_entries(resource_names=[f"projects/{self.project}"], filter_=flt,
                                           order_by="timestamp asc", page_size=self.page_size)
        new = 0
        pending: list[Any] = []
        for entry in entries:
            pending.append(entry)
            if len(pending) >= batch:
                new += self._commit(pending)
                pending = []
        if pending:
            new += self._commit(pending)
        return new

    def _commit(self, entries: list[Any]) -> int:
        new = 0
        with self.state:
            latest = self.state.get(self.source, "timestamp") or ""
            for entry in entries:
                data = entry.to_api_repr() if hasattr(entry, "to_api_repr") else entry
                origin = f"gke entry {data.get('insertId', '?')}" if isinstance(data, dict) else "gke entry"
                if not isinstance(data, dict):
                    self.feeder.stats.bad += 1
                    continue
                new += self.feeder.feed(gke_format.convert_entry(data, origin), origin)
                ts = _cloud.rfc3339(data.get("timestamp"))
                if ts and ts > latest:
                    latest = ts
            if latest:
                self.state.put(self.source, "timestamp", latest)
        return new
