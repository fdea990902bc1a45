"""What every live pull shares: convert, dedup on auditID+stage, hand events on, count."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubehawk.event import AuditEvent, EventDecodeError
from kubehawk.sources.normalize import SkipRecord

if TYPE_CHECKING:
    from kubehawk.sources.pull.state import PullState

__all__ = ["Feeder", "MissingExtra", "Poller", "PullStats", "Sink", "require"]

Sink = Callable[[AuditEvent], None]
Warn = Callable[[str], None]


class Poller:
    """A source read by polling: one pass, or passes every ``interval`` seconds until ``stop``."""

    def poll_once(self) -> int:  # pragma: no cover - each source defines it
        raise NotImplementedError

    def run(self, follow: bool, interval: float, stop: Callable[[], bool] = lambda: False,
            sleep: Callable[[float], None] = time.sleep) -> None:
        while True:
            self.poll_once()
            if not follow or stop():
                return
            sleep(interval)
            if stop():
                return


class MissingExtra(RuntimeError):
    """A cloud SDK that is an optional extra is not installed."""


def require(module: str, extra: str):
    """Import an optional SDK, or say which extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{module} is not installed ({e}); install it with: pip install 'kubehawk[{extra}]'"
        ) from None


@dataclass
class PullStats:
    records: int = 0
    events: int = 0
    duplicates: int = 0
    skipped: int = 0
    bad: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.records} records, {self.events} events, {self.duplicates} duplicates dropped, "
                f"{self.skipped} skipped, {self.bad} bad")


def dedup_key(event: AuditEvent) -> str:
    h = event.head
    if h.auditID:
        return f"{h.auditID}|{h.stage or ''}"
    # No auditID (hand-made or partial records): the content is the identity.
    return "sha1:" + hashlib.sha1(event.to_json()).hexdigest()


class Feeder:
    """Feeds converted events to ``sink`` once each; keeps counts and the first warnings."""

    def __init__(self, state: PullState, source: str, sink: Sink, warn: Warn | None = None,
                 stats: PullStats | None = None):
        self.state, self.source, self.sink = state, source, sink
        self.warn = warn or (lambda msg: None)
        self.stats = stats or PullStats()

    def feed(self, events: Iterable[AuditEvent], origin: str) -> int:
        """Consume one record's events (a generator from a converter); returns how many were new."""
        self.stats.records += 1
        new = 0
        try:
            for ev in events:
                if not self.state.first_time(self.source, dedup_key(ev)):
                    self.stats.duplicates += 1
                    continue
                self.stats.events += 1
                new += 1
                self.sink(ev)
        except SkipRecord as e:
            self.stats.skipped += getattr(e, "count", 1)
        except EventDecodeError as e:
            self.stats.bad += getattr(e, "count", 1)
            self._warn(f"{origin}: {e}")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            # A converter tripped over a shape it did not expect: the input's fault, not fatal.
            self.stats.bad += 1
            self._warn(f"{origin}: {type(e).__name__}: {e}")
        return new

    def _warn(self, msg: str) -> None:
        if len(self.stats.warnings) < 100:
            self.stats.warnings.append(msg)
        self.warn(msg)
