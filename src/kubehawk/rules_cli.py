"""``kubehawk rules validate`` and ``kubehawk rules test``: rule CI (see kubehawk.rules.ruletest).

Exit codes: ``validate`` 0 when every rule loads and reads only fields an audit event has, 2
otherwise; ``test`` 0 when every example gives what it says, 1 when one does not, 2 when the
rules or an examples file cannot be read.
"""

from __future__ import annotations

import sys

import click

from kubehawk.cliutil import fail

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


@click.command("validate")
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


@click.command("test")
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
