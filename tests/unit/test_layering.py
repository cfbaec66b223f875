"""Imports point one way: cli → daemon → engine → ports, and no module imports itself back.

Read from the source (every import counts: module level, inside functions, under
``TYPE_CHECKING``), so a circle hidden from the interpreter is still a circle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gitopsd", "metrics_adapter")
#: The daemon's own modules: they run the engine and nothing in the engine runs them.
DAEMON = ("gitopsd.daemon", "gitopsd.informer", "gitopsd.drift")
#: What the Kubernetes port may use outside itself: plain error types, the version string, waiting helpers.
KUBE_MAY_IMPORT = frozenset({"gitopsd", "gitopsd.aio", "gitopsd.errors", "gitopsd.yamlerrors"})


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
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
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert _cycles(_graph()) == []


def test_the_engine_never_imports_the_daemon_or_the_cli() -> None:
    graph = _graph()
    upward = {
        name: sorted(d for d in deps if d.startswith(("gitopsd.cli", *DAEMON)))
        for name, deps in graph.items()
        if name.startswith("gitopsd") and not name.startswith(("gitopsd.cli", "gitopsd.__main__", *DAEMON))
    }
    assert {name: deps for name, deps in upward.items() if deps} == {}
    from_daemon = {name: sorted(d for d in graph[name] if d.startswith("gitopsd.cli")) for name in DAEMON}
    assert {name: deps for name, deps in from_daemon.items() if deps} == {}


def test_the_kubernetes_port_stands_alone() -> None:
    """gitopsd.kube is shared with metrics_adapter: it imports nothing of the engine."""
    graph = _graph()
    outside = {
        name: sorted(d for d in deps if not d.startswith("gitopsd.kube") and d not in KUBE_MAY_IMPORT)
        for name, deps in graph.items()
        if name.startswith("gitopsd.kube")
    }
    assert {name: deps for name, deps in outside.items() if deps} == {}


def test_gitopsd_never_imports_the_adapter() -> None:
    graph = _graph()
    found = {n: sorted(d for d in deps if d.startswith("metrics_adapter")) for n, deps in graph.items()}
    assert {n: deps for n, deps in found.items() if n.startswith("gitopsd") and deps} == {}
