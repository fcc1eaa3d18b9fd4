"""The package's shape: no import cycle between sibling packages or modules at any level, the core modules import
only each other, and nothing imports the command line. Import edges come from grimp (every import statement of
every module, those inside functions and under `if TYPE_CHECKING:` too: a loop that only type hints close is still
one)."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

CORE = {
    "_version",
    "episode_grid",
    "extras",
    "images",
    "paths",
    "provenance",
    "records",
    "registry",
    "stats",
    "store",
    "suites",
    "versioned",
}
"""Modules every layer may use and that use no layer above them (records, stores, suites, helpers)."""


def _owner(module: str, children: list[str]) -> str | None:
    return next((c for c in children if module == c or module.startswith(c + ".")), None)


def sibling_edges(graph: grimp.ImportGraph, package: str) -> dict[str, set[str]]:
    """Child of `package` -> the other children it imports (through any module inside it)."""
    children = sorted(graph.find_children(package))
    edges: dict[str, set[str]] = {c: set() for c in children}
    for module in graph.find_descendants(package):
        source = _owner(module, children)
        for imported in graph.find_modules_directly_imported_by(module):
            target = _owner(imported, children)
            if source and target and target != source:
                edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def import_cycles(package: str) -> dict[str, list[list[str]]]:
    """Package -> its import cycles between siblings, for `package` and every subpackage in it."""
    graph = grimp.build_graph(package)
    packages = [package, *sorted(m for m in graph.find_descendants(package) if graph.find_children(m))]
    return {p: found for p in packages if (found := cycles(sibling_edges(graph, p)))}


def test_no_import_cycles_at_any_level() -> None:
    assert import_cycles("vlascore") == {}


def test_core_modules_import_only_core_modules_and_nothing_imports_the_cli() -> None:
    graph = grimp.build_graph("vlascore")
    edges = sibling_edges(graph, "vlascore")
    upward = {
        c: sorted(t for t in targets if t.removeprefix("vlascore.") not in CORE)
        for c, targets in edges.items()
        if c.removeprefix("vlascore.") in CORE
    }
    assert {c: t for c, t in upward.items() if t} == {}
    assert sorted(c for c, targets in edges.items() if "vlascore.cli" in targets) == []
    cli = sibling_edges(graph, "vlascore.cli")  # command modules import down (_common, _tables), not each other
    commands = {c for c in cli if not c.rsplit(".", 1)[1].startswith("_")}
    assert {c: sorted(t & commands) for c, t in cli.items() if t & commands} == {}


def test_the_checker_finds_a_cycle_put_there_on_purpose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "loopy"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from loopy import b\n")
    (root / "b.py").write_text("def f():\n    from loopy.sub import c  # a lazy import is still an edge\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "c.py").write_text("import loopy.a\n")
    (root / "sub" / "d.py").write_text("from loopy.sub import e\n")
    (root / "sub" / "e.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from loopy.sub import d\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = import_cycles("loopy")
    sys.modules.pop("loopy", None)
    # a -> b -> sub -> a is a cycle, and so is d <-> e although e's import only runs for type checkers
    assert found == {"loopy": [["loopy.a", "loopy.b", "loopy.sub"]], "loopy.sub": [["loopy.sub.d", "loopy.sub.e"]]}
