"""Raw-body guards and keyword prefilters are only shortcuts: every rule must decide exactly as
its unguarded condition does, on bodies written in every way JSON allows (escapes, whitespace,
dotted keys, keys as values, JSON patches, lists, numbers in exponent form, non-ASCII text)."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from ruletools import rule_yaml, ruleset

from kubehawk.config import Config
from kubehawk.event import decode_event
from kubehawk.rules import Engine, needles
from kubehawk.rules.compiler import build
from kubehawk.rules.guards import _guard_of
from kubehawk.rules.ir import leaves
from kubehawk.rules.regex import regex_literals

CFG = Config.from_dict({"allowlists": {"privileged": [{"namespace": "kube-system"}],
                                       "trusted_images": [{"image": "registry.k8s.io/*"}],
                                       "team.a": [{"namespace": "default"}]}})

DETECTIONS = [
    "sel: {x.containers.securityContext.privileged: true}\ncondition: sel",
    "sel: {x.pod_spec.hostPID: true}\nh: {x.pod_spec.hostNetwork: true}\ncondition: sel or h",
    "sel: {requestObject.spec.hostPID: true, verb: create}\ncondition: sel",
    "sel: {x.images|re: '(^|/)(kali|xmrig|cdk)(:[^/]*)?$'}\ncondition: sel",
    "sel: {x.images|contains: ['evil', 'MINER']}\ncondition: sel",
    "sel: {x.images|cased|contains: Evil}\ncondition: sel",
    "sel: {x.registry: docker.io}\ncondition: sel",
    "sel: {x.registry|startswith: 'quay'}\ncondition: sel",
    "sel: {x.pod_spec.volumes.hostPath.path|startswith: [/etc, /var/run/docker.sock]}\ncondition: sel",
    "sel: {x.pod_spec.volumes.hostPath.path: '/'}\ncondition: sel",
    "sel: {requestObject.metadata.annotations.kubernetes.io/config.mirror|exists: true}\ncondition: sel",
    "sel: {x.containers.securityContext.capabilities.add: [SYS_ADMIN, ALL]}\ncondition: sel",
    "sel: {x.containers.securityContext.runAsUser: 0}\ncondition: sel",
    "sel: {x.pod_spec.securityContext.runAsNonRoot: false}\ncondition: sel",
    "sel: {x.containers.args|contains: 'stratum+tcp'}\ncondition: sel",
    "sel: {requestObject.data.a|contains: password}\ncondition: sel",
    "sel: {requestObject.metadata.name: '*'}\ncondition: sel",
    "sel: {requestObject.metadata.name|re: '^web-[0-9]+$'}\ncondition: sel",
    "sel: {responseObject.status.phase: Running}\ncondition: sel",
    "sel: {responseObject.spec.hostPID: 'true'}\ncondition: sel",
    "sel: {x.allowlisted.privileged: true}\ncondition: sel",
    "sel: {x.allowlisted.trusted_images: false, x.images|exists: true}\ncondition: sel",
    "sel: {x.containers.securityContext.privileged: true}\nown: {requestObject.metadata.ownerReferences.controller: true}"
    "\ncondition: sel and not own",
    "a: {x.pod_spec.hostIPC: true}\nb: {x.images|contains: evil}\nc: {x.pod_spec.hostPID: true}\n"
    "condition: (a or b) and not c",
    "sel: {x.containers.securityContext.privileged|exists: true}\ncondition: sel",
    "sel: {x.pod_spec.hostPID|exists: false}\ncondition: sel",
    "sel: {x.pod_spec.hostPID: null}\ncondition: sel",
    "sel: {requestObject.securityContext.privileged: true}\ncondition: sel",
    "sel: {x.containers.name|cased: Ke}\ncondition: sel",
    "sel: {x.containers.name: 'k*'}\ncondition: sel",
    "sel: {x.images|re|i: 'EVIL'}\ncondition: sel",
    "kw:\n  - password\n  - 'BEGIN RSA PRIVATE KEY'\n  - 'kali*tools'\n  - '/etc/shadow'\ncondition: kw",
    "kw:\n  - '|cased': x\ncondition: kw",
    "kw:\n  - 'Ke'\n  - '8080'\ncondition: kw",
    "kw: [kzebra]\ncondition: kw",
    "kw: ['1000']\ncondition: kw",
    "kw: ['/zeb/ra']\ncondition: kw",
    "kw: ['zebra*q']\ncondition: kw",
    "sel: {requestObject.spec: '*'}\ncondition: sel",
    "sel: {x.allowlisted.team.a: true}\ncondition: sel",
    "sel: {x.containers.securityContext: '*'}\ncondition: sel",
]
# Written once per body at most, so a keyword rule on them depends on that one spelling.
RARE = ["zebra", "ZEBRA", "\u212aZebra", "/zeb/ra", "zebra q", "zebraq"]

KEYS = ["privileged", "hostPID", "hostNetwork", "hostIPC", "image", "name", "path", "add", "runAsUser",
        "runAsNonRoot", "args", "data", "phase", "kubernetes.io/config.mirror", "controller"]
STRINGS = ["evil/miner:1", "nginx", "quay.io/x", "registry.k8s.io/pause", "kali", "xmrig", "cdk:1", "web-12",
           "/etc", "/etc/kubernetes", "/", "/var/run/docker.sock", "SYS_ADMIN", "ALL", "password=x", "Running",
           "true", "false", "stratum+tcp://pool", "\u212ae", "Ke", "ke", "k\u0130", "kali tools", "8080", "Evil",
           "privileged", "hostPID", 'a"b', "a\\b", "BEGIN RSA PRIVATE KEY", "/etc/shadow", ""]


def scalar(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.55:
        return rng.choice(STRINGS)
    if r < 0.75:
        return rng.choice([True, False])
    if r < 0.85:
        return rng.choice([0, 1, 0.0, 8080, 1000, 1000])
    if r < 0.9:
        return None
    return [rng.choice(STRINGS) for _ in range(rng.randint(0, 2))]


def container(rng: random.Random) -> dict:
    c: dict = {"name": rng.choice(["c", "Ke", "k\u0130", "kali"])}
    if rng.random() < 0.9:
        c["image"] = rng.choice(STRINGS + [5, None, ["evil"]])
    sc: dict = {}
    for k in ("privileged", "runAsUser", "runAsNonRoot"):
        if rng.random() < 0.4:
            sc[k] = scalar(rng)
    if rng.random() < 0.3:
        sc["capabilities"] = {"add": rng.choice([["SYS_ADMIN"], ["NET_RAW", "ALL"], "SYS_ADMIN", [], [["ALL"]]])}
    if rng.random() < 0.15:
        sc["securityContext.privileged"] = True  # a dotted key: Sigma paths match it
    if sc or rng.random() < 0.5:
        c["securityContext"] = sc
    if rng.random() < 0.2:
        c["args"] = [rng.choice(STRINGS)]
    return c


def spec(rng: random.Random) -> dict:
    s: dict = {"containers": [container(rng) for _ in range(rng.randint(0, 2))]}
    if rng.random() < 0.3:
        s["initContainers"] = [container(rng)]
    for k in ("hostPID", "hostNetwork", "hostIPC"):
        if rng.random() < 0.3:
            s[k] = scalar(rng)
    if rng.random() < 0.3:
        s["volumes"] = [{"name": "v", "hostPath": {"path": rng.choice(STRINGS)}}]
    if rng.random() < 0.1:
        s["volumes.hostPath.path"] = "/etc"  # dotted key
    if rng.random() < 0.2:
        s["securityContext"] = {"runAsNonRoot": scalar(rng)}
    if rng.random() < 0.2:
        s["note"] = rng.choice(KEYS)  # a key's name written as a value
    return s


def body(rng: random.Random, kind: str) -> Any:
    r = rng.random()
    if r < 0.15:  # JSON patch: keys inside pointers
        ops = []
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(["/spec/hostPID", "/spec/containers/0/securityContext/privileged",
                               "/spec/containers/0/image", "/spec/containers/-", "/spec/volumes/0/hostPath/path",
                               "/metadata/annotations/kubernetes.io~1config.mirror", "/spec/template/spec/hostPID",
                               "/spec/containers/0/securityContext"])
            value = container(rng) if path.endswith("-") else scalar(rng)
            if path.endswith("securityContext"):
                value = {"privileged": True}
            ops.append({"op": rng.choice(["add", "replace", "remove"]), "path": path, "value": value})
        return ops
    if r < 0.2:
        return rng.choice([[], {}, "x", 5, [{"spec": {"hostPID": True}}]])
    meta: dict = {"name": rng.choice(["web-1", "web-12", "db", "Ke"])}
    if rng.random() < 0.2:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    if rng.random() < 0.3:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "controller": rng.choice([True, False, "true"])}]
    out: dict = {"kind": kind, "metadata": meta}
    if kind == "ConfigMap":
        out["data"] = {rng.choice(["a", "b.c"]): rng.choice(STRINGS) for _ in range(2)}
    elif kind == "Pod":
        out["spec"] = spec(rng)
        if rng.random() < 0.3:
            out["status"] = {"phase": rng.choice(["Running", "Pending", 5])}
    else:
        out["spec"] = {"template": {"spec": spec(rng)}}
    if rng.random() < 0.1:
        out["securityContext"] = {"privileged": True}
    if rng.random() < 0.4:
        meta["labels"] = {"rare": rng.choice(RARE)}
    return out


def write(v: Any, rng: random.Random, mode: str) -> str:
    """JSON text for ``v``, spelled in an odd but valid way according to ``mode``."""
    ws = (lambda: rng.choice(["", " ", "\n"])) if mode == "spaces" else (lambda: "")
    if v is True or v is False or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, int):
        if mode == "numbers":
            return rng.choice(["1e3", "1000.0", "1000"]) if v == 1000 else rng.choice([str(v), f"{v}e0", f"{v}.0"])
        return str(v)
    if isinstance(v, float):
        return rng.choice([repr(v), f"{v:e}"])
    if isinstance(v, str):
        return write_str(v, rng, mode)
    if isinstance(v, list):
        return "[" + ws() + ("," + ws()).join(write(x, rng, mode) for x in v) + ws() + "]"
    items = [write_str(k, rng, mode) + ws() + ":" + ws() + write(x, rng, mode) for k, x in v.items()]
    return "{" + ws() + ("," + ws()).join(items) + ws() + "}"


def write_str(s: str, rng: random.Random, mode: str) -> str:
    out = []
    for ch in s:
        if mode == "unicode" and rng.random() < 0.3:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else msgspec.json.encode(ch).decode()[1:-1])
        elif ch == "/" and mode == "slashes" and rng.random() < 0.5:
            out.append("\\/")
        elif ch in '"\\':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


MODES = ["plain", "plain", "unicode", "slashes", "spaces", "numbers"]


def random_line(rng: random.Random, i: int) -> bytes:
    resource, kind = rng.choice([("pods", "Pod"), ("deployments", "Deployment"), ("configmaps", "ConfigMap"),
                                 ("cronjobs", "CronJob")])
    head: dict = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"g-{i}", "stage": "ResponseComplete",
        "verb": rng.choice(["create", "patch", "update"]), "requestURI": f"/api/v1/{resource}",
        "user": {"username": rng.choice(["alice", "system:serviceaccount:kube-system:rs", "Ke"])},
        "objectRef": {"resource": resource, "namespace": rng.choice(["default", "kube-system"])},
        "responseStatus": {"code": 201},
    }
    if rng.random() < 0.2:
        head["objectRef"]["subresource"] = rng.choice(["status", "ephemeralcontainers"])
    mode = rng.choice(MODES)
    parts = [write(head, rng, "plain")[:-1]]
    if rng.random() < 0.8:
        parts.append('"requestObject":' + write(body(rng, kind), rng, mode))
    elif rng.random() < 0.5:
        parts.append('"requestObject":null')
    if rng.random() < 0.3:
        parts.append('"responseObject":' + write(body(rng, kind), rng, rng.choice(MODES)))
    return (parts[0] + "," + ",".join(parts[1:]) + "}").encode() if len(parts) > 1 else (parts[0] + "}").encode()


@pytest.mark.parametrize("config", [CFG, None])
def test_guarded_rules_equal_unguarded_on_adversarial_bodies(config):
    rs = ruleset(*[rule_yaml(d, title=f"g{i}") for i, d in enumerate(DETECTIONS)])
    plain = [(r.title, build(r.ir, guards=False)) for r in rs.rules]
    eng = Engine(rs, config)
    unlined_eng = Engine(rs, config)  # its own, so that the same auditIDs are not deduplicated
    guarded = sum(1 for r in rs.rules for lf in leaves(r.ir) if _guard_of(lf) is not None)
    assert guarded >= 20  # the guards this test is about are in place
    rng = random.Random(5)
    hits: dict[str, int] = {}
    for i in range(6000):
        line = random_line(rng, i)
        e = decode_event(line, f"gen:{i}")
        got = [m.rule.title for m in eng.process(e)]  # binds the config
        expected = []
        for title, test in plain:
            try:
                if test(e):
                    expected.append(title)
            except Exception:  # noqa: BLE001 - the engine counts such errors and goes on
                pass
        direct = [r.title for r in rs.rules if r.predicate(e)]
        assert got == expected == direct, (line, got, expected, direct)
        if i % 3 == 0:  # read from text, the event has no line: keywords search the head re-encoded
            unlined = decode_event(line.decode(), f"gen:{i}")
            assert unlined._line is None and e._line == line
            assert [m.rule.title for m in unlined_eng.process(unlined)] == got, line
        for t in got:
            hits[t] = hits.get(t, 0) + 1
    # the plans of pod and workload writes are screened (presence_screen), so that is compared too
    from kubehawk.rules.index import ScreenedPlan

    assert any(isinstance(p, ScreenedPlan) for _, p in eng.index.remembered())
    # every rule fires on some event, so the comparison covers each of them
    missing = [r.title for r in rs.rules if r.title not in hits]
    # without a config no allowlist exists, so the two allowlist rules cannot fire
    allowlist_rules = [f"g{i}" for i, d in enumerate(DETECTIONS) if "x.allowlisted" in d]
    assert missing == ([] if config else allowlist_rules), (missing, hits)


def test_guards_reject_without_decoding():
    rs = ruleset(rule_yaml("sel: {x.containers.securityContext.privileged: true}\ncondition: sel"),
                 rule_yaml("sel: {x.images|re: '(kali|xmrig)'}\ncondition: sel"),
                 rule_yaml("kw: [password, apikey]\ncondition: kw"))
    eng = Engine(rs)
    line = (b'{"auditID":"1","verb":"create","objectRef":{"resource":"pods"},"requestObject":{"kind":"Pod",'
            b'"spec":{"containers":[{"name":"a","image":"nginx:1"}]}}}')
    e = decode_event(line)
    assert eng.process(e) == []
    assert e._req is not None and e._req.__class__.__name__ == "_Unset"  # the body was never decoded
    hit = decode_event(line.replace(b'"nginx:1"', b'"x/xmrig:2"'))
    assert [m.rule.id for m in eng.process(hit)] == [rs.rules[1].id]


@pytest.mark.parametrize(("pattern", "want"), [
    ("(^|/)(kali|xmrig)(:.*)?$", ["kali", "xmrig"]),
    ("abc", ["abc"]),
    ("ab?c", ["a"]),
    ("(ab)?c", ["c"]),
    ("a*", None),
    ("foo|bar|", None),
    ("(?i)abc", None),
    ("x{,3}y", ["y"]),
    ("[ab]cd+", ["c"]),
])
def test_regex_literals(pattern, want):
    assert regex_literals(pattern) == want


def test_regex_prefilter_keeps_regex_semantics():
    import re

    rng = random.Random(3)
    patterns = ["(^|/)(kali|xmrig)(:.*)?$", "a(b|cd)+e", "^x.?y$", "(foo|ba+r)z", "q{2,}", "[a-c]d(e|f)"]
    alphabet = "abcdefqxyz/:kalimrgo"
    for p in patterns:
        rs = ruleset(rule_yaml(f"sel: {{requestObject.v|re: '{p}'}}\ncondition: sel"))
        rule = rs.rules[0]
        search = re.compile(p).search
        for _ in range(400):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            e = decode_event(msgspec.json.encode({"auditID": "1", "verb": "get", "requestObject": {"v": s}}))
            assert rule.matches(e) == (search(s) is not None), (p, s)


@pytest.mark.parametrize("with_re2", [True, False])
def test_presence_screen_drops_body_rules_at_once_and_decides_as_they_do(monkeypatch, with_re2):
    """A plan of several body rules is screened: one search of the body for all their keys drops
    the rules whose keys are missing, and what is left decides exactly as the rules would."""
    import sys

    from kubehawk.rules.index import ScreenedPlan

    if not with_re2:
        monkeypatch.setitem(sys.modules, "re2", None)  # `import re2` fails: one `in` per key
    monkeypatch.setattr(needles, "_searchers", {})
    rs = ruleset(*[rule_yaml(d, title=f"s{i}") for i, d in enumerate([
        "sel: {verb: create, x.containers.securityContext.privileged: true}\ncondition: sel",
        "sel: {verb: create, x.pod_spec.hostPID: true}\nh: {x.pod_spec.hostIPC: true}\ncondition: sel or h",
        "sel: {verb: create, x.pod_spec.volumes.hostPath.path|startswith: /etc}\ncondition: sel",
        "sel: {verb: create, x.containers.securityContext.capabilities.add: SYS_ADMIN}\ncondition: sel",
        "sel: {verb: create, x.images|re: '(^|/)xmrig(:.*)?$'}\ncondition: sel",
        "sel: {verb: create, objectRef.resource: pods}\ncondition: sel",  # no body test: never screened
    ])])
    plain = [(r.title, build(r.ir, guards=False)) for r in rs.rules]
    eng = Engine(rs)
    pod = ('{"auditID":"%s","verb":"create","objectRef":{"resource":"pods"},"requestObject":{"kind":"Pod",'
           '"spec":{%s"containers":[{"name":"a","image":"%s"%s}]}}}')
    lines = [
        pod % ("plain", "", "nginx:1", ""),
        pod % ("priv", "", "nginx:1", ',"securityContext":{"privileged":true}'),
        pod % ("priv-false", "", "nginx:1", ',"securityContext":{"privileged":false}'),
        pod % ("escaped", "", "nginx:1", ',"securityContext":{"\\u0070rivileged":true}'),
        pod % ("ipc", '"hostIPC":true,', "nginx:1", ""),
        pod % ("path", '"volumes":[{"name":"v","hostPath":{"path":"/etc/kubernetes"}}],', "nginx:1", ""),
        pod % ("cap", "", "nginx:1", ',"securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}'),
        pod % ("miner", "", "evil/xmrig:2", ""),
        '{"auditID":"nobody","verb":"create","objectRef":{"resource":"pods"}}',
        '{"auditID":"patch","verb":"create","objectRef":{"resource":"pods"},"requestObject":'
        '[{"op":"add","path":"/spec/hostPID","value":true}]}',
    ]
    screened = 0
    for line in lines:
        e = decode_event(line.encode())
        plan = eng.index.plan(e)
        if "requestObject" in line:  # without a body the index has ruled the body rules out already
            assert isinstance(plan, ScreenedPlan), line
            if len(plan.screen(e)) < len(plan):
                screened += 1
        got = [m.rule.title for m in eng.process(e)]
        assert got == [t for t, test in plain if test(e)], line
    assert screened >= 5
    plain_pod = decode_event((pod % ("again", "", "nginx:1", "")).encode())
    plan = eng.index.plan(plain_pod)
    # every body rule is dropped, the image rule by its guard on the written images
    assert [r.title for r, _ in plan.screen(plain_pod)] == ["s5"]
    assert eng.process(plain_pod)[0].rule.title == "s5"
    assert plain_pod._req.__class__.__name__ == "_Unset"  # dropped without decoding the body


def test_screen_uses_the_cheapest_checks_of_a_rule():
    """A rule of several parts is screened by the part whose checks cost least: the host keys one
    search of the body finds, not a value scan of ownerReferences.controller that every
    controller-made pod passes (which would leave the rule to be called on each of them)."""
    from kubehawk.rules.index import ScreenedPlan

    rs = ruleset(*[rule_yaml(d, title=f"c{i}") for i, d in enumerate([
        "sel: {verb: create, requestObject.metadata.ownerReferences.controller: true}\n"
        "host:\n  - x.pod_spec.hostPID: true\n  - x.pod_spec.hostIPC: true\n  - x.pod_spec.hostNetwork: true\n"
        "condition: sel and host",
        "sel: {verb: create, x.containers.securityContext.privileged: true}\ncondition: sel",
    ])])
    eng = Engine(rs)
    line = ('{"auditID":"p","verb":"create","objectRef":{"resource":"pods"},"requestObject":{"kind":"Pod",'
            '"metadata":{"name":"w-1","ownerReferences":[{"kind":"ReplicaSet","name":"w","controller":true}]},'
            '"spec":{"containers":[{"name":"a","image":"nginx"}]}}}')
    e = decode_event(line.encode())
    plan = eng.index.plan(e)
    assert isinstance(plan, ScreenedPlan)
    assert plan.screen(e) == []  # no host key in the body: both rules dropped, none called
    assert eng.process(e) == []
    host = decode_event(line.replace('"spec":{', '"spec":{"hostPID":true,').encode())
    assert [m.rule.title for m in Engine(rs).process(host)] == ["c0"]
