"""The package's import graph: no cycles, between modules at import time or between folders (stages)
counting every import, even inside functions; and no heavy framework imported by ``import
shipyard``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import shipyard

PACKAGE = Path(shipyard.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(nodes: list[ast.stmt], modules: set[str]) -> set[str]:
    """Shipyard modules the import statements among ``nodes`` name (TYPE_CHECKING blocks
    skipped)."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {n for n in names if n in modules} or ({node.module} & modules)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & modules
        else:
            found |= imported(
                [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)], modules
            )
    return found


def import_graph(at_import_time: bool) -> dict[str, set[str]]:
    """Module → the shipyard modules it imports: at import time only, or anywhere in it."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        body = ast.parse(path.read_text()).body
        if at_import_time:  # function bodies run later
            body = [
                n
                for n in body
                if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            ]
        graph[name] = imported(body, modules) - {name}
    return graph


def folder_graph() -> dict[str, set[str]]:
    """Folder (``shipyard.serve``) or top-level module → the others it imports, anywhere."""

    def folder(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, deps in import_graph(at_import_time=False).items():
        graph.setdefault(folder(module), set()).update(
            folder(d) for d in deps if folder(d) != folder(module)
        )
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_between_modules():
    cycle = find_cycle(import_graph(at_import_time=True))
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_no_cycles_between_folders():
    cycle = find_cycle(folder_graph())
    assert cycle is None, "folders import each other: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_shipyard_loads_no_framework():
    code = (
        "import sys, shipyard, shipyard.backends, shipyard.cli.main; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorflow', 'paddle', "
        "'nncf') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
