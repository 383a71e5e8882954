"""Airflow Assets for what Mallard loads and builds: one per raw table and per dbt model, named as Cosmos names them.

A table's URI is the OpenLineage-style name Cosmos gives dbt's relations in the same warehouse:
`duckdb://<warehouse file>/<catalog>/<schema>/<table>` (Cosmos's `construct_dataset_uri` builds
every one). The warehouse file is the absolute path from MALLARD_WAREHOUSE_PATH or the default,
so the URI is the same from every working directory and every worker of one deployment, and a raw
table loaded by Mallard and the dbt source that reads it are one Asset.

On DuckDB the path is known when the DAG is parsed, so the Assets are declared there (Airflow's
Assets view shows their producing tasks and one lineage graph):
- each load task declares an Asset per raw table the dbt project reads from its schema, plus the
  source's `AssetAlias` (`raw_<source>`) for the tables only a run discovers (a python source's,
  dlt's child tables); every event carries the rows loaded and the interval;
- each dbt model, seed and snapshot task declares its relation's Asset (Cosmos's own emission,
  which goes through an alias per task on Airflow 3, is turned off for it).
On a server warehouse the host is in the Airflow connection, which is never read at parse time:
the load tasks add their tables' events through the alias, and Cosmos emits the models' itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from include.mallard.dbt_project import DbtRelations, Relation, dbt_relations
from include.mallard.warehouse import (
    Warehouse,
    active_warehouse,
    configured_warehouse_path,
    export_warehouse_path,
    resolve_warehouse_path,
)

DUCKDB_SCHEME = "duckdb"
Location = tuple[str, str]  # (OpenLineage namespace, catalog)


def source_alias_name(source_name: str) -> str:
    """The name of the AssetAlias a source's load task adds the events of undeclared tables to."""
    return f"raw_{source_name}"


def load_task_id(source_name: str) -> str:
    """The task that loads a source and produces its raw tables' Assets (factory.py's group and task)."""
    return f"ingest_{source_name}.load"


def warehouse_namespace(warehouse_path: Path) -> str:
    """The OpenLineage namespace of the DuckDB warehouse, as Cosmos derives it from dbt's profile `path`."""
    return f"{DUCKDB_SCHEME}://{warehouse_path}"


def duckdb_location(warehouse_path: Path) -> Location:
    """(OpenLineage namespace, catalog) of the DuckDB file: the catalog is the file's stem."""
    return warehouse_namespace(warehouse_path), warehouse_path.stem


def postgres_location(host: str, port: int, database: str) -> Location:
    """(OpenLineage namespace, catalog) of a PostgreSQL database, as Cosmos derives it from dbt's profile."""
    return f"postgres://{host}:{port}", database


def location_table_uri(location: Location, schema: str, table: str) -> str:
    """The Asset URI of `schema.table` at `location`: Cosmos's own construction, so the two always match."""
    from cosmos.dataset import construct_dataset_uri

    namespace, catalog = location
    return construct_dataset_uri(namespace, f"{catalog}.{schema}.{table}", warn_uri_migration=False)


def table_uri(warehouse_path: Path, schema: str, table: str) -> str:
    """The Asset URI of `schema.table` in the DuckDB warehouse file."""
    return location_table_uri(duckdb_location(warehouse_path), schema, table)


def declared_location(warehouse: Warehouse) -> Location | None:
    """Where the Assets a DAG declares live, known at parse time: the DuckDB file's; None for a server."""
    return duckdb_location(configured_warehouse_path()) if warehouse.is_embedded else None


def relation_uri(location: Location, relations: DbtRelations, relation: Relation) -> str:
    """A dbt relation's Asset URI; its database is the warehouse's catalog when dbt named it after the file."""
    database, schema, table = relation
    catalog = location[1] if database in ("", relations.catalog) else database
    return location_table_uri((location[0], catalog), schema, table)


def declared_raw_tables(schema: str, warehouse: Warehouse, dbt_project_dir: Path) -> list[Relation]:
    """The raw tables of `schema` a load task declares as Assets: those dbt reads; none on a server."""
    return dbt_relations(dbt_project_dir).source_tables(schema) if warehouse.is_embedded else []


def source_outlets(source_name: str, schema: str, warehouse: Warehouse, dbt_project_dir: Path) -> list:
    """The outlets of a source's load task: an Asset per declared raw table, then the alias."""
    from airflow.sdk import Asset, AssetAlias

    alias = AssetAlias(source_alias_name(source_name))
    location = declared_location(warehouse)
    if location is None:
        return [alias]
    relations = dbt_relations(dbt_project_dir)
    tables = declared_raw_tables(schema, warehouse, dbt_project_dir)
    return [*(Asset(uri=relation_uri(location, relations, table)) for table in tables), alias]


def declare_model_outlets(tasks: Iterable[Any], relations: DbtRelations, location: Location) -> None:
    """Give each Cosmos task that would emit its model's Asset that Asset as a declared outlet.

    Cosmos's own emission is turned off for those tasks: on Airflow 3 it adds the event through
    an alias per task, which leaves the Asset without a producing task in Airflow's Assets view.
    """
    from airflow.sdk import Asset

    for task in tasks:
        relation = relations.nodes.get(getattr(task, "model_unique_id", None) or "")
        if relation and getattr(task, "emit_datasets", False):
            task.emit_datasets = False
            task.outlets = [Asset(uri=relation_uri(location, relations, relation))]


def check_declared_outlets(task: Any, location: Location) -> None:
    """Fail before writing when the task's declared Assets name another warehouse than the one it writes."""
    from airflow.sdk import Asset

    # An Asset's name is its URI as built; Airflow normalizes `uri` (`duckdb:///x` becomes `duckdb:/x`).
    namespace = location[0] + "/"
    wrong = [o.name for o in getattr(task, "outlets", []) if isinstance(o, Asset) and not o.name.startswith(namespace)]
    if wrong:
        raise RuntimeError(
            f"This task writes {location[0]}, but the DAG was parsed with its Assets in another warehouse "
            f"({wrong[0]}): the events would name the wrong tables. MALLARD_WAREHOUSE_PATH must be the same for "
            "the DAG processor and the workers (set it in the deployment's environment, e.g. the Dockerfile)."
        )


def emit_table_events(
    outlet_events: Any,
    declared: Iterable[Any],
    source_name: str,
    schema: str,
    rows_by_table: Mapping[str, int],
    extra: Mapping[str, Any],
    location: Location,
) -> list[str]:
    """The event of each table the load wrote: a declared Asset's gets its extra, the others go through
    the source's alias. Every declared Asset gets an event when the task succeeds (Airflow's rule),
    so one the load wrote no row to says `rows: 0`. Returns the URIs, in table order."""
    from airflow.sdk import Asset, AssetAlias

    declared_uris = {outlet.name for outlet in declared if isinstance(outlet, Asset)}  # the URIs as built
    rows = {location_table_uri(location, schema, table): count for table, count in rows_by_table.items()}
    for uri in sorted(declared_uris):
        outlet_events[Asset(uri=uri)].extra = {**extra, "rows": rows.get(uri, 0)}
    alias_events = outlet_events[AssetAlias(source_alias_name(source_name))]
    for uri in sorted(rows.keys() - declared_uris):
        # Named by its URI, as Cosmos names its Assets: the dbt source reading this table is the same Asset.
        alias_events.add(Asset(uri=uri), extra={**extra, "rows": rows[uri]})
    return sorted(rows.keys() | declared_uris)


def export_warehouse_path_for_cosmos(context: Mapping[str, Any]) -> None:
    """`on_execute_callback` of the dbt tasks: put where dbt writes in this process's env, where the profile reads it.

    DuckDB: the resolved path, after checking the task's declared Assets name that file (the
    profile's default, `../../warehouse/mallard.duckdb`, for dbt by hand, would otherwise name
    every model Asset Cosmos emits by a relative path). PostgreSQL: the connection's credentials,
    after checking the server answers (postgres_warehouse.py).
    """
    warehouse = active_warehouse()
    if warehouse.is_embedded:
        check_declared_outlets(context.get("task"), duckdb_location(resolve_warehouse_path()))
        export_warehouse_path()
    else:
        from include.mallard.postgres_warehouse import export_for_dbt

        export_for_dbt(warehouse)
