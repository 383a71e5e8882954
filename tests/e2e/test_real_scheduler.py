"""One real run of `mallard_elt` on the local stack: api-server, scheduler, dag-processor, triggerer.

This is what `airflow dags test` cannot show: every task is its own process under LocalExecutor,
so the DuckDB writers really compete, the `mallard_duckdb` pool really has to serialise them, and
the per-task process cost is real. The stack (scripts/airflow_stack.py) runs on a temporary
AIRFLOW_HOME, warehouse and dlt work folder, with the api-server on a free loopback port and no
listener beyond loopback; every process is stopped afterwards, also when the test fails.

    source scripts/env.sh && .venv/bin/python -m pytest tests/e2e/test_real_scheduler.py -x -s

Takes a few minutes on 2 cores; the timings are printed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.paths import PROJECT_ROOT
from include.mallard.warehouse import LOCK_ERROR_TEXT, WAREHOUSE_POOL
from scripts.airflow_stack import EXECUTION_API_HEALTH, AirflowStack, stack_processes
from tests.e2e.airflow_api import (
    RUN_TIMEOUT,
    Api,
    isolated_stack,
    start_backfill,
    wait_for_backfill,
    wait_for_dag,
    wait_for_run,
)
from tests.e2e.helpers import maps_duckdb

pytestmark = pytest.mark.e2e

DAG_ID = "mallard_elt"
LOGICAL_DATE = "2024-01-08T00:00:00Z"
RUN_CONF = {"start": "2024-01-01", "end": "2024-01-08"}
DAYS_IN_RUN = 7
LOCK_RETRY_TEXT = "locked by another process"  # retry_on_lock's warning: a lock was met and waited out
# Cosmos logs these when a model / test task runs dbt itself instead of reading the build's result.
WATCHER_FALLBACK_TEXTS = ("Falling back to running", "Running tests for model")
# What a task process logs when project files changed since the scheduler preloaded them (worker_preload).
PROJECT_REIMPORTED = "changed since the scheduler preloaded them"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    with isolated_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@dataclass
class TaskSpan:
    task_id: str
    state: str
    pool: str
    try_number: int
    start: dt.datetime
    end: dt.datetime

    @property
    def source(self) -> str | None:
        group = self.task_id.split(".")[0]
        return group.removeprefix("ingest_") if group.startswith("ingest_") else None

    def overlaps(self, other: TaskSpan) -> bool:
        return self.start < other.end and other.start < self.end


def _spans(task_instances: list[dict[str, Any]]) -> list[TaskSpan]:
    return [
        TaskSpan(
            ti["task_id"],
            ti["state"],
            ti["pool"],
            ti["try_number"],
            dt.datetime.fromisoformat(ti["start_date"]),
            dt.datetime.fromisoformat(ti["end_date"]),
        )
        for ti in task_instances
        if ti["start_date"] and ti["end_date"]
    ]


def task_logs(airflow_home: Path) -> list[Path]:
    return [path for path in (airflow_home / "logs").rglob("*") if path.is_file()]


def _failure_report(airflow_home: Path, spans: list[TaskSpan]) -> str:
    lines = []
    for span in spans:
        if span.state != "success":
            lines.append(f"{span.task_id}: {span.state}")
            for log in sorted(airflow_home.glob(f"logs/dag_id={DAG_ID}/*/task_id={span.task_id}/*.log")):
                lines += log.read_text(errors="replace").splitlines()[-15:]
    return "\n".join(lines)


def print_timeline(spans: list[TaskSpan], run_start: dt.datetime) -> None:
    print("  start    secs  try  pool            task")
    for span in sorted(spans, key=lambda s: s.start):
        offset, seconds = (span.start - run_start).total_seconds(), (span.end - span.start).total_seconds()
        print(f"  {offset:6.1f}  {seconds:5.1f}  {span.try_number:>3}  {span.pool:<14}  {span.task_id}")


def test_mallard_elt_runs_on_the_real_scheduler(stack: AirflowStack):
    home = stack.home
    api = Api(stack)
    dag = wait_for_dag(api, DAG_ID)
    assert dag["is_paused"], "the DAG should start paused (dags_are_paused_at_creation)"

    # Trigger while paused (the run waits in `queued`), then unpause: the run starts.
    run = api.call("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": LOGICAL_DATE, "conf": RUN_CONF})
    run_id = run["dag_run_id"]
    triggered = time.monotonic()
    api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    print(f"\ntriggered {run_id} ({RUN_CONF}); waiting for it")
    run = wait_for_run(api, DAG_ID, run_id)
    waited = time.monotonic() - triggered

    spans = _spans(api.all_items(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "task_instances"))
    run_start, run_end = dt.datetime.fromisoformat(run["start_date"]), dt.datetime.fromisoformat(run["end_date"])
    print(f"\nrun {run['state']}: {(run_end - run_start).total_seconds():.0f} s (trigger to end {waited:.0f} s)")
    print_timeline(spans, run_start)

    assert run["state"] == "success", _failure_report(home, spans)
    assert spans and all(span.state == "success" for span in spans), _failure_report(home, spans)
    runs = api.call("GET", f"/dags/{DAG_ID}/dagRuns")
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == [run_id], "an unexpected run was created"
    retried = [span.task_id for span in spans if span.try_number > 1]
    print(f"tasks: {len(spans)}, retried: {retried or 'none'}")

    # The pool is what keeps DuckDB writers apart: none of its tasks may have overlapped another.
    pooled = [span for span in spans if span.pool == WAREHOUSE_POOL]
    clashes = [(a.task_id, b.task_id) for a, b in itertools.combinations(pooled, 2) if a.overlaps(b)]
    assert not clashes, f"tasks of pool {WAREHOUSE_POOL} overlapped: {clashes}"

    # Ingestion of different sources in parallel is the point of splitting extract from load.
    ingest = [span for span in spans if span.source]
    pairs = {
        tuple(sorted((a.source, b.source)))
        for a, b in itertools.combinations(ingest, 2)
        if a.source != b.source and a.overlaps(b)
    }
    extracts = [span for span in ingest if span.task_id.endswith(".extract")]
    extract_pairs = [(a.source, b.source) for a, b in itertools.combinations(extracts, 2) if a.overlaps(b)]
    print(f"ingestion of different sources overlapped: {'yes ' + str(sorted(pairs)) if pairs else 'no'}")
    print(f"extract tasks overlapped: {'yes ' + str(extract_pairs) if extract_pairs else 'no'}")

    logs = task_logs(home)
    assert logs, f"no task logs under {home / 'logs'}"
    log_texts = {str(p): p.read_text(errors="replace") for p in logs}
    lock_errors = {path: text.count(LOCK_ERROR_TEXT) for path, text in log_texts.items()}
    lock_waits = {path: text.count(LOCK_RETRY_TEXT) for path, text in log_texts.items()}
    print(f"log files scanned: {len(logs)}; '{LOCK_ERROR_TEXT}': {sum(lock_errors.values())}")
    assert sum(lock_errors.values()) == 0, {p: n for p, n in lock_errors.items() if n}
    assert sum(lock_waits.values()) == 0, {p: n for p, n in lock_waits.items() if n}
    # One `dbt build` did the dbt work: no model or test task ran dbt on its own (Cosmos does on
    # a first try that finds no result, and on every retry).
    fallbacks = [path for path, text in log_texts.items() if any(t in text for t in WATCHER_FALLBACK_TEXTS)]
    assert not fallbacks, fallbacks
    assert not [task_id for task_id in retried if task_id.startswith("dbt.")]
    dbt_spans = [span for span in spans if span.task_id.startswith("dbt.")]
    assert [span.task_id for span in dbt_spans if span.pool == WAREHOUSE_POOL] == [BUILD_TASK_ID]

    stack.check_loopback_only()  # still nothing beyond loopback, now that tasks have run

    warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        counts = {
            table: connection.execute(f"select count(*) from marts.{table}").fetchone()[0]
            for table in ("orders", "customers", "daily_activity")
        }
    print(f"marts: {counts}")
    assert all(counts.values()), counts
    assert counts["daily_activity"] == DAYS_IN_RUN


BACKFILL_FROM, BACKFILL_TO = "2024-02-01T00:00:00Z", "2024-02-05T00:00:00Z"


def _assert_days_loaded_exactly(stack: AirflowStack, first: dt.datetime, last: dt.datetime) -> None:
    """raw_shop and the marts hold exactly the synthetic shop's rows of [first, last), each once."""
    from include.mallard.config import get_source
    from include.mallard.paths import SOURCES_DIR
    from include.mallard.sources import synthetic

    orders, payments = synthetic.interval_rows(get_source(SOURCES_DIR, "shop"), first, last)
    by_day = Counter(o["ordered_at"].date() for o in orders)
    warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])
    with duckdb.connect(str(warehouse), read_only=True) as connection:

        def count(sql: str) -> int:
            return connection.execute(sql, [first, last]).fetchone()[0]

        assert count("select count(*) from raw_shop.orders where ordered_at >= ? and ordered_at < ?") == len(orders)
        assert count("select count(*) from raw_shop.payments where paid_at >= ? and paid_at < ?") == len(payments)
        assert count("select count(*) from marts.orders where ordered_at >= ? and ordered_at < ?") == len(orders)
        mart_days = connection.execute(
            "select activity_date, order_count from marts.daily_activity "
            "where activity_date >= cast(? as date) and activity_date < cast(? as date) order by 1",
            [first, last],
        ).fetchall()
    assert dict(mart_days) == dict(by_day)


def _raise_for_failed_runs(stack: AirflowStack, api: Api, runs: list[dict[str, Any]], what: str) -> None:
    for run in runs:
        if run["state"] != "success":
            path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
            report = _failure_report(stack.home, _spans(api.all_items(path, "task_instances")))
            raise AssertionError(f"{what} run {run['dag_run_id']} {run['state']}:\n{report}")


def test_backfill_loads_exactly_its_days_under_the_scheduler(stack: AirflowStack):
    """`POST /backfills` over 5 days (default max_active_runs 10): every run loads its own day, no lock fails."""
    api = Api(stack)
    wait_for_dag(api, DAG_ID)
    started = time.monotonic()
    backfill = start_backfill(api, DAG_ID, BACKFILL_FROM, BACKFILL_TO)
    runs = wait_for_backfill(api, DAG_ID, backfill, runs=5, timeout=RUN_TIMEOUT)
    took = time.monotonic() - started
    assert len(runs) == 5, f"expected 5 backfill runs, got {[(r['dag_run_id'], r['state']) for r in runs]}"
    durations = [
        (dt.datetime.fromisoformat(r["end_date"]) - dt.datetime.fromisoformat(r["start_date"])).total_seconds()
        for r in runs
    ]
    print(f"\n5-day backfill: {took:.0f} s wall; per run {', '.join(f'{d:.0f}' for d in durations)} s")
    _raise_for_failed_runs(stack, api, runs, "backfill")

    # Each run's data interval is one day; together they cover 5 consecutive days, each once.
    intervals = sorted(
        (dt.datetime.fromisoformat(r["data_interval_start"]), dt.datetime.fromisoformat(r["data_interval_end"]))
        for r in runs
    )
    assert all(end - start == dt.timedelta(days=1) for start, end in intervals), intervals
    assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals)), intervals
    _assert_days_loaded_exactly(stack, intervals[0][0], intervals[-1][1])

    logs = task_logs(stack.home)
    assert sum(p.read_text(errors="replace").count(LOCK_ERROR_TEXT) for p in logs) == 0


def test_reprocessing_backfilled_days_reloads_them_exactly(stack: AirflowStack):
    """A backfill with `reprocess_behavior: completed` clears two finished days and runs them again.

    Cosmos does not run a cleared `dbt build` again: each model and test task re-runs its own node
    with dbt, outside the writer pool, several at a time. They must wait for the warehouse, not
    fail on its lock, and the days must hold their rows once.
    """
    api = Api(stack)
    posted = dt.datetime.now(dt.UTC)
    backfill = start_backfill(api, DAG_ID, "2024-02-02T00:00:00Z", "2024-02-03T00:00:00Z", reprocess="completed")
    runs = wait_for_backfill(api, DAG_ID, backfill, runs=2, timeout=RUN_TIMEOUT)
    assert len(runs) == 2, [(r["dag_run_id"], r["state"]) for r in runs]
    assert all(dt.datetime.fromisoformat(r["start_date"]) > posted for r in runs), "the days did not run again"
    _raise_for_failed_runs(stack, api, runs, "reprocessed")
    logs = [p.read_text(errors="replace") for p in task_logs(stack.home)]
    model_reruns = sum("dbt run completed successfully on retry" in text for text in logs)
    test_reruns = sum("dbt test completed successfully for model" in text for text in logs)
    print(f"\nreprocessed 2 days; nodes re-run by their own task: {model_reruns} models, {test_reruns} test sets")
    assert model_reruns and test_reruns, "expected Cosmos's retry path: each node re-run by its own task"
    _assert_days_loaded_exactly(stack, dt.datetime(2024, 2, 2, tzinfo=dt.UTC), dt.datetime(2024, 2, 4, tzinfo=dt.UTC))
    assert sum(text.count(LOCK_ERROR_TEXT) for text in logs) == 0


def test_the_local_executors_task_processes_fork_with_dlt_and_dbt_imported(stack: AirflowStack):
    """worker_preload imports the task libraries into the scheduler before the LocalExecutor forks
    its workers (the processes that fork each task): the workers already have DuckDB loaded, and
    the scheduler says what it imported, and that it parsed the project's YAML files
    (parsed_files.py) and its dbt manifest (cosmos_manifest.py) for them. Without the listener
    nothing in the scheduler imports it."""
    scheduler = next(component for component in stack.components if component.name == "scheduler")
    log = scheduler.log_path.read_text(errors="replace")[scheduler.log_offset :]
    sources = len(list((PROJECT_ROOT / "include" / "sources").glob("*.yml")))
    parsed = f"task processes, {sources + 2} project files parsed, the dbt manifest parsed"  # + the dbt YAML
    assert "project files imported for the LocalExecutor's " + parsed in log, log[-3000:]
    processes = stack_processes([scheduler.info.pid])
    workers = [pid for pid, info in processes.items() if info.ppid == scheduler.info.pid]
    assert workers, f"no child process of the scheduler ({scheduler.info.pid}): is the executor the LocalExecutor?"
    assert maps_duckdb(scheduler.info.pid)
    without = [pid for pid in workers if not maps_duckdb(pid)]
    assert not without, f"scheduler children without DuckDB imported: {without} of {workers}"
    # The model and test tasks of the runs so far took that parse instead of reading the file.
    taken = "since the scheduler parsed it, was not read again"
    model_task_logs = [
        path for path in task_logs(stack.home) if re.search(r"task_id=dbt\.[^./]+\.(run|test)", str(path))
    ]
    assert model_task_logs, "no model task has run on this stack"
    not_taken = [path for path in model_task_logs if taken not in path.read_text(errors="replace")]
    assert not not_taken, f"{len(not_taken)} of {len(model_task_logs)} model task logs, e.g. {not_taken[:1]}"


def test_the_stack_asks_the_execution_api_before_any_task_does(stack: AirflowStack):
    """The execution API's first request is slow (it builds the app); the stack makes it, not a task."""
    api_server = next(component for component in stack.components if component.name == "api-server")
    log = api_server.log_path.read_text(errors="replace")[api_server.log_offset :]
    requests = [line for line in log.splitlines() if "path=/execution/" in line]
    assert requests, "no request reached the execution API"
    assert f"path={EXECUTION_API_HEALTH}" in requests[0], requests[:3]


def test_an_edit_of_mallards_code_reaches_the_next_task(stack: AirflowStack):
    """The scheduler preloads Mallard's own modules too (worker_preload.preload_project), and the tasks
    so far parsed the DAG file with them as they were. Once a project file changes, every later task
    imports the project anew before it parses: a user's edit applies at the next task."""
    scheduler = next(component for component in stack.components if component.name == "scheduler")
    preloaded = re.search(r"and (\d+) project files imported", scheduler.log_path.read_text(errors="replace"))
    assert preloaded and int(preloaded.group(1)) > 20, "the scheduler did not preload Mallard's modules"
    assert not [path for path in task_logs(stack.home) if PROJECT_REIMPORTED in path.read_text(errors="replace")]

    edited = PROJECT_ROOT / "include" / "mallard" / "edges.py"
    before = edited.stat()
    api = Api(stack)
    try:
        os.utime(edited)  # saved again without a change: that counts as an edit
        run = api.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={"logical_date": "2024-03-02T00:00:00Z", "conf": {"start": "2024-03-01", "end": "2024-03-02"}},
        )
        finished = wait_for_run(api, DAG_ID, run["dag_run_id"])
    finally:
        os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert finished["state"] == "success"
    logs = sorted(stack.home.glob(f"logs/dag_id={DAG_ID}/run_id={run['dag_run_id']}/task_id=*/*.log"))
    model_logs = [path for path in logs if path.parent.name.endswith(".run") and "dbt." in path.parent.name]
    assert len(logs) > 20 and model_logs
    stale = [path.parent.name for path in logs if PROJECT_REIMPORTED not in path.read_text(errors="replace")]
    assert not stale, f"tasks that parsed the DAG file with the preloaded modules after the edit: {stale}"
