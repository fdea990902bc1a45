"""kubehawk's modules import each other in one direction: no circle, also none hidden behind a
function-level import or a module ``__getattr__``.

Every ``import`` statement counts wherever it stands (module level, inside a function), except
those under ``if TYPE_CHECKING:``, which name a class in annotations and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kubehawk

PKG = Path(kubehawk.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The kubehawk modules ``path`` imports at run time (a package import names the package)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            for child in node.orelse:  # the else branch runs
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in modules and m != me}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    # a package's __init__ importing its own submodules is how a package exposes them, not a circle
    return {m: {d for d in _imports(p, modules) if not (p.name == "__init__.py" and d.startswith(m + "."))}
            for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_circles():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (directly or through others): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_the_graph_sees_function_level_imports(tmp_path):
    """The check itself: an import inside a function counts; one under TYPE_CHECKING does not."""
    mods = {"p.a", "p.b", "p.c"}
    (tmp_path / "p").mkdir()
    a = tmp_path / "p" / "a.py"
    a.write_text("def f():\n    from p import b\n")
    c = tmp_path / "p" / "c.py"
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.a import X\n")
    global PKG
    saved, PKG = PKG, tmp_path
    try:
        assert _imports(a, mods) == {"p.b"}
        assert _imports(c, mods) == set()
    finally:
        PKG = saved
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
