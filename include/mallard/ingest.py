"""What the ingestion tasks run: one source's dlt pipeline in two steps, and the staging step.

`extract` (extract + normalize) touches no warehouse, so sources extract in parallel. `load`
writes to DuckDB and runs in the warehouse pool. The two share a working folder unique to the
DAG run and source, so concurrent runs (backfills) never share dlt state.

`extract` also reports type drift (columns whose type changed against the previous load or the
type the dbt project declares, new variant columns); `load` creates the raw tables dbt reads that
the run had no rows for, so an empty interval never breaks dbt.

The task callables the factory names are in `tasks.py`; this module imports dlt only inside
functions, so the DAG file parses without it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mallard.config import SourceConfig
from include.mallard.dbt_project import manifest_path
from include.mallard.interval import Interval
from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, work_root
from include.mallard.warehouse import resolve_warehouse_path, retry_on_lock

if TYPE_CHECKING:
    import dlt

    from include.mallard.sources.schema_store import Drift

log = logging.getLogger(__name__)

MEMORY_LIMIT_ENV = "MALLARD_DUCKDB_MEMORY_LIMIT"
# DuckDB's buffer pool defaults to 80% of RAM and keeps the blocks a load writes, so a load task's
# memory grew with the table (588 MB at 5M rows); capped, it stays flat (docs/benchmarks.md).
DEFAULT_MEMORY_LIMIT = "256MB"
# Where dlt stages full-refresh and merge tables before swapping them in. dlt's default,
# "%s_staging", gave source `shop` the staging schema `raw_shop_staging`: the dataset of a source
# named `shop_staging`, whose tables it then truncated and overwrote. Every Mallard dataset is
# `raw_<name>`, so a staging schema that starts with `_` can never be one.
STAGING_DATASET_LAYOUT = "_mallard_staging_%s"
# The key of `extract`'s result that holds the drift report (a table name starts with a letter).
DRIFT_KEY = "_type_drift"
# The tables the source's resources load, kept by `extract` for `load`: dlt's schema has no entry
# for a resource that yielded nothing, and such a table may be one dbt reads.
BUILT_TABLES_FILE = "mallard_tables.json"


def run_work_dir(dag_id: str, run_id: str, source_name: str) -> Path:
    """The dlt working folder of one source in one DAG run."""
    safe_run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return work_root() / "dlt" / dag_id / safe_run_id / source_name


def duckdb_memory_limit() -> str:
    """The warehouse connection's DuckDB `memory_limit` while loading (env MALLARD_DUCKDB_MEMORY_LIMIT)."""
    return os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT


def staging_dataset_name(source: SourceConfig) -> str:
    """The schema where dlt stages `source`'s full-refresh and merge tables during a load."""
    return STAGING_DATASET_LAYOUT % source.dataset_name


def _pipeline(source: SourceConfig, work_dir: Path, warehouse_path: Path) -> dlt.Pipeline:
    import dlt
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    pipeline = dlt.pipeline(
        pipeline_name=f"mallard_{source.name}",
        pipelines_dir=str(work_dir),
        # Full-refresh tables load into a staging schema and are swapped in one transaction, so a
        # failed load leaves the previous table readable.
        destination=dlt.destinations.duckdb(
            DuckDbCredentials(str(warehouse_path), global_config={"memory_limit": duckdb_memory_limit()}),
            replace_strategy="insert-from-staging",
            staging_dataset_name_layout=STAGING_DATASET_LAYOUT,
        ),
        dataset_name=source.dataset_name,
    )
    # The run's folder starts empty: never read state from the warehouse while extracting, as
    # that would open DuckDB outside the writer pool.
    pipeline.config.restore_from_destination = False
    return pipeline


# --- what the dbt project reads from raw_<source> -------------------------------------------------


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


def declared_drift(current: Mapping[str, Any], declared: Mapping[str, DeclaredTable]) -> list[Drift]:
    """The loaded columns whose type is not the `data_type` the dbt sources declare for them."""
    from include.mallard.sources.schema_store import Drift, loaded_column_types

    drift = []
    for table_name, columns in loaded_column_types(current).items():
        table = declared.get(table_name.lower())
        for name, declared_type in (table.columns if table else {}).items():
            loaded = columns.get(name) or columns.get(name.lower())
            if declared_type and loaded and canonical_type(declared_type) != canonical_type(loaded):
                drift.append(Drift(table_name, name, declared_type, loaded, table.file))
    return drift


# (type of this load, type of the warehouse column) pairs that the column holds without change.
_LOSSLESS = re.compile(r"(BIGINT|INTEGER|SMALLINT|TINYINT) (BIGINT|HUGEINT|DOUBLE|DECIMAL.*)|DATE TIMESTAMP.*")


def holds(column_type: str, value_type: str) -> bool:
    """Whether a warehouse column of `column_type` stores values of `value_type` unchanged (text holds anything)."""
    column, value = canonical_type(column_type), canonical_type(value_type)
    if column is None or value is None:
        return False
    return column in (value, "VARCHAR") or bool(_LOSSLESS.fullmatch(f"{value} {column}"))


def _report_drift(source: SourceConfig, drift: list[Drift], work_dir: Path) -> None:
    """Log the drift in the task log; fail (and drop the extracted package) under `freeze` or when data would change."""
    from include.mallard.sources.schema_store import PREVIOUS_LOAD, SchemaDriftError, schema_file

    lines = "\n".join(f"  - {item.describe()}" for item in drift)
    contract = source.schema_contract
    log.warning("Source %r: type drift in this run's data (schema_contract %s):\n%s", source.name, contract, lines)
    # dlt never changes an existing column's type: the destination would cast this load's values to
    # it (20.7 into a bigint column is 21) or reject them. Only `evolve` gets this far with such a change.
    lossy = [d for d in drift if d.against == PREVIOUS_LOAD and not d.variant and not holds(d.old, d.new)]
    if lossy:
        shutil.rmtree(work_dir, ignore_errors=True)
        changes = "\n".join(f"  - {d.describe()}" for d in lossy)
        raise SchemaDriftError(
            f"source {source.name!r}: these columns of {source.dataset_name} keep the type of their first load, "
            f"and this load's values do not fit it (they would be cast or rejected):\n{changes}\nNothing was "
            "loaded. Fix: correct the data; or, to change a column's type, alter it in the warehouse (`alter "
            f"table {source.dataset_name}.<table> alter <column> type <new type>`) and delete "
            f"{schema_file(source.name)} so that the next run takes the new types as its baseline."
        )
    if contract == "freeze":
        shutil.rmtree(work_dir, ignore_errors=True)  # nothing of a frozen run may be loaded, not even by hand
        raise SchemaDriftError(
            f"source {source.name!r} has schema_contract freeze, and its data changed type:\n{lines}\n"
            "Nothing was loaded. Fix: correct the data, or the declared data_type in the dbt sources file named "
            "above (then `make manifest`), or set `schema_contract: evolve` to accept the new types."
        )


# --- the steps ---------------------------------------------------------------------------------


def _built_tables(items: list[Any]) -> list[str]:
    """The (root) tables that the resources in `items` load into."""
    from dlt.extract import DltSource

    resources = [r for i in items for r in (i.selected_resources.values() if isinstance(i, DltSource) else [i])]
    return sorted({(r.table_name if isinstance(r.table_name, str) else r.name).lower() for r in resources})


def extract(
    source: SourceConfig, interval: Interval, work_dir: Path, *, dbt_project_dir: Path = DBT_PROJECT_DIR
) -> dict[str, Any]:
    """Extract and normalize `source` for `interval`; return rows per table, ready to load.

    When the data's types drifted, the result also holds the report under `DRIFT_KEY` (a list of
    {table, column, old, new, against[, variant]}); under `freeze` the extract fails instead.
    """
    from include.mallard.sources import schema_store
    from include.mallard.sources.hints import cursor_error
    from include.mallard.sources.registry import build_resources

    if work_dir.exists():
        shutil.rmtree(work_dir)  # a retried extract starts clean rather than loading twice
    pipeline = _pipeline(source, work_dir, resolve_warehouse_path())
    previous = schema_store.remembered(source.name)  # before this run replaces it
    log.info("Extracting source %r for %s into %s", source.name, interval, work_dir)
    items = build_resources(source, interval)
    try:
        pipeline.extract(items)
    except Exception as error:
        if (readable := cursor_error(source, interval, error)) is not None:
            raise readable from error
        raise
    normalize_info = pipeline.normalize()
    current = pipeline.default_schema.to_dict()
    drift = schema_store.type_drift(previous, current)
    drift += declared_drift(current, declared_tables(dbt_project_dir, source.dataset_name))
    if drift:
        _report_drift(source, drift, work_dir)
    schema_store.remember(source.name, work_dir)  # baseline for the next run's schema contract
    (work_dir / BUILT_TABLES_FILE).write_text(json.dumps(_built_tables(items)), encoding="utf-8")
    row_counts = {table: count for table, count in normalize_info.row_counts.items() if not table.startswith("_dlt")}
    log.info("Source %r: rows extracted per table: %s", source.name, row_counts)
    return {**row_counts, DRIFT_KEY: [item.to_dict() for item in drift]} if drift else row_counts


def _existing_tables(client: Any, dataset: str) -> set[str]:
    rows = client.execute_sql(
        "select lower(table_name) from information_schema.tables where lower(table_schema) = lower(?)", dataset
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


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
    dataset = _quoted(source.dataset_name)
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
            column_sql = ", ".join(f"{_quoted(c)} {t}" for c, t in columns.items())
            client.execute_sql(f"create schema if not exists {dataset}")
            client.execute_sql(f"create table if not exists {dataset}.{_quoted(name)} ({column_sql})")
            log.info(
                "Source %r had no rows for %s.%s: created it empty (%s)",
                source.name,
                source.dataset_name,
                name,
                column_sql,
            )
    return list(planned)


def load(source: SourceConfig, work_dir: Path, *, dbt_project_dir: Path = DBT_PROJECT_DIR) -> dict[str, Any]:
    """Load what `extract` prepared into `raw_<source>`, create the empty tables dbt reads, drop the working folder."""
    if not work_dir.exists():
        raise FileNotFoundError(
            f"nothing to load for source {source.name!r}: {work_dir} does not exist. "
            "Clear the source's extract task so it runs again."
        )
    warehouse_path = resolve_warehouse_path()
    pipeline = _pipeline(source, work_dir, warehouse_path)
    log.info("Loading source %r into %s (schema %s)", source.name, warehouse_path, source.dataset_name)
    load_info = retry_on_lock(pipeline.load)
    load_info.raise_on_failed_jobs()
    created = retry_on_lock(lambda: create_missing_tables(pipeline, source, dbt_project_dir))
    shutil.rmtree(work_dir, ignore_errors=True)
    summary = {"dataset": source.dataset_name, "warehouse": str(warehouse_path), "loads": list(load_info.loads_ids)}
    if created:
        summary["created_empty"] = created
    log.info("Source %r loaded: %s", source.name, summary)
    return summary


# The task callables (extract_task, load_task, generate_staging_task, ...) are in tasks.py: each
# reads only its own source's file, and config errors there fail without retries.
