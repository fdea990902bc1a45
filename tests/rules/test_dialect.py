"""The Sigma dialect of the README, as a table: one row per point (detection, event, expected).

Each row is evaluated directly and through the indexed engine (:func:`ruletools.matches`).
"""

from __future__ import annotations

import pytest
from ruletools import matches

# (id, detection, event fields, expected)
CASES: list[tuple[str, str, dict, bool]] = [
    # --- case-insensitive wildcards: the rule value is folded like the event value -----------
    ("qmark-capital", "sel: {verb: 'CR?ATE'}\ncondition: sel", {"verb": "create"}, True),
    ("qmark-capital-miss", "sel: {verb: 'CR?ATE'}\ncondition: sel", {"verb": "update"}, False),
    ("inner-star-capital", "sel: {user.username: 'System:*:Default'}\ncondition: sel",
     {"user": {"username": "system:serviceaccount:kube-system:default"}}, True),
    ("inner-star-capital-miss", "sel: {user.username: 'System:*:Default'}\ncondition: sel",
     {"user": {"username": "system:serviceaccount:kube-system:builder"}}, False),
    ("contains-qmark-capital", "sel: {requestURI|contains: 'EX?C'}\ncondition: sel",
     {"requestURI": "/api/v1/namespaces/a/pods/p/exec?command=sh"}, True),
    ("keyword-inner-star-capital", "kw: ['EVIL*Pod']\ncondition: kw",
     {"requestObject": {"metadata": {"name": "evil-pod"}}}, True),
    ("keyword-inner-star-capital-miss", "kw: ['EVIL*Pod']\ncondition: kw",
     {"requestObject": {"metadata": {"name": "good-pod"}}}, False),
    ("cased-qmark-keeps-case", "sel: {verb|cased: 'CR?ATE'}\ncondition: sel", {"verb": "create"}, False),
    ("cased-qmark-exact", "sel: {userAgent|cased: 'K?bectl*X'}\ncondition: sel", {"userAgent": "Kubectl/1 X"}, True),
]


@pytest.mark.parametrize(("detection", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dialect(detection: str, event: dict, expected: bool) -> None:
    assert matches(detection, **event) is expected
