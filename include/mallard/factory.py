"""The DAG factory: source configs + a dbt project -> the ELT DAG (and a DAG per separately scheduled source).

For every enabled `include/sources/*.yml` it adds a TaskGroup `ingest_<source>` with two tasks:
`extract` (dlt extract + normalize, no warehouse access) and `load` (dlt load into
`raw_<source>`, in the warehouse pool). Every ingestion group runs before the Cosmos dbt group,
through one join task (`ingestion_done`); with `generate_staging`, a staging step sits between
the join and dbt.

Each source file is read on its own (`config.project.read_source_files`): an invalid file does not
stop the other sources. It gets a task `ingest_<file name>` that fails with the file's problems,
upstream of dbt (so no mart is built without that source), and `dags/mallard_source_errors.py`
shows the same problems as an Airflow import error. The start date and schedule come from
`mallard.yml` (`config.project`).

This module only shapes DAGs: the configs are read once per parse, the dbt graph comes from a
pre-built manifest, and what the tasks run lives in `tasks.py` and `ingest.py` (dlt is imported
only inside the tasks).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup, TriggerRule, get_parsing_context

from include.mallard import tasks
from include.mallard.assets import declared_raw_tables, source_alias_name, source_outlets
from include.mallard.config import SourceConfig
from include.mallard.config.loader import all_disabled_warning
from include.mallard.config.project import (
    InvalidSourceFile,
    ProjectSettings,
    SourceFile,
    SourceFiles,
    load_project_settings,
    read_source_files,
)
from include.mallard.dbt_on_assets import DBT_DAG_ID, build_dbt_on_assets_dag
from include.mallard.dbt_project import check_profile
from include.mallard.interval import interval_bound
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from include.mallard.run_steps import (
    AIRFLOW_START_DATE,
    DEFAULT_ARGS,
    DEFAULT_TAGS,
    dbt_steps,
    dbt_task_macros,
    publish_step,
)
from include.mallard.warehouse import Warehouse, active_warehouse

DEFAULT_DAG_ID = "mallard_elt"


def build_ingestion_group(
    item: SourceFile,
    *,
    earliest: dt.date,
    earliest_setting: str,
    source_start: dt.date,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    warehouse: Warehouse | None = None,
) -> TaskGroup:
    """The TaskGroup `ingest_<source>`: extract >> load. Each task reads only the source's own file.

    `earliest` is the first day a run of this DAG may load (else the extract fails, naming
    `earliest_setting`); `source_start` is the source's own first day (it loads nothing before it).
    The dbt project tells the load which empty raw tables dbt needs. On a server warehouse the
    group is one task, `load`, that extracts too: workers share no disk (docs/scale-out.md).
    """
    source = item.source
    warehouse = warehouse or active_warehouse()
    own_file = {"source_name": source.name, "source_file": str(item.path), "dbt_project_dir": str(dbt_project_dir)}
    dates = {"earliest": earliest.isoformat(), "earliest_setting": earliest_setting}
    dates["source_start"] = source_start.isoformat()
    # An Asset per raw table dbt reads, and the alias for the tables only a run finds (assets.py).
    outlets = source_outlets(source.name, source.dataset_name, warehouse, dbt_project_dir)
    # Two runs (a backfill's) never load one source at once: they would share its tables and dlt's
    # staging schema. Other sources load meanwhile, up to the pool's slots.
    one_at_a_time = {"max_active_tis_per_dag": 1}
    with TaskGroup(group_id=f"ingest_{source.name}", tooltip=source.description) as group:
        if not warehouse.is_embedded:
            PythonOperator(
                task_id="load",
                python_callable=tasks.ingest_task,
                op_kwargs={**own_file, **dates},
                retries=source.retries,
                pool=warehouse.pool,
                outlets=outlets,
                **one_at_a_time,
            )
            return group
        extract = PythonOperator(
            task_id="extract",
            python_callable=tasks.extract_task,
            op_kwargs={**own_file, **dates},
            retries=source.retries,
        )
        load = PythonOperator(
            task_id="load",
            python_callable=tasks.load_task,
            op_kwargs=own_file,
            retries=source.retries,
            pool=warehouse.pool,
            outlets=outlets,
            **one_at_a_time,
        )
        extract >> load
    return group


def _task_id_for_invalid(invalid: InvalidSourceFile, taken: set[str]) -> str:
    # Task ids allow letters, digits, '_' and '-'; a file name may hold anything else.
    task_id = "ingest_" + re.sub(r"[^A-Za-z0-9_-]", "_", invalid.path.stem)
    if task_id in taken:  # e.g. shop.yaml (invalid) next to shop.yml (valid)
        task_id = "ingest_" + re.sub(r"[^A-Za-z0-9_-]", "_", invalid.path.name)
    return task_id


def invalid_source_task(invalid: InvalidSourceFile, taken: set[str]) -> PythonOperator:
    """A task `ingest_<file name>` that fails (no retry) with the problems of an invalid source file."""
    return PythonOperator(
        task_id=_task_id_for_invalid(invalid, taken),
        python_callable=tasks.invalid_source_task,
        op_kwargs={"source_file": str(invalid.path), "problems": [str(problem) for problem in invalid.problems]},
        doc_md=f"`{invalid.path.name}` is not a valid source config, so this source is not loaded:\n\n"
        + "\n".join(f"- {problem}" for problem in invalid.problems),
    )


def _dag_doc(
    sources: list[SourceConfig],
    files: SourceFiles,
    sources_dir: Path,
    settings: ProjectSettings,
    warehouse: Warehouse,
    dbt_project_dir: Path,
) -> str:
    invalid = files.invalid
    every_source = [item.source for item in files.valid]
    lines = [
        "# Mallard ELT",
        "",
        f"Loads every source in `include/sources/` with dlt into `raw_<source>` of the {warehouse.kind} warehouse,",
        "then builds the dbt project in `include/dbt/` (one task per model, its tests right after it).",
        "",
        f"**Environment:** `{warehouse.environment}` ({_shown_env()}): a {warehouse.kind} warehouse through Airflow "
        f"connection `{warehouse.connection_id}`, dbt target `{warehouse.dbt_target}`; its writers share the pool "
        f"`{warehouse.pool}` (its slots: Admin > Pools).",
        "",
        "A scheduled or backfill run loads exactly its data interval [start, end). A manual run loads the run",
        'conf\'s `{"start": "2024-01-01", "end": "2024-01-08"}` if given, else its data interval (for a manual',
        "trigger, the last complete day). Incremental sources merge the slice on their primary key, so reruns",
        'are idempotent. Incremental dbt models rebuild only the slice; run conf `{"full_refresh": true}`',
        "rebuilds them from scratch.",
        "",
        f"No run loads before **{settings.start_date}** ({settings.start_setting()}): an earlier interval fails",
        "its first tasks with a message saying so.",
        "",
        "## Sources",
        "",
        "Each load records an Asset event per raw table (the UI's Assets view; `dbt_schedule: on_assets` in",
        "mallard.yml schedules dbt on them): on DuckDB the tables dbt reads are the load task's declared Assets;",
        "tables only a run discovers (and every table on a server warehouse) go through the source's Asset alias.",
        "",
        "| source | kind | schema | Assets (declared) | Asset alias | loads from | description |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in sources:
        tables = declared_raw_tables(s.dataset_name, warehouse, dbt_project_dir)
        declared = ", ".join(f"`{schema}.{table}`" for _, schema, table in tables) or "none"
        lines.append(
            f"| {s.name} | {s.kind} | `{s.dataset_name}` | {declared} | `{source_alias_name(s.name)}` "
            f"| {settings.source_start(s.name)} | {s.description} |"
        )
    if invalid:
        lines += ["", "## Source files that could not be read (their `ingest_` task fails; dbt does not run)", ""]
        lines += [f"- {problem}" for item in invalid for problem in item.problems]
    elif warning := all_disabled_warning(every_source, sources_dir):
        lines += ["", "## No source loads in this DAG", "", f"**Warning:** {warning}."]
    return "\n".join(lines)


def _shown_env() -> str:
    from include.mallard.config.environments import ENVIRONMENT_ENV

    chosen = os.environ.get(ENVIRONMENT_ENV)
    return f"env {ENVIRONMENT_ENV}" if chosen else f"the default; env {ENVIRONMENT_ENV} selects"


def _own_schedule(source: SourceConfig, cron: str) -> bool:
    return source.schedule is not None and source.schedule != cron


def split_by_schedule(sources: list[SourceFile], cron: str) -> tuple[list[SourceFile], list[SourceFile]]:
    """(sources on the ELT DAG's schedule, sources with a schedule of their own)."""
    own = [item for item in sources if _own_schedule(item.source, cron)]
    return [item for item in sources if item not in own], own


def _new_dag(dag_id: str, cron: str, earliest: dt.date, earliest_setting: str, tags: list[str], doc_md: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        # A cron *data interval* timetable: each run covers [previous tick, this tick). `@daily`
        # would give Airflow 3's empty interval and load nothing.
        schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
        start_date=AIRFLOW_START_DATE,
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=tags,
        doc_md=doc_md,
        user_defined_macros=dbt_task_macros(
            functools.partial(interval_bound, earliest=earliest, setting=earliest_setting)
        ),
    )


def _settings(settings: ProjectSettings | None, cron: str | None, start_date: dt.date | None) -> ProjectSettings:
    return (settings or load_project_settings()).with_overrides(schedule=cron, start_date=start_date)


def _staging_step(
    sources: list[SourceFile], sources_dir: Path, dbt_project_dir: Path, warehouse: Warehouse
) -> PythonOperator:
    return PythonOperator(
        task_id="generate_staging",
        python_callable=tasks.generate_staging_task,
        op_kwargs={
            "source_names": [item.source.name for item in sources],
            "sources_dir": str(sources_dir),
            "dbt_project_dir": str(dbt_project_dir),
        },
        pool=warehouse.pool,  # it reads the warehouse
        doc_md="Regenerates dbt sources and staging models from dlt's schemas (docs/staging.md).",
    )


def build_elt_dag(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    sources_dir: Path = SOURCES_DIR,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    cron: str | None = None,
    start_date: dt.date | None = None,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    generate_staging: bool = False,
    source_files: SourceFiles | None = None,
    settings: ProjectSettings | None = None,
) -> DAG:
    """Build the ELT DAG from the source configs in `sources_dir` and the dbt project in `dbt_project_dir`.

    `settings` default to mallard.yml; `cron` and `start_date` override its schedule and start
    date. Sources with a `schedule` of their own load in their own DAG (`build_source_dags`); dbt
    here reads whatever they loaded last. An invalid source file gets a failing task upstream of
    dbt. `source_files` skips reading the folder (already read). With `generate_staging`, a task
    regenerates the generated staging models (docs/staging.md) after `ingestion_done`, before dbt.
    """
    settings = _settings(settings, cron, start_date)
    files = source_files if source_files is not None else read_source_files(sources_dir)
    elt_sources, _ = split_by_schedule(files.enabled(), settings.schedule)
    earliest, earliest_setting = settings.start_date, settings.start_setting()
    warehouse = active_warehouse(settings)
    doc = _dag_doc([item.source for item in elt_sources], files, sources_dir, settings, warehouse, dbt_project_dir)
    with _new_dag(dag_id, settings.schedule, earliest, earliest_setting, list(tags), doc) as dag:
        ingestion: list[Any] = [
            build_ingestion_group(
                item,
                earliest=earliest,
                earliest_setting=earliest_setting,
                source_start=settings.source_start(item.source.name),
                dbt_project_dir=dbt_project_dir,
                warehouse=warehouse,
            )
            for item in elt_sources
        ]
        taken = {f"ingest_{item.source.name}" for item in files.valid}
        for invalid in files.invalid:
            ingestion.append(invalid_source_task(invalid, taken))
            taken.add(ingestion[-1].task_id)
        # One join instead of sources x dbt-root edges: at 50 sources and 400 root models the
        # direct edges cost 1.3 s of parse time (docs/benchmarks.md). Its trigger rule keeps dbt
        # from publishing marts without a failed or invalid source; sources that the run conf's
        # `sources` leaves out skip, and dbt runs when at least one source loaded.
        ingestion_done = EmptyOperator(
            task_id="ingestion_done",
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            doc_md="Every source is loaded (or left out by the run conf's `sources`); dbt may start.",
        )
        ingestion >> ingestion_done
        if settings.dbt_schedule == "with_ingestion":
            dbt = dbt_steps(dag, dbt_project_dir, warehouse)  # None in the process of a task outside dbt
            before_dbt: Any = ingestion_done
            if generate_staging:
                before_dbt = ingestion_done >> _staging_step(elt_sources, sources_dir, dbt_project_dir, warehouse)
            if dbt is not None:
                before_dbt >> dbt
        publish_step(dag, warehouse)
    return dag


def build_source_dags(
    dag_id: str = DEFAULT_DAG_ID,
    *,
    sources_dir: Path = SOURCES_DIR,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    cron: str | None = None,
    start_date: dt.date | None = None,
    tags: tuple[str, ...] = DEFAULT_TAGS,
    source_files: SourceFiles | None = None,
    settings: ProjectSettings | None = None,
    only_dag_id: str | None = None,
) -> list[DAG]:
    """One ingestion-only DAG `<dag_id>_ingest_<source>` per source whose `schedule` differs from the ELT DAG's.

    Its runs may load from the source's own start date on (mallard.yml `sources.<name>.start_date`,
    else the project's `start_date`); an earlier interval fails naming that setting. With
    `only_dag_id`, only the DAG of that id (if any).
    """
    settings = _settings(settings, cron, start_date)
    files = source_files if source_files is not None else read_source_files(sources_dir)
    _, own = split_by_schedule(files.enabled(), settings.schedule)
    warehouse = active_warehouse(settings)
    dags = []
    for item in own:
        source = item.source
        assert source.schedule is not None
        if only_dag_id is not None and source_dag_id(dag_id, source) != only_dag_id:
            continue
        earliest, setting = settings.source_start(source.name), settings.start_setting(source.name)
        doc = (
            f"# Ingest `{source.name}`\n\nLoads source `{source.name}` on its own schedule `{source.schedule}`, "
            f"from {earliest} on ({setting})."
        )
        dag_tags = [*tags, "ingest", *source.tags]
        with _new_dag(source_dag_id(dag_id, source), source.schedule, earliest, setting, dag_tags, doc) as dag:
            build_ingestion_group(
                item,
                earliest=earliest,
                earliest_setting=setting,
                source_start=earliest,
                dbt_project_dir=dbt_project_dir,
                warehouse=warehouse,
            )
            publish_step(dag, warehouse)
        dags.append(dag)
    return dags


def build_dags(
    *,
    sources_dir: Path = SOURCES_DIR,
    dbt_project_dir: Path = DBT_PROJECT_DIR,
    settings: ProjectSettings | None = None,
) -> dict[str, DAG]:
    """Every DAG of the project by id (the ELT DAG and one per separately scheduled source); files read once.

    A task process parses the DAG file for one task (Airflow names its DAG): only that DAG is built.
    """
    settings = settings or load_project_settings()
    files = read_source_files(sources_dir)
    wanted = get_parsing_context().dag_id
    _, own = split_by_schedule(files.enabled(), settings.schedule)
    ours = {DEFAULT_DAG_ID, *(source_dag_id(DEFAULT_DAG_ID, item.source) for item in own)}
    if settings.dbt_schedule == "on_assets":
        ours.add(DBT_DAG_ID)
    if wanted not in ours:  # any other parse (the DAG processor, `airflow dags test`, a test): all of them
        wanted = None
    dags = []
    shared: dict[str, Any] = {"sources_dir": sources_dir, "dbt_project_dir": dbt_project_dir, "settings": settings}
    if wanted in (None, DEFAULT_DAG_ID):
        dags.append(build_elt_dag(source_files=files, **shared))
    if wanted != DEFAULT_DAG_ID and wanted != DBT_DAG_ID:
        dags += build_source_dags(source_files=files, only_dag_id=wanted, **shared)
    if settings.dbt_schedule == "on_assets" and wanted in (None, DBT_DAG_ID):
        dags.append(build_dbt_on_assets_dag(files, settings, dbt_project_dir=dbt_project_dir))
    return {dag.dag_id: dag for dag in dags}


def preload_for_tasks(sources_dir: Path = SOURCES_DIR, dbt_project_dir: Path = DBT_PROJECT_DIR) -> None:
    """In the scheduler before it forks task processes (worker_preload.py): parse what their DAG parses read."""
    read_source_files(sources_dir)  # kept per file content (parsed_files.py)
    check_profile(dbt_project_dir)  # dbt_project.yml and profiles.yml


def source_dag_id(elt_dag_id: str, source: SourceConfig) -> str:
    """The id of the ingestion-only DAG of a source with a schedule of its own."""
    return f"{elt_dag_id}_ingest_{source.name}"
