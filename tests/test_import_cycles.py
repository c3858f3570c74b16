"""No import cycle anywhere in the package, imports inside functions included.

The import graph comes from ``grimp`` (import-linter's graph builder), which sees every
import statement of a module, also those inside functions and ``TYPE_CHECKING`` blocks; a
strongly connected component of more than one module is a cycle. The helper is checked
against a small package with a cycle, so the package test cannot pass by finding nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")


def import_cycles(package: str) -> list[list[str]]:
    """Every strongly connected component of ``package``'s import graph with more than
    one module (each sorted), found with Tarjan's algorithm."""
    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in graph.modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(modules) + 100))
    try:
        for module in modules:
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(cycles)


def test_the_package_has_no_import_cycle() -> None:
    assert import_cycles("crucible_train") == []


def _write_package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)


def test_a_cycle_through_a_function_level_import_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_package(
        tmp_path,
        "cyclic_pkg",
        {
            "a": "from cyclic_pkg import b\n",
            "b": "def f():\n    from cyclic_pkg import c\n",
            "c": "import cyclic_pkg.a\n",
            "d": "from cyclic_pkg import a\n",  # imports into the cycle, not part of it
        },
    )
    _write_package(tmp_path, "acyclic_pkg", {"a": "from acyclic_pkg import b\n", "b": ""})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclic_pkg") == [["cyclic_pkg.a", "cyclic_pkg.b", "cyclic_pkg.c"]]
    assert import_cycles("acyclic_pkg") == []
