"""What every kubehawk command does the same way: fail with a clear message, load the config
and the rules, and never show a traceback for a user's mistake."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.rules import RuleSet

__all__ = ["fail", "load_config", "load_rules"]


def fail(prog: str, msg: str, code: int = 2) -> NoReturn:
    click.echo(f"{prog}: {msg}", err=True)
    sys.exit(code)


def load_config(path: str | None, prog: str = "kubehawk") -> Config | None:
    """The config at ``path`` (None when no path is given); a ConfigError ends the command."""
    from kubehawk.config import Config, ConfigError

    if not path:
        return None
    try:
        return Config.load(path)
    except ConfigError as e:
        fail(prog, str(e))


def load_rules(config: Config | None, rule_dirs: Sequence[str] = (), builtin: bool = True,
               prog: str = "kubehawk") -> RuleSet:
    """The enabled rules; a broken rule file is a warning naming it, the others still load."""
    from kubehawk.detect import load_ruleset
    from kubehawk.rules import RuleLoadError

    try:
        ruleset = load_ruleset(config, rule_dirs, builtin=builtin, collect_errors=True)
    except (RuleLoadError, OSError) as e:
        fail(prog, str(e))
    for err in getattr(ruleset, "errors", None) or []:
        click.echo(f"{prog}: warning: rule not loaded: {err}", err=True)
    for warning in getattr(ruleset, "warnings", None) or []:
        click.echo(f"{prog}: warning: rule can never match: {warning}", err=True)
    return ruleset
