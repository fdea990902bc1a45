"""Live pulls from managed clouds: ``kubehawk pull gke|eks|aks``.

The cloud SDKs are optional extras imported only when a pull runs; the converters are the
same ones ``kubehawk detect`` uses on exported files, and the position (per-stream
timestamps, Event Hubs checkpoints, last entry time) plus an auditID+stage dedup window live
in one SQLite state file so a pull can stop and resume without gaps or repeats.
"""

from kubehawk.sources.pull.cli import pull

__all__ = ["pull"]
