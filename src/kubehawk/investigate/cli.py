"""The ``kubehawk investigate`` command (registered lazily by kubehawk.cli)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import click

from kubehawk.cliutil import fail, load_config, load_rules, require_paths
from kubehawk.filters import filter_options
from kubehawk.levels import level_style

PROG = "kubehawk investigate"


def _code_style(code: int | None) -> str:
    if code is None:
        return "dim"
    return "green" if code < 300 else "yellow" if code < 400 else "red"


def print_story(story: Any, console: Any) -> None:
    """The story on a terminal: one line per request, alerts under it, repeats folded."""
    from rich.markup import escape

    from kubehawk.investigate.story import Fold, fold

    q = ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in story.query.items() if v)
    console.print(f"[bold]{len(story.steps)} requests[/], {story.alert_count} alerts ({escape(q) or 'every event'}); "
                  f"{story.events_read} events read", highlight=False)
    many_users = len({s.user for s in story.steps}) > 1
    for item in fold(story.steps):
        s = item.first if isinstance(item, Fold) else item
        who = f"{escape(s.user)}  " if many_users else ""
        code = "-" if s.code is None else str(s.code)
        console.print(f"{s.time[:19].replace('T', ' ')}  {who}[bold]{escape(s.verb)}[/] {escape(s.target)}  "
                      f"[{_code_style(s.code)}]{code}[/]  [dim]{escape(s.source_ip)}  {escape(s.user_agent[:48])}[/]"
                      + ("  [bold reverse] ◀ the event investigated [/]" if s.anchor else ""),
                      highlight=False, soft_wrap=True)
        for a in s.alerts:
            console.print(f"    [{level_style(a['level'])}]▲ {a['level'].upper()}[/] [bold]{escape(a['rule'])}[/]: "
                          f"{escape(a['message'])}", highlight=False, soft_wrap=True)
        if isinstance(item, Fold):
            console.print(f"    [dim]{escape(item.text)}[/]", highlight=False)


@click.command("investigate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--alert", "alert_id", help="Centre on the event with this auditID: the same identity, object or "
              "source IP within --window of it.")
@click.option("--window", default="30m", show_default=True, help="With --alert: how far before and after.")
@filter_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write the story as an HTML page.")
@click.option("--config", "config_path", type=click.Path(), help="kubehawk.yaml (for the alerts marked inline).")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--no-alerts", is_flag=True, help="Do not run detection (no alerts marked).")
@click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted).")
def investigate_command(paths: tuple[str, ...], alert_id: str | None, window: str, fmt: str, html_path: str | None,
                        config_path: str | None, rule_dirs: tuple[str, ...], no_builtin: bool, no_alerts: bool,
                        quiet: bool, **filters: Any) -> None:
    """Every event of one identity (--user ...) or around one alert (--alert AUDITID), as a story."""
    from kubehawk.filters import FilterError, build_filter, parse_duration

    try:
        flt = build_filter(**filters)
        span = parse_duration(window, "--window")
    except FilterError as e:
        fail(PROG, str(e))
    if not alert_id and not flt.active:
        fail(PROG, "say whom or what to investigate: --user, --namespace, --resource, --source-ip, --since/--until "
                   "or --alert AUDITID")
    require_paths(paths, PROG)
    # --alert reads its input twice (find the alert, then its surroundings): stdin is kept meanwhile
    spool = _spool_stdin() if alert_id and "-" in paths else None
    try:
        _investigate(paths, alert_id, window, span, flt, fmt, html_path, config_path, rule_dirs, no_builtin,
                     no_alerts, quiet, spool)
    finally:
        if spool is not None:
            os.unlink(spool)


def _investigate(paths: tuple[str, ...], alert_id: str | None, window: str, span: Any, flt: Any, fmt: str,
                 html_path: str | None, config_path: str | None, rule_dirs: tuple[str, ...], no_builtin: bool,
                 no_alerts: bool, quiet: bool, spool: str | None) -> None:
    from kubehawk.investigate.story import Story, around, collect, find_anchor
    from kubehawk.sources.files import ReadStats

    def warn(msg: str) -> None:
        if not quiet:
            click.echo(f"{PROG}: warning: {msg}", err=True)

    query: dict[str, Any] = {k: v for k, v in flt.describe().items() if v}
    keep = flt.matches
    if alert_id:
        anchor = find_anchor(_read(paths, ReadStats(), None, spool), alert_id)
        if anchor is None:
            fail(PROG, f"--alert: no event with auditID {alert_id!r} in {', '.join(paths)}", 1)
        near = around(anchor, span)
        keep = (lambda ev: near(ev) and flt.matches(ev)) if flt.active else near
        query.update({"alert": alert_id, "window": window, "around": anchor.when.isoformat().replace("+00:00", "Z"),
                      "user": anchor.user, "source_ip": anchor.source_ip,
                      "object": "/".join(p for p in anchor.obj if p) if anchor.obj else None})
    detector = None
    if not no_alerts:
        from kubehawk.detect import Detector

        config = load_config(config_path, PROG)
        detector = Detector(load_rules(config, rule_dirs, not no_builtin, PROG), config)
    stats = ReadStats()
    try:
        steps = collect(_read(paths, stats, warn, spool), keep, detector)
    finally:
        if detector is not None:
            detector.close()
    for s in steps:
        s.anchor = bool(alert_id) and s.audit_id == alert_id
    story = Story({k: v for k, v in query.items() if v}, steps, stats.summary().get("events", 0), stats.bad)
    if html_path:
        from kubehawk.investigate.html import render_story

        try:
            Path(html_path).write_text(render_story(story), encoding="utf-8")
        except OSError as e:
            fail(PROG, f"cannot write {html_path}: {e.strerror or e}")
    try:
        if fmt == "json":
            sys.stdout.write(json.dumps(story.to_dict(), indent=2) + "\n")
        else:
            from rich.console import Console

            print_story(story, Console(highlight=False) if sys.stdout.isatty() else Console(width=200))
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    if not steps:
        click.echo(f"{PROG}: no event matched", err=True)


def _spool_stdin() -> str:
    """Standard input copied to a temporary file (removed by the caller), to be read twice."""
    try:
        fd, path = tempfile.mkstemp(prefix="kubehawk-stdin-")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    except OSError as e:
        fail(PROG, f"--alert: cannot keep standard input to read it twice: {e.strerror or e}")
    return path


def _read(paths: tuple[str, ...], stats: Any, on_warning: Any, spool: str | None) -> Iterator[Any]:
    """The events of ``paths`` in order (read_paths), standard input from ``spool`` if it was kept."""
    from kubehawk.sources.files import STDIN, read_paths

    if spool is None:
        return read_paths(list(paths), stats, on_warning=on_warning)
    return chain.from_iterable(_spooled(spool, stats, on_warning) if p == STDIN
                               else read_paths([p], stats, on_warning=on_warning) for p in paths)


def _spooled(path: str, stats: Any, on_warning: Any) -> Iterator[Any]:
    from kubehawk.sources.files import STDIN_NAME, read_stream

    with open(path, "rb") as fh:
        yield from read_stream(fh, STDIN_NAME, stats, on_warning, compressed=True)
