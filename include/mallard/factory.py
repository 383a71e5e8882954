"""The DAG factory: source configs + a dbt project -> the ELT DAG (and a DAG per separately scheduled source).

For every enabled `include/sources/*.yml` it adds a TaskGroup `ingest_<source>` with two tasks:
`extract` (dlt extract + normalize, no warehouse access) and `load` (dlt load into
`raw_<source>`, in the warehouse pool). Every ingestion group runs before the Cosmos dbt group,
through one join task (`ingestion_done`); with `generate_staging`, a staging step sits between
the join and dbt.

This module only shapes DAGs: the configs are read once per parse, the dbt graph comes from a
pre-built manifest, and what the tasks run lives in `ingest.py` (dlt is imported only there,
inside the tasks).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup

from include.mallard import ingest
from include.mallard.config import SourceConfig, load_sources
from include.mallard.dbt_docs import generate_dbt_docs
from include.mallard.dbt_group import build_dbt_group, build_done_gate
from include.mallard.interval import interval_bound
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from include.mallard.warehouse import WAREHOUSE_POOL, resolve_warehouse_path

DEFAULT_DAG_ID = "mallard_elt"
DEFAULT_CRON = "0 0 * * *"
DEFAULT_START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DEFAULT_TAGS = ("mallard", "elt")
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mallard",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
}


def build_ingestion_group(source: SourceConfig, sources_dir: Path) -> TaskGroup:
    """The TaskGroup `ingest_<source>`: extract >> load."""
    task_args = {
        "op_kwargs": {"source_name": source.name, "sources_dir": str(sources_dir)},
        "retries": source.retries,
    }
    with TaskGroup(group_id=f"ingest_{source.name}", tooltip=source.description) as group:
        extract = PythonOperator(task_id="extract", python_callable=ingest.extract_task, **task_args)
        load = PythonOperator(task_id="load", python_callable=ingest.load_task, pool=WAREHOUSE_POOL, **task_args)
        extract >> load
    return group


def _dag_doc(sources: list[SourceConfig]) -> str:
    lines = [
        "# Mallard ELT",
        "",
        "Loads every source in `include/sources/` with dlt into `raw_<source>` of the DuckDB warehouse,",
        "then builds the dbt project in `include/dbt/` (one task per model, its tests right after it).",
        "",
        "A scheduled or backfill run loads exactly its data interval [start, end). A manual run loads the run",
        'conf\'s `{"start": "2024-01-01", "end": "2024-01-08"}` if given, else its data interval (for a manual',
        "trigger, the last complete day). Incremental sources merge the slice on their primary key, so reruns",
        'are idempotent. Incremental dbt models rebuild only the slice; run conf `{"full_refresh": true}`',
        "rebuilds them from scratch.",
        "",
        "## Sources",
        "",
        "| source | kind | schema | description |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {s.name} | {s.kind} | `{s.dataset_name}` | {s.description} |" for s in sources]
    return "\n".join(lines)


def _own_schedule(source: SourceConfig, cron: str) -> bool:
    return source.schedule is not None and source.schedule != cron


def split_by_schedule(sources: list[SourceConfig], cron: str) -> tuple[list[SourceConfig], list[SourceConfig]]:
    """(sources on the ELT DAG's schedule, sources with a schedule of their own)."""
    own = [source for source in sources if _own_schedule(source, cron)]
    return [source for source in sources if source not in own], own


def _new_dag(dag_id: str, cron: str, start_date: dt.datetime, tags: list[str], doc_md: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        # A cron *data interval* timetable: each run covers [previous tick, this tick). `@daily`
        # would give Airflow 3's empty interval and load nothing.
        schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
        start_date=start_date,
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=tags,
        doc_md=doc_md,
        user_defined_macros={
            "mallard_warehouse_path": lambda: str(resolve_warehouse_path()),
            "mallard_interval_bound": interval_bound,
        },
    )


def _staging_step(sources: list[SourceConfig], sources_dir: Path, dbt_project_dir: Path) -> PythonOperator:
    return PythonOperator(
        task_id="generate_staging",
        python_callable=ingest.generate_staging_task,
        op_kwargs={
            "source_names": [s.name for s in sources],
            "sources_dir": str(sources_dir),
            "dbt_project_dir": str(dbt_project_dir),
        },
        pool=WAREHOUSE_POOL,  # it reads the warehouse
        doc_md="Regenerates dbt sources and staging models from dlt's schemas (docs/staging.md).",
    )


def build_elt_dag(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    sources_dir: Path = SOURCES_DIR,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    cron: str = DEFAULT_CRON,
    start_date: dt.datetime = DEFAULT_START_DATE,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    generate_staging: bool = False,
    sources: list[SourceConfig] | None = None,
) -> DAG:
    """Build the ELT DAG from the source configs in `sources_dir` and the dbt project in `dbt_project_dir`.

    Sources with a `schedule` of their own load in their own DAG (`build_source_dags`); dbt here
    reads whatever they loaded last. `sources` skips reading the folder (already loaded). With
    `generate_staging`, a task regenerates the generated staging models (docs/staging.md) after
    `ingestion_done`, before dbt.
    """
    elt_sources, _ = split_by_schedule(sources if sources is not None else load_sources(sources_dir), cron)
    with _new_dag(dag_id, cron, start_date, list(tags), _dag_doc(elt_sources)) as dag:
        ingestion = [build_ingestion_group(source, sources_dir) for source in elt_sources]
        dbt = build_dbt_group(dbt_project_dir)
        docs = PythonOperator(
            task_id="dbt_docs",
            python_callable=generate_dbt_docs,
            op_kwargs={"dbt_project_dir": str(dbt_project_dir)},
            pool=WAREHOUSE_POOL,
            doc_md="Regenerates the dbt docs shown under Browse > Mallard dbt docs.",
        )
        dag.doc_md += _models_doc(dbt)
        # One join instead of sources x dbt-root edges: at 50 sources and 400 root models the
        # direct edges cost 1.3 s of parse time (docs/benchmarks.md).
        ingestion_done = EmptyOperator(task_id="ingestion_done", doc_md="Every source is loaded; dbt may start.")
        ingestion >> ingestion_done
        if generate_staging:
            ingestion_done >> _staging_step(elt_sources, sources_dir, dbt_project_dir) >> dbt
        else:
            ingestion_done >> dbt
        # A build that failed or never ran must fail the run, even when every model task skipped.
        [dbt, build_done_gate(dbt)] >> docs
    return dag


def build_source_dags(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    sources_dir: Path = SOURCES_DIR,
    cron: str = DEFAULT_CRON,
    start_date: dt.datetime = DEFAULT_START_DATE,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    sources: list[SourceConfig] | None = None,
) -> list[DAG]:
    """One ingestion-only DAG `<dag_id>_ingest_<source>` per source whose `schedule` differs from `cron`."""
    _, own = split_by_schedule(sources if sources is not None else load_sources(sources_dir), cron)
    dags = []
    for source in own:
        assert source.schedule is not None
        doc = f"# Ingest `{source.name}`\n\nLoads source `{source.name}` on its own schedule `{source.schedule}`."
        dag_tags = [*tags, "ingest", *source.tags]
        with _new_dag(f"{dag_id}_ingest_{source.name}", source.schedule, start_date, dag_tags, doc) as dag:
            build_ingestion_group(source, sources_dir)
        dags.append(dag)
    return dags


def build_dags(*, sources_dir: Path = SOURCES_DIR, dbt_project_dir: Path = DBT_PROJECT_DIR) -> dict[str, DAG]:
    """Every DAG of the project by id (the ELT DAG and one per separately scheduled source); configs read once."""
    sources = load_sources(sources_dir)
    dags = [
        build_elt_dag(sources_dir=sources_dir, dbt_project_dir=dbt_project_dir, sources=sources),
        *build_source_dags(sources_dir=sources_dir, sources=sources),
    ]
    return {dag.dag_id: dag for dag in dags}


def _models_doc(dbt_group: Any) -> str:
    models = sorted(
        node.name for node in dbt_group.dbt_graph.filtered_nodes.values() if node.resource_type.value == "model"
    )
    return "\n\n## dbt models\n\n" + "\n".join(f"- `{name}`" for name in models)
