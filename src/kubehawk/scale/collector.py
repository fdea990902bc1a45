"""Python's cycle collector in a split run: paused where it would walk large heaps for nothing.

Both halves of a split run allocate a great deal that is freed by reference counting as it goes
(events, records, a part's results) and keep much that lives to the end (the merge's alerts and
dedup keys; a worker's memos). The collector's passes, started by allocation counts, walk the
kept objects again and again. What little cyclic garbage there is comes from the workers'
reading (a few thousand objects per million events: exceptions of odd records, memo churn) and
is made within one part; the merge makes none (a 1M-event run's merge left 0 cycles). So the
collector is off while a run goes, a worker frees each part's cycles with one young pass after
it (memory stays flat, and no pass walks what earlier parts kept), and the merge's side is
collected once, after the run.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused", "young_pass"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off for a whole run (the merge's side). Measured: its full passes took half
    a second of a 1M-event run's merge (5 passes over the growing heap), against 30 ms for one
    process; a young pass after each part merged cost 39 ms (each dedup key looked at once) and
    found nothing.

    What exists when it starts is also frozen (``gc.freeze``): worker processes forked then never
    walk the parent's objects (the compiled rules) in their own passes, which would copy every
    page holding one."""
    was = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        # What the run made joins the oldest generation too (freeze, then unfreeze everything):
        # left young, the first allocation after enable() would walk all of it (70 ms at the end
        # of a 1M-event run, when nothing else runs).
        gc.freeze()
        gc.unfreeze()
        if was:
            gc.enable()


def young_pass() -> None:
    """One pass over what was allocated since the last: after a part, its garbage cycles."""
    gc.collect(0)


@contextlib.contextmanager
def part_collected() -> Iterator[None]:
    """The collector off while one part is read, one young pass after (a worker's side: a local
    worker forked inside :func:`collector_paused` runs with it off already; a Spark task's Python
    worker gets it back after the part)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        young_pass()
        if was:
            gc.enable()
