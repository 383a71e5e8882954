"""What the UI needs from the dbt manifest: the tables dbt builds, and which Airflow task shows a node.

Read from `include/dbt/target/manifest.json` (built by `mallard manifest`; Cosmos renders the DAG
from the same file), cached until the file changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from include.mallard.dbt_project import manifest_path
from include.mallard.paths import DBT_PROJECT_DIR

# Task ids of Cosmos's watcher-mode DbtTaskGroup `dbt` (see include/mallard/dbt_group.py).
DBT_GROUP_ID = "dbt"
BUILD_TASK_ID = f"{DBT_GROUP_ID}.dbt_producer_watcher"
_BUILT = ("model", "seed", "snapshot")


@dataclass(frozen=True)
class BuiltTable:
    """A relation dbt builds: where it is and what it is."""

    unique_id: str
    schema: str
    name: str
    resource_type: str
    materialized: str


@dataclass(frozen=True)
class DbtProject:
    tables: tuple[BuiltTable, ...]
    # test unique_id -> the model it is attached to (its test task is `dbt.<model>.test`).
    attached: dict[str, str]
    names: dict[str, str]


@lru_cache(maxsize=4)
def _read(path: Path, mtime_ns: int) -> DbtProject:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    tables, attached, names = [], {}, {}
    for unique_id, node in manifest.get("nodes", {}).items():
        names[unique_id] = node.get("name", unique_id)
        materialized = node.get("config", {}).get("materialized", "")
        if node.get("resource_type") in _BUILT and materialized != "ephemeral":
            name = node.get("alias") or node["name"]
            tables.append(BuiltTable(unique_id, node["schema"], name, node["resource_type"], materialized))
        elif node.get("resource_type") == "test" and node.get("attached_node"):
            attached[unique_id] = node["attached_node"]
    tables.sort(key=lambda table: (table.schema, table.name))
    return DbtProject(tuple(tables), attached, names)


def dbt_project(dbt_project_dir: Path = DBT_PROJECT_DIR) -> DbtProject | None:
    """The manifest's tables and test attachments; None when no manifest was built yet."""
    path = manifest_path(dbt_project_dir)
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _read(path, mtime)


def node_tasks(project: DbtProject | None, unique_id: str, resource_type: str) -> list[str]:
    """The Airflow tasks that may show a dbt node's own result, most specific first.

    Cosmos names a model with tests `dbt.<model>.run` (its tests `dbt.<model>.test`), one without
    `dbt.<model>_run`; the caller keeps the first that the run really has, else the dbt build,
    whose log shows every node.
    """
    names = project.names if project else {}
    if resource_type == "test":
        model = project.attached.get(unique_id) if project else None
        if model not in names:
            return [BUILD_TASK_ID]
        return [f"{DBT_GROUP_ID}.{names[model]}.test", f"{DBT_GROUP_ID}.{names[model]}_test", BUILD_TASK_ID]
    name = names.get(unique_id, unique_id.split(".")[-1])
    suffix = {"model": "run", "seed": "seed", "snapshot": "snapshot"}.get(resource_type, "run")
    return [f"{DBT_GROUP_ID}.{name}.{suffix}", f"{DBT_GROUP_ID}.{name}_{suffix}", BUILD_TASK_ID]
