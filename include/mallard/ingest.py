"""What the ingestion tasks run: one source's dlt pipeline in two steps, and the staging step.

`extract` (extract + normalize) touches no warehouse, so sources extract in parallel. `load`
writes to DuckDB and runs in the warehouse pool. The two share a working folder unique to the
DAG run and source, so concurrent runs (backfills) never share dlt state.

The factory names the task callables at the bottom (`extract_task`, `load_task`,
`generate_staging_task`) without importing dlt: this module imports dlt only inside functions,
so the DAG file parses without it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.mallard.config import SourceConfig, get_source
from include.mallard.interval import Interval, interval_from_context
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR, work_root
from include.mallard.warehouse import resolve_warehouse_path, retry_on_lock

if TYPE_CHECKING:
    import dlt

log = logging.getLogger(__name__)

MEMORY_LIMIT_ENV = "MALLARD_DUCKDB_MEMORY_LIMIT"
# DuckDB's buffer pool defaults to 80% of RAM and keeps the blocks a load writes, so a load task's
# memory grew with the table (588 MB at 5M rows); capped, it stays flat (docs/benchmarks.md).
DEFAULT_MEMORY_LIMIT = "256MB"


def run_work_dir(dag_id: str, run_id: str, source_name: str) -> Path:
    """The dlt working folder of one source in one DAG run."""
    safe_run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return work_root() / "dlt" / dag_id / safe_run_id / source_name


def duckdb_memory_limit() -> str:
    """The warehouse connection's DuckDB `memory_limit` while loading (env MALLARD_DUCKDB_MEMORY_LIMIT)."""
    return os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT


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
        ),
        dataset_name=source.dataset_name,
    )
    # The run's folder starts empty: never read state from the warehouse while extracting, as
    # that would open DuckDB outside the writer pool.
    pipeline.config.restore_from_destination = False
    return pipeline


def extract(source: SourceConfig, interval: Interval, work_dir: Path) -> dict[str, int]:
    """Extract and normalize `source` for `interval`; return rows per table, ready to load."""
    from include.mallard.sources import schema_store
    from include.mallard.sources.registry import build_resources

    if work_dir.exists():
        shutil.rmtree(work_dir)  # a retried extract starts clean rather than loading twice
    pipeline = _pipeline(source, work_dir, resolve_warehouse_path())
    log.info("Extracting source %r for %s into %s", source.name, interval, work_dir)
    pipeline.extract(build_resources(source, interval))
    normalize_info = pipeline.normalize()
    schema_store.remember(source.name, work_dir)  # baseline for the next run's schema contract
    row_counts = {table: count for table, count in normalize_info.row_counts.items() if not table.startswith("_dlt")}
    log.info("Source %r: rows extracted per table: %s", source.name, row_counts)
    return row_counts


def load(source: SourceConfig, work_dir: Path) -> dict[str, Any]:
    """Load what `extract` prepared into `raw_<source>`, then drop the working folder."""
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
    shutil.rmtree(work_dir, ignore_errors=True)
    summary = {"dataset": source.dataset_name, "warehouse": str(warehouse_path), "loads": list(load_info.loads_ids)}
    log.info("Source %r loaded: %s", source.name, summary)
    return summary


# --- task callables (named by the factory; each reads only its own source's file) ----------------


def extract_task(source_name: str, sources_dir: str, **context: Any) -> dict[str, int]:
    """Task `ingest_<source>.extract`: extract and normalize one source for the run's interval."""
    source = get_source(Path(sources_dir), source_name)
    work_dir = run_work_dir(context["dag"].dag_id, context["run_id"], source_name)
    return extract(source, interval_from_context(context), work_dir)


def load_task(source_name: str, sources_dir: str, **context: Any) -> dict[str, Any]:
    """Task `ingest_<source>.load`: load what `extract_task` prepared into the warehouse."""
    source = get_source(Path(sources_dir), source_name)
    work_dir = run_work_dir(context["dag"].dag_id, context["run_id"], source_name)
    return load(source, work_dir)


def generate_staging_task(
    source_names: list[str] | None = None,
    sources_dir: str = str(SOURCES_DIR),
    dbt_project_dir: str = str(DBT_PROJECT_DIR),
) -> list[dict[str, Any]]:
    """Task `generate_staging`: regenerate staging models from dlt's schemas and rebuild the manifest.

    Sources in `source_names` that were never loaded (a new config before its first load) are
    skipped, not failed. The task opens the warehouse, so it belongs in the warehouse pool.
    """
    from include.mallard.staging import generate_and_rebuild, loaded_sources

    warehouse_path = resolve_warehouse_path()
    loaded = loaded_sources(warehouse_path) if warehouse_path.is_file() else []
    names = loaded if source_names is None else [n for n in source_names if n in loaded]
    results = generate_and_rebuild(
        names, warehouse_path=warehouse_path, dbt_project_dir=Path(dbt_project_dir), sources_dir=Path(sources_dir)
    )
    for result in results:
        log.info("%s", result.report())
    return [r.to_dict() for r in results]
