"""``kubehawk rules``: list and show the rules and the derived fields they read; ``validate`` and
``test``, rule CI (see kubehawk.rules.ruletest).

Exit codes: ``validate`` 0 when every rule loads and reads only fields an audit event has, 2
otherwise; ``test`` 0 when every example gives what it says, 1 when one does not, 2 when the
rules or an examples file cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from kubehawk.cliutil import fail, load_config, load_rules, warn_unused


@click.group("rules")
def rules() -> None:
    """List, show, validate and test detection rules."""


_DIRS = click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True))
_BUILTIN = click.option("--with-builtin", is_flag=True,
                        help="Load the built-in pack too (for rules whose correlations use built-in rules).")


def _load(dirs: tuple[str, ...], with_builtin: bool):
    from kubehawk.rules import RuleLoadError, load_rules

    try:
        return load_rules(paths=list(dirs), builtin=with_builtin, collect_errors=True)
    except (RuleLoadError, OSError) as e:
        fail("kubehawk rules", str(e))


def _under(rule, dirs: tuple[str, ...]) -> bool:
    from pathlib import Path

    src = Path(str(rule.source)).resolve()
    return any(src == Path(d).resolve() or Path(d).resolve() in src.parents for d in dirs)


@rules.command("validate")
@_DIRS
@_BUILTIN
def rules_validate(dirs: tuple[str, ...], with_builtin: bool) -> None:
    """Load the rules in DIRS and check the fields they read; exit 2 on any problem."""
    from kubehawk.rules.ruletest import CaseError, field_problems, load_cases, rule_files, test_file_of

    ruleset = _load(dirs, with_builtin)
    problems = [str(e) for e in ruleset.errors]
    own = [r for r in ruleset.rules if _under(r, dirs)]
    for r in own:
        problems.extend(f"{r.source}: {r.title!r}: {p}" for p in field_problems(r))
    n_cases = 0
    for f in rule_files(dirs):
        t = test_file_of(f)
        if t is not None:
            try:
                n_cases += len(load_cases(t, ruleset))
            except CaseError as e:
                problems.append(str(e))
    for p in problems:
        click.echo(f"kubehawk rules: error: {p}", err=True)
    files = len(rule_files(dirs))
    click.echo(f"{len(own)} rules in {files} file(s), {n_cases} example(s): "
               + (f"{len(problems)} problem(s)" if problems else "ok"))
    if problems:
        sys.exit(2)


@rules.command("test")
@_DIRS
@_BUILTIN
@click.option("--verbose", "-v", is_flag=True, help="List the cases that pass too.")
def rules_test(dirs: tuple[str, ...], with_builtin: bool, verbose: bool) -> None:
    """Run each rule in DIRS on the example events kept beside it (NAME.tests.yml)."""
    from kubehawk.rules.ruletest import CaseError, load_cases, rule_files, run_case, test_file_of

    ruleset = _load(dirs, with_builtin)
    for e in ruleset.errors:
        click.echo(f"kubehawk rules: error: {e}", err=True)
    if ruleset.errors:
        fail("kubehawk rules", f"{len(ruleset.errors)} rule file problem(s); fix them first (`rules validate`)")
    passed = failed = 0
    tested: set[str] = set()
    for f in rule_files(dirs):
        t = test_file_of(f)
        if t is None:
            continue
        try:
            cases = load_cases(t, ruleset)
        except CaseError as e:
            fail("kubehawk rules", str(e))
        for case in cases:
            out = run_case(case, ruleset)
            tested.add(case.rule.id)
            if out.ok:
                passed += 1
                if verbose:
                    click.echo(f"PASS {case.rule.name or case.rule.id}: {case.name}")
                continue
            failed += 1
            why = out.error or (f"expected {'an alert' if case.alert else 'no alert'}, "
                                f"got {'one' if out.fired else 'none'}")
            click.echo(f"FAIL {case.rule.name or case.rule.id}: {case.name} ({case.source}): {why}")
    untested = [r for r in ruleset.rules if _under(r, dirs) and r.id not in tested]
    click.echo(f"{passed} passed, {failed} failed; {len(tested)} rule(s) tested, {len(untested)} without examples")
    if failed:
        sys.exit(1)


@rules.command("list")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True))
@click.option("--no-builtin", is_flag=True)
@click.option("--config", "config_path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules_list(rule_dirs: tuple[str, ...], no_builtin: bool, config_path: str | None, fmt: str) -> None:
    """Every rule: id, title, level, techniques, the audit level it needs and the config's tuning."""
    from kubehawk.rules.tuning import Tuning

    config = load_config(config_path)
    ruleset = load_rules(config, rule_dirs, builtin=not no_builtin)
    warn_unused(config, ruleset, "rules")
    tuned = Tuning.from_config(config).resolve(ruleset)
    rows = [_rule_row(r, tuned.get(r.id)) for r in ruleset.rules]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    from kubehawk.ruletable import print_rules

    print_rules(Console(), rows)


def _rule_row(r, tuning=None) -> dict[str, Any]:
    """A rule as ``rules list`` shows it; ``tuning`` (the config's, if any) e.g. "disabled, level high"."""
    return {"id": r.id, "name": r.name, "title": r.title, "level": r.level, "kind": r.kind,
            "techniques": list(r.techniques), "attack": list(r.attack), "audit_level": r.audit_level,
            "source": str(r.source), "tuning": tuning.describe() if tuning is not None else None}


@rules.command("show")
@click.argument("rule_id")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True))
@click.option("--config", "config_path", type=click.Path())
def rules_show(rule_id: str, rule_dirs: tuple[str, ...], config_path: str | None) -> None:
    """One rule in full: why it matters, how to triage, false positives, and its Sigma source.

    RULE_ID is a rule's name or id, or a unique start of either."""
    from kubehawk.rulefind import RuleNotFound, find_rule

    ruleset = load_rules(load_config(config_path), rule_dirs)
    try:
        rule = find_rule(ruleset, rule_id)
    except RuleNotFound as e:
        fail("kubehawk", str(e))
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


@rules.command("fields")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules_fields(fmt: str) -> None:
    """The derived fields (x.*) rules can read: what each means and the audit level it needs."""
    from kubehawk.xfields import DERIVED

    if fmt == "json":
        for f in DERIVED:
            click.echo(msgspec.json.encode(f._asdict()).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(DERIVED)} derived fields", box=None, header_style="bold", title_justify="left")
    table.add_column("field", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("meaning", overflow="fold")
    for f in DERIVED:
        table.add_row(f.path, f.level, f.meaning.replace("`", ""))
    Console().print(table)


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
