"""What is in the warehouse: the tables the dbt project builds, with their row counts (`mallard marts`).

It reads the read-only snapshot that each run publishes (`warehouse.snapshot_path()`), never the
warehouse itself: a reader of the warehouse file, even a read-only one, makes loads wait.
"""

from __future__ import annotations

import json
from pathlib import Path

from include.mallard.dbt_project import manifest_path
from include.mallard.warehouse import resolve_warehouse_path, snapshot_path

# Models that hold no rows of their own in the warehouse.
_NOT_IN_WAREHOUSE = {"ephemeral"}


class WarehouseReportError(RuntimeError):
    """Nothing to report: no warehouse, no manifest, or no tables in the asked schemas."""


def built_schemas(dbt_project_dir: Path) -> list[str]:
    """The warehouse schemas the dbt project's models are built in, from its manifest."""
    path = manifest_path(dbt_project_dir)
    if not path.is_file():
        raise WarehouseReportError(f"{path} is missing: build it with `mallard manifest`, or give --schema")
    nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"].values()
    schemas = {
        node["schema"]
        for node in nodes
        if node["resource_type"] in ("model", "seed", "snapshot")
        and node.get("config", {}).get("materialized") not in _NOT_IN_WAREHOUSE
    }
    return sorted(schemas)


def table_counts(schemas: list[str] | None, dbt_project_dir: Path) -> str:
    """A printable report of every table (and view) in `schemas` (default: `built_schemas`), with row counts."""
    import duckdb

    path = snapshot_path()
    if not path.exists():
        warehouse = resolve_warehouse_path()
        has_warehouse = f"the warehouse {warehouse} exists, but " if warehouse.exists() else ""
        raise WarehouseReportError(
            f"no warehouse snapshot at {path}: {has_warehouse}the snapshot is published by the last task (`publish`) "
            "of each run. Run the pipeline (make demo, or trigger mallard_elt)."
        )
    wanted = schemas or built_schemas(dbt_project_dir)
    lines = [f"Warehouse snapshot {path} (published after the last run):"]
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in (select unnest(?)) order by table_schema, table_name",
            [wanted],
        ).fetchall()
        if not rows:
            raise WarehouseReportError(f"no tables in schema(s) {', '.join(wanted)} of {path}")
        for schema, table in rows:
            (count,) = connection.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
            lines.append(f"  {f'{schema}.{table}':<40} {count:>10,} rows")
    return "\n".join(lines)
