"""The DAG factory: source configs + a dbt project -> one ELT DAG.

For every enabled `include/sources/*.yml` it adds a TaskGroup `ingest_<source>` with two tasks:
`extract` (dlt extract + normalize, no warehouse access) and `load` (dlt load into
`raw_<source>`, in the warehouse pool). Every ingestion group runs before the Cosmos dbt group,
through one join task (`ingestion_done`).

Parsing stays cheap: configs are read and validated, the dbt graph comes from a pre-built
manifest, and dlt is imported only inside the tasks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup

from include.mallard.config import SourceConfig, get_source, load_sources
from include.mallard.dbt_docs import generate_dbt_docs
from include.mallard.dbt_group import build_dbt_group, build_done_gate
from include.mallard.interval import interval_bound, interval_from_context
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from include.mallard.staging import generate_staging_task
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


def extract_source(source_name: str, sources_dir: str, **context: Any) -> dict[str, int]:
    """Task callable: extract and normalize one source for the run's interval."""
    from include.mallard import ingest

    source = get_source(Path(sources_dir), source_name)
    work_dir = ingest.run_work_dir(context["dag"].dag_id, context["run_id"], source_name)
    return ingest.extract(source, interval_from_context(context), work_dir)


def load_source(source_name: str, sources_dir: str, **context: Any) -> dict[str, Any]:
    """Task callable: load what `extract_source` prepared into the warehouse."""
    from include.mallard import ingest

    source = get_source(Path(sources_dir), source_name)
    work_dir = ingest.run_work_dir(context["dag"].dag_id, context["run_id"], source_name)
    return ingest.load(source, work_dir)


def build_ingestion_group(source: SourceConfig, sources_dir: Path) -> TaskGroup:
    """The TaskGroup `ingest_<source>`: extract >> load."""
    task_args = {
        "op_kwargs": {"source_name": source.name, "sources_dir": str(sources_dir)},
        "retries": source.retries,
    }
    with TaskGroup(group_id=f"ingest_{source.name}", tooltip=source.description) as group:
        extract = PythonOperator(task_id="extract", python_callable=extract_source, **task_args)
        load = PythonOperator(task_id="load", python_callable=load_source, pool=WAREHOUSE_POOL, **task_args)
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


def build_elt_dag(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    sources_dir: Path = SOURCES_DIR,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    cron: str = DEFAULT_CRON,
    start_date: dt.datetime = DEFAULT_START_DATE,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    generate_staging: bool = False,
) -> DAG:
    """Build the ELT DAG from the source configs in `sources_dir` and the dbt project in `dbt_project_dir`.

    Sources with a `schedule` of their own load in their own DAG (`build_source_dags`); dbt here
    reads whatever they loaded last. With `generate_staging`, a task regenerates the generated
    staging models (docs/staging.md) between ingestion and dbt.
    """
    sources = [s for s in load_sources(sources_dir) if not _own_schedule(s, cron)]
    with _new_dag(dag_id, cron, start_date, list(tags), _dag_doc(sources)) as dag:
        ingestion = [build_ingestion_group(source, sources_dir) for source in sources]
        dbt = build_dbt_group(dbt_project_dir)
        docs = PythonOperator(
            task_id="dbt_docs",
            python_callable=generate_dbt_docs,
            op_kwargs={"dbt_project_dir": str(dbt_project_dir)},
            pool=WAREHOUSE_POOL,
            doc_md="Regenerates the dbt docs shown under Browse > Mallard dbt docs.",
        )
        dag.doc_md += _models_doc(dbt)
        if generate_staging:
            gate = PythonOperator(
                task_id="generate_staging",
                python_callable=generate_staging_task,
                op_kwargs={
                    "source_names": [s.name for s in sources],
                    "sources_dir": str(sources_dir),
                    "dbt_project_dir": str(dbt_project_dir),
                },
                pool=WAREHOUSE_POOL,  # it reads the warehouse
                doc_md="Regenerates dbt sources and staging models from dlt's schemas (docs/staging.md).",
            )
        else:
            # One join instead of sources x dbt-root edges: at 50 sources and 400 root models the
            # direct edges cost 1.3 s of parse time (docs/benchmarks.md).
            gate = EmptyOperator(task_id="ingestion_done", doc_md="Every source is loaded; dbt may start.")
        ingestion >> gate >> dbt
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
) -> list[DAG]:
    """One ingestion-only DAG `<dag_id>_ingest_<source>` per source whose `schedule` differs from `cron`."""
    dags = []
    for source in load_sources(sources_dir):
        if _own_schedule(source, cron):
            assert source.schedule is not None
            doc = f"# Ingest `{source.name}`\n\nLoads source `{source.name}` on its own schedule `{source.schedule}`."
            dag_tags = [*tags, "ingest", *source.tags]
            with _new_dag(f"{dag_id}_ingest_{source.name}", source.schedule, start_date, dag_tags, doc) as dag:
                build_ingestion_group(source, sources_dir)
            dags.append(dag)
    return dags


def _models_doc(dbt_group: Any) -> str:
    models = sorted(
        node.name for node in dbt_group.dbt_graph.filtered_nodes.values() if node.resource_type.value == "model"
    )
    return "\n\n## dbt models\n\n" + "\n".join(f"- `{name}`" for name in models)
