"""The ``kubehawk report`` command (registered lazily by kubehawk.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubehawk.alerts import LEVELS
from kubehawk.cliutil import fail, load_config, load_rules, require_paths

PROG = "kubehawk report"


def _level(alert: dict) -> str | None:
    level = alert["rule"].get("level")
    return level if isinstance(level, str) else None


@click.command("report")
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--alerts", "alerts_path", type=click.Path(allow_dash=True, dir_okay=False),
              help="Build from alert JSON lines (kubehawk detect --format json) instead of a log.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--config", "config_path", type=click.Path(), help="kubehawk.yaml with the cluster's business context.")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False),
              help="An audit policy: the report says which detections it blinds and what it leaks.")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--min-level", type=click.Choice(LEVELS), help="Leave out alerts below this level.")
@click.option("--max-rows", type=click.IntRange(1), default=2000, show_default=True,
              help="Alerts listed one by one (the most severe first); the rest are counted in groups.")
@click.option("--title", default="kubehawk report", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted).")
def report_command(paths: tuple[str, ...], alerts_path: str | None, output: str, config_path: str | None,
                   policy_path: str | None, rule_dirs: tuple[str, ...], no_builtin: bool, min_level: str | None,
                   max_rows: int, title: str, quiet: bool) -> None:
    """One self-contained HTML report from audit logs in PATHS, or from --alerts JSON lines."""
    from kubehawk.alerts import level_rank
    from kubehawk.matrix import compute_coverage
    from kubehawk.report import build as B
    from kubehawk.report.model import build_data
    from kubehawk.report.render import render_html

    if alerts_path and paths:
        fail(PROG, "give either audit log PATHS or --alerts, not both")
    if not alerts_path and not paths:
        fail(PROG, "nothing to report on: give audit log PATHS (or - for stdin) or --alerts FILE")
    require_paths(paths, PROG)

    def warn(msg: str) -> None:
        if not quiet:
            click.echo(f"{PROG}: warning: {msg}", err=True)

    config = load_config(config_path, PROG)
    ruleset = load_rules(config, rule_dirs, not no_builtin, PROG)
    rules = {r.id: r for r in ruleset.rules}
    policy = None
    if policy_path:  # before a long detection run: a policy the apiserver would refuse ends it here
        from kubehawk.policy.model import PolicyError

        try:
            policy = B.policy_section(policy_path, ruleset.rules)
        except PolicyError as e:
            for line in e.located()[:20]:
                click.echo(f"{PROG}: error: {line}", err=True)
            sys.exit(2)
    span = None
    if alerts_path:
        if alerts_path != "-" and not Path(alerts_path).is_file():
            fail(PROG, f"--alerts: no such file: {alerts_path}")
        try:
            alerts, bad = B.alerts_from_jsonl(alerts_path, warn)
        except OSError as e:
            fail(PROG, f"--alerts: cannot read {alerts_path}: {e.strerror or e}")
        events_read, source = None, f"alerts from {alerts_path}"
        if min_level:
            alerts = [(a, e) for a, e in alerts if level_rank(_level(a)) >= level_rank(min_level)]
    else:
        from kubehawk.detect import Detector
        from kubehawk.sources.files import ReadStats

        stats = ReadStats()
        watch = B.EventWatch()
        detector = Detector(ruleset, config, min_level=min_level)
        try:
            alerts = B.alerts_from_log(list(paths), detector, stats, watch, warn)
        finally:
            detector.close()
        events_read, bad, span = watch.count, stats.bad, watch.span
        source = "detection over " + ", ".join(paths)
    data = build_data(alerts, rules=rules, source=source, events_read=events_read, bad_records=bad,
                      event_span=span, cap=max_rows, title=title)
    data.policy = policy
    html = render_html(data, compute_coverage(ruleset.rules).to_dict())
    try:
        Path(output).write_text(html, encoding="utf-8")
    except OSError as e:
        fail(PROG, f"cannot write {output}: {e.strerror or e}")
    shown = len(data.rows)
    click.echo(f"{PROG}: {output}: {data.total_alerts} alerts ({shown} listed"
               f"{', the rest grouped' if shown < data.total_alerts else ''}), {len(data.clusters)} attack chains"
               + (f", {events_read} events read" if events_read is not None else "")
               + (f", {bad} bad records" if bad else ""), err=True)
