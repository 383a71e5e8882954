"""The task callables the factory names: each ingestion task reads only its own source's file.

`extract_task` and `load_task` parse the one file whose path the factory put in their op_kwargs,
never the whole folder, so a file broken (or pushed) during a run fails only its own source. A
config error, an invalid run conf, an interval before the start date or a missing secret (env var
or connection) is the same on every try: those fail the task at once (`AirflowFailException`)
instead of retrying. What the tasks run (dlt extract and load) is in `ingest.py`; this module
imports Airflow and dlt only inside the functions, so the DAG file parses without them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.mallard import assets, history, history_queue, ingest, postgres_warehouse
from include.mallard.config import ConfigError, SourceConfig
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval, IntervalError, check_not_before, interval_from_context
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
from include.mallard.secrets import SecretNotFoundError
from include.mallard.warehouse import active_warehouse, resolve_warehouse_path, retry_on_lock

log = logging.getLogger(__name__)
FIX_AND_RERUN = "Fix the file (`mallard validate` checks it), then clear this task or trigger the run again."
# Run conf {"sources": ["shop", ...]}: only these sources load in the run (`mallard run --source`).
SOURCES_CONF_KEY = "sources"


def _no_retry(message: str) -> Exception:
    """An error that fails the task at once, without retries: it would be the same on every try."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


def task_source(source_name: str, source_file: str) -> SourceConfig:
    """The config of `source_name`, read again from its own file only (no other file can fail the task)."""
    path = Path(source_file)
    try:
        source = parse_source_file(path)
    except ConfigError as error:
        raise _no_retry(f"source {source_name!r} cannot run: {error}\n{FIX_AND_RERUN}") from None
    except OSError as error:  # removed or renamed since the DAG was parsed
        raise _no_retry(
            f"source {source_name!r} cannot read its config file {path}: {error}. {FIX_AND_RERUN}"
        ) from None
    if source.name != source_name:
        raise _no_retry(
            f"{path} now names source {source.name!r}, but this task belongs to source {source_name!r}: the file "
            "changed since the DAG was parsed. Trigger the run again (the next DAG parse has the new name)."
        )
    return source


def selected_sources(conf: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The run conf's `sources`: the only sources the run loads; None when it has none (all load)."""
    value = (conf or {}).get(SOURCES_CONF_KEY)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(name, str) and name for name in value):
        raise _no_retry(
            f"run conf field {SOURCES_CONF_KEY!r} = {value!r} is not a list of source names; "
            f'give e.g. {{"{SOURCES_CONF_KEY}": ["shop"]}}, or leave it out to load every source'
        )
    return frozenset(value)


def skip_unless_selected(source_name: str, context: Mapping[str, Any]) -> None:
    """Skip this source's tasks when the run conf's `sources` leaves it out (its downstream load skips too).

    A name the DAG has no source for fails every extract: with all of them skipped, the run
    would otherwise have nothing to report but skips.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    dag_run = context.get("dag_run")
    selected = selected_sources(getattr(dag_run, "conf", None))
    if selected is None:
        return
    # Each source's tasks are in its group `ingest_<source>` (a task process renders no dbt tasks).
    in_dag = {
        group.removeprefix("ingest_")
        for group, _, step in (task.task_id.partition(".") for task in context["dag"].tasks)
        if group.startswith("ingest_") and step
    }
    if unknown := sorted(selected - in_dag):
        raise _no_retry(
            f"run conf field {SOURCES_CONF_KEY!r} names {unknown}, which this DAG does not load "
            f"(its sources: {', '.join(sorted(in_dag))}); fix the conf and trigger the run again"
        )
    if source_name not in selected:
        raise AirflowSkipException(
            f"source {source_name!r} is not in this run's conf {SOURCES_CONF_KEY!r} {sorted(selected)}: not loaded"
        )


def task_interval(
    context: dict[str, Any], earliest: str | None, earliest_setting: str, source_start: str | None
) -> Interval:
    """The run's interval (conf or data interval), checked against `earliest`, from `source_start` on."""
    try:
        interval = interval_from_context(context)
        if earliest:
            check_not_before(interval, dt.date.fromisoformat(earliest), earliest_setting)
    except IntervalError as error:
        raise _no_retry(str(error)) from None
    if not source_start:
        return interval
    clipped = interval.not_before(dt.date.fromisoformat(source_start))
    if clipped != interval:
        log.info("The source starts on %s (mallard.yml): interval %s is loaded as %s", source_start, interval, clipped)
    return clipped


def extract_task(
    source_name: str,
    source_file: str,
    earliest: str | None = None,
    earliest_setting: str = "the project's `start_date` in mallard.yml",
    source_start: str | None = None,
    dbt_project_dir: str = str(DBT_PROJECT_DIR),
    **context: Any,
) -> dict[str, Any]:
    """Task `ingest_<source>.extract`: extract and normalize one source for the run's interval."""
    skip_unless_selected(source_name, context)
    try:
        source = task_source(source_name, source_file)
        interval = task_interval(context, earliest, earliest_setting, source_start)
        work_dir = ingest.run_work_dir(context["dag"].dag_id, context["run_id"], source_name)
        return ingest.extract(source, interval, work_dir, dbt_project_dir=Path(dbt_project_dir))
    except Exception as error:
        # An extract never opens DuckDB: its failure waits for the run's last task. A server is
        # written at once (the last task may run on another worker, which has not this one's disk).
        run = _run(context)
        connect = None if active_warehouse().is_embedded else _server_connection
        rows = history.load_rows(run, source_name, {}, error=error)
        history_queue.record_failed_load(connect, run, source_name, rows)
        if (missing := _missing_secret(error)) is not None:
            raise _no_retry(
                f"source {source_name!r} cannot run: {missing}. A retry would meet the same; set it, then clear "
                "this task or trigger the run again."
            ) from error
        raise


def _missing_secret(error: BaseException) -> SecretNotFoundError | None:
    """The missing env var or connection behind `error` (dlt wraps what a source raises), if any."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, SecretNotFoundError):
        cause = cause.__cause__ or cause.__context__
    return cause


def load_task(
    source_name: str, source_file: str, dbt_project_dir: str = str(DBT_PROJECT_DIR), **context: Any
) -> dict[str, Any]:
    """Task `ingest_<source>.load`: load what `extract_task` prepared into the warehouse."""
    run, task = _run(context), context.get("task")
    try:
        source = task_source(source_name, source_file)
        if task is not None and active_warehouse().is_embedded:
            assets.check_declared_outlets(task, assets.duckdb_location(resolve_warehouse_path()))
    except Exception as error:
        history_queue.record_failed_load(None, run, source_name, history.load_rows(run, source_name, {}, error=error))
        raise
    work_dir = ingest.run_work_dir(run.dag_id, run.run_id, source_name)
    summary = ingest.load(source, work_dir, dbt_project_dir=Path(dbt_project_dir), run=run)
    if "outlet_events" in context:  # the load task's Assets (factory); absent when called outside a task
        extra = {"interval": summary.get("interval"), "load_ids": summary["loads"]}
        summary["assets"] = assets.emit_table_events(
            context["outlet_events"],
            task.outlets if task is not None else [],
            source_name,
            summary["dataset"],
            summary["tables"],
            extra,
            tuple(summary["location"]),
        )
    return summary


def ingest_task(
    source_name: str,
    source_file: str,
    earliest: str | None = None,
    earliest_setting: str = "the project's `start_date` in mallard.yml",
    source_start: str | None = None,
    dbt_project_dir: str = str(DBT_PROJECT_DIR),
    **context: Any,
) -> dict[str, Any]:
    """Task `ingest_<source>.load` on a server warehouse: extract, normalize and load in one process.

    With several workers, the dlt package then never leaves the worker that made it: a retry on
    another worker extracts again from the source instead of looking for a folder it does not have.
    """
    extracted = extract_task(
        source_name, source_file, earliest, earliest_setting, source_start, dbt_project_dir, **context
    )
    summary = load_task(source_name, source_file, dbt_project_dir, **context)
    return {**summary, "extracted": extracted}


def _run(context: dict[str, Any]) -> history.RunRef:
    return history.RunRef(context["dag"].dag_id, context["run_id"])


def keep_dbt_run_results(project_dir: str, context: dict[str, Any], **_: Any) -> None:
    """Cosmos callback of the `dbt build` task: keep its `run_results.json` for the run's last task.

    Cosmos runs dbt in a temporary copy of the project and deletes it after the callbacks; it
    calls them before raising a failed build, so the results of a build with failing tests are kept.
    """
    run, results = _run(context), Path(project_dir) / "target" / "run_results.json"
    try:
        if not active_warehouse().is_embedded and results.is_file():
            # No writer lock on a server, and the run's last task may run on another worker: write now.
            rows = history.dbt_nodes(json.loads(results.read_text(encoding="utf-8")), run.dag_id, run.run_id)
            with _server_connection() as connection:
                history.write_dbt_nodes(connection, run.dag_id, run.run_id, rows)
            return
        history_queue.keep_run_results(run, results)
    except Exception:  # the build's own outcome must not change because its history could not be kept
        log.exception("Could not keep the dbt build's run_results.json for the run's history")


def publish_task(**context: Any) -> dict[str, Any]:
    """Task `publish`, the run's last (in the warehouse pool, whatever failed before it).

    Writes the history that waited for it (failed extracts, the dbt build's node results) to
    `mallard_meta`, then publishes the read-only snapshot of the warehouse (snapshot.py), so that
    readers see what the run left, its failures included. A history error does not stop the
    snapshot; it fails the task afterwards.
    """
    import duckdb

    from include.mallard.snapshot import publish_snapshot

    run = _run(context)
    result: dict[str, Any] = {}
    if not active_warehouse().is_embedded:
        # A server has no single-writer lock: readers query it directly, there is nothing to publish.
        with _server_connection() as connection:
            result["history"] = history_queue.flush_pending(connection, run)
        return result
    warehouse = resolve_warehouse_path()
    failure: Exception | None = None
    try:

        def flush() -> dict[str, int]:
            with duckdb.connect(str(warehouse)) as connection:
                return history_queue.flush_pending(connection, run)

        result["history"] = retry_on_lock(flush)
        log.info("Recorded in mallard_meta: %s", result["history"] or "nothing was waiting")
    except Exception as error:
        log.exception("Could not write the run's history to mallard_meta")
        failure = error
    snapshot = publish_snapshot(warehouse)
    result["snapshot"] = str(snapshot.path) if snapshot else None
    if failure is not None:
        raise failure
    return result


def _server_connection() -> contextlib.AbstractContextManager[Any]:
    return postgres_warehouse.connect(active_warehouse())


def invalid_source_task(source_file: str, problems: list[str], **_: Any) -> None:
    """Task `ingest_<file name>` of a source file that was invalid when the DAG was parsed: it always fails.

    It is upstream of dbt, so no mart is built without this source, and it does not retry.
    """
    path = Path(source_file)
    found = "\n".join(f"  - {problem}" for problem in problems)
    try:
        parse_source_file(path)
    except (ConfigError, OSError) as error:
        found = str(error)  # what is wrong now
    else:
        found += "\n(The file parses on its own now: the next DAG parse gives it its ingest task group.)"
    raise _no_retry(
        f"{path.name} is not a valid source config, so its source is not loaded and dbt does not run in this run:\n"
        f"{found}\n{FIX_AND_RERUN}"
    )


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
