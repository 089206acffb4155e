"""The package's shape: no import cycles, and backends reached only through the registry.

Every ``import`` counts, including those inside functions: an import inside a
function is there to load something lazily, never to hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nemo_run_k8s

PACKAGE = Path(nemo_run_k8s.__file__).resolve().parent
BACKENDS = ("local", "docker", "kubernetes")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from pkg import mod`` counts as mod)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    # A package's own __init__ is imported on the way to any of its modules; not an edge.
    return {
        name: {dep for dep in imports_of(path, known) if not name.startswith(dep + ".")}
        for name, path in found.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_backends_are_reached_only_through_the_registry() -> None:
    """Outside ``executors/<backend>/``, only the registry names a backend's modules.

    The package's ``__init__`` is the one exception: its lazy table of public names
    (``run.DockerExecutor``, ...) is where users reach the backends.
    """
    offenders = []
    for name, deps in import_graph().items():
        if name == "nemo_run_k8s":
            continue
        for backend in BACKENDS:
            room = f"nemo_run_k8s.executors.{backend}"
            if name == room or name.startswith(room + "."):
                continue
            offenders += [f"{name} imports {dep}" for dep in deps if dep.startswith(room + ".")]
    assert offenders == []


def test_the_registry_and_the_public_names_point_at_the_backends() -> None:
    from nemo_run_k8s.executors.base import backend_class

    assert backend_class("local") is nemo_run_k8s.LocalExecutor
    assert backend_class("docker") is nemo_run_k8s.DockerExecutor
    assert backend_class("k8s") is nemo_run_k8s.KubernetesExecutor
