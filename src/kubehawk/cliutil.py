"""What every kubehawk command does the same way: fail with a clear message, load the config
and the rules, and never show a traceback for a user's mistake."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from kubehawk.levels import LEVELS, level_names, parse_level

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.detect import Detector
    from kubehawk.rules import RuleSet

__all__ = ["LevelChoice", "InputError", "fail", "load_config", "load_rules", "make_detector", "open_output", "require_paths"]


class InputError(click.ClickException):
    """A mistake in what the user gave (a config, a path): one line, exit 2 like a usage error."""

    exit_code = 2


def fail(prog: str, msg: str, code: int = 2) -> NoReturn:
    click.echo(f"{prog}: {msg}", err=True)
    sys.exit(code)


def load_config(path: str | None, prog: str = "kubehawk") -> Config | None:
    """The config at ``path`` (None when no path is given); a ConfigError ends the command."""
    from kubehawk.config import Config, ConfigError
    from kubehawk.rules.baseline import baseline_config
    from kubehawk.rules.tuning import Tuning

    if not path:
        return None
    try:
        config = Config.load(path)
        baseline_config(config)  # checked now: a wrong value is one line, not a traceback mid-run
        Tuning.from_config(config)  # the `rules:` tuning too, for every command that reads a config
    except ConfigError as e:
        fail(prog, str(e))
    return config


def open_output(path: str, prog: str = "kubehawk") -> IO[str]:
    """``path`` opened for appending alerts; a path that cannot be written ends the command."""
    try:
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        fail(prog, f"{path}: cannot write: {e.strerror or e}")


def make_detector(ruleset: RuleSet, config: Config | None, prog: str = "kubehawk", **kw: Any) -> Detector:
    """The Detector; a store it cannot open (a damaged baseline file) ends the command with one line."""
    from kubehawk.config import ConfigError
    from kubehawk.detect import Detector

    try:
        return Detector(ruleset, config, **kw)
    except ConfigError as e:
        fail(prog, str(e))


def require_paths(paths: Sequence[str], prog: str = "kubehawk") -> None:
    """End the command (exit 2, one line) when a path to read does not exist: nothing can be read
    from it, and a typo must not pass for a clean log."""
    from kubehawk.outcome import missing_paths

    missing = missing_paths(paths)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        fail(prog, f"{missing[0]}: no such file or directory{more}")


def load_rules(config: Config | None, rule_dirs: Sequence[str] = (), builtin: bool = True,
               prog: str = "kubehawk", strict: bool = False) -> RuleSet:
    """The enabled rules; a broken rule file is a warning naming it, the others still load
    (with ``strict`` it is an error: each is named, then the command ends with exit 2)."""
    from kubehawk.detect import load_ruleset
    from kubehawk.rules import RuleLoadError

    try:
        ruleset = load_ruleset(config, rule_dirs, builtin=builtin, collect_errors=True)
    except (RuleLoadError, OSError) as e:
        fail(prog, str(e))
    errors = getattr(ruleset, "errors", None) or []
    for err in errors:
        click.echo(f"{prog}: {'error' if strict else 'warning'}: rule not loaded: {err}", err=True)
    for warning in getattr(ruleset, "warnings", None) or []:
        click.echo(f"{prog}: warning: rule can never match: {warning}", err=True)
    if strict and errors:
        fail(prog, f"{len(errors)} rule file problem(s) (--strict)")
    return ruleset


class LevelChoice(click.ParamType):
    """A click option that takes a level in any case, ``info`` included; gives the canonical name."""

    name = "level"

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str:
        return "[" + "|".join(("info", *LEVELS[1:])) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        level = parse_level(value)
        if level is None:
            self.fail(f"{value!r} is not a level; use one of {level_names()}", param, ctx)
        return level


def warn_unused(config: Config | None, ruleset: RuleSet, command: str, prog: str = "kubehawk") -> None:
    """Settings that do nothing for this command, one warning each (see kubehawk.unused)."""
    from kubehawk.unused import unused_settings

    for line in unused_settings(config, ruleset, command):
        click.echo(f"{prog}: warning: {line}", err=True)
