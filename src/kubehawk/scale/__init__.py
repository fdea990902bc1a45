"""Detection on every core of one machine, and on Spark past it, with the alerts of one process.

The split (the same for local workers and Spark executors):

1. **Workers** read their part of the input (a byte range of a large JSON-lines file, a whole
   compressed file, a Spark partition) and run the engine in split mode (``Engine.split``): the
   index, the line screen and every rule's test, nothing stateful. For each event that some rule
   matches they send back the event (its line) and the rules, in their reading order, plus the
   first event of their part that has a time (where the first-seen baselines start learning).
2. **The merge** replays those records in *stream order* (the order one ``kubehawk detect``
   process reads the same input: files in order, lines in order) through one :class:`Detector`
   (:meth:`Detector.replay`): the engine's own dedup (one alert per rule and auditID, whichever
   worker read each stage of a request), first-seen baselines and correlation windows, so the
   alerts are those of one process, whatever the split and whatever the engine's semantics.
   Only matched events cross (with the built-in pack about one in five of a busy cluster's
   events, mostly the first-seen rules' "known" matches); the merge costs a head decode and the
   engine's after-match path for each, about 7 µs, in one process (docs/scaling.md).
3. **Output order** is defined, not an accident of scheduling: event time (stage timestamp), then
   auditID, then rule id, then stream order (see :func:`kubehawk.scale.merge.alert_order`).

``kubehawk.scale.local`` runs workers in processes (``detect --workers N``); ``kubehawk.spark``
runs them in Spark tasks.
"""

from __future__ import annotations

from kubehawk.scale.merge import Merge, alert_order
from kubehawk.scale.records import ChunkResult, find_matches

__all__ = ["ChunkResult", "Merge", "alert_order", "find_matches"]
