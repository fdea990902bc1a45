"""Shared test helpers (import as `from helpers import ...`): corpus locations and event builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
SAMPLES = SHARED / "reference" / "samples"


def need(path: Path) -> Path:
    """Skip the test when ../shared (a developer's reference material) is not beside the repo."""
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared is not beside this clone")
    return path


def audit(**kw: Any) -> dict[str, Any]:
    """A minimal well-formed audit Event; keyword arguments override or add fields."""
    ev: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": "a-1",
        "stage": "ResponseComplete", "verb": "get", "requestURI": "/api/v1/namespaces/default/pods/p",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl/v1.30",
        "objectRef": {"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-11-23T10:00:00.000000Z", "stageTimestamp": "2026-11-23T10:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    ev.update(kw)
    return ev


def events_and_error(obj: Any, origin: str = "t") -> tuple[list, Exception | None]:
    """Consume a record like a reader does: the events yielded before a batch-level report, and that report."""
    from kubehawk.event import EventDecodeError
    from kubehawk.sources.normalize import SkipRecord, to_events

    out: list = []
    try:
        for ev in to_events(obj, origin):
            out.append(ev)
    except (SkipRecord, EventDecodeError) as e:
        return out, e
    return out, None
