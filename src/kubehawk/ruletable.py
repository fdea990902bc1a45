"""``kubehawk rules list`` on a terminal: the name first (what ``rules show`` and the config
take), the title wrapping in the room left, a short id last; the techniques and the audit
level each rule needs when there are 110 columns or more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from kubehawk.alerts import LEVEL_STYLE
from kubehawk.alerttable import fold
from kubehawk.rulefind import short_ids

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_rules"]

WIDE = 110
_TITLE_MIN = 16
_NAME_MAX = {False: 30, True: 34}  # a longer name folds after a '-' (the title needs the room more)


def print_rules(console: Console, rows: list[dict[str, Any]]) -> None:
    """``rows``: the dicts of ``rules list --format json``."""
    short = short_ids(r["id"] for r in rows)
    wide = console.width >= WIDE
    name_w = min(max([len(r["name"] or "-") for r in rows] + [4]), _NAME_MAX[wide])
    cols: list[tuple[str, int]] = [("name", name_w), ("level", 8)]
    if wide:
        cols += [("techniques", 22), ("audit level", len("RequestResponse"))]
    cols.append(("id", max([len(s) for s in short.values()] + [2])))
    fixed = sum(w for _, w in cols) + 2 * len(cols)  # two spaces between columns
    title_w = max(console.width - fixed, _TITLE_MIN)
    table = Table(title=f"{len(rows)} rules", caption="kubehawk rules show NAME (a unique start of a name or id "
                  "will do)", box=None, pad_edge=False, header_style="bold", title_justify="left",
                  caption_justify="left")
    for name, width in cols[:2]:
        table.add_column(name, width=width, no_wrap=True)
    table.add_column("title", width=title_w, overflow="fold")
    for name, width in cols[2:]:
        table.add_column(name, width=width, no_wrap=name != "techniques", style="dim" if name == "id" else None)
    for r in rows:
        level = r["level"] if r["level"] != "informational" else "info"
        cells = [fold(r["name"] or "-", name_w), f"[{LEVEL_STYLE.get(r['level'], '')}]{level}[/]", r["title"]]
        if wide:
            cells += [" ".join(r["techniques"] + r["attack"]), r["audit_level"]]
        cells.append(short[r["id"]])
        table.add_row(*cells)
    console.print(table)
