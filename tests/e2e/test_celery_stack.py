"""The CeleryExecutor stack (`scripts/airflow_stack.py start --executor celery`) with two real workers.

One stack for the module, on a temporary home, with the small DAGs of tests/e2e/celery_dags:
PostgreSQL (metadata and warehouse) and Redis of its own, api-server, scheduler, dag-processor,
triggerer and two `airflow celery worker` processes, everything on 127.0.0.1. It proves that

1. eight parallel tasks are spread over both workers: each task instance records its worker's own
   hostname, HOME and MALLARD_WORK_DIR, and reached the warehouse through connection
   `mallard_warehouse_prod`;
2. a worker SIGKILLed (with every process it started) while it runs a task costs one try: the
   scheduler fails the task for its missing heartbeats, and the retry succeeds on the other worker.

The heartbeat timeout is 15 s here (300 s by default), so a lost worker is noticed in seconds.

    source scripts/env.sh && .venv/bin/python -m pytest -q tests/e2e/test_celery_stack.py -p no:cacheprovider -s
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from scripts.airflow_stack import (
    WORKER_PREFIX,
    AirflowStack,
    StackConfig,
    celery_stack_unavailable,
    free_port,
    running_stack,
    stack_processes,
    worker_hostname,
)
from tests.e2e.airflow_api import (
    Api,
    failed_tasks,
    trigger_paused_run,
    wait_for_dag,
    wait_for_run,
    wait_until_running_on_a_worker,
)
from tests.e2e.helpers import maps_duckdb

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out]

DAGS = Path(__file__).parent / "celery_dags"
STACK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow_stack.py"
FAN_OUT, LOSS = "celery_fan_out", "celery_worker_loss"
NAPS = 8
HEARTBEAT_TIMEOUT = 15  # s; the scheduler looks for task instances without heartbeats every 2 s
RUN_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def stack() -> Iterator[AirflowStack]:
    if reason := celery_stack_unavailable():
        pytest.skip(f"the Celery stack needs redis-server and PostgreSQL's server binaries: {reason}")
    # Not pytest's tmp_path: as root, PostgreSQL runs as user postgres, who must reach the stack's
    # folder, and pytest's base folder is private to root.
    root = Path(tempfile.mkdtemp(prefix="mallard-celery-stack-"))
    root.chmod(0o711)
    config = StackConfig(
        airflow_home=root / "airflow",
        port=free_port(),
        settings_file=None,
        dags_folder=DAGS,
        executor="celery",
        workers=2,
        extra_env={
            "MALLARD_WAREHOUSE_PATH": str(root / "warehouse" / "mallard.duckdb"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only triggered runs
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",  # a running task's supervisor heartbeats this often
        },
    )
    try:
        started = time.monotonic()
        with running_stack(config) as running:
            print(f"\nCelery stack ready after {time.monotonic() - started:.0f} s")
            roots = [component.info.pid for component in running.components]
            postgres = running.services.postgres if running.services else None
            yield running
        assert stack_processes(roots) == {}, "processes of the stack are still running"
        assert postgres is not None and postgres.postmaster() is None, "PostgreSQL still runs"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Api:
    api = Api(stack)
    for dag_id in (FAN_OUT, LOSS):
        wait_for_dag(api, dag_id)
    return api


def _task_instances(api: Api, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return {ti["task_id"]: ti for ti in api.all_items(path, "task_instances")}


def _span(ti: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(ti["start_date"]), dt.datetime.fromisoformat(ti["end_date"])


def test_parallel_tasks_run_on_both_workers_each_with_its_own_storage(stack: AirflowStack, api: Api):
    started = time.monotonic()
    run_id = trigger_paused_run(api, FAN_OUT, "2024-01-01T00:00:00Z", {})
    run = wait_for_run(api, FAN_OUT, run_id, timeout=RUN_TIMEOUT)
    print(f"{FAN_OUT}: {run['state']} after {time.monotonic() - started:.0f} s")
    assert run["state"] == "success", failed_tasks(api, FAN_OUT, run_id)

    naps = {task_id: ti for task_id, ti in _task_instances(api, FAN_OUT, run_id).items() if task_id.startswith("nap_")}
    assert len(naps) == NAPS
    workers = {worker_hostname(name): name for name in stack.worker_names}
    assert {ti["hostname"] for ti in naps.values()} == set(workers), {t: ti["hostname"] for t, ti in naps.items()}
    # In parallel: some two naps overlapped in time on different workers.
    assert any(
        a["hostname"] != b["hostname"] and _span(a)[0] < _span(b)[1] and _span(b)[0] < _span(a)[1]
        for a in naps.values()
        for b in naps.values()
    ), {t: (ti["hostname"], ti["start_date"], ti["end_date"]) for t, ti in naps.items()}

    # What each task recorded in the warehouse (connection mallard_warehouse_prod) is its worker's.
    with psycopg2.connect(stack.warehouse_uri) as db, db.cursor() as cursor:
        cursor.execute("SELECT task_id, hostname, work_dir, home FROM celery_fan_out_runs WHERE run_id = %s", [run_id])
        rows = {task_id: rest for task_id, *rest in cursor.fetchall()}
    assert set(rows) == set(naps)
    for task_id, (hostname, work_dir, home) in rows.items():
        assert hostname == naps[task_id]["hostname"]
        worker_dir = stack.worker_dir(workers[hostname])
        assert (work_dir, home) == (str(worker_dir / "work"), str(worker_dir / "home"))
    # No shared local storage: a task's file is in its own worker's work folder only.
    for task_id, ti in naps.items():
        found = {
            name
            for name in stack.worker_names
            if (stack.worker_dir(name) / "work" / FAN_OUT / run_id / task_id).exists()
        }
        assert found == {workers[ti["hostname"]]}, task_id


def test_the_stacks_airflow_prefix_runs_cli_commands_on_its_metadata_database(stack: AirflowStack, api: Api):
    # The README's backfill and trigger commands: a plain `airflow` after env.sh used the SQLite
    # file, never this stack's PostgreSQL, so backfills waited forever in a database no scheduler read.
    runs = {run["dag_run_id"] for run in api.all_items(f"/dags/{FAN_OUT}/dagRuns", "dag_runs")}
    assert runs, "the fan-out test's run"
    home = stack.config.airflow_home
    command = [sys.executable, str(STACK_SCRIPT), "airflow", "--airflow-home", str(home)]
    listed = subprocess.run(
        [*command, "dags", "list-runs", FAN_OUT, "-o", "json"], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    table = next(line for line in reversed(listed.stdout.splitlines()) if line.startswith("[{"))  # after any log lines
    assert {run["run_id"] for run in json.loads(table)} == runs, listed.stdout[-2000:]

    elsewhere = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), "airflow", "--airflow-home", str(home.parent / "no-stack"), "version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode == 1 and "no stack is running in" in elsewhere.stderr, elsewhere.stderr


def test_each_worker_forks_its_task_processes_with_dlt_and_dbt_imported(stack: AirflowStack, api: Api):
    """The stack names Mallard's Celery settings (include/mallard/celery_worker.py): each worker
    imports the task libraries and Mallard's modules before it starts its pool, so its pool
    processes, which fork the task processes, already have DuckDB loaded. Without them nothing in a
    pool process imports it (tasks import it in their own processes)."""
    workers = [component for component in stack.components if component.name.startswith(WORKER_PREFIX)]
    assert len(workers) == 2  # before the next test kills one
    for worker in workers:
        log = worker.log_path.read_text(errors="replace")[worker.log_offset :]
        assert "project files imported for the Celery worker's task processes" in log, log[-3000:]
        children = [info for info in stack_processes([worker.info.pid]).values() if info.ppid == worker.info.pid]
        # Its pool: the last children it started (Airflow starts a bundle-cleanup helper before Celery).
        started = sorted(children, key=lambda info: info.start_time)
        pool = [info.pid for info in started[-stack.config.worker_concurrency :]]
        assert len(pool) == stack.config.worker_concurrency, f"{worker.name}'s children: {children}"
        assert maps_duckdb(worker.info.pid)
        without = [pid for pid in pool if not maps_duckdb(pid)]
        assert not without, f"{worker.name}'s pool processes without DuckDB imported: {without} of {pool}"


def test_a_task_of_a_killed_worker_is_retried_on_the_other_worker(stack: AirflowStack, api: Api):
    task_path = f"/dags/{LOSS}/dagRuns/{{run_id}}/taskInstances/outlive_worker"
    run_id = trigger_paused_run(api, LOSS, "2024-01-01T00:00:00Z", {})
    path = task_path.format(run_id=run_id)
    ti = wait_until_running_on_a_worker(api, path, timeout=RUN_TIMEOUT, poll=1)
    workers = {worker_hostname(name): name for name in stack.worker_names}
    victim = workers[ti["hostname"]]
    (survivor,) = set(stack.worker_names) - {victim}
    time.sleep(3)  # past its first heartbeats: really running, not starting
    stack.kill(victim)
    killed = time.monotonic()

    run = wait_for_run(api, LOSS, run_id, timeout=RUN_TIMEOUT)
    print(f"{LOSS}: {run['state']} {time.monotonic() - killed:.0f} s after {victim} was killed")
    assert run["state"] == "success", failed_tasks(api, LOSS, run_id)
    final = api.call("GET", path)
    assert (final["state"], final["try_number"], final["hostname"]) == ("success", 2, worker_hostname(survivor))
    tries = {t["try_number"]: t for t in api.call("GET", f"{path}/tries")["task_instances"]}
    assert tries[1]["hostname"] == worker_hostname(victim)
    assert tries[1]["state"] != "success"
    # The scheduler found the dead try by its missing heartbeats.
    events = api.call("GET", "/eventLogs", params={"dag_id": LOSS, "event": "heartbeat timeout"})["event_logs"]
    assert [event["run_id"] for event in events] == [run_id]
