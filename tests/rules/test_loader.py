"""Loading rules: errors that name the file, metadata, audit levels, scopes, pickling."""

from __future__ import annotations

import pickle
import textwrap

import pytest
from ruletools import ev, rule_yaml

from kubehawk.rules import BUILTIN_DIR, Engine, RuleLoadError, RuleSet, Scope, load_rules


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def load(tmp_path, **kw):
    return load_rules(paths=[tmp_path], builtin=False, **kw)


GOOD = rule_yaml("sel: {verb: create}\ncondition: sel", title="good", rid="11111111-0000-0000-0000-000000000001")


# --- errors name the file and the problem -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("title: x\nlogsource: [unclosed\n", r"bad YAML: line \d+"),
        (rule_yaml("sel: {verb: get}\ncondition: sel and nothere"), r"nothere"),
        (rule_yaml("sel: {verb: get}\ncondition: sel and and"), r"bad condition"),
        (rule_yaml("sel: {verb|frobnicate: get}\ncondition: sel"), r"(?i)unknown modifier.*frobnicate"),
        (rule_yaml("sel: {verb|expand: '%who%'}\ncondition: sel"), r"%who%"),
        (rule_yaml("sel: {verb|re: '[a-'}\ncondition: sel"), r"(?i)regular expression"),
        (rule_yaml("sel: {sourceIPs|cidr: 10.0.0.0/33}\ncondition: sel"), r"(?i)cidr"),
        ("title: no logsource\ndetection:\n  sel: {verb: get}\n  condition: sel\n", r"(?i)log ?source"),
        (
            "title: windows\nlogsource: {product: windows, service: security}\n"
            "detection:\n  sel: {EventID: 1}\n  condition: sel\n",
            r"logsource must be product: kubernetes, service: audit",
        ),
        ("- just\n- a list\n", r"not a Sigma rule mapping"),
        (rule_yaml("sel: {verb: get}\ncondition: sel", extra="message: [not, text]\n"), r"message"),
    ],
)
def test_load_errors_name_the_file(tmp_path, text, what):
    p = write(tmp_path, "sub/bad.yml", text)
    with pytest.raises(RuleLoadError) as info:
        load(tmp_path)
    msg = str(info.value)
    assert msg.startswith(str(p) + ":"), msg
    assert info.value.path == str(p)
    import re

    assert re.search(what, msg), msg


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(RuleLoadError, match="no such rule file"):
        load_rules(paths=[tmp_path / "nope.yml"], builtin=False)


def test_collect_errors_keeps_the_good_rules(tmp_path):
    write(tmp_path, "a_good.yml", GOOD)
    write(tmp_path, "b_bad.yml", rule_yaml("sel: {verb: get}\ncondition: nosuch"))
    write(tmp_path, "c_bad.yaml", "title: [")
    rs = load(tmp_path, collect_errors=True)
    assert [r.title for r in rs.rules] == ["good"]
    assert len(rs.errors) == 2
    msgs = sorted(str(e) for e in rs.errors)
    assert "b_bad.yml: " in msgs[0] and "nosuch" in msgs[0]
    assert "c_bad.yaml: bad YAML" in msgs[1]


def test_duplicate_ids_name_both_files(tmp_path):
    a = write(tmp_path, "a.yml", GOOD)
    b = write(tmp_path, "b.yml", GOOD.replace("title: good", "title: twin"))
    with pytest.raises(RuleLoadError) as info:
        load(tmp_path)
    assert str(b) in str(info.value) and str(a) in str(info.value)
    assert "duplicate rule id" in str(info.value)


def test_multi_document_files_and_yaml_suffix(tmp_path):
    write(tmp_path, "many.yaml", GOOD + "---\n" + rule_yaml("sel: {verb: delete}\ncondition: sel", title="two"))
    write(tmp_path, "notes.txt", "not a rule")
    rs = load(tmp_path)
    assert [r.title for r in rs.rules] == ["good", "two"]


def test_single_file_path_and_string_path(tmp_path):
    p = write(tmp_path, "one.yml", GOOD)
    assert len(load_rules(paths=str(p), builtin=False)) == 1


# --- metadata -------------------------------------------------------------------------------


def test_rule_metadata(tmp_path):
    write(
        tmp_path,
        "r.yml",
        """\
        title: Privileged pod
        id: 5b2a9b9c-9d8e-4c2a-9f1e-0a8c5e8f2a11
        name: privileged_pod
        status: stable
        description: A privileged container was created.
        author: alice, bob
        references: [https://example.com]
        falsepositives: [CNI plugins]
        tags: [attack.privilege_escalation, attack.t1610, attack.t1078.001, ms-k8s.ms-ta9018]
        logsource: {product: kubernetes, service: audit, category: application}
        message: "{user} created privileged pod {namespace}/{name}"
        owner_team: platform
        detection:
          sel:
            verb: create
            x.pod_spec.containers.securityContext.privileged: true
          condition: sel
        """,
    )
    rs = load(tmp_path)
    r = rs.get("privileged_pod")
    assert r is rs.get("5b2a9b9c-9d8e-4c2a-9f1e-0a8c5e8f2a11") and len(rs) == 1
    assert (r.title, r.level, r.status, r.kind, r.generate) == ("Privileged pod", "medium", "stable", "event", True)
    assert r.author == "alice, bob" and r.references == ["https://example.com"]
    assert r.falsepositives == ["CNI plugins"]
    assert r.tags == ["attack.privilege_escalation", "attack.t1610", "attack.t1078.001", "ms-k8s.ms-ta9018"]
    assert r.techniques == ["MS-TA9018"]
    assert r.attack == ["T1610", "T1078.001"]
    assert r.message_template == "{user} created privileged pod {namespace}/{name}"
    assert r.custom == {"owner_team": "platform"}
    assert r.fields == {"verb", "x.pod_spec.containers.securityContext.privileged"}
    assert r.source.endswith("r.yml")


@pytest.mark.parametrize(
    ("field", "level"),
    [
        ("verb", "Metadata"),
        ("annotations.authorization.k8s.io/decision", "Metadata"),
        ("requestObject.spec.hostPID", "Request"),
        ("responseObject.status.token", "RequestResponse"),
        ("x.pod_spec.hostNetwork", "Request"),
        ("x.exec.command_line", "Metadata"),
        ("x.no_such_thing", "Metadata"),
    ],
)
def test_audit_level_is_derived_from_fields(field, level):
    rs = RuleSet.from_texts({"r.yml": rule_yaml(f"sel: {{{field}: x}}\ncondition: sel")})
    assert rs.rules[0].audit_level == level


def test_audit_level_takes_the_highest():
    d = "sel: {verb: create, requestObject.a: 1}\nresp: {responseObject.b: 2}\ncondition: sel or not resp"
    assert RuleSet.from_texts({"r.yml": rule_yaml(d)}).rules[0].audit_level == "RequestResponse"


# --- scopes -----------------------------------------------------------------------------------


def scopes_of(detection):
    return RuleSet.from_texts({"r.yml": rule_yaml(detection)}).rules[0].scopes


def test_scopes_from_dnf():
    d = """
sel_pod:
  verb: [create, update]
  objectRef.resource: pods
sel_exec:
  verb: create
  objectRef.resource: pods
  objectRef.subresource: [exec, attach]
filter:
  user.username: system:admin
condition: (sel_pod or sel_exec) and not filter
"""
    assert scopes_of(d) == [
        Scope(verbs=frozenset({"create", "update"}), resources=frozenset({"pods"})),
        Scope(verbs=frozenset({"create"}), resources=frozenset({"pods"}), subresources=frozenset({"exec", "attach"})),
    ]


def test_scopes_ignore_wildcards_and_other_fields():
    d = "sel:\n  verb: create\n  objectRef.resource: 'secret*'\n  objectRef.namespace: prod\n  userAgent: curl\ncondition: sel"
    assert scopes_of(d) == [Scope(verbs=frozenset({"create"}), namespaces=frozenset({"prod"}))]
    d = "sel: {user.username: alice, objectRef.apiGroup: rbac.authorization.k8s.io}\ncondition: sel"
    assert scopes_of(d) == [Scope(users=frozenset({"alice"}), api_groups=frozenset({"rbac.authorization.k8s.io"}))]


def test_scope_level_follows_fields():
    d = "sel: {verb: create, requestObject.spec.hostPID: true}\ncondition: sel"
    assert scopes_of(d) == [Scope(verbs=frozenset({"create"}), level="Request")]


def test_scopes_fall_back_to_unconstrained_beyond_the_bound():
    # 3^5 = 243 disjuncts > 64
    sels = "\n".join(
        f"s{i}:\n  - verb: v{i}\n  - objectRef.namespace: n{i}\n  - objectRef.resource: r{i}" for i in range(5)
    )
    d = sels + "\ncondition: all of s*"
    assert scopes_of(d) == [Scope()]


# --- builtin pack, pickling, rebuild ----------------------------------------------------------------


def test_builtin_pack_loads_beside_user_rules(tmp_path):
    write(tmp_path, "mine.yml", GOOD)
    mine = load(tmp_path)
    both = load_rules(paths=[tmp_path], builtin=True)
    n_builtin = len(list(BUILTIN_DIR.rglob("*.yml"))) if BUILTIN_DIR.is_dir() else 0
    assert len(both) >= len(mine)
    if n_builtin:
        assert len(both) > len(mine)
        assert all(r.source.startswith(str(BUILTIN_DIR)) for r in both.rules[:-1])
    assert both.rules[-1].title == "good"


def test_ruleset_and_engine_pickle_as_rule_text(tmp_path):
    write(tmp_path, "r.yml", rule_yaml("sel: {objectRef.namespace|expand: '%ns%'}\ncondition: sel", title="ns"))
    rs = load(tmp_path, variables={"ns": ["prod"]})
    eng = Engine(rs)
    eng2 = pickle.loads(pickle.dumps(eng))
    e = ev(objectRef={"resource": "pods", "namespace": "prod"})
    assert [m.rule.title for m in eng2.process(e)] == ["ns"]
    assert eng2.ruleset.variables == {"ns": ["prod"]}
    # rebuilding reads no file: the text travelled with the pickle
    (tmp_path / "r.yml").unlink()
    rs3 = pickle.loads(pickle.dumps(rs))
    assert rs3.rules[0].matches(e)
    # a Rule (inside an alert) pickles as metadata
    r = pickle.loads(pickle.dumps(rs.rules[0]))
    assert r.title == "ns" and r.predicate is None


def test_from_texts_and_get():
    rs = RuleSet.from_texts([("a.yml", GOOD)])
    assert rs.get("11111111-0000-0000-0000-000000000001").title == "good"
    assert rs.get("nope") is None
    assert "11111111-0000-0000-0000-000000000001" in rs
    assert rs.sources == [("a.yml", GOOD)]


def test_sigma_filters_apply_to_the_rules_they_name(tmp_path):
    write(tmp_path, "rule.yml", GOOD.replace("title: good", "title: good\nname: creates"))
    write(
        tmp_path,
        "allow.yml",
        """\
        title: allow the deployer
        logsource: {product: kubernetes, service: audit}
        filter:
          rules: [creates]
          selection:
            user.username: deployer
          condition: not selection
        """,
    )
    eng = Engine(load(tmp_path))
    assert eng.process(ev(verb="create", user={"username": "deployer"})) == []
    assert len(eng.process(ev(verb="create", auditID="b", user={"username": "mallory"}))) == 1


# --- fields no audit event holds: a warning naming the file and the field ---------------------


@pytest.mark.parametrize(
    ("detection", "field"),
    [
        ("sel: {hostPath: '/etc'}\ncondition: sel", "'hostPath'"),  # SigmaHQ rules name these at the top
        ("sel: {capabilities: 'SYS_ADMIN'}\ncondition: sel", "'capabilities'"),
        ("sel: {apiGroup: 'rbac.authorization.k8s.io'}\ncondition: sel", "'apiGroup'"),
        ("sel: {objectRef.group: apps}\ncondition: sel", "'objectRef.group'"),
        ("sel: {verb.name: get}\ncondition: sel", "'verb.name'"),  # below a string
        ("sel: {responseStatus.code: 'ALLOW'}\ncondition: sel", "'responseStatus.code' holds an integer"),
        ("sel: {objectRef.name|fieldref: objectRef.owner}\ncondition: sel", "'objectRef.owner' (fieldref)"),
    ],
)
def test_unknown_field_is_a_load_warning_naming_file_and_field(tmp_path, detection, field):
    write(tmp_path, "sigmahq/odd.yml", rule_yaml(detection, title="odd"))
    rs = load(tmp_path)
    assert len(rs.rules) == 1 and not rs.errors  # it loads: a warning, not an error
    assert len(rs.warnings) == 1
    w = rs.warnings[0]
    assert w.startswith(str(tmp_path / "sigmahq" / "odd.yml") + ": 'odd': field ") and field in w


@pytest.mark.parametrize(
    "detection",
    [
        "sel: {objectRef.apiGroup: apps, user.groups: x, sourceIPs: '1.2.3.4'}\ncondition: sel",
        "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: sel",  # open maps
        "sel: {user.extra.authentication.kubernetes.io/pod-name: x, impersonatedUser.extra.a: b}\ncondition: sel",
        "sel: {requestObject.spec.anything.at.all: x, responseObject.whatever: y}\ncondition: sel",
        "sel: {x.exec.shell: true, x.whatever: 1}\ncondition: sel",
        "sel: {responseStatus.code: [403, '401'], responseStatus.details.causes.reason: x}\ncondition: sel",
        "sel: {responseStatus.code|startswith: '4'}\ncondition: sel",
        "sel: {responseStatus.metadata.continue: x, requestReceivedTimestamp|exists: true}\ncondition: sel",
    ],
)
def test_audit_event_fields_and_open_maps_load_without_warning(detection):
    rs = RuleSet.from_texts([("ok.yml", rule_yaml(detection))])
    assert rs.warnings == []


def test_builtin_pack_names_only_fields_an_event_holds():
    assert load_rules().warnings == []


def test_field_warnings_survive_the_rules_cache(tmp_path):
    write(tmp_path, "odd.yml", rule_yaml("sel: {hostPath: '/'}\ncondition: sel", title="odd"))
    first = load(tmp_path).warnings
    assert first and load(tmp_path).warnings == first  # the second load is restored from the cache
