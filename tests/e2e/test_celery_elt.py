"""Mallard's own ELT DAG on the CeleryExecutor: two workers that share no disk, the PostgreSQL warehouse.

The stack (`scripts/airflow_stack.py start --executor celery --workers 2`) runs the project's
`dags/` in environment `prod` (MALLARD_ENV): every source loads into the stack's PostgreSQL
warehouse, one task per source. It proves that

1. a 3-day backfill of the demo succeeds with task instances on both workers, and leaves raw and
   mart tables equal, row for row, to those of the same days loaded into DuckDB by `airflow dags
   test` in environment `dev`;
2. a worker SIGKILLed while it ingests a source costs one try: the retry runs on the other worker
   and the tables are still exactly those rows (the rerun is idempotent).

    source scripts/env.sh && .venv/bin/python -m pytest -q tests/e2e/test_celery_elt.py -p no:cacheprovider -s
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.airflow_stack import AirflowStack, StackConfig, celery_stack_unavailable, running_stack, worker_hostname
from tests.e2e.airflow_api import (
    Api,
    failed_tasks,
    start_backfill,
    wait_for_backfill,
    wait_for_dag,
    wait_for_run,
    wait_until_running_on_a_worker,
)
from tests.e2e.helpers import airflow_env, run_airflow
from tests.e2e.servers import free_port
from tests.e2e.warehouse_digests import duckdb_digests, postgres_digests

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out]

DAG_ID = "mallard_elt"
# Logical dates of the backfill: each run loads its own day, 2024-01-05 to 2024-01-07.
BACKFILL_FROM, BACKFILL_TO = "2024-01-05T00:00:00Z", "2024-01-07T00:00:00Z"
SAME_DAYS_CONF = '{"start": "2024-01-05", "end": "2024-01-08"}'
HEARTBEAT_TIMEOUT = 15  # s (300 by default): a lost worker is noticed in seconds


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, PostgreSQL runs as user postgres, who must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="mallard-celery-elt-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def in_duckdb(root: Path) -> dict[str, tuple[int, str]]:
    """The same days through the same DAG file in `dev`: one `airflow dags test` into DuckDB."""
    warehouse = root / "dev" / "mallard.duckdb"
    env = airflow_env(root / "dev" / "airflow", warehouse, root / "dev" / "work") | {"MALLARD_ENV": "dev"}
    log = root / "dev.log"
    run_airflow(["db", "migrate"], env, log)
    run_airflow(["dags", "test", DAG_ID, "2024-01-08", "--conf", SAME_DAYS_CONF], env, log)
    return duckdb_digests(warehouse)


@pytest.fixture(scope="module")
def stack(root: Path, in_duckdb) -> Iterator[AirflowStack]:
    if reason := celery_stack_unavailable():
        pytest.skip(f"the Celery stack needs redis-server and PostgreSQL's server binaries: {reason}")
    config = StackConfig(
        airflow_home=root / "airflow",
        port=free_port(),
        executor="celery",
        workers=2,
        extra_env={
            "MALLARD_ENV": "prod",
            # prod must never create the DuckDB file.
            "MALLARD_WAREHOUSE_PATH": str(root / "never" / "mallard.duckdb"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the tests start
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        },
    )
    with running_stack(config) as running:
        yield running
    assert not (root / "never").exists()


@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Api:
    api = Api(stack)
    wait_for_dag(api, DAG_ID)
    return api


def _task_instances(api: Api, run_id: str) -> list[dict[str, Any]]:
    return api.all_items(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "task_instances")


def test_a_backfill_on_two_workers_loads_what_duckdb_holds_for_the_same_days(stack, api, in_duckdb):
    started = time.monotonic()
    backfill = start_backfill(api, DAG_ID, BACKFILL_FROM, BACKFILL_TO)
    runs = wait_for_backfill(api, DAG_ID, backfill, runs=3, timeout=1200)
    print(f"\n3-day backfill on 2 Celery workers: {time.monotonic() - started:.0f} s")
    assert {r["state"] for r in runs} == {"success"}, [failed_tasks(api, DAG_ID, r["dag_run_id"]) for r in runs]
    instances = [ti for r in runs for ti in _task_instances(api, r["dag_run_id"]) if ti["state"] == "success"]
    # The scheduler itself marks empty tasks done: every other task ran on a worker, and on both.
    assert {ti["operator"] for ti in instances if not ti["hostname"]} <= {"EmptyOperator"}
    hostnames = {ti["hostname"] for ti in instances if ti["hostname"]}
    assert hostnames == {worker_hostname(name) for name in stack.worker_names}
    # One task per source on a server warehouse: no extract that only one worker's disk holds.
    assert not [ti["task_id"] for ti in instances if ti["task_id"].endswith(".extract")]
    in_postgres = postgres_digests(stack.warehouse_uri)
    assert in_postgres["raw_shop.orders"][0] > 0 and in_postgres["marts.orders"][0] > 0
    assert in_postgres == in_duckdb


def test_a_worker_killed_while_it_ingests_costs_one_try_and_no_row(stack, api, in_duckdb):
    api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    one_day = {"logical_date": None, "conf": {"start": "2024-01-06", "end": "2024-01-07"}}
    run = api.call("POST", f"/dags/{DAG_ID}/dagRuns", json=one_day)
    path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/ingest_shop.load"
    ti = wait_until_running_on_a_worker(api, path, timeout=300, poll=0.2)
    workers = {worker_hostname(name): name for name in stack.worker_names}
    victim = workers[ti["hostname"]]
    (survivor,) = set(stack.worker_names) - {victim}
    # At once: a one-day load can finish within 2 s of being seen running (CI once lost that race:
    # try 1 succeeded on the victim, and nothing was proven). dlt's import alone takes longer.
    stack.kill(victim)
    assert api.call("GET", path)["state"] != "success", "the load finished before its worker was killed"

    finished = wait_for_run(api, DAG_ID, run["dag_run_id"], timeout=900)
    assert finished["state"] == "success", failed_tasks(api, DAG_ID, run["dag_run_id"])
    final = api.call("GET", path)
    assert (final["try_number"], final["hostname"]) == (2, worker_hostname(survivor))
    tries = {t["try_number"]: t for t in api.call("GET", f"{path}/tries")["task_instances"]}
    assert tries[1]["hostname"] == worker_hostname(victim) and tries[1]["state"] != "success"
    # The rerun of a day already loaded, killed once, leaves exactly the same rows.
    assert postgres_digests(stack.warehouse_uri) == in_duckdb
