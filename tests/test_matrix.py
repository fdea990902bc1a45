"""The Threat Matrix data, coverage computation and the `matrix` command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kubehawk.matrix import compute_coverage, load_matrix, matrix_command
from kubehawk.rules import load_rules


def test_matrix_data_is_complete():
    m = load_matrix()
    assert len(m.techniques) == 40
    assert len({t.id for t in m.techniques}) == 40
    keys = {k for k, _ in m.tactics}
    assert len(keys) == 10
    for t in m.techniques:
        assert t.visibility in ("yes", "partly", "no")
        assert t.reason and set(t.tactics) <= keys
    vis = [t.visibility for t in m.techniques]
    assert (vis.count("yes"), vis.count("partly"), vis.count("no")) == (14, 20, 6)
    names = " ".join(b["name"] for b in m.blind_spots).lower()
    for spot in ("static pods", "exec", "kubelet", "etcd", "runtime socket"):
        assert spot in names


def test_coverage_of_builtin_rules():
    rules = load_rules(builtin=True).rules
    cov = compute_coverage(rules)
    c = cov.counts()
    assert cov.unknown_tags == {}
    assert c["by_visibility"]["yes"]["covered"] == c["by_visibility"]["yes"]["techniques"]
    assert c["visible_covered"] >= 30
    assert "exec-metadata-endpoint" in {r.name for r in cov.rules_for("MS-TA9028")}


def test_coverage_counts_user_rules(tmp_path):
    (tmp_path / "r.yml").write_text(
        "title: t\nid: 0f6f7c1e-1111-4a3b-9c1d-000000000001\nname: mine\n"
        "tags: [attack.t1046, ms-k8s.ms-ta9031, ms-k8s.ms-ta9999]\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "detection: {s: {verb: get}, condition: s}\nlevel: low\n"
    )
    cov = compute_coverage(load_rules(paths=[tmp_path], builtin=False).rules)
    assert [r.name for r in cov.rules_for("MS-TA9031")] == ["mine"]
    assert "MS-TA9999" in cov.unknown_tags


def test_matrix_command_json_and_table():
    r = CliRunner().invoke(matrix_command, ["--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["coverage"]["techniques"] == 40 and len(d["tactics"]) == 10
    exec_cell = next(t for t in d["techniques"] if t["id"] == "MS-TA9006")
    assert exec_cell["visibility"] == "yes" and any(x["name"] == "pod-exec" for x in exec_cell["rules"])
    r = CliRunner().invoke(matrix_command, [])
    assert r.exit_code == 0 and "Blind spots" in r.output and "Coverage" in r.output
