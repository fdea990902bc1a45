"""`rules list` on a terminal 80 and 120 columns wide: name first, title readable, short id."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from kubehawk.ruletable import print_rules
from test_cli import run


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return json.loads(run("rules", "list", "--format", "json", check=True).stdout)


@pytest.mark.parametrize("width", [80, 120])
def test_name_first_short_id_nothing_cut(rows, width):
    out = io.StringIO()
    print_rules(Console(file=out, width=width, color_system=None), rows)
    lines = out.getvalue().splitlines()
    assert lines[1].split()[:2] == ["name", "level"] and lines[1].split()[-1] == "id"
    assert all(len(line) <= width for line in lines)
    assert "…" not in out.getvalue()
    text = out.getvalue()
    for r in rows:
        assert r["id"][:8] in text and r["id"] not in text  # a short id, never the whole UUID
    # every title is there whole, in its column (wrapped across the lines of its cell)
    start = lines[1].index("title")
    end = lines[1].index("techniques" if width >= 110 else "id", start)
    column = "".join("".join(line[start:end].split()) for line in lines[2:-1])
    assert column == "".join("".join(r["title"].split()) for r in rows)
    first = next(line for line in lines if line.startswith(rows[0]["name"][:20]))
    assert first.rstrip().endswith(rows[0]["id"][:8])
    assert ("techniques" in lines[1]) == (width >= 110)


def test_rules_list_command_uses_the_terminal_width():
    import os
    import subprocess

    from test_cli import KUBEHAWK

    res = subprocess.run([str(KUBEHAWK), "rules", "list"], capture_output=True, env={**os.environ, "COLUMNS": "80"},
                         check=True)
    lines = res.stdout.decode().splitlines()
    assert lines[1].startswith("name") and max(len(x) for x in lines) <= 80
