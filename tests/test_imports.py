"""The package's import graph, read from the sources with ``ast``: no cycle among the
``simulator`` modules, and nothing private shared between them.

What counts as an edge: an import of another ``simulator`` module that runs when the
module is imported (at module level, including under ``if``/``try``, but not under
``if TYPE_CHECKING:``, which never runs). Imports inside functions are what keeps the
command's start-up fast; they are kept out of the graph, but the package has none that
closes a cycle either, and a second test keeps it so. ``from .x import y`` is an edge to
``x.y`` when that is a module, else to ``x``. A submodule's implicit import of its parent
package is not an edge (``simulator.cli`` imports its command modules to register them).

``python tests/test_imports.py`` prints the graph's cycles, if any.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "simulator"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(body: list[ast.stmt], *, functions: bool):
    """The import statements of ``body``: those that run at import time (module level, in
    ``if``/``try``/``with`` blocks, but not ``if TYPE_CHECKING:``), or with
    ``functions=True`` also those in function and class bodies."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _statements(node.body, functions=functions)
            yield from _statements(node.orelse, functions=functions)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                yield from _statements(block, functions=functions)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            yield from _statements(node.body, functions=functions)
        elif functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                             ast.ClassDef)):
            yield from _statements(node.body, functions=functions)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    if node.level > 1:
        parts = parts[:len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def imports(*, functions: bool = False) -> dict[str, set[str]]:
    """The graph: each module's imports of other modules of the package."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _statements(tree.body, functions=functions):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _base(name, path, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                           for a in node.names]
            graph[name] |= {t for t in targets if t in known and t != name}
    return graph


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): the modules
    that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component, as the modules it passes,
    the first repeated at the end."""
    return [_cycle_in(graph, set(c)) for c in components(graph)]


def _described(graph: dict[str, set[str]]) -> str:
    return "; ".join(f"{' -> '.join(_cycle_in(graph, set(c)))} (all of {', '.join(c)} "
                     f"import each other)" for c in components(graph))


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    path, seen = [start], {start}
    while True:   # in a strongly connected component every walk can be continued
        nexts = sorted(graph[path[-1]] & component)
        back = [w for w in nexts if w in seen]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        path.append(nexts[0])
        seen.add(nexts[0])


def private_imports() -> list[str]:
    """``from .x import _y`` (or ``from simulator.x import _y``) anywhere in the package."""
    known = modules()
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _base(name, path, node)
                if base != PACKAGE and not base.startswith(PACKAGE + "."):
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: "
                                     f"from {base} import {alias.name}")
    return found


def test_the_modules_are_found_and_imports_resolved():
    graph = imports()
    assert {"simulator", "simulator.engine", "simulator.cli", "simulator.startup"} <= set(graph)
    assert "simulator.kernels.chunk" in graph["simulator.engine"]
    assert "simulator.startup" not in graph["simulator.startup"]


def test_no_import_cycle_among_the_modules():
    graph = imports()
    assert not components(graph), "import cycles: " + _described(graph)


def test_no_import_cycle_even_counting_imports_inside_functions():
    graph = imports(functions=True)
    assert not components(graph), "import cycles: " + _described(graph)


def test_no_module_imports_a_private_name_of_another():
    found = private_imports()
    assert not found, "private names imported:\n" + "\n".join(found)


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert components({**graph, "b": {"c", "d"}}) == [["a", "b", "c", "d"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kernels_are_short_take_few_arguments_and_alone_import_numba():
    """Kernels a newcomer can read: none longer than 80 lines or taking more than ten
    arguments (related arrays travel as named tuples), and numba imported under
    simulator/kernels only."""
    long_or_wide, seen = [], set()
    for path in sorted((ROOT / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                seen.add(node.name)
                lines = node.end_lineno - node.lineno + 1
                if lines > 80 or len(node.args.args) > 10:
                    long_or_wide.append(f"{path.name}:{node.name} ({lines} lines, "
                                        f"{len(node.args.args)} arguments)")
    assert {"simulate_chunk", "care_outcomes", "run_capacity"} <= seen
    assert not long_or_wide, long_or_wide
    numba_users = [str(path.relative_to(ROOT.parent)) for path in ROOT.rglob("*.py")
                   if "kernels" not in path.parts
                   and any(isinstance(n, ast.Import | ast.ImportFrom)
                           and "numba" in (getattr(n, "module", None) or "")
                           + " ".join(a.name for a in n.names)
                           for n in ast.walk(ast.parse(path.read_text())))]
    assert numba_users == []


def kernels_python_calls() -> set[tuple[str, str]]:
    """(kernel module, name) of every name the modules outside simulator/kernels import
    from a kernel module or read as an attribute of one, anywhere in their code, but
    those handed to calls.from_python, which calls them through a kernel of its own."""
    found, known = set(), modules()
    for name, path in known.items():
        if ".kernels" in name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases = {}   # local name -> kernel module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _base(name, path, node)
                for a in node.names:
                    if (f"{base}.{a.name}" in known
                            and f"{base}.{a.name}".startswith(PACKAGE + ".kernels.")):
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
                    elif base.startswith(PACKAGE + ".kernels."):
                        found.add((base, a.name))
        wrapped = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
                   and getattr(node.func, "id", getattr(node.func, "attr", "")) == "from_python"
                   for arg in node.args}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and id(node) not in wrapped):
                found.add((aliases[node.value.id], node.attr))
    return found


def test_python_calls_only_kernels_with_an_entry_from_python():
    """A kernel compiled for other kernels only (kernels.cache.INNER) has no entry point
    for Python, and calling one from Python would crash the process: the rest of the
    package reaches only kernels compiled with theirs."""
    import importlib

    from numba.extending import is_jitted

    calls = kernels_python_calls()
    assert ("simulator.kernels.rng", "param_uniforms") in calls
    assert ("simulator.kernels.quantiles", "percentiles") in calls
    kernels = [(module, name) for module, name in sorted(calls)
               if is_jitted(getattr(importlib.import_module(module), name, None))]
    assert len(kernels) >= 5
    inner = [f"{module}.{name}" for module, name in kernels
             if getattr(importlib.import_module(module), name).targetoptions
             .get("no_cpython_wrapper")]
    assert not inner, inner


if __name__ == "__main__":
    for label, functions in (("module level", False), ("with imports inside functions", True)):
        print(f"{label}:")
        graph = imports(functions=functions)
        if components(graph):
            print("  " + _described(graph).replace("; ", "\n  "))
    print("private names imported:")
    for line in private_imports():
        print("  " + line)
    sys.exit(0)

