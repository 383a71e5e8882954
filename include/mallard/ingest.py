"""What the ingestion tasks run: one source's dlt pipeline in two steps, and the staging step.

`extract` (extract + normalize) touches no warehouse, so sources extract in parallel. `load`
writes to the warehouse and runs in the warehouse pool. The two share a working folder unique to
the DAG run and source, so concurrent runs (backfills) never share dlt state. On a server
warehouse (PostgreSQL) the two run in one task (`tasks.ingest_task`), so the folder never has to
move between workers.

`extract` also reports type drift (columns whose type changed against the previous load or the
type the dbt project declares, new variant columns); `load` creates the raw tables dbt reads that
the run had no rows for (raw_tables.py), so an empty interval never breaks dbt, and records the
load and its schema changes in `mallard_meta` (history.py).

The task callables the factory names are in `tasks.py`; this module imports dlt only inside
functions, so the DAG file parses without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mallard import history, history_queue
from include.mallard.config import SourceConfig
from include.mallard.dlt_steps import (
    extract_items,
    normalize_in_process,
    strict_coercion,
    use_arrow_pool_that_returns_memory,
)
from include.mallard.interval import Interval
from include.mallard.paths import DBT_PROJECT_DIR, work_root
from include.mallard.raw_tables import (
    BUILT_TABLES_FILE,
    DeclaredTable,
    canonical_type,
    create_missing_tables,
    declared_tables,
)
from include.mallard.warehouse import Warehouse, active_warehouse, resolve_warehouse_path, retry_on_lock

if TYPE_CHECKING:
    import dlt

    from include.mallard.sources.schema_store import Drift

log = logging.getLogger(__name__)

# DuckDB's buffer pool defaults to 80% of RAM and keeps the blocks a load writes, so a load task's
# memory grew with the table (588 MB at 5M rows). Unless this env var sets it, the load's
# `memory_limit` is sized from its widest table (duckdb_destination.memory_limit_for).
MEMORY_LIMIT_ENV = "MALLARD_DUCKDB_MEMORY_LIMIT"
# Where dlt stages full-refresh and merge tables before swapping them in. dlt's default,
# "%s_staging", gave source `shop` the staging schema `raw_shop_staging`: the dataset of a source
# named `shop_staging`, whose tables it then truncated and overwrote. Every Mallard dataset is
# `raw_<name>`, so a staging schema that starts with `_` can never be one.
STAGING_DATASET_LAYOUT = "_mallard_staging_%s"
# The key of `extract`'s result that holds the drift report (a table name starts with a letter).
DRIFT_KEY = "_type_drift"
# What `extract` saw (interval, timing, rows, schema changes), for the history `load` records.
RUN_FILE = "mallard_run.json"


def run_work_dir(dag_id: str, run_id: str, source_name: str) -> Path:
    """The dlt working folder of one source in one DAG run."""
    safe_run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return work_root() / "dlt" / dag_id / safe_run_id / source_name


def staging_dataset_name(source: SourceConfig) -> str:
    """The schema where dlt stages `source`'s full-refresh and merge tables during a load."""
    return STAGING_DATASET_LAYOUT % source.dataset_name


def _destination(warehouse: Warehouse) -> tuple[Any, str, tuple[str, str]]:
    """dlt's destination for `warehouse`, where it is (for logs), and its (namespace, catalog) for Asset URIs."""
    from include.mallard.assets import duckdb_location, postgres_location

    # A failed full refresh leaves the previous table readable: on PostgreSQL dlt loads it into a
    # staging schema and copies it over in one transaction; on DuckDB it loads beside the table
    # and is renamed over it in one transaction, written once (duckdb_destination.py).
    staging = {"replace_strategy": "insert-from-staging", "staging_dataset_name_layout": STAGING_DATASET_LAYOUT}
    if not warehouse.is_embedded:
        from include.mallard.postgres_warehouse import check_reachable

        found = check_reachable(warehouse)
        # dlt's own default for postgres, `insert_values` (Parquet needs the ADBC driver).
        from include.mallard.merge_jobs import postgres_newest_wins

        destination = postgres_newest_wins(credentials=found.uri(), **staging)
        return destination, f"postgres {found.where()}", postgres_location(found.host, found.port, found.database)
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    from include.mallard.duckdb_destination import duckdb_swapping_full_refresh

    path = resolve_warehouse_path()
    memory_limit = os.environ.get(MEMORY_LIMIT_ENV)
    destination = duckdb_swapping_full_refresh(
        DuckDbCredentials(str(path), global_config={"memory_limit": memory_limit} if memory_limit else None),
        # Row-based resources (synthetic, REST, SQL via sqlalchemy, python) are normalized into
        # Parquet: dlt's DuckDB default, `insert_values`, held a load's SQL text in memory
        # (6 GB at 212k rows) and was 20x slower. Types, merge and contracts are unchanged.
        preferred_loader_file_format="parquet",
        # One load job at a time: each insert already runs on all of DuckDB's threads, and
        # concurrent inserts each buffer every column (20 tables of 50 columns ran out of 256MB).
        loader_parallelism_strategy="sequential",
        **staging,
    )
    return destination, str(path), duckdb_location(path)


def _pipeline(source: SourceConfig, work_dir: Path, destination: Any) -> dlt.Pipeline:
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"mallard_{source.name}",
        pipelines_dir=str(work_dir),
        destination=destination,
        dataset_name=source.dataset_name,
    )
    # The run's folder starts empty: never read state from the warehouse while extracting, as
    # that would open DuckDB outside the writer pool.
    pipeline.config.restore_from_destination = False
    return pipeline


def warehouse_pipeline(source: SourceConfig, work_dir: Path, warehouse: Warehouse | None = None) -> dlt.Pipeline:
    """The dlt pipeline of `source` in `work_dir`, into `warehouse` (default: the environment's)."""
    return _pipeline(source, work_dir, _destination(warehouse or active_warehouse())[0])


# --- type drift against the dbt project's declarations ----------------------------------------------


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


def _schema_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any], drift: list[Drift]) -> list:
    """What this run changes in the source's tables (mallard_meta.schema_changes, written by `load`)."""
    from include.mallard.sources.schema_store import FIRST_LOAD, PREVIOUS_LOAD, loaded_column_types
    from include.mallard.staging.schema import variant_base

    tables = current.get("tables", {})
    variants = {(t, c) for t, table in tables.items() for c in table.get("columns", {}) if variant_base(table, c)}
    return history.schema_changes(
        loaded_column_types(previous) if previous else None,
        loaded_column_types(current),
        variants,
        [item.to_dict() for item in drift],
        against_loads={PREVIOUS_LOAD, FIRST_LOAD},
    )


def _built_tables(items: list[Any]) -> list[str]:
    """The (root) tables that the resources in `items` load into."""
    from include.mallard.sources.registry import resources_of

    return sorted({(r.table_name if isinstance(r.table_name, str) else r.name).lower() for r in resources_of(items)})


def extract(
    source: SourceConfig,
    interval: Interval,
    work_dir: Path,
    *,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    warehouse: Warehouse | None = None,
) -> dict[str, Any]:
    """Extract and normalize `source` for `interval`; return rows per table, ready to load.

    When the data's types drifted, the result also holds the report under `DRIFT_KEY` (a list of
    {table, column, old, new, against[, variant]}); under `freeze` the extract fails instead.
    """
    from include.mallard.sources import empty_input, schema_store
    from include.mallard.sources.hints import cursor_error
    from include.mallard.sources.registry import build_resources

    started_at, clock = history.now(), time.monotonic()
    use_arrow_pool_that_returns_memory()
    if work_dir.exists():
        shutil.rmtree(work_dir)  # a retried extract starts clean rather than loading twice
    previous = schema_store.remembered(source.name)  # before this run replaces it
    log.info("Extracting source %r for %s into %s", source.name, interval, work_dir)
    with strict_coercion():  # the schemas this creates or restores carry the normalizer to normalize
        pipeline = warehouse_pipeline(source, work_dir, warehouse)
        items = build_resources(source, interval)
        try:
            extract_info = extract_items(pipeline, items)
        except Exception as error:
            if (readable := cursor_error(source, interval, error)) is not None:
                raise readable from error
            raise
        normalize_info = normalize_in_process(pipeline)
    kept = empty_input.check_full_refreshes(source, items, extract_info, pipeline)
    current = pipeline.default_schema.to_dict()
    drift = schema_store.type_drift(previous, current)
    drift += declared_drift(current, declared_tables(dbt_project_dir, source.dataset_name))
    if drift:
        _report_drift(source, drift, work_dir)
    schema_store.remember(source.name, work_dir)  # baseline for the next run's schema contract
    (work_dir / BUILT_TABLES_FILE).write_text(json.dumps(_built_tables(items)), encoding="utf-8")
    loaded = normalize_info.row_counts.items()
    row_counts = {table: count for table, count in loaded if not table.startswith("_dlt") and table not in kept}
    log.info("Source %r: rows extracted per table: %s", source.name, row_counts)
    facts = {"interval": [interval.start.isoformat(), interval.end.isoformat()], "started_at": started_at.isoformat()}
    facts |= {"seconds": time.monotonic() - clock, "rows": row_counts}
    facts["schema_changes"] = _schema_changes(previous, current, drift)
    (work_dir / RUN_FILE).write_text(json.dumps(facts), encoding="utf-8")
    return {**row_counts, DRIFT_KEY: [item.to_dict() for item in drift]} if drift else row_counts


@contextlib.contextmanager
def _connection(pipeline: dlt.Pipeline) -> Iterator[Any]:
    """The load's own warehouse connection (dlt lends one DuckDB connection to nested clients)."""
    with pipeline.sql_client() as client:
        yield client.native_connection


def _facts(work_dir: Path) -> dict[str, Any]:
    facts = json.loads(path.read_text(encoding="utf-8")) if (path := work_dir / RUN_FILE).is_file() else {}
    built = work_dir / BUILT_TABLES_FILE
    facts["built"] = json.loads(built.read_text(encoding="utf-8")) if built.is_file() else []
    return facts


def _out_of_memory(source: SourceConfig, error: BaseException) -> Exception | None:
    from include.mallard.duckdb_destination import out_of_memory

    return out_of_memory(source.name, error, MEMORY_LIMIT_ENV)


def load(
    source: SourceConfig,
    work_dir: Path,
    *,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    run: history.RunRef | None = None,
    warehouse: Warehouse | None = None,
) -> dict[str, Any]:
    """Load what `extract` prepared into `raw_<source>`, create the empty tables dbt reads, drop the working folder.

    With `run` (the DAG run), the load and its schema changes are recorded in `mallard_meta`
    (history.py), a failed load too.
    """
    if not work_dir.exists():
        error = FileNotFoundError(
            f"nothing to load for source {source.name!r}: {work_dir} does not exist. "
            "Clear the source's extract task so it runs again."
        )
        if run:
            rows = history.load_rows(run, source.name, {}, error=error)
            history_queue.record_failed_load(None, run, source.name, rows)
        raise error
    warehouse = warehouse or active_warehouse()
    destination, where, location = _destination(warehouse)
    pipeline = _pipeline(source, work_dir, destination)
    log.info("Loading source %r into %s (schema %s)", source.name, where, source.dataset_name)
    facts, clock = _facts(work_dir), time.monotonic()
    try:
        load_info = retry_on_lock(pipeline.load)
        load_info.raise_on_failed_jobs()

        def finish() -> list[str]:
            # One client for both: dlt lends the same DuckDB connection to the nested one.
            with pipeline.sql_client() as client:
                if warehouse.is_embedded:  # the limit this load ran with (duckdb_destination.py)
                    facts["memory_limit"] = client.execute_sql("select current_setting('memory_limit')")[0][0]
                created = create_missing_tables(pipeline, source, dbt_project_dir)
                if run:
                    loaded = history.load_rows(
                        run, source.name, facts, load_ids=load_info.loads_ids, seconds=time.monotonic() - clock
                    )
                    changes = history.schema_change_rows(run, source.name, facts)
                    history_queue.record_load(lambda: _connection(pipeline), run, source.name, loaded, changes)
            return created

        created = retry_on_lock(finish)
    except Exception as error:
        readable = _out_of_memory(source, error) if warehouse.is_embedded else None
        if run:
            failed = history.load_rows(
                run, source.name, facts, error=readable or error, seconds=time.monotonic() - clock
            )
            history_queue.record_failed_load(lambda: _connection(pipeline), run, source.name, failed)
        if readable:
            raise readable from error
        raise
    shutil.rmtree(work_dir, ignore_errors=True)
    summary = {"dataset": source.dataset_name, "warehouse": where, "loads": list(load_info.loads_ids)}
    summary["location"] = list(location)
    # Every table the source's resources load (dlt's child tables, `orders__items`, belong to
    # theirs) with this load's rows, and the empty ones dbt reads: one Asset event each (tasks.py).
    rows = facts.get("rows", {})
    summary["tables"] = {table: rows.get(table, 0) for table in [*facts["built"], *created]}
    summary["interval"] = facts.get("interval")
    if "memory_limit" in facts:
        summary["duckdb_memory_limit"] = facts["memory_limit"]
    if created:
        summary["created_empty"] = created
    log.info("Source %r loaded: %s", source.name, summary)
    return summary


# The task callables (extract_task, load_task, generate_staging_task, ...) are in tasks.py: each
# reads only its own source's file, and config errors there fail without retries.
