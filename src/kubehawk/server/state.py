"""Detection state that must outlive a ``serve`` restart: the open correlation windows.

The processor stores a snapshot of every correlation's windows in the journal, in the same
transaction that advances the ``processed`` cursor, at most every ``SNAPSHOT_SECONDS`` and at
shutdown. On start the windows are restored and the events after the snapshot are run through
detection again: their alerts are already in the journal (``UNIQUE(rule_id, audit_key)`` drops
the repeats), so a crash between two snapshots loses no window and repeats no alert.

First-seen baselines live in their own SQLite file; the processor flushes them before each
cursor commit, so they are never behind the cursor either (see the README's guarantees).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

log = logging.getLogger("kubehawk.server")

__all__ = ["SNAPSHOT_NAME", "SNAPSHOT_SECONDS", "has_correlations", "restore_correlations",
           "snapshot_correlations"]

SNAPSHOT_NAME = "correlations"
SNAPSHOT_SECONDS = 30.0


def _engine(detector: Any) -> Any:
    return getattr(detector, "engine", None)


def has_correlations(detector: Any) -> bool:
    engine = _engine(detector)
    return engine is not None and bool(engine.correlations)


def snapshot_correlations(detector: Any) -> bytes | None:
    """The open windows of every correlation (None when the rule set has none)."""
    engine = _engine(detector)
    if engine is None or not engine.correlations:
        return None
    return msgspec.json.encode({"version": 1, "last_time": engine._last_time,
                                "windows": {c.rule.id: c.snapshot() for c in engine.correlations}})


def restore_correlations(detector: Any, blob: bytes, where: str) -> int:
    """Reopen the windows of a snapshot; the number of groups restored. A snapshot that cannot be
    read, or one taken for a correlation that has changed since, is skipped with a warning."""
    engine = _engine(detector)
    if engine is None or not engine.correlations:
        return 0
    try:
        data = msgspec.json.decode(blob)
        windows = data["windows"]
        engine._last_time = max(engine._last_time, float(data.get("last_time") or 0.0))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as e:
        log.warning("%s: correlation windows not restored (unreadable snapshot: %s)", where, e)
        return 0
    restored = 0
    for state in engine.correlations:
        snap = windows.get(state.rule.id)
        if snap is None:
            continue
        try:
            ok = state.restore(snap)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("%s: windows of %s not restored: %s", where, state.rule.id, e)
            continue
        if ok:
            restored += len(state)
        else:
            log.warning("%s: correlation %s changed since the snapshot: its windows start empty",
                        where, state.rule.id)
    return restored
