"""No import cycle anywhere in the project's packages (and the layering holds).

The module graph is built from the source, not from what happens to be imported: every ``.py``
file of every package named in ``pyproject.toml`` is parsed with :mod:`ast`, and every
``import`` / ``from … import`` in it is an edge — at module level, inside functions (a lazy
import is still a dependency) and under ``if TYPE_CHECKING:`` (a type-only cycle is still a
knot a reader has to untie). ``from a.b import c`` points at ``a.b.c`` when that is a module of
the project, else at ``a.b``. Importing ``a.b.c`` also runs ``a/__init__.py``; like
import-linter and pydeps, the graph does not count that implicit edge to the parent package.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The layers, lowest first: a package may import its own layer and the ones below.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"protocol"}),
    frozenset({"session"}),
    frozenset({"ledger", "rollups", "verify", "transport"}),  # transport: no project imports
    frozenset({"relayer", "gateway"}),
    frozenset({"relaynet"}),
)


def project_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({name.rstrip("*").rstrip(".") for name in include})


def module_files(packages: Iterable[str]) -> dict[str, Path]:
    """Module name → file, for every ``.py`` below the packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _target(name: str, modules: Mapping[str, Path]) -> str | None:
    """The project module ``name`` names (itself, or the nearest enclosing one)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules ``module`` imports (anywhere in its file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _target(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(packages: Iterable[str]) -> dict[str, set[str]]:
    modules = module_files(packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative Tarjan: (node, iterator over its edges).
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_type_only_imports() -> None:
    graph = import_graph(project_packages())
    assert {"rollups", "protocol", "relaynet"} <= set(project_packages())
    # rollups.registry imports the handlers inside functions (built lazily);
    assert "rollups.evm" in graph["rollups.registry"]
    # rollups.handler imports the spec under TYPE_CHECKING only.
    assert "rollups.spec" in graph["rollups.handler"]


def test_no_import_cycle_in_the_project() -> None:
    graph = import_graph(project_packages())
    assert len(graph) > 100
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_package_imports_a_layer_above_it() -> None:
    rank = {pkg: level for level, layer in enumerate(LAYERS) for pkg in layer}
    graph = import_graph(project_packages())
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if rank.get(target.split(".")[0], -1) > rank.get(module.split(".")[0], len(LAYERS))
    )
    assert not upward, "imports of a layer above:\n" + "\n".join(upward)
