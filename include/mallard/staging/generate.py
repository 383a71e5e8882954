"""The warehouse side: read dlt's stored schema of a loaded source, sync its staging, rebuild the manifest.

Also `run_command`, what `mallard staging` runs. duckdb, dlt, dbt and the source configs are
imported inside the functions: this module is imported at DAG parse time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from include.mallard.dbt_project import DbtProjectError, build_manifest
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from include.mallard.staging.render import DEFAULT_FRESHNESS
from include.mallard.staging.sync import StagingError, StagingResult, sync_staging


def _connect_read_only(warehouse_path: Path) -> Any:
    import duckdb

    from include.mallard.warehouse import retry_on_lock

    if not warehouse_path.is_file():
        raise StagingError(f"no warehouse at {warehouse_path}: load a source first")
    # A read-only open still waits for a writer in another process (DuckDB's file lock).
    return retry_on_lock(lambda: duckdb.connect(str(warehouse_path), read_only=True))


def read_dlt_schema(warehouse_path: Path, dataset: str) -> dict[str, Any]:
    """dlt's newest stored schema of `dataset` (the `schema` column of `<dataset>._dlt_version`)."""
    with _connect_read_only(warehouse_path) as connection:
        exists = connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = '_dlt_version'",
            [dataset],
        ).fetchone()[0]
        if not exists:
            raise StagingError(f"{warehouse_path} has no {dataset}._dlt_version: the source was never loaded")
        row = connection.execute(
            f'select schema from "{dataset}"."_dlt_version" order by inserted_at desc, version desc limit 1'
        ).fetchone()
    if row is None:
        raise StagingError(f"{dataset}._dlt_version in {warehouse_path} is empty: the source was never loaded")
    return json.loads(row[0])


def loaded_sources(warehouse_path: Path) -> list[str]:
    """Every source loaded into the warehouse: `raw_<name>` schemas with dlt's load table."""
    with _connect_read_only(warehouse_path) as connection:
        rows = connection.execute(
            "select distinct table_schema from information_schema.tables "
            "where table_schema like 'raw\\_%' escape '\\' and table_name = '_dlt_loads' order by 1"
        ).fetchall()
    return [schema.removeprefix("raw_") for (schema,) in rows]


class ConfigFacts(NamedTuple):
    """What a source's config adds to dlt's schema when its staging is generated."""

    cursors: dict[str, str]
    description: str
    freshness: dict[str, Any] | None


def config_facts(sources_dir: Path | None, source_name: str) -> ConfigFacts:
    """The source config's incremental cursors (table -> column), description and freshness block.

    The cursors fill in what dlt's schema does not mark (warehouses loaded before dlt stored the
    `incremental` hint, the synthetic source's cursors that date rows without binding them).
    Without a config (loaded outside Mallard's configs) dlt's schema is all there is, and the
    default freshness applies.
    """
    unknown = ConfigFacts({}, "", DEFAULT_FRESHNESS)
    if sources_dir is None or not sources_dir.is_dir():
        return unknown
    from include.mallard.config import ConfigError, get_source

    try:
        source = get_source(sources_dir, source_name)
    except (KeyError, ConfigError):
        return unknown
    freshness = source.freshness.to_dbt() if source.freshness else None
    return ConfigFacts(source.table_cursors(), source.description, freshness)


def generate_staging(
    source_name: str,
    *,
    warehouse_path: Path | None = None,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    sources_dir: Path | None = SOURCES_DIR,
) -> StagingResult:
    """Read dlt's schema of `raw_<source_name>` from the warehouse and sync the generated dbt files."""
    from include.mallard.warehouse import resolve_warehouse_path

    schema = read_dlt_schema(warehouse_path or resolve_warehouse_path(), f"raw_{source_name}")
    facts = config_facts(sources_dir, source_name)
    return sync_staging(
        source_name,
        schema,
        dbt_project_dir,
        cursors=facts.cursors,
        description=facts.description,
        freshness=facts.freshness,
    )


def generate_and_rebuild(
    source_names: Iterable[str] | None = None,
    *,
    warehouse_path: Path | None = None,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    sources_dir: Path | None = SOURCES_DIR,
    rebuild_manifest: bool = True,
) -> list[StagingResult]:
    """Generate staging for `source_names` (None: every loaded source), then rebuild the manifest if
    anything changed, so that the next DAG parse renders the new models and their tests."""
    from include.mallard.warehouse import resolve_warehouse_path

    warehouse_path = warehouse_path or resolve_warehouse_path()
    names = list(source_names) if source_names is not None else loaded_sources(warehouse_path)
    results = [
        generate_staging(name, warehouse_path=warehouse_path, dbt_project_dir=dbt_project_dir, sources_dir=sources_dir)
        for name in names
    ]
    if rebuild_manifest and any(r.changed for r in results):
        try:
            build_manifest(dbt_project_dir)
        except DbtProjectError as error:
            raise StagingError(f"after generating staging: {error}") from error
    return results


def run_command(
    source: str | None,
    all_sources: bool,
    *,
    dbt_project_dir: Path,
    sources_dir: Path,
    warehouse: Path | None,
    rebuild_manifest: bool,
) -> int:
    """`mallard staging <source> | --all`: print each source's report; 0 done, 1 failed, 2 bad usage."""
    if bool(source) == bool(all_sources):
        print("give a source name or --all (not both)", file=sys.stderr)
        return 2
    try:
        results = generate_and_rebuild(
            None if all_sources else [source],
            warehouse_path=warehouse,
            dbt_project_dir=dbt_project_dir,
            sources_dir=sources_dir,
            rebuild_manifest=rebuild_manifest,
        )
    except StagingError as error:
        print(f"staging: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(result.report())
    return 0
