"""Loading and validation behave as kube-apiserver's reader.go and validation.go."""

from __future__ import annotations

import pytest

from kubehawk.policy import Policy, PolicyError, validate_policy

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        Policy.loads(text, source="p.yaml")
    return info.value.errors


def test_level_required_and_unsupported():
    assert errors_of(HEAD + "rules:\n- verbs: [get]\n") == ["rules[0].level: Required value"]
    assert errors_of(HEAD + "rules:\n- level: metadata\n") == [
        'rules[0].level: Unsupported value: "metadata": supported values: "None", "Metadata", "Request", '
        '"RequestResponse"'
    ]


def test_non_resource_url_messages():
    errs = errors_of(HEAD + 'rules:\n- level: None\n  nonResourceURLs: ["healthz", "", "/logs/*.log", "*", "/a*"]\n')
    assert errs == [
        "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' "
        "character",
        "rules[0].nonResourceURLs[1]: Invalid value: \"\": non-resource URL rules must begin with a '/' character",
        "rules[0].nonResourceURLs[2]: Invalid value: \"/logs/*.log\": non-resource URL wildcards '*' must be the "
        "final character of the rule",
    ]


def test_mixing_resources_and_urls():
    for extra in ('  namespaces: ["a"]\n', '  resources: [{group: ""}]\n'):
        errs = errors_of(HEAD + 'rules:\n- level: None\n  nonResourceURLs: ["/x"]\n' + extra)
        assert errs == ['rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both '
                        "regular resources and non-resource URLs"]


def test_group_must_be_a_dns_subdomain_and_path_has_no_entry_index():
    errs = errors_of(HEAD + "rules:\n- level: None\n  resources:\n  - group: apps\n  - group: rbac.authorization.k8s.io/v1\n")
    assert len(errs) == 1
    assert errs[0].startswith('rules[0].resources.group: Invalid value: "rbac.authorization.k8s.io/v1": a lowercase '
                              "RFC 1123 subdomain must consist of lower case alphanumeric characters")
    # "*" and "" are fine.
    Policy.loads(HEAD + 'rules:\n- level: None\n  resources: [{group: "*"}, {group: ""}]\n')
    assert "Invalid value" in errors_of(HEAD + "rules:\n- level: None\n  resources: [{group: Apps}]\n")[0]


def test_resource_names_need_resources():
    errs = errors_of(HEAD + 'rules:\n- level: None\n  resources: [{group: "", resourceNames: [a, b]}]\n')
    assert errs == ['rules[0].resources.resourceNames: Invalid value: []string{"a", "b"}: using resourceNames '
                    "requires at least one resource"]


def test_omit_stages_policy_and_rule_level():
    errs = errors_of(HEAD + "omitStages: [Received]\nrules:\n- level: None\n  omitStages: [RequestReceived, Done]\n")
    assert errs == [
        'omitStages[0]: Invalid value: "Received": allowed stages are '
        "RequestReceived,ResponseStarted,ResponseComplete,Panic",
        'rules[0].omitStages[1]: Invalid value: "Done": allowed stages are '
        "RequestReceived,ResponseStarted,ResponseComplete,Panic",
    ]


def test_errors_are_aggregated_like_the_apiserver():
    with pytest.raises(PolicyError) as info:
        Policy.loads(HEAD + "rules:\n- {}\n- level: Foo\n", source="audit.yaml")
    e = info.value
    assert e.aggregate.startswith("[rules[0].level: Required value, rules[1].level: Unsupported value")
    assert str(e).startswith("audit.yaml: [")
    assert e.located()[0] == "audit.yaml:4: rules[0].level: Required value"
    with pytest.raises(PolicyError) as one:
        Policy.loads(HEAD + "rules:\n- {}\n")
    assert one.value.aggregate == "rules[0].level: Required value"


def test_api_versions():
    Policy.loads(HEAD + "rules:\n- level: None\n")
    for removed in ("audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"):
        errs = errors_of(f"apiVersion: {removed}\nkind: Policy\nrules:\n- level: None\n")
        assert errs[0].startswith(f'failed decoding: no kind "Policy" is registered for version "{removed}"')
    assert errors_of("rules:\n- level: None\n")[0].startswith("unknown group version field")
    assert "Kind" in errors_of("apiVersion: audit.k8s.io/v1\nrules:\n- level: None\n")[0]
    assert "no kind \"Pod\"" in errors_of("apiVersion: audit.k8s.io/v1\nkind: Pod\nrules:\n- level: None\n")[0]


def test_zero_rules_and_empty_file_are_refused():
    assert errors_of(HEAD) == ["loaded illegal policy with 0 rules"]
    assert errors_of(HEAD + "rules: []\n") == ["loaded illegal policy with 0 rules"]
    assert "empty" in errors_of("")[0]
    assert "empty" in errors_of("# only a comment\n")[0]
    # Validation errors come before the zero-rules check (reader.go order).
    assert errors_of(HEAD + "omitStages: [x]\n")[0].startswith("omitStages[0]")


def test_unknown_fields_are_dropped_with_a_warning_and_broaden_the_rule():
    p = Policy.loads(HEAD + "rules:\n- level: Metadata\n  resources:\n  - group: machineconfiguration.openshift.io\n"
                     "    resource: [machineconfigs]\n  Verbs: [get]\n- level: None\n")
    paths = sorted(w.path for w in p.warnings)
    assert paths == ["rules[0].Verbs", "rules[0].resources[0].resource"]
    assert p.rules[0].resources[0].resources == ()
    assert p.rules[0].verbs == ()
    assert all(w.rule_index == 0 and w.line for w in p.warnings)
    # The entry now covers every resource of the group, for every verb.
    from kubehawk.policy import Request

    d = p.evaluate(Request(user="a", verb="delete", api_group="machineconfiguration.openshift.io",
                           resource="machineconfigpools"))
    assert d.level == "Metadata"


def test_duplicate_fields_warn_and_last_wins():
    p = Policy.loads(HEAD + "rules:\n- level: None\n  level: Metadata\n")
    assert p.rules[0].level == "Metadata"
    assert [w.path for w in p.warnings] == ["rules[0].level"]


def test_type_errors_name_the_field_and_line():
    with pytest.raises(PolicyError) as info:
        Policy.loads(HEAD + "rules:\n- level: None\n  users: alice\n", source="p.yaml")
    assert info.value.located() == ['p.yaml:5: failed decoding: rules[0].users: expected a list of strings, got string "alice"']
    assert "expected a boolean" in errors_of(HEAD + "omitManagedFields: yes please\nrules:\n- level: None\n")[0]
    assert "rules: expected a list" in errors_of(HEAD + "rules: {level: None}\n")[0]


def test_yaml_syntax_error_is_a_policy_error_with_a_line():
    with pytest.raises(PolicyError) as info:
        Policy.loads(HEAD + "rules:\n- level: [None\n", source="p.yaml")
    assert info.value.errors[0].startswith("failed decoding:")
    assert info.value.lines[0] is not None


def test_json_policy_and_metadata_are_accepted(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"apiVersion":"audit.k8s.io/v1","kind":"Policy","metadata":{"name":"x"},'
                 '"rules":[{"level":"Metadata","omitStages":["RequestReceived"]}]}')
    p = Policy.load(f)
    assert p.metadata == {"name": "x"} and not p.warnings
    assert p.source == str(f)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError) as info:
        Policy.load(tmp_path / "nope.yaml")
    assert "failed to read file path" in str(info.value)


def test_from_dict_without_check_decodes_invalid_policies_for_the_linter():
    p = Policy.from_dict({"rules": [{"level": "Foo"}]}, check=False)
    assert validate_policy(p) == [
        'rules[0].level: Unsupported value: "Foo": supported values: "None", "Metadata", "Request", "RequestResponse"'
    ]


def test_round_trip_to_dict():
    text = HEAD + ("omitStages: [RequestReceived]\nrules:\n- level: Request\n  users: [a]\n  userGroups: [g]\n"
                   "  verbs: [get]\n  namespaces: [n]\n  resources: [{group: apps, resources: [deployments], "
                   "resourceNames: [d]}]\n  omitManagedFields: true\n- level: None\n  nonResourceURLs: [/x*]\n")
    p = Policy.loads(text)
    again = Policy.from_dict(p.to_dict())
    assert again.rules == tuple(type(r)(**{**r.__dict__, "line": None}) for r in p.rules)
