"""``kubehawk pull aks``: consume an AKS diagnostic setting's Event Hub, checkpointing in SQLite.

Each Event Hubs event body is ``{"records": [...]}`` of diagnostic records; the same converter
as for files turns them into Events (non-audit categories skipped and counted). Checkpoints
and partition ownership live in the state file through :class:`SQLiteCheckpointStore`, an
implementation of azure-eventhub's ``CheckpointStore`` interface, so a restart resumes after
the last checkpointed event of every partition with no Blob storage account needed. Several
consumers sharing one state file (same host) balance partitions through the ownership table;
consumers on different hosts need a shared store (``azure-eventhub-checkpointstoreblob``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from kubehawk.event import EventDecodeError
from kubehawk.sources import _cloud
from kubehawk.sources.normalize import to_events
from kubehawk.sources.pull.base import Feeder, PullStats, Sink, Warn, require
from kubehawk.sources.pull.state import PullState

__all__ = ["AksConsumer", "SQLiteCheckpointStore", "receive"]

DEFAULT_EVENTHUB = "insights-logs-kube-audit"


def _base_store() -> type:
    try:
        from azure.eventhub import CheckpointStore
    except ImportError:  # the interface is only needed when azure-eventhub drives the store
        return object
    return CheckpointStore


class SQLiteCheckpointStore(_base_store()):  # type: ignore[misc]
    """azure-eventhub ``CheckpointStore`` on the pull state file (ownership with etags, checkpoints)."""

    def __init__(self, state: PullState):
        self.state = state

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                       **kwargs: Any) -> Iterable[dict[str, Any]]:
        with self.state.lock:
            rows = self.state.db.execute(
                "SELECT partition_id, owner_id, etag, last_modified FROM eh_ownership "
                "WHERE namespace=? AND eventhub=? AND consumer_group=?",
                (fully_qualified_namespace, eventhub_name, consumer_group)).fetchall()
        return [{"fully_qualified_namespace": fully_qualified_namespace, "eventhub_name": eventhub_name,
                 "consumer_group": consumer_group, "partition_id": pid, "owner_id": owner, "etag": etag,
                 "last_modified_time": modified} for pid, owner, etag, modified in rows]

    def claim_ownership(self, ownership_list: Iterable[dict[str, Any]], **kwargs: Any) -> Iterable[dict[str, Any]]:
        """Claim each partition whose etag still matches (optimistic concurrency); return the claimed ones."""
        claimed = []
        with self.state:
            for own in ownership_list:
                key = (own["fully_qualified_namespace"], own["eventhub_name"], own["consumer_group"],
                       own["partition_id"])
                row = self.state.db.execute(
                    "SELECT etag FROM eh_ownership WHERE namespace=? AND eventhub=? AND consumer_group=? "
                    "AND partition_id=?", key).fetchone()
                if row is not None and row[0] != own.get("etag"):
                    continue  # someone else claimed it since we listed
                etag, now = uuid.uuid4().hex, time.time()
                self.state.db.execute(
                    "INSERT INTO eh_ownership VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                    "(namespace, eventhub, consumer_group, partition_id) DO UPDATE SET owner_id=excluded.owner_id, "
                    "etag=excluded.etag, last_modified=excluded.last_modified",
                    (*key, own["owner_id"], etag, now))
                claimed.append({**own, "etag": etag, "last_modified_time": now})
        return claimed

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        offset = checkpoint.get("offset")
        with self.state.lock:
            self.state.db.execute(
                "INSERT INTO eh_checkpoints VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(namespace, eventhub, consumer_group, partition_id) DO UPDATE SET offset=excluded.offset, "
                "sequence_number=excluded.sequence_number",
                (checkpoint["fully_qualified_namespace"], checkpoint["eventhub_name"], checkpoint["consumer_group"],
                 checkpoint["partition_id"], None if offset is None else str(offset),
                 checkpoint.get("sequence_number")))

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                         **kwargs: Any) -> Iterable[dict[str, Any]]:
        with self.state.lock:
            rows = self.state.db.execute(
                "SELECT partition_id, offset, sequence_number FROM eh_checkpoints "
                "WHERE namespace=? AND eventhub=? AND consumer_group=?",
                (fully_qualified_namespace, eventhub_name, consumer_group)).fetchall()
        return [{"fully_qualified_namespace": fully_qualified_namespace, "eventhub_name": eventhub_name,
                 "consumer_group": consumer_group, "partition_id": pid, "offset": offset,
                 "sequence_number": seq} for pid, offset, seq in rows]


class AksConsumer:
    """The ``on_event`` handler: body -> records -> Events -> dedup -> sink, then checkpoint."""

    def __init__(self, state: PullState, sink: Sink, *, warn: Warn | None = None, stats: PullStats | None = None,
                 source: str = "aks"):
        self.state = state
        self.feeder = Feeder(state, source, sink, warn, stats)
        self.idle_partitions: set[str] = set()
        self.last_event_at = time.monotonic()

    @property
    def stats(self) -> PullStats:
        return self.feeder.stats

    def on_event(self, partition_context: Any, event: Any) -> None:
        pid = getattr(partition_context, "partition_id", "?")
        if event is None:  # max_wait_time passed with nothing new on this partition
            self.idle_partitions.add(pid)
            return
        self.idle_partitions.discard(pid)
        self.last_event_at = time.monotonic()
        origin = f"eventhub partition {pid} seq {getattr(event, 'sequence_number', '?')}"
        with self.state:
            self.feeder.feed(self._events(event, origin), origin)
        # The events are handed on and their keys committed: move the checkpoint past them.
        partition_context.update_checkpoint(event)

    def on_event_batch(self, partition_context: Any, events: list) -> None:
        if not events:
            self.on_event(partition_context, None)
            return
        for event in events:
            self.on_event(partition_context, event)

    @staticmethod
    def _events(event: Any, origin: str):
        try:
            body = event.body_as_str()
        except TypeError as e:
            raise EventDecodeError(f"Event Hubs body is not text: {e}") from None
        yield from to_events(_cloud.json_value(body, "Event Hubs body"), origin)


def receive(consumer: AksConsumer, connection_string: str, eventhub: str | None, consumer_group: str,
            store: SQLiteCheckpointStore, *, follow: bool, idle_seconds: float = 10.0,
            stop: Callable[[], bool] = lambda: False) -> None:
    """Run the SDK consumer; one-shot mode stops once every partition has gone idle."""
    eh = require("azure.eventhub", "aks")
    client = eh.EventHubConsumerClient.from_connection_string(
        connection_string, consumer_group=consumer_group, eventhub_name=eventhub, checkpoint_store=store)
    worker = threading.Thread(
        target=client.receive, name="kubehawk-eventhub",
        kwargs={"on_event": consumer.on_event, "starting_position": "-1", "max_wait_time": idle_seconds},
        daemon=True)
    worker.start()
    try:
        partitions = None
        while worker.is_alive() and not stop():
            time.sleep(0.5)
            if follow:
                continue
            if partitions is None:
                try:
                    partitions = set(client.get_partition_ids())
                except Exception:  # noqa: BLE001 - retried next tick; the SDK logs the cause
                    continue
            if partitions and partitions <= consumer.idle_partitions:
                break
    finally:
        client.close()
        worker.join(timeout=30)
