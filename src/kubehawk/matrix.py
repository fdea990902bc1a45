"""The Microsoft Threat Matrix for Kubernetes and how much of it the loaded rules cover.

The matrix data (techniques, tactics, ATT&CK references and whether the audit log can
see each technique at all) lives in ``data/threat_matrix.json``; coverage is computed
from the rules' ``ms-k8s.ms-taNNNN`` tags, so user rules count as soon as they are tagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Coverage", "Technique", "compute_coverage", "load_matrix", "matrix_command"]

VISIBILITY = ("yes", "partly", "no")


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]
    attack: tuple[str, ...]
    visibility: str
    reason: str


@dataclass
class Matrix:
    name: str
    source: str
    tactics: list[tuple[str, str]]  # (key, display name), in matrix order
    techniques: list[Technique]
    blind_spots: list[dict[str, str]]

    def technique(self, tid: str) -> Technique | None:
        tid = tid.upper()
        return next((t for t in self.techniques if t.id == tid), None)


@dataclass
class Coverage:
    """Rules per technique plus the rule tags that name no known technique."""

    matrix: Matrix
    rules_by_technique: dict[str, list[Any]] = field(default_factory=dict)
    unknown_tags: dict[str, list[str]] = field(default_factory=dict)  # technique id -> rule ids

    def rules_for(self, tid: str) -> list[Any]:
        return self.rules_by_technique.get(tid, [])

    def counts(self) -> dict[str, Any]:
        techs = self.matrix.techniques
        covered = [t for t in techs if self.rules_for(t.id)]
        by_vis: dict[str, dict[str, int]] = {}
        for v in VISIBILITY:
            group = [t for t in techs if t.visibility == v]
            by_vis[v] = {"techniques": len(group), "covered": sum(1 for t in group if self.rules_for(t.id))}
        visible = [t for t in techs if t.visibility != "no"]
        return {
            "techniques": len(techs),
            "covered": len(covered),
            "visible": len(visible),
            "visible_covered": sum(1 for t in visible if self.rules_for(t.id)),
            "by_visibility": by_vis,
        }

    def to_dict(self) -> dict[str, Any]:
        m = self.matrix
        techniques = []
        for t in m.techniques:
            rules = self.rules_for(t.id)
            techniques.append({
                "id": t.id,
                "name": t.name,
                "tactics": list(t.tactics),
                "attack": list(t.attack),
                "visibility": t.visibility,
                "reason": t.reason,
                "rules": [{"id": r.id, "name": r.name, "title": r.title, "level": r.level} for r in rules],
            })
        return {
            "matrix": m.name,
            "source": m.source,
            "tactics": [
                {"key": key, "name": name,
                 "techniques": [t.id for t in m.techniques if key in t.tactics]}
                for key, name in m.tactics
            ],
            "techniques": techniques,
            "blind_spots": m.blind_spots,
            "coverage": self.counts(),
            "unknown_technique_tags": self.unknown_tags,
        }


@lru_cache(maxsize=1)
def load_matrix() -> Matrix:
    """The packaged matrix data (read once)."""
    text = resources.files("kubehawk.data").joinpath("threat_matrix.json").read_text(encoding="utf-8")
    d = json.loads(text)
    techniques = [
        Technique(t["id"], t["name"], tuple(t["tactics"]), tuple(t.get("attack", [])), t["visibility"], t["reason"])
        for t in d["techniques"]
    ]
    return Matrix(d["name"], d.get("source", ""), [(t["key"], t["name"]) for t in d["tactics"]], techniques,
                  list(d.get("blind_spots", [])))


def compute_coverage(rules: Iterable[Any], matrix: Matrix | None = None) -> Coverage:
    """Map every rule to the techniques it is tagged with (``rule.techniques``, e.g. ``MS-TA9006``)."""
    m = matrix or load_matrix()
    known = {t.id for t in m.techniques}
    cov = Coverage(m)
    for r in rules:
        for tid in getattr(r, "techniques", None) or []:
            tid = str(tid).upper()
            if tid in known:
                cov.rules_by_technique.setdefault(tid, []).append(r)
            else:
                cov.unknown_tags.setdefault(tid, []).append(r.id)
    return cov


# --- command line -------------------------------------------------------------------------

_VIS_STYLE = {"yes": "green", "partly": "yellow", "no": "red"}
_LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def _rules_cell(rules: list[Any], limit: int = 4) -> str:
    ordered = sorted(rules, key=lambda r: (_LEVEL_ORDER.get(r.level, 5), r.name or r.title))
    names = [r.name or r.title for r in ordered]
    more = f" +{len(names) - limit}" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "-"


def _print_table(cov: Coverage) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m = cov.matrix
    for key, tname in m.tactics:
        techs = [t for t in m.techniques if key in t.tactics]
        table = Table(title=tname, title_justify="left", show_lines=False, expand=False)
        table.add_column("ID", no_wrap=True)
        table.add_column("Technique")
        table.add_column("Audit log", no_wrap=True)
        table.add_column("Rules", justify="right")
        table.add_column("Covered by")
        for t in techs:
            rules = cov.rules_for(t.id)
            vis = f"[{_VIS_STYLE[t.visibility]}]{t.visibility}[/]"
            table.add_row(t.id, t.name, vis, str(len(rules)), _rules_cell(rules))
        console.print(table)
    c = cov.counts()
    console.print(
        f"[bold]Coverage:[/] {c['covered']}/{c['techniques']} techniques have at least one rule; "
        f"{c['visible_covered']}/{c['visible']} of those the audit log can see (yes or partly)."
    )
    for v in VISIBILITY:
        b = c["by_visibility"][v]
        console.print(f"  visibility {v}: {b['covered']}/{b['techniques']} covered")
    console.print("[bold]Blind spots of the audit log[/]")
    for b in m.blind_spots:
        console.print(f"  - [bold]{b['name']}[/]: {b['detail']}")
    blind = [t for t in m.techniques if t.visibility == "no"]
    if blind:
        console.print("[bold]Techniques the audit log cannot see[/]")
        for t in blind:
            console.print(f"  - {t.id} {t.name}: {t.reason}")
    if cov.unknown_tags:
        console.print(f"[yellow]Rules tagged with unknown technique IDs:[/] {cov.unknown_tags}")


@click.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True),
              help="More Sigma rule files or folders to count (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Count only the rules given with --rules.")
def matrix_command(fmt: str, rule_dirs: tuple[str, ...], no_builtin: bool) -> None:
    """The Threat Matrix for Kubernetes: rules per technique and what the audit log can see."""
    from kubehawk.cliutil import load_rules

    ruleset = load_rules(None, rule_dirs, not no_builtin, "kubehawk matrix")
    cov = compute_coverage(ruleset.rules)
    if fmt == "json":
        click.echo(json.dumps(cov.to_dict(), indent=2))
    else:
        _print_table(cov)
