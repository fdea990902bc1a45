"""The networks section of kubehawk.yaml and x.source (issue 13, item 5)."""

from __future__ import annotations

import pytest

from kubehawk.config import Config, ConfigError
from kubehawk.event import event_from_dict

from helpers import audit


def source(cfg: Config, ip: str):
    e = event_from_dict(audit(sourceIPs=["10.9.9.9", ip]))  # only the last entry counts
    e.bind_context(cfg)
    return e.derived_value("source")


def test_classification_without_networks_knows_only_public():
    cfg = Config.from_dict({})
    assert source(cfg, "34.1.2.3") == {"public": True}
    assert source(cfg, "10.0.0.1") == {"public": False}
    assert source(cfg, "not-an-ip") is None


def test_trusted_and_cluster_networks():
    cfg = Config.from_dict({"networks": {"trusted": ["203.0.113.0/24"], "cluster": ["10.244.0.0/16", "fd00::/8"]}})
    assert source(cfg, "203.0.113.9") == {"public": False, "cluster": False, "trusted": True}
    assert source(cfg, "10.244.1.1") == {"public": False, "cluster": True, "trusted": True}
    assert source(cfg, "10.9.0.1") == {"public": False, "cluster": False, "trusted": False}
    assert source(cfg, "::1")["trusted"] is True
    assert source(cfg, "fd00::5")["cluster"] is True


def test_ioc_file_relative_to_the_config(tmp_path):
    (tmp_path / "iocs").mkdir()
    (tmp_path / "iocs" / "tor.txt").write_text("# Tor exits\n\n185.220.101.4\n185.220.100.0/24 # range\n")
    conf = tmp_path / "kubehawk.yaml"
    conf.write_text("networks:\n  ioc_file: iocs/tor.txt\n")
    cfg = Config.load(conf)
    assert source(cfg, "185.220.101.4")["ioc"] is True
    assert source(cfg, "185.220.100.77")["ioc"] is True
    assert source(cfg, "185.220.102.1")["ioc"] is False


@pytest.mark.parametrize(("data", "message"), [
    ({"networks": {"trusted": ["10.0.0.0/33"]}}, "networks.trusted[0]: not an IP network"),
    ({"networks": {"cluster": "10.0.0.0/8"}}, "networks.cluster: expected a list"),
    ({"networks": {"truste": []}}, "networks.truste: unknown key"),
    ({"networks": {"ioc_file": "/nonexistent/iocs.txt"}}, "networks.ioc_file: cannot read /nonexistent/iocs.txt"),
    ({"bootstrap": {"enabled": "no"}}, "bootstrap.enabled: expected true or false"),
    ({"bootstrap": {"on": True}}, "bootstrap.on: unknown key"),
    ({"gitops": {"controllers": [{"user": "x"}]}}, "gitops.controllers[0].resources: expected a non-empty list"),
    ({"gitops": {"controllers": [{"resources": ["secrets"]}]}}, "gitops.controllers[0].user: expected a username"),
    ({"gitops": {"controllers": {"user": "x"}}}, "gitops.controllers: expected a list"),
])
def test_config_mistakes_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        Config.from_dict(data, source="k.yaml")
    assert f"k.yaml: {message}" in str(err.value)


def test_bad_ioc_line_names_file_and_line(tmp_path):
    ioc = tmp_path / "iocs.txt"
    ioc.write_text("1.2.3.4\nnot an address\n")
    with pytest.raises(ConfigError, match=rf"networks.ioc_file: {ioc}:2: not an IP address or CIDR: 'not an address'"):
        Config.from_dict({"networks": {"ioc_file": str(ioc)}}, source="k.yaml")


def test_bootstrap_switch():
    assert Config.from_dict({}).bootstrap is True
    assert Config.from_dict({"bootstrap": {"enabled": False}}).bootstrap is False
