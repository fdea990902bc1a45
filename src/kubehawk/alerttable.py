"""Alerts as a terminal table that stays readable from 80 columns up.

Each alert is one row (level and time, rule, who, object) with its message wrapped under the
row at nearly the full width, so the message never squeezes the other columns. The columns
are sized from what they hold, and the identity and the object columns never shrink below
a width that shows a ServiceAccount or an object name: a longer one folds onto the next line
of its cell, it is never cut. Below 110 columns the time sits under the level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from kubehawk.alerts import LEVEL_STYLE

if TYPE_CHECKING:
    from rich.console import Console

    from kubehawk.alerts import Alert

__all__ = ["Layout", "fold", "layout", "print_alert", "print_table"]

GAP = 2  # spaces between two columns
WIDE = 110  # from this width on, the time has a column of its own
_RULE_MIN = {False: 18, True: 26}  # the rule title wraps well (words): it yields first
_MIN = 20  # who and object never shrink below this (at 80 columns both still get more)
_CAP = 44  # nor grow past it: the rest goes to the rule title
_STREAM_NEED = 34  # a stream sizes for typical identities and objects, not for its first alert
_BREAKS = ":/-."  # where a long identity or object name folds first


@dataclass(frozen=True)
class Layout:
    """The width of each column (``first`` holds the level, and the time when not ``wide``)."""

    width: int
    wide: bool
    first: int
    time: int
    rule: int
    who: int
    object: int

    @property
    def indent(self) -> int:
        """Where the message starts: under the rule, past the level (and time)."""
        return self.first + GAP + ((self.time + GAP) if self.wide else 0)


def _cells(alert: Alert) -> dict[str, list[str]]:
    """The text lines of each cell of an alert's row."""
    d = alert.to_dict()
    res = "/".join(p for p in (d["resource"], d["subresource"]) if p) or "-"
    name = "/".join(p for p in (d["namespace"], d["name"]) if p)
    tags = " ".join(d["techniques"] + d["attack"])
    return {"rule": [alert.rule.title, tags], "who": [d["user"] or "-", d["sourceIP"] or ""],
            "object": [res, name]}


def layout(width: int, alerts: list[Alert] | None = None) -> Layout:
    """Column widths for ``alerts`` at ``width`` columns (for a stream, ``None``: typical needs).

    Who and object get what their longest value needs (up to a cap) as long as the rule title
    keeps its minimum; when there is not that much room, each keeps ``_MIN`` and they share the
    rest by what they lack. The rule title takes what is left."""
    wide = width >= WIDE
    first, time = (8, 19) if wide else (10, 0)
    room = max(width - first - time - GAP * (4 if wide else 3), _RULE_MIN[wide] + 2 * _MIN)
    if alerts is None:
        need = {"who": _STREAM_NEED, "object": _STREAM_NEED}
    else:
        need = {"who": len("who"), "object": len("object")}
        for a in alerts:
            cells = _cells(a)
            for col in need:
                need[col] = max(need[col], *(len(x) for x in cells[col]))
    want = {c: min(n, _CAP) for c, n in need.items()}
    budget = room - _RULE_MIN[wide]
    if sum(want.values()) > budget:
        got = {c: min(w, _MIN) for c, w in want.items()}
        lack = {c: want[c] - got[c] for c in want}
        spare = budget - sum(got.values())
        total = sum(lack.values()) or 1
        want = {c: got[c] + spare * lack[c] // total for c in want}
    return Layout(width, wide, first, time, room - want["who"] - want["object"], want["who"], want["object"])


def fold(value: str, width: int) -> str:
    """``value`` in lines of at most ``width``, broken after a ``:``, ``/``, ``-`` or ``.`` when
    one is near the end of a line (``system:serviceaccount:`` / ``kube-system:deployer``), else
    at the width: never cut short."""
    lines: list[str] = []
    while len(value) > width:
        cut = max(value.rfind(c, 0, width) for c in _BREAKS) + 1
        if cut < width // 2:
            cut = width
        lines.append(value[:cut])
        value = value[cut:]
    lines.append(value)
    return "\n".join(lines)


def _grid(lay: Layout) -> Table:
    grid = Table.grid(padding=(0, GAP, 0, 0))
    grid.add_column(width=lay.first, no_wrap=True)
    if lay.wide:
        grid.add_column(width=lay.time, no_wrap=True)
    for col in ("rule", "who", "object"):
        grid.add_column(width=getattr(lay, col), overflow="fold")
    return grid


def _row(grid: Table, lay: Layout, alert: Alert) -> None:
    d = alert.to_dict()
    level = Text(alert.level if alert.level != "informational" else "info", style=LEVEL_STYLE.get(alert.level, ""))
    when = (d["time"] or "-")[:19].replace("T", " ")
    cells = _cells(alert)

    def two(lines: list[str], width: int) -> Text:
        text = Text(fold(lines[0], width))
        if lines[1]:
            text.append("\n" + fold(lines[1], width), style="dim")
        return text

    first: list[Any] = [level, Text(when)] if lay.wide else [
        Text.assemble(level, "\n", (when[:10], "dim"), "\n", (when[11:], "dim"))]
    grid.add_row(*first, Text.assemble(cells["rule"][0], "\n", (cells["rule"][1], "dim")),
                 two(cells["who"], lay.who), two(cells["object"], lay.object))


def _message(alert: Alert, lay: Layout, evidence: bool) -> Padding:
    text = Text(alert.message)
    if evidence and alert.event.origin:
        text.append(f"\n{alert.event.origin}", style="dim")
    return Padding(text, (0, 0, 1, lay.indent))


def _header(lay: Layout) -> Table:
    grid = _grid(lay)
    names = ["level", "time (UTC)"] if lay.wide else ["level"]
    grid.add_row(*(Text(n, style="bold") for n in [*names, "rule", "who", "object"]))
    return grid


def print_table(console: Console, alerts: list[Alert], evidence: bool = False) -> None:
    """All the alerts of a run, with a header, at the console's width."""
    if not alerts:
        console.print("[green]No alerts.[/]")
        return
    lay = layout(console.width, alerts)
    console.print(Text(f"kubehawk: {len(alerts)} alert(s)", style="bold"))
    console.print(_header(lay))
    console.print(Text("─" * min(console.width, lay.width), style="dim"))
    for alert in alerts:
        print_alert(console, alert, lay, evidence)


def print_alert(console: Console, alert: Alert, lay: Layout | None = None, evidence: bool = False) -> None:
    """One alert as a row and its message (``--follow`` prints them as they come)."""
    lay = lay or layout(console.width)
    grid = _grid(lay)
    _row(grid, lay, alert)
    console.print(grid)
    console.print(_message(alert, lay, evidence))
