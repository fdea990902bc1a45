"""The ``kubehawk`` command: thin; parses arguments and calls the library."""

from __future__ import annotations

import importlib
import importlib.util
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec

from kubehawk.alerts import LEVELS, Alert
from kubehawk.cliutil import fail, load_config, load_rules

_LEVEL_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
                "informational": "dim"}


def _fail(msg: str, code: int = 2) -> None:
    fail("kubehawk", msg, code)


def _load_config(path: str | None):
    return load_config(path)


def _load_rules(config, rule_dirs: tuple[str, ...], builtin: bool = True):
    return load_rules(config, rule_dirs, builtin)


# Subcommands that live in other packages, imported only when used (fast start-up, and one
# package's import problem never takes the whole command down).
_LAZY = {
    "policy": ("kubehawk.policy.cli", "policy"),
    "serve": ("kubehawk.server.cli", "serve"),
    "pull": ("kubehawk.sources.pull", "pull"),
    "matrix": ("kubehawk.matrix", "matrix_command"),
    "spark": ("kubehawk.spark.cli", "spark"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [n for n, (mod, _) in _LAZY.items() if importlib.util.find_spec(mod) is not None]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in _LAZY:
            return cmd
        mod, attr = _LAZY[name]
        try:
            if importlib.util.find_spec(mod) is None:
                return None
        except ModuleNotFoundError:
            return None
        return getattr(importlib.import_module(mod), attr, None)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubehawk")
def main() -> None:
    """kubehawk reads the Kubernetes audit log and catches the intruder."""


# --- detect -------------------------------------------------------------------------------


class _Sink:
    """Where alerts go: JSON lines, or a rich table/stream on a terminal."""

    def __init__(self, fmt: str, output: str | None, streaming: bool):
        self.fh = open(output, "a", encoding="utf-8") if output else None  # noqa: SIM115
        out_is_tty = self.fh is None and sys.stdout.isatty()
        self.fmt = fmt if fmt != "auto" else ("table" if out_is_tty else "json")
        self.streaming = streaming
        self.rows: list[Alert] = []
        self.console = None
        if self.fmt == "table":
            from rich.console import Console

            # Off a terminal rich assumes 80 columns, too narrow for alerts.
            self.console = Console(file=self.fh, width=160) if self.fh else (
                Console() if sys.stdout.isatty() else Console(width=160))

    def emit(self, alert: Alert) -> None:
        if self.fmt == "json":
            line = msgspec.json.encode(alert.to_dict()).decode()
            if self.fh:
                self.fh.write(line + "\n")
            else:
                sys.stdout.write(line + "\n")
                if self.streaming:
                    sys.stdout.flush()
        elif self.streaming:
            d = alert.to_dict()
            style = _LEVEL_STYLE.get(alert.level, "")
            self.console.print(f"[{style}]{alert.level.upper():8}[/] {d['time'] or '-'} "
                               f"[bold]{alert.rule.title}[/] {alert.message}", highlight=False)
        else:
            self.rows.append(alert)

    def close(self) -> None:
        if self.fmt == "table" and not self.streaming:
            _print_table(self.console, self.rows)
        if self.fh:
            self.fh.close()


def _print_table(console, alerts: list[Alert]) -> None:
    from rich.table import Table

    if not alerts:
        console.print("[green]No alerts.[/]")
        return
    table = Table(title=f"kubehawk: {len(alerts)} alert(s)", expand=True, show_lines=True)
    table.add_column("level", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("rule", ratio=2)
    table.add_column("who", ratio=1)
    table.add_column("message", ratio=4)
    for a in alerts:
        d = a.to_dict()
        tags = " ".join(d["techniques"] + d["attack"])
        table.add_row(f"[{_LEVEL_STYLE.get(a.level, '')}]{a.level}[/]", (d["time"] or "-")[:19].replace("T", " "),
                      f"{a.rule.title}\n[dim]{tags}[/]", f"{d['user'] or '-'}\n[dim]{d['sourceIP'] or ''}[/]",
                      a.message)
    console.print(table)


def _summary(stats, detector, bad_is_error: bool) -> dict[str, Any]:
    s = stats.summary()
    by_level = {lvl: detector.alerts_by_level.get(lvl, 0) for lvl in reversed(LEVELS)}
    parts = [f"{s.get('events', 0)} events read", f"{s.get('bad', 0)} bad records"]
    if s.get("skipped"):
        parts.append(f"{s['skipped']} skipped")
    parts.append("alerts: " + ", ".join(f"{n} {lvl}" for lvl, n in by_level.items() if n) if any(
        by_level.values()) else "no alerts")
    click.echo("kubehawk: " + "; ".join(parts), err=True)
    return s


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--config", "config_path", type=click.Path(), help="kubehawk.yaml with the cluster's business context.")
@click.option("--format", "fmt", type=click.Choice(["auto", "table", "json"]), default="auto", show_default=True,
              help="auto: a table on a terminal, JSON lines when piped.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Append alerts to this file.")
@click.option("--min-level", type=click.Choice(LEVELS), help="Drop alerts below this level.")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--follow", "-f", is_flag=True, help="Keep reading as the log grows; survives rotation.")
@click.option("--strict", is_flag=True, help="Exit 1 when any record was malformed.")
@click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted in the summary).")
@click.option("--workers", default="1", show_default=True,
              help="Processes to detect with: a number, or auto for every core. The alerts of one process, "
                   "written in event-time order (see README, Scaling out).")
def detect(paths: tuple[str, ...], config_path: str | None, fmt: str, output: str | None, min_level: str | None,
           rule_dirs: tuple[str, ...], no_builtin: bool, follow: bool, strict: bool, quiet: bool,
           workers: str) -> None:
    """Read audit events from PATHS (files, folders, gzip, - for stdin) and print alerts."""
    from kubehawk.detect import Detector
    from kubehawk.sources.files import ReadStats, follow_paths, read_paths

    if not paths:
        paths = ("-",)
    config = _load_config(config_path)
    ruleset = _load_rules(config, rule_dirs, builtin=not no_builtin)
    detector = Detector(ruleset, config, min_level=min_level)
    stats = ReadStats()

    def warn(msg: str) -> None:
        if not quiet:
            click.echo(f"kubehawk: warning: {msg}", err=True)

    n_workers = _workers(workers, follow, paths)
    if n_workers > 1:
        _detect_parallel(paths, detector, n_workers, fmt, output, strict, warn)
        return
    stop = threading.Event()
    events: Iterator = (follow_paths(list(paths), stats, on_warning=warn, stop=stop) if follow
                        else read_paths(list(paths), stats, on_warning=warn, screen=detector.engine.line_screen))
    if follow:
        # systemd and kubectl stop us with SIGTERM: finish the current record and print the summary.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sink = _Sink(fmt, output, streaming=follow)
    try:
        for alert in detector.alerts(events):
            sink.emit(alert)
    except KeyboardInterrupt:
        stop.set()
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    finally:
        sink.close()
    s = _summary(stats, detector, strict)
    if strict and s.get("bad", 0):
        sys.exit(1)


def _workers(value: str, follow: bool, paths: tuple[str, ...]) -> int:
    from kubehawk.scale.local import resolve_workers

    try:
        n = resolve_workers(value)
    except ValueError:
        _fail(f"--workers: expected a number >= 1 or auto, got {value!r}")
    if n > 1 and follow:
        _fail("--workers reads the input in parts; it cannot --follow a growing log (use --workers 1)")
    if n > 1 and "-" in paths:
        _fail("--workers reads files in parts; standard input is read by one process (use --workers 1)")
    return n


def _detect_parallel(paths, detector, workers: int, fmt: str, output: str | None, strict: bool, warn) -> None:
    """``detect --workers N``: kubehawk.scale.local, then the alerts in event-time order."""
    from kubehawk.scale.local import Progress, ScaleError, run_local

    progress = Progress(sys.stderr) if sys.stderr.isatty() else None

    def warn_clear(msg: str) -> None:  # a warning on its own line, not after the progress
        if progress is not None:
            progress.clear()
        warn(msg)

    try:
        alerts, run = run_local(list(paths), detector, workers, on_warning=warn_clear, on_progress=progress)
    except ScaleError as e:
        _fail(f"error: {e}", 1)
    except KeyboardInterrupt:  # the alerts are written in order at the end: an interrupted run has none
        _fail("interrupted; no alerts were written", 130)
    finally:
        if progress is not None:
            progress.done()
    sink = _Sink(fmt, output, streaming=False)
    try:
        for alert in alerts:
            sink.emit(alert)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    finally:
        sink.close()
    detector.close()
    s = _summary(run.stats, detector, strict)
    if strict and s.get("bad", 0):
        sys.exit(1)


# --- rules --------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """List and show detection rules."""


@rules.command("list")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True))
@click.option("--no-builtin", is_flag=True)
@click.option("--config", "config_path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules_list(rule_dirs: tuple[str, ...], no_builtin: bool, config_path: str | None, fmt: str) -> None:
    """Every rule: id, title, level, techniques and the audit level it needs."""
    ruleset = _load_rules(_load_config(config_path), rule_dirs, builtin=not no_builtin)
    rows = [_rule_row(r) for r in ruleset.rules]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} rules")
    for col in ("id", "name", "title", "level", "techniques", "audit level"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"] or "", r["title"], f"[{_LEVEL_STYLE.get(r['level'], '')}]{r['level']}[/]",
                      " ".join(r["techniques"] + r["attack"]), r["audit_level"])
    Console().print(table)


def _rule_row(r) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "title": r.title, "level": r.level, "kind": r.kind,
            "techniques": list(r.techniques), "attack": list(r.attack), "audit_level": r.audit_level,
            "source": str(r.source)}


@rules.command("show")
@click.argument("rule_id")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True))
@click.option("--config", "config_path", type=click.Path())
def rules_show(rule_id: str, rule_dirs: tuple[str, ...], config_path: str | None) -> None:
    """One rule in full: why it matters, how to triage, false positives, and its Sigma source."""
    ruleset = _load_rules(_load_config(config_path), rule_dirs)
    rule = ruleset.get(rule_id)
    if rule is None:
        _fail(f"no rule with id or name {rule_id!r} (see `kubehawk rules list`)", 1)
    row = _rule_row(rule)
    for key in ("id", "name", "title", "level", "kind", "audit_level", "source"):
        click.echo(f"{key + ':':13}{row[key]}")
    click.echo(f"{'techniques:':13}{' '.join(row['techniques'] + row['attack'])}")
    click.echo(f"\n{(rule.description or '').strip()}\n")
    if rule.falsepositives:
        click.echo("False positives:")
        for fp in rule.falsepositives:
            click.echo(f"  - {fp}")
    src = Path(str(rule.source))
    if src.is_file():
        doc = _rule_document(src.read_text(encoding="utf-8"), rule.id)
        if doc:
            click.echo(f"\n# {src}\n{doc}")


def _rule_document(text: str, rule_id: str) -> str | None:
    """The YAML document of ``text`` (a rule file, documents split by ``---``) that is rule ``rule_id``."""
    import re

    import yaml

    for doc in re.split(r"(?m)^---[ \t]*$", text):
        try:
            data = yaml.safe_load(doc)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and str(data.get("id")) == rule_id:
            return doc.strip("\n") + "\n"
    return None


if __name__ == "__main__":
    main()
