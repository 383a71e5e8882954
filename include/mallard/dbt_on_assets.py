"""The dbt DAG of `dbt_schedule: on_assets` (mallard.yml): dbt runs when its sources' raw tables land.

Every source's load task records an Asset event per raw table: on its declared Assets (the raw
tables dbt reads, on DuckDB) or through its `AssetAlias` `raw_<source>` (assets.py). A source has
landed when any of them has an event; `mallard_dbt` runs when any source has landed
(`dbt_assets: any`, the default) or all of them (`all`), as Airflow's asset expressions combine
them. Sources on the ELT DAG's clock and sources with a schedule of their own trigger it alike.

An asset-triggered run has no data interval: its incremental models rebuild the span of the
intervals its triggering events carry (interval.asset_run_bound); a run triggered by hand with
conf `start`/`end` rebuilds that range, and one without conf rebuilds them from all raw data.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, AssetAll, AssetAny

from include.mallard.assets import source_alias_name, source_outlets
from include.mallard.config.project import ProjectSettings, SourceFiles
from include.mallard.interval import asset_run_bound
from include.mallard.paths import DBT_PROJECT_DIR
from include.mallard.run_steps import (
    AIRFLOW_START_DATE,
    DEFAULT_ARGS,
    DEFAULT_TAGS,
    dbt_steps,
    dbt_task_macros,
    publish_step,
)
from include.mallard.warehouse import active_warehouse

DBT_DAG_ID = "mallard_dbt"


def build_dbt_on_assets_dag(
    files: SourceFiles,
    settings: ProjectSettings,
    *,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    dag_id: str = DBT_DAG_ID,
    tags: tuple[str, ...] = DEFAULT_TAGS,
) -> DAG:
    """`mallard_dbt`: the dbt group, its docs and `publish`, scheduled on the enabled sources landing."""
    warehouse = active_warehouse(settings)
    # A source has landed when any of its load task's outlets has an event: a declared raw table or its alias.
    landed = [
        AssetAny(*source_outlets(item.source.name, item.source.dataset_name, warehouse, dbt_project_dir))
        for item in files.enabled()
    ]
    if not landed:
        raise ValueError("dbt_schedule: on_assets needs at least one enabled source to schedule dbt on")
    condition = AssetAny(*landed) if settings.dbt_assets == "any" else AssetAll(*landed)
    names = ", ".join(f"`{source_alias_name(item.source.name)}`" for item in files.enabled())
    doc = (
        f"# dbt on data\n\nRuns the dbt project when {settings.dbt_assets} of the sources {names} land: an Asset "
        "event on one of their raw tables or through their alias (`dbt_schedule: on_assets` in mallard.yml). "
        "Its incremental models rebuild the intervals the triggering loads wrote."
    )
    with DAG(
        dag_id=dag_id,
        schedule=condition,
        start_date=AIRFLOW_START_DATE,
        catchup=False,
        max_active_runs=1,  # events that land meanwhile trigger the next run, which rebuilds their span
        default_args=DEFAULT_ARGS,
        tags=[*tags, "dbt"],
        doc_md=doc,
        user_defined_macros=dbt_task_macros(asset_run_bound),
    ) as dag:
        dbt_steps(dag, dbt_project_dir, warehouse)
        publish_step(dag, warehouse)
    return dag
