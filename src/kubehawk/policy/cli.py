"""``kubehawk policy``: evaluate, validate, lint, generate, coverage, simulate.

Thin: parses arguments, calls the library, prints a rich table (or JSON with
``--format json``). Errors in the user's files print one clear line naming the file
(and line / rule / field) and exit 2 -- never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from kubehawk.cliutil import LevelChoice, fail, load_config, load_rules
from kubehawk.policy.model import LEVELS, Policy, PolicyError
from kubehawk.policy.tables import STATUS_STYLE, console, esc, print_lint

FORMATS = click.Choice(["table", "json"])


def _fail(msg: str, code: int = 2) -> NoReturn:
    fail("kubehawk policy", msg, code)


def _policy_error(e: PolicyError) -> NoReturn:
    lines = e.located()
    for line in lines[:50]:
        click.echo(f"kubehawk policy: error: {line}", err=True)
    if len(lines) > 50:
        click.echo(f"kubehawk policy: ... and {len(lines) - 50} more errors", err=True)
    sys.exit(2)


def _load_policy(path: str) -> Policy:
    try:
        return Policy.load(path)
    except PolicyError as e:
        _policy_error(e)


def _warn_policy(policy: Policy) -> None:
    for w in policy.warnings:
        where = f"{policy.source}:{w.line}" if w.line else policy.source
        click.echo(f"kubehawk policy: warning: {where}: {w}", err=True)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _load_config(path: str | None) -> Any:
    return load_config(path, "kubehawk policy")


def _load_rules(rule_dirs: tuple[str, ...], builtin: bool, config: Any) -> Any:
    return load_rules(config, rule_dirs, builtin, "kubehawk policy")


def _rules_options(f):
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), help="kubehawk.yaml (rule variables).")(f)
    f = click.option("--no-builtin", is_flag=True, help="Leave out the built-in rule pack.")(f)
    f = click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True),
                     help="Extra rule files or directories (repeatable).")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def policy() -> None:
    """Audit policy toolkit: evaluate, validate, lint, generate, coverage, simulate."""


# --- evaluate --------------------------------------------------------------------------------


@policy.command()
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.option("--user", "-u", default=None, help="Authenticated user name (omit for a request without a user).")
@click.option("--group", "-g", "groups", multiple=True, help="User group (repeatable).")
@click.option("--verb", default="get", show_default=True, help="Request verb (get, list, create, ...).")
@click.option("--namespace", "-n", default="", help="Namespace ('' = cluster-scoped).")
@click.option("--api-group", default="", help="API group ('' = core).")
@click.option("--resource", "-r", default="", help="Resource, optionally with subresource: pods/exec.")
@click.option("--subresource", default="", help="Subresource.")
@click.option("--name", default="", help="Object name (none for create/list/watch).")
@click.option("--path", "url_path", default="", help="Non-resource URL path, e.g. /healthz.")
@click.option("--method", default=None, help="HTTP method; with --uri derives every attribute like the apiserver.")
@click.option("--uri", default=None, help="Request URI (path and query) to parse, e.g. /api/v1/namespaces/a/pods.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def evaluate(policy_file: str, user: str | None, groups: tuple[str, ...], verb: str, namespace: str, api_group: str,
             resource: str, subresource: str, name: str, url_path: str, method: str | None, uri: str | None,
             fmt: str) -> None:
    """Evaluate POLICY_FILE for one request: level, omitted stages, and the deciding rule."""
    from kubehawk.policy.request import Request, parse_request

    pol = _load_policy(policy_file)
    if uri or method:
        if not uri:
            _fail("--method needs --uri")
        req = parse_request(method or "GET", uri, user, groups)
    else:
        if "/" in resource and not subresource:
            resource, subresource = resource.split("/", 1)
        req = Request(user=user, groups=groups, verb=verb, namespace=namespace, api_group=api_group,
                      resource=resource, subresource=subresource, name=name, path=url_path,
                      resource_request=bool(resource) and not url_path)
    d = pol.evaluate(req)
    out = {"request": req.__dict__ | {"groups": list(req.groups)}, "decision": d.to_dict()}
    if d.rule_index is not None:
        out["rule"] = pol.rules[d.rule_index].to_dict()
    if fmt == "json":
        _emit_json(out)
        return
    from rich.table import Table

    t = Table(title=esc(f"{policy_file}: {req.describe()}"), show_header=False)
    t.add_row("level", f"[bold]{d.level}[/]")
    t.add_row("decided by", esc(f"rules[{d.rule_index}]: {pol.rules[d.rule_index].describe()}")
              if d.rule_index is not None else "no rule matched (default level None)")
    t.add_row("omitStages", ", ".join(d.omit_stages) or "-")
    t.add_row("omitManagedFields", str(d.omit_managed_fields).lower())
    t.add_row("long-running", "yes (ResponseStarted is emitted)" if req.long_running else "no")
    console().print(t)


# --- validate --------------------------------------------------------------------------------


@policy.command()
@click.argument("policy_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def validate(policy_files: tuple[str, ...], fmt: str) -> None:
    """Check policy files exactly as kube-apiserver does at start-up (exit 2 if any is refused)."""
    results = []
    for path in policy_files:
        try:
            pol = Policy.load(path)
        except PolicyError as e:
            results.append({"policy": path, "valid": False, "errors": e.located(), "warnings": []})
            continue
        warns = [f"{path}:{w.line}: {w}" if w.line else f"{path}: {w}" for w in pol.warnings]
        results.append({"policy": path, "valid": True, "rules": len(pol.rules), "errors": [], "warnings": warns})
    bad = [r for r in results if not r["valid"]]
    if fmt == "json":
        _emit_json(results)
    else:
        for r in results:
            if r["valid"]:
                click.echo(f"{r['policy']}: valid ({r['rules']} rules)")
            for w in r["warnings"]:
                click.echo(f"kubehawk policy: warning: {w}", err=True)
            for e in r["errors"]:
                click.echo(f"kubehawk policy: error: {e}", err=True)
    if bad:
        sys.exit(2)


# --- lint ------------------------------------------------------------------------------------


@policy.command()
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.option("--apiserver-manifest", type=click.Path(dir_okay=False),
              help="kube-apiserver static Pod manifest (or a file of --flags) for the flag checks.")
@click.option("--fail-on", type=LevelChoice(), default="high",
              show_default=True, help="Exit 1 when a finding is at or above this severity.")
@click.option("--admin-group", multiple=True, help="Administrator group (PCI 10.2.1.2); system:masters always.")
@click.option("--admin-user", multiple=True, help="Administrator user (PCI 10.2.1.2).")
@click.option("--chd-namespace", multiple=True, help="Namespace holding cardholder data (PCI 10.2.1.1).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def lint(policy_file: str, apiserver_manifest: str | None, fail_on: str, admin_group: tuple[str, ...],
         admin_user: tuple[str, ...], chd_namespace: tuple[str, ...], fmt: str) -> None:
    """Lint POLICY_FILE: CIS, DISA STIG, NSA/CISA, PCI DSS, NIST 800-190 and semantic pitfalls."""
    from kubehawk.policy.flags import ApiserverFlags, ManifestError
    from kubehawk.policy.lint import LintOptions, lint_file

    flags = None
    if apiserver_manifest:
        try:
            flags = ApiserverFlags.load(apiserver_manifest)
        except ManifestError as e:
            _fail(str(e))
    opts = LintOptions(admin_groups=("system:masters", *admin_group), admin_users=admin_user,
                       chd_namespaces=chd_namespace)
    report = lint_file(policy_file, flags, opts)
    if fmt == "json":
        _emit_json(report.to_dict())
    else:
        print_lint(report)
    if any(f.id == "POL-INVALID" for f in report.findings):
        for f in report.findings:
            if f.id == "POL-INVALID":
                where = f"{policy_file}:{f.line}" if f.line else policy_file
                click.echo(f"kubehawk policy: error: {where}: {f.message}", err=True)
        sys.exit(2)
    if report.at_or_above("info" if fail_on == "informational" else fail_on):
        sys.exit(1)


# --- generate --------------------------------------------------------------------------------


@policy.command()
@_rules_options
@click.option("--profile", type=click.Choice(["minimal", "balanced", "forensic"]), default="balanced",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the policy here (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def generate(rule_dirs: tuple[str, ...], no_builtin: bool, config_path: str | None, profile: str,
             output: str | None, fmt: str) -> None:
    """Generate the audit policy the enabled rules need (valid, lint-clean, feeds every rule)."""
    from kubehawk.policy.generate import generate as gen

    config = _load_config(config_path)
    rules = _load_rules(rule_dirs, not no_builtin, config)
    result = gen(rules, profile)
    text = result.to_yaml() if fmt == "yaml" else json.dumps(result.to_dict(), indent=2) + "\n"
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            _fail(f"{output}: cannot write: {e.strerror or e}")
        click.echo(f"wrote {output}: {len(result.entries)} policy rules for {result.rule_count} enabled rules "
                   f"(profile {profile})", err=True)
    else:
        click.echo(text, nl=False)


# --- coverage --------------------------------------------------------------------------------


@policy.command()
@click.argument("policy_file", type=click.Path(dir_okay=False))
@_rules_options
@click.option("--all", "show_all", is_flag=True, help="List fed rules too.")
@click.option("--fail-under", type=click.FloatRange(0, 100), default=None,
              help="Exit 1 when fewer than this percentage of rules are fully fed.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def coverage(policy_file: str, rule_dirs: tuple[str, ...], no_builtin: bool, config_path: str | None,
             show_all: bool, fail_under: float | None, fmt: str) -> None:
    """Which enabled rules POLICY_FILE feeds, and the one-line fix for each it does not."""
    from kubehawk.policy.coverage import coverage as cov

    pol = _load_policy(policy_file)
    _warn_policy(pol)
    config = _load_config(config_path)
    rules = _load_rules(rule_dirs, not no_builtin, config)
    report = cov(pol, rules)
    if fmt == "json":
        _emit_json(report.to_dict())
    else:
        from rich.table import Table

        con = console()
        t = Table(title=esc(f"detections fed by {policy_file}"))
        t.add_column("status")
        t.add_column("rule", overflow="fold")
        t.add_column("needs")
        t.add_column("gap / fix", overflow="fold")
        order = {"blind": 0, "partial": 1, "fed": 2}
        for rc in sorted(report.rules, key=lambda r: (order[r.status], r.title)):
            if rc.status == "fed" and not show_all and not rc.capped:
                continue
            detail = ""
            if rc.gaps:
                detail = f"{len(rc.gaps)}/{rc.probes} probes: {esc(rc.gaps[0].describe())}\n[bold]fix:[/] {esc(rc.fix)}"
            if rc.capped:
                detail += ("\n" if detail else "") + f"[dim]{len(rc.capped)} probes kept at a secret-safe level[/]"
            t.add_row(f"[{STATUS_STYLE[rc.status]}]{rc.status}[/]", f"{esc(rc.title)}\n[dim]{rc.id}[/]", rc.level, detail)
        con.print(t)
        c = report.counts()
        con.print(f"{c['rules']} rules: {c['fed']} fed, {c['partial']} partial, {c['blind']} blind "
                  f"({report.fed_fraction:.0%} fully fed); {c['capped']} with secret-safe caps")
    if fail_under is not None and report.fed_fraction * 100 < fail_under:
        sys.exit(1)


# --- simulate --------------------------------------------------------------------------------


@policy.command()
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.argument("logs", nargs=-1, required=True)
@_rules_options
@click.option("--no-alerts", is_flag=True, help="Only count events and bytes; do not run the detections.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def simulate(policy_file: str, logs: tuple[str, ...], rule_dirs: tuple[str, ...], no_builtin: bool,
             config_path: str | None, no_alerts: bool, fmt: str) -> None:
    """Replay LOGS through POLICY_FILE: kept/dropped per rule, levels, alerts the policy would lose."""
    from kubehawk.policy.simulate import simulate as sim
    from kubehawk.sources.files import ReadStats, read_paths

    pol = _load_policy(policy_file)
    _warn_policy(pol)
    config = _load_config(config_path)
    rules = None if no_alerts else _load_rules(rule_dirs, not no_builtin, config)
    stats = ReadStats()

    def warn(msg: str) -> None:
        click.echo(f"kubehawk policy: warning: {msg}", err=True)

    report = sim(pol, read_paths(logs, stats, warn), rules=rules, config=config, detect_alerts=not no_alerts)
    report.read = stats.summary()
    if fmt == "json":
        _emit_json(report.to_dict())
    else:
        _print_simulation(pol, report, not no_alerts)
    if stats.events == 0 and stats.bad:
        sys.exit(2)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n:,} B"


def _print_simulation(pol: Policy, r: Any, alerts: bool) -> None:
    from rich.table import Table

    con = console()
    t = Table(title=esc(f"{pol.source}: {r.events:,} events replayed"))
    for col in ("policy rule", "kept", "dropped", "bytes kept", "bytes cut"):
        t.add_column(col, justify="right" if col != "policy rule" else "left")
    for idx, tr in sorted(r.by_rule.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        label = "no rule (None)" if idx is None else f"rules[{idx}] {pol.rules[idx].describe()}"
        t.add_row(esc(label[:70]), f"{tr.events_kept:,}", f"{tr.events_dropped:,}", _mb(tr.bytes_kept), _mb(tr.bytes_dropped))
    con.print(t)
    lv = Table(title="decided level")
    for lvl in LEVELS:
        lv.add_column(lvl, justify="right")
    lv.add_row(*(f"{r.levels.get(lvl, 0):,}" for lvl in LEVELS))
    con.print(lv)
    saved = r.bytes_in - r.bytes_out
    pct = saved / r.bytes_in if r.bytes_in else 0
    con.print(f"kept {r.events_kept:,}/{r.events:,} events; {_mb(r.bytes_out)} of {_mb(r.bytes_in)} "
              f"({pct:.0%} smaller)" + (f"; {r.under_logged:,} events were logged below the policy's level, "
                                        "so the source cannot show what it would add" if r.under_logged else ""))
    if alerts:
        full, kept = sum(r.alerts_full.values()), sum(r.alerts_filtered.values())
        con.print(f"alerts: {full} on the full log, {kept} on the filtered log, [bold]{len(r.missed)} missed[/]"
                  + (f", {len(r.new)} new (a rule reads a body the policy removes)" if r.new else ""))
        if r.missed:
            mt = Table(title="alerts the filtered log would miss")
            for col in ("rule", "count", "example"):
                mt.add_column(col, overflow="fold")
            by_rule = r.missed_by_rule()
            examples = {}
            for m in r.missed:
                examples.setdefault(m["rule"], m)
            for rid, n in by_rule.most_common():
                ex = examples[rid]
                what = f"{ex['user']} {ex['verb']} {ex['resource'] or ''} {ex['namespace'] or ''} ({ex['auditID']})"
                mt.add_row(f"{esc(ex['title'])}\n[dim]{rid}[/]", str(n), esc(what))
            con.print(mt)
    if r.read.get("bad"):
        con.print(f"[yellow]{r.read['bad']} unreadable records skipped (see warnings)[/]")


if __name__ == "__main__":
    policy()
