"""The package's shape: no import circles, no upward imports, small modules, every kind with a builder."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from include.mallard.config import SOURCE_KINDS
from include.mallard.paths import PROJECT_ROOT

PACKAGE_DIR = PROJECT_ROOT / "include" / "mallard"
PACKAGE = "include.mallard"
MAX_MODULE_LINES = 400
# Who may import whom, bottom to top; a module may import only its own layer and those below it.
LAYERS = [
    {
        "paths",
        "interval",
        "edges",
        "worker_preload",
        "celery_worker",
        "dbt_files",
        "cosmos_signatures",
        "cosmos_manifest",
        "parsed_files",
    },
    {"config", "warehouse", "environment", "postgres_warehouse", "merge_jobs", "duckdb_destination", "dlt_steps"},
    {"secrets", "dbt_project", "warehouse_report", "history", "history_queue", "snapshot", "alerts", "assets"},
    {
        "sources",
        "staging",
        "raw_tables",
        "strict_coercion",
        "ingest",
        "tasks",
        "dbt_docs",
        "dbt_events",
        "dbt_build_task",
        "dbt_watchers",
        "ui",
    },
    {"dbt_group"},
    {"run_steps"},
    {"factory", "dbt_on_assets", "cli", "first_hour"},
]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _package_imports(path: Path, module: str) -> set[str]:
    """Every include.mallard module that `path` imports, at any depth of the file (lazy imports count)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith(PACKAGE)}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        # `from pkg import name` names a module only when `pkg.name` is one.
        graph[module] = {name for name in _package_imports(path, module) if name in files and name != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return [*stack[stack.index(child) :], child]
            if child not in state and (found := visit(child)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _top_level(module: str) -> str:
    return module.removeprefix(f"{PACKAGE}.").split(".")[0]


def test_the_import_graph_has_no_circles():
    graph = _graph()
    assert len(graph) > 20  # the walk really found the package
    # A package's __init__ re-exports its modules: an edge into the package is an edge into them all.
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_a_layer_above_its_own():
    layer_of = {name: index for index, names in enumerate(LAYERS) for name in names}
    graph = _graph()
    unknown = {_top_level(module) for module in graph if module != PACKAGE} - layer_of.keys()
    assert not unknown, f"put these top-level modules in a layer of LAYERS: {sorted(unknown)}"
    upward = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if module != PACKAGE and target != PACKAGE and layer_of[_top_level(target)] > layer_of[_top_level(module)]
    ]
    assert not upward, upward


def test_no_module_is_longer_than_the_limit():
    long = {
        str(path.relative_to(PROJECT_ROOT)): lines
        for path in PACKAGE_DIR.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_every_configured_kind_has_a_builder_and_every_builder_a_kind():
    from include.mallard.sources.registry import builder_for

    for kind in SOURCE_KINDS:
        assert callable(builder_for(kind)), kind
        assert (PACKAGE_DIR / "config" / "kinds" / f"{kind}.py").is_file(), f"config/kinds/{kind}.py"
    helpers = {"__init__", "registry", "hints", "schema_store", "empty_input"}
    helpers |= {"file_readers", "record_readers", "csv_types", "column_names"}  # the files kind's readers
    source_modules = {path.stem for path in (PACKAGE_DIR / "sources").glob("*.py")} - helpers
    assert source_modules == set(SOURCE_KINDS), "a sources/<kind>.py without a config kind, or the reverse"


def test_a_kind_without_a_builder_is_a_clear_error():
    from include.mallard.sources.registry import builder_for

    with pytest.raises(ModuleNotFoundError):
        builder_for("no_such_kind")
    with pytest.raises(TypeError, match="has no build"):
        builder_for("hints")  # a module of the package that is not a kind


def test_parsing_the_dag_file_imports_no_dlt_or_dbt():
    """Nothing heavy at parse time: importing the factory pulls in neither dlt nor dbt."""
    import subprocess
    import sys

    code = (
        "import sys; import include.mallard.factory; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('dlt', 'dbt')); print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert "HEAVY []" in result.stdout.splitlines(), result.stdout


@pytest.mark.parametrize("module", ["include.mallard.cli", "include.mallard.staging", "include.mallard.config"])
def test_public_modules_import_on_their_own(module):
    importlib.import_module(module)
