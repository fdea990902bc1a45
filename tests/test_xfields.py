"""The table of derived fields is the one place each is declared: the enrich module's levels and
descriptions, the README's section and ``kubehawk rules fields`` all read it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kubehawk import enrich, xfields
from kubehawk.rules import audit_level_of
from test_cli import run

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_section_is_the_table():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Derived fields"):]
    section = section[section.index("| field |"):]
    section = section[:section.index("\n\n")]
    assert section == xfields.markdown_table(), (
        "README 'Derived fields' differs from kubehawk.xfields: paste xfields.markdown_table() there")


def test_enrich_reads_the_table():
    assert xfields.levels() == enrich.DERIVED_LEVELS
    assert xfields.descriptions() == enrich.DERIVED_FIELDS


def test_every_field_enrich_computes_is_declared():
    """A Derived key the view can compute (its dispatch table) has a row, and a row names a key
    the view computes: a new derived field cannot be added without saying what it is."""
    declared = {f.path.split(".")[1] for f in xfields.DERIVED}
    computed = set(enrich._EVENT_FIELDS) | {m[len("_x_"):] for m in dir(enrich.Derived) if m.startswith("_x_")}
    assert declared == computed


@pytest.mark.parametrize("field", xfields.DERIVED, ids=lambda f: f.path)
def test_the_level_inference_reads_the_table(field):
    path = field.path.replace("NAME", "admins")
    assert audit_level_of([path, "verb"]) == field.level


def test_a_key_whose_fields_disagree_on_the_level_is_refused(monkeypatch):
    bad = (*xfields.DERIVED, xfields.DerivedField("x.exec.body", "Request", "made up"))
    monkeypatch.setattr(xfields, "DERIVED", bad)
    with pytest.raises(ValueError, match="x.exec.body"):
        xfields.levels()


def test_rules_fields_prints_the_table():
    res = run("rules", "fields", "--format", "json", check=True)
    rows = [json.loads(x) for x in res.stdout.decode().splitlines()]
    assert [r["path"] for r in rows] == [f.path for f in xfields.DERIVED]
    res = run("rules", "fields", check=True)
    table = res.stdout.decode()
    assert all(re.search(re.escape(f.path), table) for f in xfields.DERIVED)
