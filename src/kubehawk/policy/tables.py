"""How the policy commands print on a terminal: rich tables whose cells escape the policies'
[brackets], and the lint report's table with its links numbered beneath it."""

from __future__ import annotations

from typing import Any

from kubehawk.levels import level_style

STATUS_STYLE = {"fed": "green", "partial": "yellow", "blind": "bold red"}


def esc(text: Any) -> str:
    """Escape text for rich: policy rules are full of [brackets] that rich would eat as markup."""
    from rich.markup import escape

    return escape(str(text))


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def footnoted(reference: str, links: dict[str, int]) -> str:
    """A finding's reference with each link replaced by its number in ``links`` (added if new)."""
    parts = []
    for part in reference.split("; "):
        if part.startswith("https://"):
            parts.append(f"[{links.setdefault(part, len(links) + 1)}]")
        else:
            parts.append(part)
    return "; ".join(parts)


def print_lint(report: Any) -> None:
    from rich.table import Table

    con = console()
    t = Table(title=esc(f"audit policy lint: {report.source}"), show_lines=False, expand=False)
    t.add_column("severity")
    t.add_column("id")
    t.add_column("rule", justify="right")
    t.add_column("finding", overflow="fold")
    t.add_column("fix", overflow="fold")
    links: dict[str, int] = {}  # each documentation link once, whole, under the table
    for f in report.findings:
        rule = "-" if f.rule_index is None else f"{f.rule_index}"
        if f.line:
            rule += f" (L{f.line})"
        t.add_row(f"[{level_style(f.severity)}]{f.severity}[/]", f.id, rule, esc(f.message),
                  f"{esc(f.fix)}\n[dim]{esc(footnoted(f.reference, links))}[/]")
    con.print(t)
    for url, n in links.items():
        con.print(esc(f"[{n}] {url}"), soft_wrap=True)  # never folded: it stays one line to copy
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    con.print(f"{len(report.findings)} findings ({counts or 'none'}); {len(report.passed)} checks passed"
              + (f"; {len(report.skipped)} skipped (no --apiserver-manifest)" if report.skipped else ""))
