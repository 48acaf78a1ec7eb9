"""The import structure of ``src/``: no circles, and the layers import downward only.

Pure ``ast``: nothing of the project is imported, so the checks take a fraction of a second.
Every ``import`` and ``from ... import`` counts, at module level and inside functions and
``if TYPE_CHECKING:`` blocks alike (a function-level import that closes a circle still ties
the modules together). ``from package import name`` depends on ``package`` and, when ``name``
is a submodule, on ``package.name``; relative imports are resolved.

Layers:

* ``rail.deepdisc.spectra`` (bands, filters, SEDs, templates, dust, IGM, lines) is the ground
  floor of the simulator and the fitters: it imports none of the packages in
  :data:`SPECTRA_MUST_NOT_IMPORT`;
* the library ``rail.deepdisc`` does not import the pipelines (``rail.pipelines``), except
  the command line (``rail.deepdisc.cli``), which runs them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: what the spectral model must not import
SPECTRA_MUST_NOT_IMPORT = (
    "rail.deepdisc.sim",
    "rail.deepdisc.fit",
    "rail.deepdisc.net",
    "rail.deepdisc.evaluate",
    "rail.deepdisc.store",
    "rail.pipelines",
    "rail.estimation",
    "rail.creation",
    "rail.tools",
)
#: modules of the library allowed to import the pipelines (the command line runs them)
PIPELINE_USERS = ("rail.deepdisc.cli",)


def within(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it."""
    return module == package or module.startswith(package + ".")


def find_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module of ``modules`` that ``name`` (a module or a name in one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """Every dotted name that ``module`` imports, with its line (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append((base, node.lineno))
            out.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return out


def import_graph(modules: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """Module -> {module of ``modules`` it imports: first line of such an import}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(module, path):
            target = _resolve(name, modules)
            if target and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative),
    each sorted; every import circle lies in one of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def describe_cycle(component: list[str], graph: Mapping[str, Mapping[str, int]]) -> str:
    """The imports among the modules of one circle, ``a -> b (line n)``, one per line."""
    members = set(component)
    lines = [f"  {m} -> {t} (line {graph[m][t]})" for m in component
             for t in sorted(graph[m]) if t in members]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    modules = find_modules(SRC)
    assert "rail.deepdisc.spectra.bands" in modules, f"no project modules found under {SRC}"
    return import_graph(modules)


def test_cycle_finder_finds_a_planted_cycle():
    """The finder itself: a circle of three, a self-contained tail and a separate pair."""
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert sorted(import_cycles(planted)) == [["a", "b", "c"], ["e", "f"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_are_resolved(tmp_path):
    pkg = tmp_path / "rail" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from .b import y\n")
    (pkg / "b.py").write_text("from rail.pkg.a import f\n")
    graph = import_graph(find_modules(tmp_path))
    assert set(graph["rail.pkg"]) == {"rail.pkg.a"}
    assert set(graph["rail.pkg.a"]) == {"rail.pkg", "rail.pkg.b"}
    assert import_cycles(graph) == [["rail.pkg", "rail.pkg.a", "rail.pkg.b"]]


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import circles in src/ (module-level and function-level imports):\n" + \
        "\n".join(f"{i + 1}. {' <-> '.join(c)}\n{describe_cycle(c, graph)}"
                  for i, c in enumerate(cycles))


def test_spectra_is_the_ground_floor(graph):
    bad = [f"{m} imports {t} (line {line})" for m, edges in sorted(graph.items())
           if within(m, "rail.deepdisc.spectra") for t, line in sorted(edges.items())
           if any(within(t, p) for p in SPECTRA_MUST_NOT_IMPORT)]
    assert not bad, "rail.deepdisc.spectra must not import the layers above it:\n" + \
        "\n".join(bad)


def test_library_does_not_import_the_pipelines(graph):
    bad = [f"{m} imports {t} (line {line})" for m, edges in sorted(graph.items())
           if within(m, "rail.deepdisc") and not any(within(m, p) for p in PIPELINE_USERS)
           for t, line in sorted(edges.items()) if within(t, "rail.pipelines")]
    assert not bad, "the library rail.deepdisc must not import rail.pipelines:\n" + \
        "\n".join(bad)
