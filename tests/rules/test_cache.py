"""The rules cache: a hit is the same rule set as a fresh load, anything doubtful is a fresh load."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ruletools import ev, rule_yaml

import kubehawk
from kubehawk.config import Config
from kubehawk.rules import RuleLoadError, load_rules, loader
from kubehawk.rules import cache as rcache
from kubehawk.sources.files import ReadStats, read_paths

from helpers import REPO

SAMPLE = REPO / "examples" / "sample-audit.log"
CONFIG = REPO / "examples" / "kubehawk.yaml"
KUBEHAWK = Path(sys.executable).with_name("kubehawk")
GOOD = rule_yaml("sel: {verb: create}\ncondition: sel", title="good", rid="22222222-0000-0000-0000-000000000001")


@pytest.fixture()
def cdir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("KUBEHAWK_CACHE_DIR", str(d))
    monkeypatch.delenv("KUBEHAWK_NO_CACHE", raising=False)
    return d


@pytest.fixture()
def builds(monkeypatch) -> list[int]:
    """How many loads really parsed rules (a cache hit does not)."""
    calls: list[int] = []
    real = loader._build

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(loader, "_build", counting)
    return calls


def entries(d: Path) -> list[Path]:
    return sorted(d.glob("rules-*.pickle")) if d.is_dir() else []


def rule_dir(tmp_path: Path, *docs: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    for i, doc in enumerate(docs):
        (d / f"r{i}.yml").write_text(textwrap.dedent(doc))
    return d


def same_rules(a, b) -> None:
    assert [r.id for r in a] == [r.id for r in b]
    for x, y in zip(a, b, strict=True):
        for f in dataclasses.fields(x):
            if f.name != "predicate":
                assert getattr(x, f.name) == getattr(y, f.name), (x.id, f.name)
        assert (x.predicate is None) == (y.predicate is None)


def errors_of(rs) -> list[tuple[str, str | None]]:
    return [(str(e), e.path) for e in rs.errors]


def events() -> list:
    return list(read_paths([SAMPLE], ReadStats()))


def alerts(rules, config) -> list[dict]:
    return [a.to_dict() for a in kubehawk.detect(events(), rules, config)]


# --- a hit is a fresh load ----------------------------------------------------------------


def test_hit_gives_the_rules_and_alerts_of_a_fresh_load(cdir, builds, monkeypatch):
    config = Config.load(CONFIG)
    cold = load_rules(variables=config.vars, collect_errors=True)
    assert len(builds) == 1 and len(entries(cdir)) == 1
    warm = load_rules(variables=config.vars, collect_errors=True)
    assert len(builds) == 1, "the second load came from the cache"
    monkeypatch.setenv("KUBEHAWK_NO_CACHE", "1")
    fresh = load_rules(variables=config.vars, collect_errors=True)
    assert len(builds) == 2
    assert len(warm) == len(fresh) > 100 and not warm.errors
    same_rules(warm, fresh)
    same_rules(cold, fresh)
    assert warm.sources == fresh.sources and warm.variables == fresh.variables
    # every event rule decides every sample event as the freshly compiled one does
    evs = events()
    for w, f in zip(warm, fresh, strict=True):
        if f.kind == "event":
            assert [w.matches(e) for e in evs] == [f.matches(e) for e in evs], f.id
    # and the pipeline (index, correlations, baselines) raises the same alerts
    got = alerts(warm, config)
    assert got and got == alerts(fresh, config)


def test_pickled_ruleset_is_rebuilt_through_the_cache(cdir, builds, tmp_path):
    rs = load_rules(paths=[rule_dir(tmp_path, GOOD)], variables={"who": ["alice"]}, collect_errors=True)
    assert len(builds) == 1
    back = pickle.loads(pickle.dumps(rs))
    assert len(builds) == 1
    same_rules(back, rs)
    assert back.variables == {"who": ["alice"]}


def test_cli_output_is_the_same_cold_warm_and_without_cache(cdir):
    def run(**env):
        res = subprocess.run([str(KUBEHAWK), "detect", "--format", "json", "-q", "--config", str(CONFIG), str(SAMPLE)],
                             capture_output=True, timeout=120, env={**os.environ, **env}, check=True)
        return res.stdout

    cold = run()
    assert len(entries(cdir)) == 1
    warm = run()
    assert cold and warm == cold == run(KUBEHAWK_NO_CACHE="1")


def test_a_hit_does_not_import_the_parsers(cdir):
    script = ("import sys; from kubehawk.rules import load_rules; load_rules(collect_errors=True); "
              "print(sorted(m for m in ('yaml', 'pyparsing', 'sigma.conditions', 'sigma.collection') "
              "if m in sys.modules))")

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=True)
        return json.loads(out.stdout.decode().replace("'", '"'))

    assert "pyparsing" in run()  # a miss parses
    assert run() == []


# --- what invalidates ---------------------------------------------------------------------


def test_changed_rule_text_path_variables_or_collect_miss(cdir, builds, tmp_path):
    d = rule_dir(tmp_path, GOOD)
    load_rules(paths=[d], builtin=False)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 1
    (d / "r0.yml").write_text(GOOD.replace("verb: create", "verb: delete"))
    rs = load_rules(paths=[d], builtin=False)
    assert len(builds) == 2
    assert rs.rules[0].matches(ev(verb="delete")) and not rs.rules[0].matches(ev(verb="create"))
    moved = tmp_path / "moved"
    shutil.copytree(d, moved)
    assert load_rules(paths=[moved], builtin=False).rules[0].source.startswith(str(moved))
    assert len(builds) == 3
    load_rules(paths=[d], builtin=False, variables={"x": ["1"]})
    load_rules(paths=[d], builtin=False, variables={"x": ["2"]})
    load_rules(paths=[d], builtin=False, collect_errors=True)
    assert len(builds) == 6
    load_rules(paths=[d], builtin=False, variables={"x": ["2"]})
    assert len(builds) == 6


def test_changed_variables_change_the_rules(cdir, tmp_path):
    d = rule_dir(tmp_path, rule_yaml("sel: {user.username|expand: '%admins%'}\ncondition: sel"))
    a = load_rules(paths=[d], builtin=False, variables={"admins": ["alice"]})
    b = load_rules(paths=[d], builtin=False, variables={"admins": ["bob"]})
    assert a.rules[0].matches(ev(user={"username": "alice"}))
    assert not b.rules[0].matches(ev(user={"username": "alice"}))
    assert load_rules(paths=[d], builtin=False, variables={"admins": ["bob"]}).rules[0].matches(
        ev(user={"username": "bob"}))


@pytest.mark.parametrize("change", ["kubehawk code", "pysigma", "python"])
def test_new_versions_miss(cdir, builds, tmp_path, monkeypatch, change):
    d = rule_dir(tmp_path, GOOD)
    load_rules(paths=[d], builtin=False)
    monkeypatch.setattr(rcache, "_fingerprint", None)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 1, "the same environment computed again gives the same key"
    monkeypatch.setattr(rcache, "_fingerprint", None)
    if change == "kubehawk code":
        pkg = tmp_path / "pkg"
        shutil.copytree(rcache._PKG, pkg, ignore=shutil.ignore_patterns("__pycache__", "builtin", "data"))
        init = pkg / "__init__.py"
        init.write_text(init.read_text().replace(f'"{kubehawk.__version__}"', '"99.0"'))
        monkeypatch.setattr(rcache, "_PKG", pkg)
    elif change == "pysigma":
        real = rcache._distribution
        monkeypatch.setattr(rcache, "_distribution", lambda m, dist: real(m, dist) + b"pysigma-99.0.dist-info")
    else:
        monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 2
    assert len(entries(cdir)) == 2


def test_the_key_covers_the_installed_pysigma():
    assert b"pysigma-" in rcache._distribution("sigma", "pysigma")
    assert b"types.py:" in rcache._distribution("sigma", "pysigma")


# --- errors: the same with and without the cache ------------------------------------------


BAD = {
    "a-good.yml": GOOD,
    "b-yaml.yml": "title: x\nlogsource: [unclosed\n",
    "c-cond.yml": rule_yaml("sel: {verb: get}\ncondition: sel and nothere", title="bad condition"),
    "d-dup.yml": GOOD.replace("title: good", "title: twin"),
    "e-expand.yml": rule_yaml("sel: {verb|expand: '%who%'}\ncondition: sel", title="placeholder"),
}


def test_load_errors_are_reported_exactly_as_without_cache(cdir, builds, tmp_path, monkeypatch):
    d = tmp_path / "rules"
    d.mkdir()
    for name, text in BAD.items():
        (d / name).write_text(text)
    missing = tmp_path / "nope"

    def load():
        return load_rules(paths=[d, missing], builtin=False, collect_errors=True)

    cold, warm = load(), load()
    assert len(builds) == 1
    monkeypatch.setenv("KUBEHAWK_NO_CACHE", "1")
    fresh = load()
    assert len(errors_of(fresh)) == 5
    assert errors_of(cold) == errors_of(warm) == errors_of(fresh)
    assert all(type(e) is RuleLoadError for e in warm.errors)
    same_rules(warm, fresh)
    assert [r.title for r in warm] == ["good"]


def test_without_collect_errors_the_first_error_is_raised_every_time(cdir, tmp_path):
    d = rule_dir(tmp_path, GOOD, "title: x\nlogsource: [unclosed\n")
    msgs = []
    for _ in range(2):
        with pytest.raises(RuleLoadError) as e:
            load_rules(paths=[d], builtin=False)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "r1.yml: bad YAML" in msgs[0]
    assert entries(cdir) == []


# --- a doubtful entry is a fresh load -----------------------------------------------------


def prime(tmp_path: Path, cdir: Path) -> tuple[Path, Path]:
    d = rule_dir(tmp_path, GOOD)
    load_rules(paths=[d], builtin=False)
    (entry,) = entries(cdir)
    return d, entry


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other shape", "other key", "directory"])
def test_a_corrupt_entry_is_ignored_and_rewritten(cdir, builds, tmp_path, damage):
    d, entry = prime(tmp_path, cdir)
    good = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(b"\x80\x05not a pickle at all")
    elif damage == "truncated":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "other shape":
        entry.write_bytes(pickle.dumps({"rules": []}))
    elif damage == "other key":
        fmt, key, rules, errors = pickle.loads(good)
        entry.write_bytes(pickle.dumps((fmt, "0" * 64, rules, errors)))
    else:
        entry.unlink()
        entry.mkdir()
    rs = load_rules(paths=[d], builtin=False)
    assert len(builds) == 2 and [r.title for r in rs] == ["good"]
    if damage != "directory":
        assert entry.read_bytes() == good  # written again
        load_rules(paths=[d], builtin=False)
        assert len(builds) == 2


def test_an_entry_others_can_write_is_not_read(cdir, builds, tmp_path):
    d, entry = prime(tmp_path, cdir)
    entry.chmod(0o666)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 2
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # replaced by a private one
    cdir.chmod(0o777)
    load_rules(paths=[d], builtin=False)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 4, "a directory others can write is not trusted either"


def test_an_entry_of_another_user_is_not_read(cdir, builds, tmp_path, monkeypatch):
    d, entry = prime(tmp_path, cdir)
    if os.geteuid() == 0:
        os.chown(entry, 65534, 65534)
    else:  # we cannot give a file away: become someone else instead (the directory too is then foreign)
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 2


def test_a_symlinked_entry_is_not_followed(cdir, builds, tmp_path):
    d, entry = prime(tmp_path, cdir)
    real = tmp_path / "elsewhere.pickle"
    entry.rename(real)
    entry.symlink_to(real)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 2


def test_entries_are_private(cdir, tmp_path):
    _, entry = prime(tmp_path, cdir)
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert [p.name for p in cdir.iterdir()] == [entry.name]  # no temporary file left


def test_an_unwritable_cache_dir_only_costs_time(tmp_path, monkeypatch, builds):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KUBEHAWK_CACHE_DIR", str(blocker / "cache"))  # cannot be a directory
    d = rule_dir(tmp_path, GOOD)
    assert [r.title for r in load_rules(paths=[d], builtin=False)] == ["good"]
    assert [r.title for r in load_rules(paths=[d], builtin=False)] == ["good"]
    assert len(builds) == 2


def test_disabled_reads_and_writes_nothing(cdir, builds, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEHAWK_NO_CACHE", "1")
    d = rule_dir(tmp_path, GOOD)
    load_rules(paths=[d], builtin=False)
    load_rules(paths=[d], builtin=False)
    assert len(builds) == 2 and not cdir.exists()
    monkeypatch.setenv("KUBEHAWK_NO_CACHE", "0")
    load_rules(paths=[d], builtin=False)
    assert entries(cdir)


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBEHAWK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rcache.cache_dir() == tmp_path / "xdg" / "kubehawk"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rcache.cache_dir() == tmp_path / "home" / ".cache" / "kubehawk"
    monkeypatch.setenv("KUBEHAWK_CACHE_DIR", str(tmp_path / "mine"))
    assert rcache.cache_dir() == tmp_path / "mine"


def test_old_entries_are_pruned(cdir, tmp_path):
    d = rule_dir(tmp_path, GOOD)
    for i in range(rcache.KEEP + 3):
        load_rules(paths=[d], builtin=False, variables={"n": [str(i)]})
    assert len(entries(cdir)) == rcache.KEEP


def test_the_suite_never_writes_the_users_cache():
    # tests/conftest.py points the cache at a temporary directory for the whole session
    home = Path.home() / ".cache" / "kubehawk"
    assert Path(os.environ["KUBEHAWK_CACHE_DIR"]).resolve() != home.resolve()
