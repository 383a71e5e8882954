"""The raw tables the dbt project reads: their declarations, and creating the ones a load left missing.

dlt creates a table only when rows arrive, so an interval without rows (a first run before the
data starts, a quiet day) would leave dbt reading a table that does not exist. `load` calls
`create_missing_tables` after dlt's load: each table of `raw_<source>` that dbt's sources declare
and a resource of the source loads is created empty, with the declared columns and types, else
the columns of the source's last load, else the load fails naming the dbt sources file.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mallard.config import SourceConfig
from include.mallard.dbt_project import manifest_path
from include.mallard.paths import PROJECT_ROOT
from include.mallard.warehouse import quote_identifier

if TYPE_CHECKING:
    import dlt

log = logging.getLogger(__name__)

# The tables the source's resources load, kept by `extract` for `load`: dlt's schema has no entry
# for a resource that yielded nothing, and such a table may be one dbt reads.
BUILT_TABLES_FILE = "mallard_tables.json"


@dataclass(frozen=True)
class DeclaredTable:
    """A raw table the dbt project reads, as its sources YAML declares it (from the manifest)."""

    name: str
    file: str  # the sources YAML, relative to the project root
    columns: dict[str, str | None]  # column -> declared data_type (None: none declared)


def declared_tables(dbt_project_dir: Path, dataset: str) -> dict[str, DeclaredTable]:
    """The tables of schema `dataset` that the dbt project's sources declare, by lowercase name."""
    path = manifest_path(dbt_project_dir)
    if not path.is_file():
        return {}  # the DAG does not import without a manifest; outside Airflow nothing is declared
    tables = {}
    for node in json.loads(path.read_text(encoding="utf-8")).get("sources", {}).values():
        if str(node.get("schema", "")).lower() != dataset.lower():
            continue
        name = str(node.get("identifier") or node["name"]).lower()
        file = (dbt_project_dir / node.get("original_file_path", "")).resolve()
        columns = {str(c): (column.get("data_type") or None) for c, column in node.get("columns", {}).items()}
        shown = str(file.relative_to(PROJECT_ROOT)) if file.is_relative_to(PROJECT_ROOT) else str(file)
        tables[name] = DeclaredTable(name, shown, columns)
    return tables


@functools.cache
def _types_connection() -> Any:
    import duckdb

    return duckdb.connect()  # in memory: no warehouse, no lock; opened once (70 ms)


@functools.cache
def canonical_type(sql_type: str) -> str | None:
    """DuckDB's own name of a SQL type (`text` and `varchar` are both VARCHAR); None when it is none."""
    import duckdb

    if not re.fullmatch(r"[A-Za-z0-9_ (),\[\]]+", sql_type):
        return None
    try:
        return _types_connection().execute(f"select typeof(cast(null as {sql_type}))").fetchone()[0]
    except duckdb.Error:
        return None


def _existing_tables(client: Any, dataset: str) -> set[str]:
    rows = client.execute_sql(
        "select lower(table_name) from information_schema.tables where lower(table_schema) = lower(%s)", dataset
    )
    return {name for (name,) in rows}


def _columns_for(
    source: SourceConfig, table: DeclaredTable, remembered: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    """The columns (name -> DuckDB type) to create an empty `table` with: dbt's declaration, else the last load's."""
    if table.columns and all(table.columns.values()):
        invalid = [f"{c}: {t}" for c, t in table.columns.items() if canonical_type(t) is None]  # type: ignore[arg-type]
        if invalid:
            raise ValueError(
                f"{table.file}: table {table.name!r} of source {source.name!r} declares a data_type DuckDB does "
                f"not know ({', '.join(invalid)}). Fix: use a DuckDB type such as varchar, bigint, double, date, "
                "timestamp with time zone, decimal(18, 2); then run `make manifest`."
            )
        return dict(table.columns)  # type: ignore[arg-type]
    if remembered.get(table.name):
        return remembered[table.name]
    untyped = [c for c, t in table.columns.items() if not t] or ["(none declared)"]
    raise ValueError(
        f"source {source.name!r}: dbt reads {source.dataset_name}.{table.name} (declared in {table.file}), but it "
        "does not exist: this run had no rows for it and no earlier load of the source had any, so its columns "
        f"are unknown (columns without data_type: {', '.join(untyped)}). Fix: declare every column of table "
        f"{table.name!r} with its `data_type` in {table.file}, then run `make manifest` and clear this task."
    )


def create_missing_tables(pipeline: dlt.Pipeline, source: SourceConfig, dbt_project_dir: Path) -> list[str]:
    """Create, empty, the tables of raw_<source> that dbt reads and this load did not create; return them.

    dlt creates a table only when rows arrive, so an interval with none (a first run before the data
    starts, a quiet day) left dbt reading a table that does not exist. Only tables the source loads
    (a resource of it, or its schema, names them) are created: a table dbt expects that the source
    never loads stays missing, and dbt says so.
    """
    from include.mallard.sources import schema_store

    declared = declared_tables(dbt_project_dir, source.dataset_name)
    if not declared:
        return []
    known_schema = schema_store.remembered(source.name) or {}
    known = {t.lower() for t in [*pipeline.default_schema.tables, *known_schema.get("tables", {})]}
    built = Path(pipeline.pipelines_dir) / BUILT_TABLES_FILE
    known |= set(json.loads(built.read_text(encoding="utf-8"))) if built.is_file() else set()
    known |= {name for name in declared if name.split("__")[0] in known}  # nested tables of known ones
    remembered = schema_store.loaded_column_types(known_schema)
    dataset = quote_identifier(source.dataset_name)
    with pipeline.sql_client() as client:
        missing = sorted(set(declared) - _existing_tables(client, source.dataset_name))
        for name in [name for name in missing if name not in known]:
            log.warning(
                "dbt reads %s.%s (%s), which source %r does not load: not created.",
                source.dataset_name,
                name,
                declared[name].file,
                source.name,
            )
        # Every table's columns first: a table that cannot be created fails the load before any is.
        planned = {name: _columns_for(source, declared[name], remembered) for name in missing if name in known}
        for name, columns in planned.items():
            column_sql = ", ".join(f"{quote_identifier(c)} {t}" for c, t in columns.items())
            client.execute_sql(f"create schema if not exists {dataset}")
            client.execute_sql(f"create table if not exists {dataset}.{quote_identifier(name)} ({column_sql})")
            log.info(
                "Source %r had no rows for %s.%s: created it empty (%s)",
                source.name,
                source.dataset_name,
                name,
                column_sql,
            )
    return list(planned)
