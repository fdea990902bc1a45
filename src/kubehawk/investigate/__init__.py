"""``kubehawk investigate``: every event of one identity, or around one alert, as a story.

Not only alerts: the reads, the denied attempts and the quiet steps between them, in order,
with alerts marked inline and runs of the same request folded, on a terminal, as JSON, or as
a self-contained HTML page.
"""

from kubehawk.investigate.story import Step, Story, collect, fold

__all__ = ["Step", "Story", "collect", "fold"]
