"""Imports point down only: DAG files and plugins -> components / doors -> reports -> data -> config.

The package's folders are its layers (docs/index.md, Architecture). A module may import its own
folder and any layer below its own, never one above: ``data`` knows nothing of reports, and a door
never reaches into a component (nor a component into a door). ``demo/`` (synthetic TLC months),
``local/`` (``make run``) and the benchmarks are tools on top, in that order. Nor does any module of
the package import, directly or through others, a module that imports it back: no import circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "include" / "taxiflow"

# Height of each layer; a module imports only from lower layers (or its own folder).
LAYERS = {"config": 0, "data": 1, "reports": 2, "components": 3, "doors": 3, "dags": 4, "plugins": 4,
          "demo": 5, "local": 6, "benchmarks": 7}


def layer_of(path: Path) -> str:
    if path.is_relative_to(PACKAGE):
        part = path.relative_to(PACKAGE).parts[0]
        return "config" if part == "config.py" else part
    return path.relative_to(REPO_ROOT).parts[0]


def taxiflow_imports(source_code: str) -> list[str]:
    """Every ``taxiflow...`` module the code imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(source_code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [name for name in names if name.split(".")[0] == "taxiflow"]


def wrong_way_imports(path: Path, source_code: str | None = None) -> list[str]:
    source = layer_of(path)
    wrong = []
    for module in taxiflow_imports(path.read_text(encoding="utf-8") if source_code is None else source_code):
        parts = module.split(".")
        if len(parts) < 2:
            continue  # the package itself
        target = parts[1]
        if target == source or target not in LAYERS:
            continue
        if LAYERS[target] >= LAYERS[source]:
            wrong.append(f"{path.relative_to(REPO_ROOT)} ({source}) imports {module} ({target})")
    return wrong


def checked_files() -> list[Path]:
    files = [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "dags").glob("*.py"), *(REPO_ROOT / "plugins").glob("*.py"),
             *(REPO_ROOT / "benchmarks").glob("*.py")]
    return sorted(path for path in files if path != PACKAGE / "__init__.py")


def test_every_file_belongs_to_a_layer():
    assert {layer_of(path) for path in checked_files()} <= set(LAYERS)


@pytest.mark.parametrize("path", checked_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_imports_point_down_only(path):
    assert wrong_way_imports(path) == []


def test_the_check_sees_wrong_way_imports_inside_functions_too():
    door = PACKAGE / "doors" / "report_views" / "runs.py"
    code = "import taxiflow.config\n\ndef f():\n    from taxiflow.components.gates import IngestGateSensor\n"
    assert wrong_way_imports(door, code) == [
        "include/taxiflow/doors/report_views/runs.py (doors) imports taxiflow.components.gates (components)"
    ]
    data = PACKAGE / "data" / "metrics.py"
    assert wrong_way_imports(data, "from taxiflow.reports.params import MAX_RANGE_DAYS\n") == [
        "include/taxiflow/data/metrics.py (data) imports taxiflow.reports.params (reports)"
    ]


def package_modules() -> dict[str, Path]:
    """``taxiflow.data.storage`` -> its file, for every module of the package (packages left out)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            modules[".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)] = path
    return modules


def imported_modules(source_code: str, known: set[str]) -> set[str]:
    """The modules of ``known`` the code imports, at the top or inside a function.

    ``from taxiflow.data import storage`` imports the module ``taxiflow.data.storage``.
    """
    found = set()
    for node in ast.walk(ast.parse(source_code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found & known


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each set of modules that import one another round a circle (Tarjan's strongly connected components)."""
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        order[module] = lowest[module] = len(order)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in order:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], order[imported])
        if lowest[module] == order[module]:
            component = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return circles


def test_no_import_circles_in_the_package():
    modules = package_modules()
    graph = {name: imported_modules(path.read_text(encoding="utf-8"), set(modules)) - {name}
             for name, path in modules.items()}
    assert import_circles(graph) == []


def test_the_check_sees_a_circle_through_a_third_module_and_imports_inside_functions():
    known = {"taxiflow.data.a", "taxiflow.data.b", "taxiflow.data.c", "taxiflow.data.d"}
    sources = {
        "taxiflow.data.a": "from taxiflow.data import b\n",
        "taxiflow.data.b": "def f():\n    import taxiflow.data.c\n",
        "taxiflow.data.c": "from taxiflow.data.a import x\nfrom taxiflow.data import d\n",
        "taxiflow.data.d": "import json\n",
    }
    graph = {name: imported_modules(code, known) for name, code in sources.items()}
    assert import_circles(graph) == [["taxiflow.data.a", "taxiflow.data.b", "taxiflow.data.c"]]
