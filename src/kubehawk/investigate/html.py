"""The story as one self-contained HTML page (the report's styles, no script needed)."""

from __future__ import annotations

from typing import Any

from kubehawk.investigate.story import fold

__all__ = ["render_story"]


def render_story(story: Any) -> str:
    from kubehawk.report.render import render_page

    return render_page("investigate.html.j2", story=story, items=fold(story.steps))
