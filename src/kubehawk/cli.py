"""The ``kubehawk`` command: thin; parses arguments and calls the library."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from kubehawk.alerts import LEVELS
from kubehawk.alertsink import AlertSink
from kubehawk.cliutil import (
    LevelChoice,
    fail,
    load_config,
    load_rules,
    make_detector,
    require_paths,
    warn_unused,
)
from kubehawk.filters import FilterError, build_filter, filter_options
from kubehawk.sources.readstats import DEFAULT_MAX_LINE_BYTES


def _fail(msg: str, code: int = 2) -> None:
    fail("kubehawk", msg, code)


def _load_config(path: str | None):
    return load_config(path)


def _load_rules(config, rule_dirs: tuple[str, ...], builtin: bool = True, strict: bool = False):
    return load_rules(config, rule_dirs, builtin, strict=strict)


# Subcommands that live in other packages, imported only when used (fast start-up, and one
# package's import problem never takes the whole command down).
_LAZY = {
    "policy": ("kubehawk.policy.cli", "policy"),
    "serve": ("kubehawk.server.cli", "serve"),
    "pull": ("kubehawk.sources.pull", "pull"),
    "matrix": ("kubehawk.matrix", "matrix_command"),
    "report": ("kubehawk.report.cli", "report_command"),
    "investigate": ("kubehawk.investigate.cli", "investigate_command"),
    "spark": ("kubehawk.spark.cli", "spark"),
    "rules": ("kubehawk.rules_cli", "rules"),
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

    def invoke(self, ctx: click.Context) -> Any:
        # The last line of defence: a config or rule mistake met late is still one line, exit 2.
        from kubehawk.config import ConfigError
        from kubehawk.rules.model import RuleLoadError

        try:
            return super().invoke(ctx)
        except (ConfigError, RuleLoadError) as e:
            _fail(str(e))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubehawk")
def main() -> None:
    """kubehawk reads the Kubernetes audit log and catches the intruder."""


# --- detect -------------------------------------------------------------------------------


def _summary(stats, detector) -> dict[str, Any]:
    from kubehawk.outcome import summary_lines

    s = stats.summary()
    for line in summary_lines(s, detector.alerts_by_level, getattr(detector, "odd_records", 0), stats.problems()):
        click.echo("kubehawk: " + line, err=True)
    return s


@main.command()
# readable=False: an unreadable path is the reader's one warning, not the end of the run
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True, readable=False))
@click.option("--config", "config_path", type=click.Path(), help="kubehawk.yaml with the cluster's business context.")
@click.option("--format", "fmt", type=click.Choice(["auto", "table", "json", "ecs", "ocsf", "falco"]), default="auto",
              show_default=True, help="auto: a table on a terminal, JSON lines when piped; ecs, ocsf (Detection "
              "Finding), falco: JSON lines in the shape those SIEMs and tools read.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Append alerts to this file.")
@click.option("--min-level", type=LevelChoice(), help="Drop alerts below this level.")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules (repeatable).")
@click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack.")
@click.option("--follow", "-f", is_flag=True, help="Keep reading as the log grows; survives rotation.")
@click.option("--from-start", is_flag=True, help="With --follow: read what the files hold first, then follow.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="With --follow: keep each file's position in this file and resume there on restart.")
@click.option("--strict", is_flag=True,
              help="Exit 1 when any record was malformed; exit 2 when a rule file does not load.")
@click.option("--fail-on", type=LevelChoice(), help="Exit 1 when an alert at or above this level was raised.")
@click.option("--evidence", is_flag=True,
              help="Add to each JSON alert where it came from: evidence.origin (file:line) and evidence.event.")
@click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted in the summary).")
@click.option("--max-line-mib", type=click.IntRange(1, 4096), default=DEFAULT_MAX_LINE_BYTES >> 20, show_default=True,
              help="Longest line or JSON document read, in MiB; a longer one is skipped with a warning.")
@click.option("--workers", default="1", show_default=True,
              help="Processes to detect with: a number, or auto for every core. The alerts of one process, "
                   "written in event-time order (see README, Scaling out).")
@filter_options
def detect(paths: tuple[str, ...], config_path: str | None, fmt: str, output: str | None, min_level: str | None,
           rule_dirs: tuple[str, ...], no_builtin: bool, follow: bool, from_start: bool, state_path: str | None,
           strict: bool, fail_on: str | None, evidence: bool, quiet: bool, max_line_mib: int, workers: str,
           **filters: Any) -> None:
    """Read audit events from PATHS (files, folders, gzip, - for stdin) and print alerts.

    Exit 0: done; 1: an alert at or above --fail-on (or a bad record with --strict); 2: a
    wrong option, config or path, or input in which no audit event was recognised."""
    from kubehawk.outcome import exit_code
    from kubehawk.sources.files import ReadStats, read_paths

    if not paths:
        paths = ("-",)
        if sys.stdin.isatty():  # else a user waits for output that needs their typing
            click.echo("kubehawk: reading audit events from standard input (Ctrl-D ends it); "
                       "give a file or folder to read instead", err=True)
    if not follow:  # a follower may wait for its file to appear
        require_paths(paths)
    try:
        event_filter = build_filter(**filters)
    except FilterError as e:
        _fail(str(e))
    if (from_start or state_path) and not follow:
        _fail("--from-start and --state go with --follow")
    config = _load_config(config_path)
    sink = AlertSink(fmt, output, streaming=follow, evidence=evidence)
    ruleset = _load_rules(config, rule_dirs, builtin=not no_builtin, strict=strict)
    warn_unused(config, ruleset, "detect")
    detector = make_detector(ruleset, config, min_level=min_level,
                             on_note=lambda msg: click.echo(f"kubehawk: {msg}", err=True))
    stats = ReadStats(max_line_bytes=max_line_mib << 20)

    progress = None

    def warn(msg: str) -> None:
        if quiet:
            return
        if progress is not None:
            progress.note(f"kubehawk: warning: {msg}")
        else:
            click.echo(f"kubehawk: warning: {msg}", err=True)

    detector.on_warning = warn
    n_workers = _workers(workers, follow, paths)
    if n_workers > 1:
        merged = [0]  # events of the parts merged so far
        progress = _progress(quiet, False, sink, lambda: merged[0], detector, own_reads=False)
        try:
            stats = _detect_parallel(paths, detector, n_workers, sink, warn, stats.max_line_bytes,
                                     lambda st, _det: merged.__setitem__(0, st.events), event_filter)
        finally:
            if progress is not None:
                progress.stop()
        s = _summary(stats, detector)
        code, why = exit_code(s, detector.alerts_by_level, fail_on=fail_on, strict=strict)
        if code:
            _fail(why or "failed", code)
        return
    stop = threading.Event()
    checkpoints = _follow_checkpoints(state_path, output, paths, lambda: sink.flush()) if follow else None
    if follow:
        from kubehawk.sources.follow import follow_paths
    events: Iterator = (
        follow_paths(list(paths), stats, on_warning=warn, stop=stop, from_start=from_start,
                     saved=checkpoints.state.positions if checkpoints else None, checkpoint=checkpoints)
        if follow else read_paths(list(paths), stats, on_warning=warn, screen=detector.engine.line_screen))
    if follow:
        # systemd and kubectl stop us with SIGTERM: finish the current record and print the summary.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if checkpoints is not None:  # Ctrl-C too, so the position saved is the last one processed
            signal.signal(signal.SIGINT, lambda *_: stop.set())
    events = event_filter.apply(events)
    progress = _progress(quiet, follow, sink, lambda: stats.events, detector)
    try:
        for alert in detector.alerts(events):
            sink.emit(alert)
        if checkpoints is not None:
            checkpoints.final()
    except KeyboardInterrupt:
        stop.set()
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    finally:
        if progress is not None:
            progress.stop()
        sink.close()
    s = _summary(stats, detector)
    code, why = exit_code(s, detector.alerts_by_level, fail_on=fail_on, strict=strict, follow=follow)
    if code:
        _fail(why or "failed", code)


def _progress(quiet: bool, follow: bool, sink: AlertSink, events, detector, own_reads: bool = True):
    """The progress line (kubehawk.progress), when stderr is a terminal that no alert is streamed to;
    ``events()`` the events read so far; ``own_reads``: this process reads the input (else workers
    do, and the line shows events/s rather than MB/s)."""
    from kubehawk.progress import Progress

    streams_to_terminal = sink.fh is None and sink.fmt == "json" and sys.stdout.isatty()
    if follow or streams_to_terminal or not Progress.wanted(quiet):
        return None
    kw = {} if own_reads else {"bytes_read": lambda: None}
    return Progress(events, detector.alerts_by_level, tuple(reversed(LEVELS)), **kw).start()


def _follow_checkpoints(state_path: str | None, output: str | None, paths: tuple[str, ...], flush):
    """The saved follow state (``--state``), with the alert file cut back to its saved length."""
    from kubehawk.followstate import Checkpoints, FollowState, StateError

    if not state_path:
        return None
    if "-" in paths:
        _fail("--state cannot resume standard input: give the log files")
    if not os.path.isdir(os.path.dirname(os.path.abspath(state_path))):
        _fail(f"{state_path}: cannot save the follow state there: no such folder")
    try:
        state = FollowState.load(state_path)
        cut = state.rewind_output(output) if output else 0
    except StateError as e:
        _fail(str(e))
    if cut:
        click.echo(f"kubehawk: {output}: removed {cut} bytes of alerts written after the last saved position "
                   "(their events are read again)", err=True)
    return Checkpoints(state, output, flush, lambda m: click.echo(f"kubehawk: warning: {m}", err=True))


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


def _detect_parallel(paths, detector, workers: int, sink: AlertSink, warn, max_line_bytes: int, on_progress,
                     event_filter):
    """``detect --workers N``: kubehawk.scale.local, then the alerts in event-time order; the run's
    read counters."""
    from kubehawk.scale.local import ScaleError, run_local

    try:
        # JSON lines are made as the alerts are (while the workers read), and written in order at the end
        alerts, run = run_local(list(paths), detector, workers, on_warning=warn, on_progress=on_progress,
                                max_line_bytes=max_line_bytes, event_filter=event_filter,
                                render=sink.line if sink.writes_lines else None)
    except ScaleError as e:
        sink.close()
        _fail(f"error: {e}", 1)
    except KeyboardInterrupt:  # the alerts are written in order at the end: an interrupted run has none
        sink.close()
        _fail("interrupted; no alerts were written", 130)
    try:
        if sink.writes_lines:  # JSON lines made during the merge
            sink.write_all(alerts)
        else:  # the alerts, for a table
            for alert in alerts:
                sink.emit(alert)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    finally:
        sink.close()
    detector.close()
    return run.stats


if __name__ == "__main__":
    main()
