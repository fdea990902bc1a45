"""Every command, walked from the click command tree, with a set of wrong arguments: each
ends with a message and exit code 1 or 2, never a traceback (issue 15, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kubehawk.cli import main

KUBEHAWK = Path(sys.executable).with_name("kubehawk")
REPO = Path(__file__).resolve().parents[1]

BAD_CONFIGS = {
    "learning_days_word": 'baseline: {learning_days: "seven"}\n',
    "learning_days_negative": "baseline: {learning_days: -3}\n",
    "cache_entries_word": 'baseline: {cache_entries: "lots"}\n',
    "baseline_list": "baseline: [1, 2]\n",
    "yaml_error": "timezone: [unclosed\n",
    "not_a_mapping": "- just\n- a list\n",
    "unknown_zone": "timezone: Mars/Olympus\n",
    "outputs_mapping": "outputs: {type: file}\n",
    "output_bad_type": "outputs: [{type: carrier-pigeon}]\n",
    "server_port": "server: {port: lots}\n",
    "allowlist_entry": "allowlists: {privileged: [{colour: red}]}\n",
    "rules_tuning": "rules: {no-such-rule: {level: loud}}\n",
}
# wrong for every command that reads a config (the others hold keys only some commands read)
WRONG_EVERYWHERE = ("learning_days_word", "learning_days_negative", "cache_entries_word", "baseline_list",
                    "yaml_error", "not_a_mapping", "unknown_zone", "outputs_mapping", "allowlist_entry",
                    "rules_tuning")
# a command that would run for good when its other arguments are right gets one more mistake,
# which it only finds after parsing and loading everything else
LATE_MISTAKE = {("serve",): ["--port", "70000"]}
BROKEN_RULE = "title: broken\nlogsource: {product: kubernetes, service: audit}\ndetection: {condition: sel}\n"


def _commands() -> list[tuple[tuple[str, ...], click.Command]]:
    out = []

    def walk(cmd: click.Command, path: tuple[str, ...], parent: click.Context | None) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd, info_name=path[-1] if path else "kubehawk", parent=parent)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, (*path, name), ctx)
        else:
            out.append((path, cmd))

    walk(main, (), None)
    return out


COMMANDS = _commands()


def _is_path(p: click.Parameter) -> bool:
    return isinstance(p.type, (click.Path, click.File))


def _cases(cmd: click.Command, files: dict[str, Path]) -> list[list[str]]:
    """Wrong argument sets for one command: each holds at least one mistake."""
    required: list[str] = []
    for p in cmd.params:
        if p.required and isinstance(p, click.Argument):
            required.append(str(files["garbage"]))
        elif p.required and isinstance(p, click.Option):
            required += [p.opts[0], str(files["garbage"]) if _is_path(p) else "x"]
    nowhere = str(files["garbage"] / "file.yaml")  # under a regular file: cannot exist, even for root
    cases = [["--no-such-option", *required]]
    if required:
        cases.append([])  # required arguments missing
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.is_flag:
            continue
        opt = p.opts[0]
        if _is_path(p):
            cases.append([*required, opt, nowhere])
            cases.append([*required, opt, str(files["dir"])])
        if p.name == "config_path":
            cases += [[*required, opt, str(f)] for k, f in files.items() if k.startswith("config:")]
        if p.name == "rule_dirs":
            cases.append([*required, opt, str(files["rules"])])
        if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
            cases += [[*required, opt, "abc"], [*required, opt, "-1"]]
        if isinstance(p.type, click.Choice) or p.type.name == "level":
            cases.append([*required, opt, "bogus"])
        if p.name == "output":
            cases.append([*required, opt, str(files["garbage"] / "alerts.jsonl")])
    for p in cmd.params:  # a path argument that is not there, or not a log at all
        if isinstance(p, click.Argument) and _is_path(p):
            cases.append([str(files["dir"] / "missing.log") if q is p else a
                          for q, a in zip([x for x in cmd.params if isinstance(x, click.Argument)],
                                          required or [None], strict=False)] if required
                         else [str(files["dir"] / "missing.log")])
    return cases


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("misuse")
    out = {"dir": d / "a-dir", "garbage": d / "garbage.bin", "rules": d / "rules"}
    out["dir"].mkdir()
    out["garbage"].write_bytes(b"\x00\x01\x02 not yaml: [ {\xff\xfe")
    out["rules"].mkdir()
    (out["rules"] / "broken.yml").write_text(BROKEN_RULE)
    for name, text in BAD_CONFIGS.items():
        f = d / f"{name}.yaml"
        f.write_text(text)
        out[f"config:{name}"] = f
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_traceback_for_wrong_arguments(path, cmd, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # state files some commands create land here
    monkeypatch.setenv("KUBEHAWK_NO_CACHE", "1")
    runner = CliRunner()
    bad = []
    before = set(os.listdir(REPO))
    cases = _cases(cmd, files)
    assert len(cases) >= 1
    for args in cases:
        late = LATE_MISTAKE.get(path, [])
        if late and late[0] not in args:
            args = [*args, *late]
        res = runner.invoke(main, [*path, *args], input="")
        text = res.output + (res.stderr if res.stderr_bytes is not None else "")
        crashed = res.exception is not None and not isinstance(res.exception, SystemExit)
        config_mistake = any(files.get(f"config:{name}") == Path(a) for a in args for name in WRONG_EVERYWHERE)
        if crashed or "Traceback" in text or res.exit_code not in ((2,) if config_mistake else (0, 1, 2)):
            bad.append(f"kubehawk {' '.join(path)} {' '.join(args)} -> {res.exit_code}: "
                       f"{res.exception!r} {text[-300:]}")
    assert not bad, "\n".join(bad)
    # relative paths are the caller's (here tmp_path), never the repository's (Spark's JVM kept its own cwd)
    assert set(os.listdir(REPO)) <= before, f"left in the repository: {sorted(set(os.listdir(REPO)) - before)}"


def test_every_command_is_walked():
    walked = {" ".join(p) for p, _ in COMMANDS}
    assert {"detect", "rules list", "rules show", "policy lint", "serve", "matrix"} <= walked


@pytest.mark.parametrize("name", ["learning_days_word", "learning_days_negative", "cache_entries_word"])
def test_wrong_baseline_value_is_one_line_naming_the_key(name, files):
    res = subprocess.run([str(KUBEHAWK), "detect", "--config", str(files[f"config:{name}"]), "/dev/null"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "baseline." in lines[0] and "Traceback" not in res.stderr


def test_unwritable_output_is_one_line_naming_the_path(tmp_path):
    out = tmp_path / "no-such-dir" / "alerts.jsonl"
    res = subprocess.run([str(KUBEHAWK), "detect", "-o", str(out), "/dev/null"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"kubehawk: {out}: cannot write: No such file or directory"]
