"""The line screen (kubehawk.rules.linescreen, src/kubehawk/_linescreen.c): lines it skips change nothing.

Three promises are held here: a run with the screen gives the alerts and counts of a run without
it; a line gets a key only when the typed head decode accepts it as an audit Event; and equal
keys mean equal slot values, so an empty plan learned from one line holds for every line
sharing its key. The last two are checked against msgspec and the index on real lines and on
thousands of mutations of them.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from kubehawk import native
from kubehawk.config import Config
from kubehawk.detect import Detector, load_ruleset
from kubehawk.event import decode_event, decode_head
from kubehawk.rules.linescreen import line_screen
from kubehawk.sources.files import ReadStats, read_paths

from helpers import CORPUS, REPO, audit, need

CONFIG = REPO / "examples" / "kubehawk.yaml"
built = pytest.mark.skipif(native.linescreen is None,
                           reason="the line screen is not built (no C compiler at install) or KUBEHAWK_NATIVE=0")


def _bench_corpus_module():
    spec = importlib.util.spec_from_file_location("kubehawk_bench_corpus", REPO / "bench" / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def config() -> Config:
    return Config.load(CONFIG)


@pytest.fixture(scope="module")
def ruleset(config):
    return load_ruleset(config)


@pytest.fixture(scope="module")
def bench_log(tmp_path_factory) -> Path:
    """Ordinary traffic from the bench's generator with the demo's intrusion woven in."""
    corpus = _bench_corpus_module()
    events = list(corpus.generate(12_000, seed=5)) + corpus.attacks()
    events.sort(key=lambda e: e["stageTimestamp"])
    path = tmp_path_factory.mktemp("screen") / "audit.log"
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    return path


def _run(paths: list[Path], ruleset, config, screened: bool) -> tuple[list, dict, Detector]:
    det = Detector(ruleset, config)
    stats = ReadStats()
    screen = det.engine.line_screen if screened else None
    alerts = sorted((a.rule.id, a.event.head.auditID, a.message)
                    for a in det.alerts(read_paths([str(p) for p in paths], stats, screen=screen)))
    summary = stats.summary()
    return alerts, summary, det


def test_the_compiled_parts_are_built():
    # `make` installs with a C compiler; the extensions are optional only for machines without one
    if not native.enabled():
        pytest.skip("KUBEHAWK_NATIVE=0")
    missing = [name for name in ("linescreen", "needles") if getattr(native, name) is None]
    assert not missing, f"kubehawk._{missing[0]} is not built: install a C compiler and run `make dev` again"


@built
def test_a_screened_run_gives_the_same_alerts_and_counts(bench_log, ruleset, config):
    plain, plain_stats, _ = _run([bench_log], ruleset, config, screened=False)
    screened, screened_stats, det = _run([bench_log], ruleset, config, screened=True)
    assert screened == plain
    assert screened_stats == plain_stats
    assert len(plain) > 10  # the intrusion is found both ways
    skipped = det.engine.line_screen.skipped()
    assert skipped > 0.5 * plain_stats["events"]  # most lines are not decoded at all
    assert det.engine.stats["events"] == plain_stats["events"]
    assert det.engine.stats["screened_out"] == skipped
    assert det.engine._screen_plans  # the lines that meet rules got their plans back from the screen


def test_the_shared_corpora_give_the_same_alerts_with_and_without_the_screen(ruleset, config):
    paths = [need(CORPUS / "falco" / "k8s_audit"), need(CORPUS / "kube-audit-rest" / "kube-audit-rest.log"),
             REPO / "examples" / "sample-audit.log"]
    plain, plain_stats, _ = _run(paths, ruleset, config, screened=False)
    screened, screened_stats, _ = _run(paths, ruleset, config, screened=True)
    assert screened == plain
    assert screened_stats == plain_stats


# --- the key: only for lines the typed decode accepts; equal keys, equal slots -----------------------------


def _mutations(line: bytes, rng: random.Random) -> list[bytes]:
    """The line broken or bent in ways a log (or an attacker) can: types, escapes, duplicates, bytes."""
    ev = json.loads(line)
    out = []
    for field in ("verb", "stage", "kind", "apiVersion", "level", "userAgent", "auditID", "sourceIPs", "user",
                  "objectRef", "annotations", "responseStatus", "requestObject", "requestURI"):
        for v in (None, 1, 1.0, True, "x", [], ["a", None], {}, {"a": 1}, "Event", "get"):
            d = dict(ev)
            d[field] = v
            out.append(json.dumps(d).encode())
        d = dict(ev)
        d.pop(field, None)
        out.append(json.dumps(d).encode())
    for sub, key in (("user", "username"), ("user", "groups"), ("objectRef", "resource"), ("objectRef", "name"),
                     ("annotations", "authorization.k8s.io/decision"), ("responseStatus", "code")):
        for v in (None, 200, 200.0, "200", ["a"], [None], {"x": 1}, True):
            d = json.loads(line)
            if isinstance(d.get(sub), dict):
                d[sub][key] = v
                out.append(json.dumps(d).encode())
    text = line.rstrip(b"\n")
    out += [
        text.replace(b'"verb":', b'"v\\u0065rb":', 1),  # an escaped key spells a field
        text.replace(b'"username":', b'"user\\u006eame":', 1),
        text[:-1] + b',"verb":"create"}',  # a repeated field: the last one wins in the decoder
        text[:-1] + b',"user":{"username":"system:anonymous"}}',
        text.replace(b'"user":{', b'"user":{"username":"system:anonymous",', 1),  # a repeated key inside
        text + b" x", text + b"}", text + b" \r\n", b"  " + text, text[: len(text) // 2],
        text.replace(b"{", b"{ ", 3), text.replace(b":", b" : ", 3),
        text[:-1] + b',"requestObject":' + b"[" * 100 + b"]" * 100 + b"}",
        text[:-1] + b',"extra":1e400}', text[:-1] + b',"extra":-0.5E+3}', text[:-1] + b',"extra":01}',
        text[:-1] + b',"extra":"\\ud83d\\ude00"}', text[:-1] + b',"extra":"\\ud800"}',
        text[:-1] + b',"extra":"\xff"}', text[:-1] + b',"extra":"\xc3\xa9"}', text[:-1] + b',"extra":"\xed\xa0\x80"}',
        text[:-1] + b',"extra":"a\tb"}', text[:-1] + b',"extra":"\\x"}', text[:-1] + b',"extra":tru}',
    ]
    for _ in range(40):  # and bytes at random: flipped, dropped, doubled
        b = bytearray(text)
        i = rng.randrange(len(b))
        op = rng.randrange(3)
        if op == 0:
            b[i] = rng.choice(b'{}[]":,\\ 0a\x00\x80\xffe.-nt')
        elif op == 1:
            del b[i]
        else:
            b.insert(i, b[i])
        out.append(bytes(b))
    return out


def _accepted(line: bytes) -> bool:
    """Does the file reader's fast path take this line as an audit Event?"""
    try:
        h = decode_head(line)
    except msgspec.DecodeError:
        return False
    return h.verb is not None or h.requestURI is not None or h.auditID is not None


@built
def test_a_key_only_for_what_the_decoder_accepts_and_equal_keys_mean_equal_slots(bench_log, ruleset, config):
    det = Detector(ruleset, config)
    index, screen = det.engine.index, det.engine.line_screen
    rng = random.Random(1)
    lines = bench_log.read_bytes().splitlines(keepends=True)
    sample = rng.sample(lines, 150) + [json.dumps(audit()).encode()]
    by_key: dict[bytes, tuple[str, bytes]] = {}
    keyed = refused = 0
    for original in sample:
        for line in [original, *_mutations(original, rng)]:
            key = screen.key(line)
            if key is None:
                refused += 1
                continue
            keyed += 1
            assert _accepted(line), line
            event = decode_event(line)
            event.bind_context(config)
            slots = repr((index.extract(event), event.head.stage))  # repr: 1, 1.0 and true differ
            seen = by_key.setdefault(key, (slots, line))
            assert seen[0] == slots, (seen[1], line)
    assert keyed > 3000 and refused > 3000  # both sides were exercised
    assert len(by_key) > 300


@built
def test_a_line_that_shares_a_learned_key_but_is_broken_elsewhere_is_still_reported(tmp_path, ruleset, config):
    lease = audit(verb="update", requestURI="/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                  user={"username": "system:node:n1", "groups": ["system:nodes", "system:authenticated"]},
                  userAgent="kubelet/v1.30.4", objectRef={"resource": "leases", "namespace": "kube-node-lease",
                                                          "name": "n1", "apiGroup": "coordination.k8s.io"})
    good = json.dumps(lease, separators=(",", ":"))
    bad = [
        good.replace('"sourceIPs":["10.0.0.1"]', '"sourceIPs":"10.0.0.1"'),  # wrong type elsewhere
        good[:-1] + ',"requestObject":{"a":}}',  # broken JSON in a body
        good + " trailing",
        good.replace('"stageTimestamp":"', '"stageTimestamp":7,"x":"'),
    ]
    twin = good[:-1] + ',"verb":"create"}'  # the decoder takes the last verb: a create, not the lease update
    log = tmp_path / "audit.log"
    log.write_text("\n".join([good, good, *bad, twin, good]) + "\n")
    det = Detector(ruleset, config)
    stats = ReadStats()
    list(det.alerts(read_paths([str(log)], stats, screen=det.engine.line_screen)))
    assert stats.bad == len(bad)
    assert [w.split(":")[1] for w in stats.warnings] == ["3", "4", "5", "6"]
    assert stats.events == 4
    # the first line sets the baselines' start (Detector.process, which does not teach the screen), the
    # second teaches it, the last is skipped
    assert det.engine.line_screen.skipped() == 1
    assert det.engine.stats["events"] == 4


@built
def test_the_screen_remembers_a_bounded_number_of_keys(ruleset, config):
    det = Detector(ruleset, config)
    screen = line_screen(det.engine.index.slots, max_known=3)
    for i in range(10):
        line = json.dumps(audit(userAgent=f"agent-{i}")).encode()
        assert not screen.skip(line)
        screen.learn(line)
        assert screen.known() <= 3
    assert screen.skip(line)  # the last one learned is known


@built
def test_a_key_learned_with_a_plan_number_is_recalled_not_skipped():
    screen = line_screen([("verb", "value")])
    a, twin, other = (json.dumps(audit(auditID=aid, verb=verb)).encode()
                      for aid, verb in (("1", "get"), ("2", "get"), ("3", "list")))
    assert not screen.skip(a) and screen.recall(a) == -1
    screen.learn(a, 7)
    assert not screen.skip(twin)  # decoded as usual...
    assert screen.recall(twin) == 7  # ...and the engine gets its plan number back
    assert screen.recall(a) == -1  # only for the line last screened
    screen.learn(twin, -1)  # already known: nothing changes
    assert not screen.skip(twin) and screen.recall(twin) == 7
    assert not screen.skip(other) and screen.recall(other) == -1
    with pytest.raises(ValueError):
        screen.learn(other, -5)
    screen.forget()
    assert screen.known() == 0 and not screen.skip(twin) and screen.recall(twin) == -1


@built
def test_the_engine_keeps_a_bounded_list_of_plans_for_the_screen(bench_log, ruleset, config, monkeypatch):
    plain, _, _ = _run([bench_log], ruleset, config, screened=False)
    monkeypatch.setattr(type(Detector(ruleset, config).engine), "MAX_SCREEN_PLANS", 3)
    screened, _, det = _run([bench_log], ruleset, config, screened=True)
    assert screened == plain
    assert len(det.engine._screen_plans) <= 3


@built
def test_misuse_of_the_compiled_screen_is_an_error_not_a_crash():
    Screen = native.linescreen.Screen
    with pytest.raises(ValueError):
        Screen.__new__(Screen).skip(b"{}")  # never initialised
    screen = line_screen([("verb", "value")])
    with pytest.raises(TypeError):
        screen.key("not bytes")
    with pytest.raises(ValueError):
        Screen([(b"verb", 0, None)], [(5, None, 0)], (0,))  # a slot on a field that is not there
    with pytest.raises(ValueError):
        Screen([(b"verb", 0, None)], [(0, b"sub", 0)], (0,))  # a sub key on a string field
    broken = line_screen([("verb", "value")])
    with pytest.raises(ValueError):
        broken.__init__([(b"verb", 9, None)], [], (0,))  # an unknown type: the screen is no longer ready
    with pytest.raises(ValueError):
        broken.skip(b'{"verb":"get"}')


@built
def test_learn_only_takes_the_line_last_screened():
    screen = line_screen([("verb", "value")])
    a, b = json.dumps(audit()).encode(), json.dumps(audit(verb="list")).encode()
    assert not screen.skip(a)
    screen.learn(b)  # not the line screened: nothing learned
    assert screen.known() == 0
    screen.learn(a)
    assert screen.known() == 1 and screen.skip(a) and not screen.skip(b)


@built
def test_no_screen_for_a_slot_the_raw_text_cannot_give_or_without_the_compiled_part(monkeypatch):
    assert line_screen([("user.extra.scopes", "value")]) is None  # read through a getter
    assert line_screen([("verb", "value")]) is not None
    monkeypatch.setattr(native, "linescreen", None)  # as when not built, or KUBEHAWK_NATIVE=0
    assert line_screen([("verb", "value")]) is None


@built
def test_kubehawk_native_0_switches_the_compiled_parts_off():
    code = "from kubehawk import native; print(native.linescreen is None, native.needles is None)"
    for value, expected in (("0", "True True"), ("1", "False False")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "KUBEHAWK_NATIVE": value}).stdout
        assert out.strip() == expected


def test_gzip_folders_and_stdin_are_screened_alike(bench_log, tmp_path):
    """The screen serves every way detect reads JSON lines: a gzip file in a folder, and stdin."""
    folder = tmp_path / "logs"
    folder.mkdir()
    with gzip.open(folder / "audit.log.1.gz", "wb") as fh:
        fh.write(bench_log.read_bytes())

    def run(native_value: str, *args: str, stdin: bytes | None = None) -> tuple[str, str]:
        env = {**os.environ, "KUBEHAWK_NATIVE": native_value}
        exe = Path(sys.executable).with_name("kubehawk")
        p = subprocess.run([str(exe), "detect", "--format", "json", "--config", str(CONFIG), *args],
                           input=stdin, capture_output=True, env=env, check=True)
        return p.stdout.decode(), p.stderr.decode()

    folder_on, folder_off = run("1", str(folder)), run("0", str(folder))
    assert folder_on == folder_off and folder_on[0].count("\n") > 10
    stdin_on = run("1", "-", stdin=bench_log.read_bytes())
    assert stdin_on == run("0", "-", stdin=bench_log.read_bytes())
    assert sorted(stdin_on[0].splitlines()) == sorted(folder_on[0].splitlines())


@built
def test_gzip_folders_and_stdin_go_through_the_screen(bench_log, tmp_path, ruleset, config, monkeypatch):
    folder = tmp_path / "logs"
    folder.mkdir()
    with gzip.open(folder / "audit.log.1.gz", "wb") as fh:
        fh.write(bench_log.read_bytes())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(bench_log.read_bytes()))))
    for path in (folder, "-"):
        det = Detector(ruleset, config)
        stats = ReadStats()
        list(det.alerts(read_paths([str(path)], stats, screen=det.engine.line_screen)))
        assert det.engine.line_screen.skipped() > stats.events / 2, path


def test_the_cli_prints_the_same_with_the_compiled_parts_switched_off():
    def run(env_value: str) -> tuple[str, str]:
        env = {**os.environ, "KUBEHAWK_NATIVE": env_value}
        exe = Path(sys.executable).with_name("kubehawk")
        p = subprocess.run([str(exe), "detect", "--format", "json", "--config", str(CONFIG),
                            str(REPO / "examples" / "sample-audit.log")], capture_output=True, text=True,
                           env=env, check=True)
        return p.stdout, p.stderr

    on, off = run("1"), run("0")
    assert on == off
    assert on[0].count("\n") > 10


def test_the_readme_library_examples_run_and_agree(tmp_path, monkeypatch, capsys):
    text = (REPO / "README.md").read_text()
    section = text.split("### Library", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 2
    (tmp_path / "kubehawk.yaml").write_bytes(CONFIG.read_bytes())
    (tmp_path / "audit.log").write_bytes((REPO / "examples" / "sample-audit.log").read_bytes())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(blocks[0], namespace)  # noqa: S102 - the README's own example
    first = capsys.readouterr().out
    exec(blocks[1], namespace)  # noqa: S102 - the second example, with the line screen
    second = capsys.readouterr().out
    assert first.count("\n") > 10
    assert sorted(first.splitlines()) == sorted(second.splitlines())


@built
def test_deep_nesting_and_invalid_utf8_are_left_to_the_decoder_which_reports_them(tmp_path):
    """The screen validates to a bounded depth (its C stack stays small whatever the line) and
    validates UTF-8: a line past either gets no key, so it is never skipped unseen; the reader's
    decoder then warns about the deep one and repairs the other (tests/sources/test_files_hostile.py)."""
    screen = line_screen([("verb", "value"), ("objectRef.resource", "value")])
    plain = json.dumps(audit()).encode()
    assert not screen.skip(plain)
    screen.learn(plain)  # lines with these slots meet no rule
    assert screen.skip(plain)
    depth = 1_000_000
    for field, opener, closer in (("requestObject", b"[", b"]"), ("user", b'{"a":', b"}"),
                                  ("objectRef", b'{"resource":"pods","x":', b"}"), ("unknownField", b"[", b"]")):
        text = json.dumps(audit(**{field: "@DEEP@"})).encode()
        deep = text.replace(b'"@DEEP@"', opener * depth + b"1" + closer * depth)
        assert screen.key(deep) is None and not screen.skip(deep), field
    bad_utf8 = plain.replace(b'"kubectl/v1.30"', b'"kubectl\xff/v1.30"')
    assert bad_utf8 != plain and screen.key(bad_utf8) is None and not screen.skip(bad_utf8)
    p = tmp_path / "audit.log"
    p.write_bytes(plain + b"\n" + bad_utf8 + b"\n" + plain.replace(b'"user": {', b'"user": ' + b'{"a":' * 5000
                                                                    + b"1" + b"}" * 5000 + b', "u": {') + b"\n")
    stats, warnings = ReadStats(), []
    list(read_paths([str(p)], stats, on_warning=warnings.append, screen=screen))
    assert stats.events == 2 and stats.invalid_utf8 == 1 and stats.bad == 1
    assert "nested too deeply" in warnings[-1]
