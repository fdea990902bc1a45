"""The deploy/ manifests parse, and the ConfigMap's kubehawk.yaml is a valid configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubehawk.config import Config, ConfigError
from kubehawk.server.settings import ServerSettings
from kubehawk.sinks.config import KEYS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_manifests_parse_and_name_kinds() -> None:
    kinds = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        kinds += [d["kind"] for d in yaml.safe_load_all(path.read_text()) if d]
    assert {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy",
            "ValidatingWebhookConfiguration", "Kustomization"} <= set(kinds)
    adm = yaml.safe_load((DEPLOY / "apiserver" / "admission-config.yaml").read_text())
    kubeconfig = adm["plugins"][0]["configuration"]["kubeConfigFile"]
    assert adm["kind"] == "AdmissionConfiguration" and kubeconfig.endswith("admission-webhook.kubeconfig")
    users = yaml.safe_load((DEPLOY / "apiserver" / "admission-webhook.kubeconfig").read_text())["users"]
    assert users[0]["name"] == "kubehawk.kubehawk.svc:8443"
    kc = yaml.safe_load((DEPLOY / "apiserver" / "audit-webhook.kubeconfig").read_text())
    assert kc["kind"] == "Config" and kc["clusters"][0]["cluster"]["server"].endswith("/audit")
    hook = yaml.safe_load((DEPLOY / "kubernetes" / "validatingwebhook.yaml").read_text())["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and hook["clientConfig"]["service"]["path"] == "/admission"


def test_configmap_config_is_valid(tmp_path: Path) -> None:
    cm = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    cfg = Config.from_dict(yaml.safe_load(cm["data"]["kubehawk.yaml"]))
    for out in cfg.outputs:
        assert set(out) - {"type", "name", "min_level"} <= KEYS[out["type"]]
    server = cfg.server
    for key in ("tls_cert", "tls_key", "client_ca", "token_file"):  # mounted from Secrets in the pod
        f = tmp_path / key
        f.write_text("token\n")
        server[key] = str(f)
    s = ServerSettings.build(server)
    assert s.port == 8443 and s.max_body_bytes == 32 * 1024 * 1024
    assert s.admission_auth is True and s.metrics_auth is True  # as /audit: no anonymous admission or metrics
    # Memory at the limits fits the Deployment's (see the README's guarantees): ~2.5 x the body budget.
    assert 2.5 * s.max_inflight_bytes + 200 * 1024 * 1024 < 1024 * 1024 * 1024


@pytest.mark.parametrize(("server", "message"), [
    ({"port": "http"}, r"server\.port: expected a non-negative integer"),
    ({"prot": 1}, r"server\.prot: unknown key"),
    ({"journal_sync": "off"}, r"server\.journal_sync: expected full or normal"),
    ({"max_body_bytes": "huge"}, r"server\.max_body_bytes: expected a size"),
    ({"tokens": [""]}, r"server\.tokens: empty token"),
])
def test_server_settings_errors_name_the_key(server, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerSettings.build(server)


def test_client_ca_needs_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    with pytest.raises(ConfigError, match=r"server\.client_ca: client certificates need TLS"):
        ServerSettings.build({"client_ca": str(ca)})
