import datetime as dt

import pytest

from kubehawk.config import Config, ConfigError

ISSUE_SCHEMA = """
timezone: Europe/Moscow
business_hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "19:00"}
gitops: {identities: ["system:serviceaccount:argocd:argocd-application-controller"], namespaces: ["bank", "payments"]}
honeytokens: {serviceaccounts: ["kube-system/backup-operator"], secrets: ["default/db-admin-credentials"]}
allowlists: {privileged: [{namespace: kube-system, serviceaccount: "*"}, {image: "registry.k8s.io/*"}], hostpath: [{namespace: monitoring}]}
"""


def test_issue_schema_is_accepted(tmp_path):
    p = tmp_path / "kubehawk.yaml"
    p.write_text(ISSUE_SCHEMA)
    cfg = Config.load(p)
    assert str(cfg.timezone) == "Europe/Moscow"
    assert cfg.business_hours.start == dt.time(9) and cfg.business_hours.end == dt.time(19)
    assert cfg.gitops_namespaces == {"bank", "payments"}
    assert "default/db-admin-credentials" in cfg.honeytoken_secrets
    assert len(cfg.allowlists["privileged"]) == 2
    v = cfg.vars
    assert v["gitops_namespaces"] == ["bank", "payments"]
    assert v["honeytoken_serviceaccount_users"] == ["system:serviceaccount:kube-system:backup-operator"]
    assert v["allowlist_privileged_image"] == ["registry.k8s.io/*"]


def test_unquoted_yaml_times_are_understood():
    cfg = Config.from_dict({"business_hours": {"start": 540, "end": "18:30"}})  # YAML 1.1 reads 09:00 as 540
    assert cfg.business_hours.start == dt.time(9) and cfg.business_hours.end == dt.time(18, 30)


@pytest.mark.parametrize("data, key", [
    ({"timezon": "UTC"}, "timezon: unknown key"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
    ({"business_hours": {"days": ["mon", "funday"]}}, r"business_hours.days\[1\]: unknown day"),
    ({"business_hours": {"start": "25:00"}}, "business_hours.start"),
    ({"business_hours": {"hours": 1}}, "business_hours.hours: unknown key"),
    ({"gitops": {"identities": "argocd"}}, "gitops.identities: expected a list"),
    ({"gitops": {"identities": [3]}}, r"gitops.identities\[0\]: expected a non-empty string"),
    ({"honeytokens": {"secrets": ["no-namespace"]}}, r"honeytokens.secrets\[0\]: expected namespace/name"),
    ({"allowlists": {"privileged": [{"team": "x"}]}}, r"allowlists.privileged\[0\].team: unknown key"),
    ({"allowlists": {"privileged": [{}]}}, r"allowlists.privileged\[0\]: an empty entry"),
    ({"allowlists": {"privileged": {"namespace": "x"}}}, "allowlists.privileged: expected a list"),
    ({"outputs": {"type": "stdout"}}, "outputs: expected a list"),
    (["not", "a", "mapping"], "expected a mapping at the top level"),
])
def test_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        Config.from_dict(data, source="k.yaml")


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text("timezone: UTC\ngitops: {identities: [\n")
    with pytest.raises(ConfigError, match=r"k.yaml:\d+: not valid YAML"):
        Config.load(p)
    with pytest.raises(ConfigError, match="cannot read config"):
        Config.load(tmp_path / "missing.yaml")


def test_allowlist_globs_and_every_image_must_match():
    cfg = Config.from_dict({"allowlists": {"privileged": [{"image": "registry.k8s.io/*"}]}})
    assert cfg.allowed("privileged", user="u", namespace="n", serviceaccount=None, images=["registry.k8s.io/pause:3.9"])
    # a trusted sidecar does not excuse an untrusted container, and a registry port is another registry
    assert not cfg.allowed("privileged", user="u", namespace="n", serviceaccount=None,
                           images=["registry.k8s.io/pause:3.9", "evil.io/x"])
    assert not cfg.allowed("privileged", user="u", namespace="n", serviceaccount=None,
                           images=["registry.k8s.io:5000/pause"])
    assert not cfg.allowed("unknown-list", user="u", namespace="n", serviceaccount=None, images=[])


def test_user_vars_feed_placeholders():
    cfg = Config.from_dict({"vars": {"trusted_registries": ["registry.k8s.io", "ghcr.io"], "one": "x"}})
    assert cfg.vars["trusted_registries"] == ["registry.k8s.io", "ghcr.io"]
    assert cfg.vars["one"] == ["x"]
