"""``kubehawk pull gke|eks|aks``: live pulls with the clouds' official SDKs (optional extras)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from kubehawk.cliutil import InputError, LevelChoice, open_output
from kubehawk.sources import _cloud
from kubehawk.sources.pull.base import MissingExtra, PullStats, Sink
from kubehawk.sources.pull.state import PullState

__all__ = ["build_sink", "parse_since", "pull"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """``15m``, ``2h``, ``1d`` ago, or an RFC 3339 time; as epoch seconds."""
    if not value:
        return None
    now = time.time() if now is None else now
    m = _DURATION.match(value.strip())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    ts = _cloud.rfc3339(value)
    if ts is None:
        raise click.BadParameter(f"{value!r} is neither a duration (15m, 2h, 1d) nor an RFC 3339 time")
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def build_sink(emit: str, out: TextIO, config_path: str | None = None, rule_dirs: tuple[str, ...] = (),
               builtin: bool = True, min_level: str | None = None) -> tuple[Sink, Callable[[], None]]:
    """Where pulled events go: the detector (alerts as JSON lines) or the events themselves."""

    def write(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        out.flush()

    if emit == "events":
        return (lambda ev: write(ev.to_dict())), (lambda: None)

    from kubehawk.cliutil import load_config, load_rules
    from kubehawk.detect import Detector

    config = load_config(config_path, "kubehawk pull")
    rules = load_rules(config, rule_dirs, builtin, "kubehawk pull")
    detector = Detector(rules, config, min_level=min_level)

    def sink(ev) -> None:
        for alert in detector.process(ev):
            write(alert.to_dict())

    def close() -> None:
        for alert in detector.flush():
            write(alert.to_dict())

    return sink, close


def _common(f: Callable) -> Callable:
    options = [
        click.option("--state", "state_path", default="kubehawk-pull.sqlite", show_default=True,
                     type=click.Path(dir_okay=False), help="SQLite file with the resumable position and dedup keys."),
        click.option("--follow", "-f", is_flag=True, help="Keep pulling (poll every --interval) instead of one pass."),
        click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
                     help="Seconds between polls with --follow."),
        click.option("--emit", type=click.Choice(["alerts", "events"]), default="alerts", show_default=True,
                     help="Print alerts (run the rules) or the normalised audit Events."),
        click.option("--output", "-o", type=click.Path(dir_okay=False), help="Append to this file instead of stdout."),
        click.option("--config", "config_path", type=click.Path(exists=True), help="kubehawk.yaml (business context)."),
        click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True), help="More Sigma rules."),
        click.option("--no-builtin", is_flag=True, help="Do not load the built-in rule pack."),
        click.option("--min-level", type=LevelChoice(), help="Drop alerts below this level."),
        click.option("--quiet", "-q", is_flag=True, help="No per-record warnings (still counted)."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


class _Run:
    """Shared plumbing of the three subcommands: state, sink, warnings, summary, errors."""

    def __init__(self, name: str, opts: dict[str, Any]):
        self.name, self.opts = name, opts
        self.stats = PullStats()
        self.stopped = False
        try:
            self.state = PullState(opts["state_path"])
        except ValueError as e:
            raise InputError(str(e)) from None
        except OSError as e:
            raise InputError(f"{opts['state_path']}: cannot open the state file: {e.strerror or e}") from None
        self.out = open_output(opts["output"]) if opts.get("output") else sys.stdout
        try:
            self.sink, self.close_sink = build_sink(opts["emit"], self.out, opts.get("config_path"),
                                                    tuple(opts.get("rule_dirs") or ()), not opts.get("no_builtin"),
                                                    opts.get("min_level"))
        except Exception as e:  # noqa: BLE001 - config/rule errors carry their own location
            raise InputError(f"cannot load rules/config: {e}") from None

    def warn(self, msg: str) -> None:
        if not self.opts.get("quiet"):
            click.echo(f"kubehawk: warning: {msg}", err=True)

    def go(self, body: Callable[[], None]) -> None:
        try:
            body()
        except KeyboardInterrupt:
            self.stopped = True
        except MissingExtra as e:
            raise click.ClickException(str(e)) from None
        except click.ClickException:
            raise
        except Exception as e:  # noqa: BLE001 - SDK/auth/network errors: say what failed, keep the position
            raise click.ClickException(f"pull {self.name} failed: {type(e).__name__}: {e}") from None
        finally:
            self.close_sink()
            if self.out is not sys.stdout:
                self.out.close()
            self.state.close()
            click.echo(f"kubehawk: pull {self.name}: {self.stats.summary()}", err=True)


@click.group()
def pull() -> None:
    """Pull audit events from a managed cloud with its SDK (needs the matching extra)."""


@pull.command("eks")
@click.option("--cluster", help="EKS cluster name (log group /aws/eks/<cluster>/cluster).")
@click.option("--log-group", help="CloudWatch log group, if not the EKS default.")
@click.option("--region", help="AWS region (default: the AWS config/environment).")
@click.option("--profile", help="AWS config profile.")
@click.option("--stream-prefix", default="kube-apiserver-audit", show_default=True)
@click.option("--filter-pattern", help="CloudWatch filter pattern, e.g. '{ $.objectRef.subresource = \"exec\" }'.")
@click.option("--since", default="10m", show_default=True, help="Where a fresh state starts: 15m, 2h, or a time.")
@click.option("--lag", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds re-read before the last event (late ingestion); overlap is deduplicated.")
@_common
def pull_eks(cluster: str | None, log_group: str | None, region: str | None, profile: str | None,
             stream_prefix: str, filter_pattern: str | None, since: str, lag: float, **opts: Any) -> None:
    """Poll CloudWatch Logs FilterLogEvents for an EKS cluster's audit log (pip install 'kubehawk[eks]')."""
    from kubehawk.sources.pull.eks import EksPuller, make_client

    if not (cluster or log_group):
        raise click.UsageError("give --cluster or --log-group")
    group = log_group or f"/aws/eks/{cluster}/cluster"
    start = parse_since(since)
    run = _Run("eks", opts)

    def body() -> None:
        client = make_client(region, profile)
        puller = EksPuller(client, run.state, group, run.sink, stream_prefix=stream_prefix,
                           start_ms=int(start * 1000) if start else None, lag_ms=int(lag * 1000),
                           filter_pattern=filter_pattern, warn=run.warn, stats=run.stats)
        puller.run(opts["follow"], opts["interval"])

    run.go(body)


@pull.command("gke")
@click.option("--project", required=True, help="Google Cloud project id.")
@click.option("--cluster", help="Only this cluster (resource.labels.cluster_name).")
@click.option("--location", help="Only this location (region or zone).")
@click.option("--since", default="10m", show_default=True, help="Where a fresh state starts: 15m, 2h, or a time.")
@_common
def pull_gke(project: str, cluster: str | None, location: str | None, since: str, **opts: Any) -> None:
    """Read GKE audit entries with Cloud Logging entries.list (pip install 'kubehawk[gke]')."""
    from kubehawk.sources.pull.gke import GkePuller, make_client

    start = parse_since(since)
    run = _Run("gke", opts)

    def body() -> None:
        client = make_client(project)
        start_ts = _cloud.rfc3339(start) if start else None
        puller = GkePuller(client, run.state, project, run.sink, cluster=cluster, location=location,
                           start=start_ts, warn=run.warn, stats=run.stats)
        puller.run(opts["follow"], opts["interval"])

    run.go(body)


@pull.command("aks")
@click.option("--connection-string", envvar="KUBEHAWK_EVENTHUB_CONNECTION_STRING", required=True,
              help="Event Hubs connection string (or $KUBEHAWK_EVENTHUB_CONNECTION_STRING).")
@click.option("--eventhub", default=None, help="Event hub name, if not in the connection string "
              "(the diagnostic setting's default is insights-logs-kube-audit).")
@click.option("--consumer-group", default="$Default", show_default=True)
@click.option("--idle", default=10.0, show_default=True, type=click.FloatRange(min=1),
              help="Without --follow: stop when every partition has been idle this many seconds.")
@_common
def pull_aks(connection_string: str, eventhub: str | None, consumer_group: str, idle: float, **opts: Any) -> None:
    """Consume the AKS diagnostic setting's Event Hub, checkpointing in the state file (pip install 'kubehawk[aks]')."""
    from kubehawk.sources.pull.aks import DEFAULT_EVENTHUB, AksConsumer, SQLiteCheckpointStore, receive

    if eventhub is None and "EntityPath=" not in connection_string:
        eventhub = DEFAULT_EVENTHUB
    run = _Run("aks", opts)

    def body() -> None:
        consumer = AksConsumer(run.state, run.sink, warn=run.warn, stats=run.stats)
        receive(consumer, connection_string, eventhub, consumer_group, SQLiteCheckpointStore(run.state),
                follow=opts["follow"], idle_seconds=idle)

    run.go(body)
