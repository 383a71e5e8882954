"""Airflow Assets for what Mallard loads: one per raw table, named as Cosmos names dbt's tables.

A raw table's URI is the OpenLineage-style name Cosmos gives the models of the same warehouse:
`duckdb://<warehouse file>/<catalog>/<schema>/<table>` (Cosmos's `construct_dataset_uri` builds
both). The warehouse file is the resolved, absolute path (env MALLARD_WAREHOUSE_PATH, connection
`mallard_warehouse`, or the default), so the URI is the same from every working directory and
every worker of one deployment, and a raw table loaded by Mallard and the dbt source that reads it
are one Asset in Airflow's Assets view.

The path is only known when a task runs (the connection is never looked up at parse time), so
each load task declares one `AssetAlias` per source (`raw_<source>`) and adds an event for each
table it wrote to it, with the rows loaded and the interval in the event's extra. Consumers can
schedule on the alias.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.mallard.warehouse import active_warehouse, export_warehouse_path, resolve_warehouse_path

DUCKDB_SCHEME = "duckdb"


def source_alias_name(source_name: str) -> str:
    """The name of the AssetAlias a source's load task adds its raw tables' events to."""
    return f"raw_{source_name}"


def warehouse_namespace(warehouse_path: Path) -> str:
    """The OpenLineage namespace of the DuckDB warehouse, as Cosmos derives it from dbt's profile `path`."""
    return f"{DUCKDB_SCHEME}://{warehouse_path}"


def duckdb_location(warehouse_path: Path) -> tuple[str, str]:
    """(OpenLineage namespace, catalog) of the DuckDB file: the catalog is the file's stem."""
    return warehouse_namespace(warehouse_path), warehouse_path.stem


def postgres_location(host: str, port: int, database: str) -> tuple[str, str]:
    """(OpenLineage namespace, catalog) of a PostgreSQL database, as Cosmos derives it from dbt's profile."""
    return f"postgres://{host}:{port}", database


def location_table_uri(location: tuple[str, str], schema: str, table: str) -> str:
    """The Asset URI of `schema.table` at `location`: Cosmos's own construction, so the two always match."""
    from cosmos.dataset import construct_dataset_uri

    namespace, catalog = location
    return construct_dataset_uri(namespace, f"{catalog}.{schema}.{table}", warn_uri_migration=False)


def table_uri(warehouse_path: Path, schema: str, table: str) -> str:
    """The Asset URI of `schema.table` in the DuckDB warehouse file."""
    return location_table_uri(duckdb_location(warehouse_path), schema, table)


def emit_table_events(
    outlet_events: Any,
    source_name: str,
    schema: str,
    rows_by_table: Mapping[str, int],
    extra: Mapping[str, Any],
    location: tuple[str, str] | None = None,
) -> list[str]:
    """Add one Asset event per table written to the source's alias; the URIs, in table order.

    `location` is the warehouse's (namespace, catalog); default: the DuckDB file's.
    """
    from airflow.sdk import Asset, AssetAlias

    location = location or duckdb_location(resolve_warehouse_path())
    events = outlet_events[AssetAlias(source_alias_name(source_name))]
    uris = []
    for table in sorted(rows_by_table):
        uri = location_table_uri(location, schema, table)
        # Named by its URI, as Cosmos names its Assets: the dbt source reading this table is the same Asset.
        events.add(Asset(uri=uri), extra={**extra, "rows": rows_by_table[table]})
        uris.append(uri)
    return uris


def export_warehouse_path_for_cosmos(context: Mapping[str, Any]) -> None:
    """`on_execute_callback` of the dbt tasks: put where dbt writes in this process's env, where the profile reads it.

    DuckDB: the resolved path (the profile's default, `../../warehouse/mallard.duckdb`, for dbt by
    hand, would otherwise name every model Asset by a relative path; with the resolved path, models
    and raw tables share one namespace). PostgreSQL: the connection's credentials, after checking
    the server answers (postgres_warehouse.py).
    """
    warehouse = active_warehouse()
    if warehouse.is_embedded:
        export_warehouse_path()
    else:
        from include.mallard.postgres_warehouse import export_for_dbt

        export_for_dbt(warehouse)
