"""The package's modules import each other one way: no import cycles, counting the imports made
inside functions (a lazy import hides a cycle from Python, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "giflab_dask"

#: Cycles not broken yet (issue 17): the numba SSIMULACRA 2 kernels read the numpy module's
#: constants, which imports them back.
KNOWN_CYCLES: list[set[str]] = []


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("giflab_dask", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts).removesuffix(".__init__")] = path
    return names


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports, anywhere in it (``from giflab_dask import config``
    counts as importing ``giflab_dask.config``; the lazy export table of ``giflab_dask`` is not
    an import of every module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return (found & modules) - {"giflab_dask"}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_package_modules_import_each_other_one_way() -> None:
    modules = _module_names()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert graph["giflab_dask.cluster"] >= {"giflab_dask.diagnostics"}  # the scan sees imports
    cycles = [c for c in _cycles(graph) if c not in KNOWN_CYCLES]
    assert cycles == [], f"import cycles: {cycles}"


def test_instrumentation_and_root_values_depend_on_no_orchestration() -> None:
    modules = _module_names()
    imports = {name: _imports(modules[name], set(modules)) for name in modules}
    assert imports["giflab_dask.diagnostics"] == set()
    assert imports["giflab_dask.roots"] <= {"giflab_dask.config", "giflab_dask.errors"}
    assert "giflab_dask.pipeline" not in imports["giflab_dask.cluster"]
    assert "giflab_dask.storage" not in imports["giflab_dask.config"]
