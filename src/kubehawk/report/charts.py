"""Charts drawn here as inline SVG (and the heat map's cells as data for an HTML grid).

Why our own SVG rather than a charting library: the report must open with no network (no CDN),
print, and follow the page's light or dark theme; two simple charts are less code than inlining
a library's script, and the colours come from the page's CSS classes, so themes and print apply.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import Any

from kubehawk.alerts import LEVELS
from kubehawk.report.model import ReportData

__all__ = ["matrix_cells", "timeline_svg"]

_W, _H = 1000, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 44, 34
_STACK = tuple(reversed(LEVELS))  # critical at the bottom of each bar, where the eye lands


def _fmt(t: dt.datetime, span: dt.timedelta) -> str:
    if span <= dt.timedelta(days=1):
        return t.strftime("%H:%M")
    return t.strftime("%m-%d %H:%M")


def timeline_svg(data: ReportData, bins: int = 60) -> str:
    """Alerts over the time span as stacked bars by level, with each cluster of attack steps
    shaded behind the bars and numbered as in the attack-chain list."""
    rows = data.timeline_rows
    if not rows or data.span is None:
        return '<p class="muted">No timed alerts to draw.</p>'
    start, end = data.span
    start = min(start, rows[0].when)  # type: ignore[type-var]
    end = max(end, rows[-1].when)  # type: ignore[type-var]
    total = max((end - start).total_seconds(), 1.0)
    counts = [dict.fromkeys(LEVELS, 0) for _ in range(bins)]
    for r in rows:
        b = min(int((r.when - start).total_seconds() / total * bins), bins - 1)  # type: ignore[operator]
        counts[b][r.level] += 1
    peak = max(sum(c.values()) for c in counts) or 1
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    bw = plot_w / bins

    def x_of(t: dt.datetime) -> float:
        return _LEFT + (t - start).total_seconds() / total * plot_w

    out = [f'<svg class="timeline" viewBox="0 0 {_W} {_H}" role="img" aria-label="alerts over time by level" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for c in data.clusters:
        x0 = x_of(c.start)
        x1 = max(x_of(c.end), x0 + 6)
        label_y = _TOP - 6 - 14 * ((c.id - 1) % 2)  # neighbouring chains' labels on two rows
        out.append(f'<g class="cluster" data-cluster="{c.id}"><rect x="{x0 - 3:.1f}" y="{label_y - 12}" '
                   f'width="{x1 - x0 + 6:.1f}" height="{_TOP + plot_h - label_y + 12}" rx="3"/>'
                   f'<text x="{x0 - 1:.1f}" y="{label_y}">#{c.id} {escape(c.user[:28])}</text>'
                   f'<title>attack chain #{c.id}: {len(c.rows)} alerts by {escape(c.user)}: '
                   f'{escape(", ".join(c.rules))}</title></g>')
    # gridlines and the y scale
    for frac in (0.5, 1.0):
        y = _TOP + plot_h * (1 - frac)
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                   f'{math.ceil(peak * frac)}</text>')
    out.append(f'<line class="baseline" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}"/>')
    step = dt.timedelta(seconds=total / bins)
    for i, c in enumerate(counts):
        n = sum(c.values())
        if not n:
            continue
        x = _LEFT + i * bw
        y = _TOP + plot_h
        when = start + step * i
        tip = f"{_fmt(when, end - start)}: " + ", ".join(f"{c[lvl]} {lvl}" for lvl in _STACK if c[lvl])
        out.append(f'<g class="bar"><title>{escape(tip)}</title>')
        for lvl in _STACK:
            if not c[lvl]:
                continue
            h = c[lvl] / peak * plot_h
            y -= h
            out.append(f'<rect class="lvl-{lvl}" x="{x + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
                       f'height="{h:.1f}"/>')
        out.append("</g>")
    for k in range(5):
        t = start + (end - start) * (k / 4)
        x = x_of(t)
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text class="axis" x="{x:.1f}" y="{_H - 12}" text-anchor="{anchor}">'
                   f'{escape(_fmt(t, end - start))}</text>')
    out.append("</svg>")
    return "".join(out)


def matrix_cells(data: ReportData, coverage: dict[str, Any]) -> list[dict[str, Any]]:
    """Tactics (columns) with their techniques as cells: alert count, heat class 0-5, whether a
    rule covers it and whether the audit log can see it (the data of ``kubehawk matrix``)."""
    techs = {t["id"]: t for t in coverage["techniques"]}
    peak = max((data.alerts_by_technique.get(t, 0) for t in techs), default=0)
    columns = []
    for tactic in coverage["tactics"]:
        cells = []
        for tid in tactic["techniques"]:
            t = techs[tid]
            n = data.alerts_by_technique.get(tid, 0)
            heat = 0 if not n else 1 + min(4, int(4 * math.log1p(n) / math.log1p(peak))) if peak else 0
            cells.append({"id": tid, "name": t["name"], "count": n, "heat": heat, "rules": len(t["rules"]),
                          "visibility": t["visibility"], "reason": t["reason"]})
        columns.append({"name": tactic["name"], "cells": cells})
    return columns
