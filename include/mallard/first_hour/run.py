"""`mallard run`: one run of the ELT DAG for a range through Airflow's own `airflow dags test`.

`dags test` runs the same DAG the scheduler runs, in one process. While it runs, its task instances
are read from the Airflow metadata DB (SQLite, read-only) for a live table; its output goes to a
log file; afterwards the warehouse is opened read-only for the summary.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from include.mallard.paths import PROJECT_ROOT

DAG_ID = "mallard_elt"
POLL_SECONDS = 1.0
_ERROR_LINE = re.compile(r"Traceback|Error|ERROR|Exception|failed", re.IGNORECASE)
STATE_LABEL = {None: "pending", "scheduled": "pending", "queued": "pending", "running": "running"}
STATE_LABEL |= {"success": "done", "skipped": "skipped", "failed": "failed", "upstream_failed": "upstream failed"}


@dataclass
class RunResult:
    """What one `mallard run` did."""

    returncode: int
    state: str | None
    tasks: dict[str, str | None] = field(default_factory=dict)
    log_file: Path | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [task for task, state in self.tasks.items() if state == "failed"]


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / ".airflow")


def _airflow(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("airflow")), *args]


def _run_ids(database: Path) -> set[str]:
    """The run ids the DAG has in the metadata DB: a run not among them is ours.

    Not "an id above the newest": `dags test` deletes an earlier run of the same logical date and
    inserts its own, and SQLite then gives it the deleted run's id (a second `mallard run` with the
    same --end reported FAILED, with no task, for a run that succeeded). Its run id holds the time
    it was created, so it is new.
    """
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            rows = connection.execute("select run_id from dag_run where dag_id = ?", (DAG_ID,))
            return {run_id for (run_id,) in rows}
    except sqlite3.Error:
        return set()


def _read_tasks(database: Path, earlier: set[str]) -> tuple[str | None, dict[str, str | None]]:
    """(run state, task_id -> state) of the DAG's run whose id is not in `earlier`; empty while none."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.5) as connection:
            runs = connection.execute("select run_id, state from dag_run where dag_id = ? order by id", (DAG_ID,))
            row = next((run for run in runs if run[0] not in earlier), None)
            if row is None:
                return None, {}
            tasks = connection.execute(
                "select task_id, state from task_instance where dag_id = ? and run_id = ? order by task_id",
                (DAG_ID, row[0]),
            ).fetchall()
    except sqlite3.Error:  # locked or not migrated yet: try again on the next poll
        return None, {}
    return row[1], dict(tasks)


def progress_table(tasks: dict[str, str | None], elapsed: float) -> object:
    """The live view: one line per task with its state, and the counts."""
    from rich.table import Table

    counts = Counter(STATE_LABEL.get(state, state or "pending") for state in tasks.values())
    caption = ", ".join(f"{count} {label}" for label, count in sorted(counts.items()))
    table = Table(title=f"mallard run: {elapsed:.0f} s", caption=caption or "starting Airflow ...")
    table.add_column("task")
    table.add_column("state")
    colour = {"done": "green", "running": "yellow", "failed": "red", "upstream failed": "red"}
    for task, state in tasks.items():
        label = STATE_LABEL.get(state, state or "pending")
        table.add_row(task, f"[{colour.get(label, 'dim')}]{label}[/]")
    return table


def selection_problems(names: list[str], sources_dir: Path) -> list[str]:
    """Why sources named by `--source` cannot run in the ELT DAG (unknown, disabled, own DAG); [] if they can."""
    from include.mallard.config.project import ConfigError, load_project_settings, read_source_files
    from include.mallard.factory import split_by_schedule

    try:
        files = read_source_files(sources_dir)
    except ConfigError as error:  # no folder, or no source file in it: nothing to select from
        return [str(problem) for problem in error.problems]
    valid = {item.source.name: item for item in files.valid}
    on_elt = {item.source.name for item in split_by_schedule(files.enabled(), load_project_settings().schedule)[0]}
    problems = []
    for name in names:
        if name not in valid:
            problems.append(
                f"--source {name!r}: no valid source of that name in {sources_dir} "
                f"(sources: {', '.join(sorted(valid))})"
            )
        elif not valid[name].source.enabled:
            problems.append(
                f"--source {name!r} is disabled (`enabled: false` in {valid[name].path.name}): enable it to run it"
            )
        elif name not in on_elt:
            problems.append(
                f"--source {name!r} has a `schedule` of its own, so it runs in its own DAG, not in {DAG_ID}"
            )
    return problems


def run_dag(start: dt.date, end: dt.date, log_file: Path, sources: list[str] | None = None) -> RunResult:
    """Run the DAG once for [start, end) with a live table of its tasks; the full output in `log_file`.

    With `sources`, only those sources load (run conf `sources`; the others' tasks skip) and dbt
    builds as in any run.
    """
    from rich.console import Console
    from rich.live import Live

    from include.mallard.tasks import SOURCES_CONF_KEY

    database = airflow_home() / "airflow.db"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log_file.open("w") as log:
        if not database.is_file():  # as `make demo`: a fresh clone has no metadata DB yet
            subprocess.run(_airflow("db", "migrate"), stdout=log, stderr=subprocess.STDOUT, check=True)
        earlier = _run_ids(database)
        conf = {"start": start.isoformat(), "end": end.isoformat()}
        if sources:
            conf[SOURCES_CONF_KEY] = sources
        # Recorded under the last day it loads, as `make demo`: a backfill skips dates that have a run.
        last_day = max(start, end - dt.timedelta(days=1))
        command = _airflow("dags", "test", DAG_ID, last_day.isoformat(), "--conf", json.dumps(conf))
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        console = Console(highlight=False)
        state, tasks = None, {}
        # Off a terminal, Live prints only its last frame: the log file keeps the rest.
        with Live(progress_table({}, 0), console=console, refresh_per_second=2, transient=False) as live:
            while process.poll() is None:
                time.sleep(POLL_SECONDS)
                state, tasks = _read_tasks(database, earlier)
                live.update(progress_table(tasks, time.monotonic() - began))
            state, tasks = _read_tasks(database, earlier)
            live.update(progress_table(tasks, time.monotonic() - began))
    return RunResult(process.returncode, state, tasks, log_file, time.monotonic() - began)


def error_excerpt(log_file: Path, lines: int = 30) -> str:
    """The lines of the log that say what failed (the last `lines` of them)."""
    found = [line.rstrip() for line in log_file.read_text(errors="replace").splitlines() if _ERROR_LINE.search(line)]
    return "\n".join(found[-lines:])


def raw_table_counts(warehouse: Path) -> list[tuple[str, int]]:
    """(schema.table, rows) of every raw_* table dlt loaded (dlt's _dlt_* tables and a failed refresh's ~swap out)."""
    import duckdb

    from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX, quote_identifier

    if not warehouse.exists():
        return []
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        names = connection.execute(
            "select table_schema, table_name from information_schema.tables where table_schema like 'raw\\_%' "
            "escape '\\' and table_schema not like '%\\_staging' escape '\\' and table_name not like '\\_dlt%' "
            "escape '\\' and not ends_with(table_name, ?) order by 1, 2",
            [FULL_REFRESH_SWAP_SUFFIX],
        ).fetchall()
        return [
            (
                f"{schema}.{table}",
                connection.execute(
                    f"select count(*) from {quote_identifier(schema)}.{quote_identifier(table)}"
                ).fetchone()[0],
            )
            for schema, table in names
        ]


def task_counts(tasks: dict[str, str | None]) -> dict[str, Counter[str]]:
    """Per kind of task (ingestion, dbt model, dbt test): how many ended in which state."""
    kinds: dict[str, Counter[str]] = {"ingestion": Counter(), "dbt models": Counter(), "dbt tests": Counter()}
    for task, state in tasks.items():
        last = task.rsplit(".", 1)[-1]
        if task.startswith("ingest_"):
            kind = "ingestion"
        elif task.startswith("dbt.") and last == "run":
            kind = "dbt models"
        elif task.startswith("dbt.") and "test" in last:  # a model's tests, or Cosmos's detached tests
            kind = "dbt tests"
        else:
            continue  # the watcher producer, docs, publish: shown in the table, not counted
        kinds[kind][STATE_LABEL.get(state, state or "pending")] += 1
    return kinds


def print_summary(result: RunResult, warehouse: Path, dbt_project_dir: Path) -> None:
    """One screen: the outcome, tasks per kind, rows per raw table, what dbt built, wall time, the log."""
    from rich.console import Console
    from rich.markup import escape

    from include.mallard.warehouse_report import WarehouseReportError, table_counts

    console = Console(highlight=False, soft_wrap=True)
    console.print()  # the live table's last frame ends without a new line off a terminal
    ok = result.returncode == 0 and result.state == "success" and not result.failed
    outcome = "[green]run succeeded[/green]" if ok else f"[bold red]run FAILED[/bold red] (DAG run {result.state})"
    console.print(f"{outcome} in {result.seconds:.0f} s")
    for kind, counts in task_counts(result.tasks).items():
        console.print(f"  {kind:<12} " + (", ".join(f"{n} {label}" for label, n in sorted(counts.items())) or "none"))
    rows = raw_table_counts(warehouse) if warehouse.exists() else []
    if rows:
        console.print("raw tables (all the rows each holds now, not only this run's):")
        for name, count in rows:
            console.print(f"  {name:<46} {count:>8} rows")
    try:
        console.print(escape(table_counts(None, dbt_project_dir)))
    except WarehouseReportError as error:
        console.print(f"dbt tables: {escape(str(error))}")
    if not ok:
        console.print("[bold red]failed tasks:[/bold red] " + (", ".join(result.failed) or "(none recorded)"))
        blocked = [task for task, state in result.tasks.items() if state == "upstream_failed"]
        if blocked:
            console.print(f"not run because of them: {len(blocked)} task(s)")
        console.print(escape(error_excerpt(result.log_file)) if result.log_file else "")
    console.print(f"full log: {result.log_file}")
