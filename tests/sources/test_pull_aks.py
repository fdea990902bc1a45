"""kubehawk pull aks: the on_event handler and the SQLite CheckpointStore with azure-eventhub's own objects."""

from __future__ import annotations

import json
import threading

from azure.eventhub import CheckpointStore, EventData, PartitionContext

from kubehawk.sources.pull.aks import AksConsumer, SQLiteCheckpointStore
from kubehawk.sources.pull.state import PullState

from helpers import SAMPLES, audit, need

NS, HUB, CG = "acme.servicebus.windows.net", "insights-logs-kube-audit", "$Default"


def received(body: str | bytes, seq: int) -> EventData:
    """An EventData as the SDK hands it over: with offset and sequence number annotations."""
    ev = EventData(body)
    ev._raw_amqp_message.annotations[b"x-opt-offset"] = str(seq * 1024).encode()
    ev._raw_amqp_message.annotations[b"x-opt-sequence-number"] = seq
    return ev


def record(audit_id: str, category: str = "kube-audit", **kw) -> dict:
    return {"category": category, "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
            "resourceId": "/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/C1",
            "time": "2025-03-14T13:51:40.8051234Z",
            "properties": {"log": json.dumps(audit(auditID=audit_id, **kw)) + "\n", "stream": "stdout"}}


def body(*records: dict) -> str:
    return json.dumps({"records": list(records)})


def test_store_implements_the_sdk_interface_with_etags(tmp_path):
    store = SQLiteCheckpointStore(PullState(tmp_path / "s.sqlite"))
    assert isinstance(store, CheckpointStore)
    assert list(store.list_ownership(NS, HUB, CG)) == []
    want = {"fully_qualified_namespace": NS, "eventhub_name": HUB, "consumer_group": CG, "partition_id": "0",
            "owner_id": "me", "etag": None}
    (claimed,) = store.claim_ownership([want])
    assert claimed["owner_id"] == "me" and claimed["etag"]
    # A second claimant with a stale etag loses; one with the current etag wins.
    assert store.claim_ownership([{**want, "owner_id": "other", "etag": "stale"}]) == []
    (stolen,) = store.claim_ownership([{**want, "owner_id": "other", "etag": claimed["etag"]}])
    assert [o["owner_id"] for o in store.list_ownership(NS, HUB, CG)] == ["other"]
    assert stolen["etag"] != claimed["etag"]


def test_on_event_converts_dedups_and_checkpoints(tmp_path):
    path = tmp_path / "s.sqlite"
    state = PullState(path)
    store = SQLiteCheckpointStore(state)
    got = []
    consumer = AksConsumer(state, got.append)
    ctx = PartitionContext(NS, HUB, CG, "1", checkpoint_store=store)

    consumer.on_event(ctx, received(body(record("a1"), record("x", category="guard"), record("a2")), 7))
    assert [e.head.auditID for e in got] == ["a1", "a2"]
    assert got[0].extra["cluster"]["name"] == "C1" and consumer.stats.skipped == 1
    (cp,) = store.list_checkpoints(NS, HUB, CG)
    assert (cp["partition_id"], cp["offset"], cp["sequence_number"]) == ("1", "7168", 7)

    # At-least-once redelivery of the same records after a restart: nothing new reaches the sink.
    state.close()
    state2 = PullState(path)
    consumer2 = AksConsumer(state2, got.append)
    ctx2 = PartitionContext(NS, HUB, CG, "1", checkpoint_store=SQLiteCheckpointStore(state2))
    consumer2.on_event(ctx2, received(body(record("a2"), record("a3")), 8))
    assert [e.head.auditID for e in got] == ["a1", "a2", "a3"] and consumer2.stats.duplicates == 1
    (cp,) = SQLiteCheckpointStore(state2).list_checkpoints(NS, HUB, CG)
    assert cp["sequence_number"] == 8


def test_bad_bodies_are_counted_and_still_checkpointed(tmp_path):
    state = PullState(tmp_path / "s.sqlite")
    store = SQLiteCheckpointStore(state)
    warnings: list[str] = []
    consumer = AksConsumer(state, lambda e: None, warn=warnings.append)
    ctx = PartitionContext(NS, HUB, CG, "0", checkpoint_store=store)
    consumer.on_event(ctx, received("{not json", 1))
    consumer.on_event(ctx, received(json.dumps({"records": [{"category": "kube-audit", "properties": {}}]}), 2))
    assert consumer.stats.bad == 2 and "not valid JSON" in warnings[0]
    (cp,) = store.list_checkpoints(NS, HUB, CG)
    assert cp["sequence_number"] == 2  # a poison event must not block the partition


def test_idle_tracking_and_the_fixture_body(tmp_path):
    state = PullState(tmp_path / "s.sqlite")
    got = []
    consumer = AksConsumer(state, got.append)
    ctx = PartitionContext(NS, HUB, CG, "3", checkpoint_store=SQLiteCheckpointStore(state))
    consumer.on_event(ctx, None)
    assert consumer.idle_partitions == {"3"}
    fixture = (need(SAMPLES / "aks") / "01-eventhub-event-body.json").read_bytes()
    consumer.on_event_batch(ctx, [received(fixture, 1)])
    assert consumer.idle_partitions == set() and len(got) == 2 and consumer.stats.skipped == 1


class FakeConsumerClient:
    """Stands in for EventHubConsumerClient: delivers events per partition, then idles until closed."""

    def __init__(self, batches: dict[str, list], store):
        self.batches, self.store = batches, store
        self.closed = threading.Event()
        self.kwargs: dict = {}

    def get_partition_ids(self):
        return list(self.batches)

    def receive(self, on_event, **kwargs):
        self.kwargs = kwargs
        for pid, events in self.batches.items():
            ctx = PartitionContext(NS, HUB, CG, pid, checkpoint_store=self.store)
            for ev in events:
                on_event(ctx, ev)
        while not self.closed.is_set():
            for pid in self.batches:
                on_event(PartitionContext(NS, HUB, CG, pid, checkpoint_store=self.store), None)
            self.closed.wait(0.05)

    def close(self):
        self.closed.set()


def test_one_shot_receive_stops_when_every_partition_is_idle(tmp_path, monkeypatch):
    import azure.eventhub

    from kubehawk.sources.pull import aks as pull_aks

    state = PullState(tmp_path / "s.sqlite")
    store = SQLiteCheckpointStore(state)
    fake = FakeConsumerClient({"0": [received(body(record("p0")), 1)], "1": [received(body(record("p1")), 4)]}, store)
    seen_args = {}

    def from_connection_string(conn, **kw):
        seen_args.update(kw, conn=conn)
        return fake

    monkeypatch.setattr(azure.eventhub.EventHubConsumerClient, "from_connection_string",
                        staticmethod(from_connection_string))
    got = []
    consumer = AksConsumer(state, got.append)
    pull_aks.receive(consumer, "Endpoint=sb://acme/;SharedAccessKeyName=k;SharedAccessKey=s", HUB, CG, store,
                     follow=False, idle_seconds=1)
    assert fake.closed.is_set() and sorted(e.head.auditID for e in got) == ["p0", "p1"]
    assert seen_args["checkpoint_store"] is store and seen_args["eventhub_name"] == HUB
    assert fake.kwargs["starting_position"] == "-1"
    assert sorted((c["partition_id"], c["sequence_number"]) for c in store.list_checkpoints(NS, HUB, CG)) == [
        ("0", 1), ("1", 4)]
