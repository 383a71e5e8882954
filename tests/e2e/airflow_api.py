"""Shared by the end-to-end tests that run a real stack (scripts/airflow_stack.py): its REST API v2.

`Api` logs in through /auth/token and calls /api/v2 with the JWT; `wait_for_dag` waits until the
DAG processor has parsed a DAG (failing at once on an import error); `trigger_paused_run` triggers
a run while the DAG is paused and then unpauses it, so that exactly that run starts;
`wait_for_run` waits until a run has finished, printing the task states now and then.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from scripts.airflow_stack import (
    AirflowStack,
    StackConfig,
    free_port,
    postgres_unavailable,
    running_stack,
    stack_processes,
)

PARSE_TIMEOUT = 180.0
RUN_TIMEOUT = 15 * 60.0


@contextmanager
def isolated_stack(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[AirflowStack]:
    """A stack on a temporary home, warehouse and work folder under `root`, on a free loopback port.

    Its metadata database is the stack's own PostgreSQL, as under the Astro CLI (on SQLite the
    scheduler can die at the start of a backfill), unless PostgreSQL is not installed. Every process
    it started is gone afterwards (checked), also when the test fails.
    """
    # Not under `root`: as root, PostgreSQL runs as user postgres, and pytest's folders are private.
    postgres_dir = None if postgres_unavailable() else Path(tempfile.mkdtemp(prefix="mallard-stack-postgres-"))
    if postgres_dir is not None:
        postgres_dir.chmod(0o711)
    config = StackConfig(
        airflow_home=root / "airflow",
        port=free_port(),
        metadata_db="sqlite" if postgres_dir is None else "postgres",
        postgres_dir=postgres_dir,
        extra_env={
            "MALLARD_WAREHOUSE_PATH": str(root / "warehouse" / "mallard.duckdb"),
            "MALLARD_WORK_DIR": str(root / "work"),
            "AIRFLOW__CORE__PARALLELISM": "8",
            # Unpausing a catchup=False DAG queues a run for the latest interval at once, which
            # would load today's data into the same warehouse. With the job schedule off, the
            # scheduler runs only what is triggered; everything else is the real scheduler.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            **(extra_env or {}),
        },
    )
    try:
        with running_stack(config) as running:
            roots = [component.info.pid for component in running.components]
            postgres = running.postgres
            yield running
        assert stack_processes(roots) == {}, "processes of the stack are still running"
        assert postgres is None or postgres.postmaster() is None, "the stack's PostgreSQL still runs"
    finally:
        if postgres_dir is not None:
            shutil.rmtree(postgres_dir, ignore_errors=True)


class Api:
    """The REST API v2 with a JWT from /auth/token."""

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack
        base = stack.config.url
        token = httpx.post(
            f"{base}/auth/token",
            json={"username": stack.config.username, "password": stack.config.password},
            timeout=30,
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        self.client = httpx.Client(base_url=f"{base}/api/v2", headers=headers, timeout=30)

    def assert_stack_alive(self) -> None:
        """Fail at once, with its log's tail, if a component of the stack has exited.

        A scheduler that died (SQLite's "database is locked" can end it) leaves every run queued;
        without this a wait would sit out its whole timeout and say nothing about why.
        """
        if dead := self.stack.dead_components():
            component = dead[0]
            tail = "\n".join(component.log_path.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(
                f"{component.name} exited (code {component.popen.returncode}); {component.log_path}:\n{tail}"
            )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.is_error:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def all_items(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", path, params={"limit": 100, "offset": len(items)})
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items


def wait_for_dag(api: Api, dag_id: str, timeout: float = PARSE_TIMEOUT) -> dict[str, Any]:
    """The DAG as the API shows it, once parsed; fails at once if any file has an import error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = api.call("GET", "/importErrors")
        assert errors["total_entries"] == 0, f"import errors: {errors['import_errors']}"
        response = api.client.get(f"/dags/{dag_id}")
        if response.status_code == 200:
            return response.json()
        time.sleep(2)
    raise AssertionError(f"{dag_id} was not parsed within {timeout:.0f} s")


def trigger_paused_run(api: Api, dag_id: str, logical_date: str, conf: dict[str, Any]) -> str:
    """Trigger a run of a paused DAG (it waits in `queued`), then unpause: that run starts. Its id.

    With `AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False` on the stack, unpausing a catchup=False DAG
    does not queue a run for the latest interval as well: only the triggered run exists.
    """
    run = api.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf})
    api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    return run["dag_run_id"]


def wait_until_running_on_a_worker(api: Api, path: str, timeout: float, poll: float = 0.5) -> dict[str, Any]:
    """The task instance at `path` (REST) once it runs and has recorded its worker's hostname."""
    deadline = time.monotonic() + timeout
    while (ti := api.call("GET", path))["state"] != "running" or not ti["hostname"]:
        assert time.monotonic() < deadline, f"{path} did not start within {timeout:.0f} s: {ti['state']}"
        time.sleep(poll)
    return ti


def wait_for_run(api: Api, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """The run once it is `success` or `failed`; prints the count of task states every 30 s."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    path = f"/dags/{dag_id}/dagRuns/{run_id}"
    while time.monotonic() < deadline:
        api.assert_stack_alive()
        run = api.call("GET", path)
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() - last_report > 30:
            states = Counter(str(ti["state"]) for ti in api.all_items(f"{path}/taskInstances", "task_instances"))
            print(f"  run {run['state']}: " + ", ".join(f"{state}={n}" for state, n in sorted(states.items())))
            last_report = time.monotonic()
        time.sleep(3)
    raise AssertionError(f"run {run_id} did not finish within {timeout:.0f} s")


def start_backfill(api: Api, dag_id: str, from_date: str, to_date: str, reprocess: str = "none") -> dict[str, Any]:
    """Unpause the DAG (backfill runs wait while it is paused) and `POST /backfills`; the backfill.

    `reprocess` is the backfill's reprocess_behavior: "none", "failed" or "completed".
    """
    api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    body = {"dag_id": dag_id, "from_date": from_date, "to_date": to_date, "reprocess_behavior": reprocess}
    # On SQLite, creating a backfill while the scheduler writes (it just queued the unpaused DAG's
    # latest run) can answer 503 "Database is locked" (apache/airflow#66726); nothing was created,
    # so ask again, as the message says a client should.
    for attempt in range(1, 6):
        try:
            return api.call("POST", "/backfills", json=body)
        except AssertionError as error:
            if "503" not in str(error) or "locked" not in str(error) or attempt == 5:
                raise
            time.sleep(2 * attempt)
    raise AssertionError("unreachable")


def wait_for_backfill(
    api: Api, dag_id: str, backfill: dict[str, Any], runs: int, timeout: float
) -> list[dict[str, Any]]:
    """The backfill's runs once `runs` of them exist and have finished and the backfill is completed.

    Its runs are the DAG's backfill runs with a logical date in [from_date, to_date]: a run list
    has no backfill id, and a reprocessing backfill takes over (clears) earlier runs of its days.
    Prints how many are done every minute; at `timeout`, fails with what each unfinished run's
    tasks are doing (and the end of their logs). The caller asserts on the runs it gets.
    """
    first, last = (dt.datetime.fromisoformat(backfill[key]) for key in ("from_date", "to_date"))
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        api.assert_stack_alive()
        found = [
            r
            for r in api.all_items(f"/dags/{dag_id}/dagRuns", "dag_runs")
            if r["run_type"] == "backfill" and first <= dt.datetime.fromisoformat(r["logical_date"]) <= last
        ]
        done = [r for r in found if r["state"] in ("success", "failed")]
        # The scheduler marks the backfill completed a moment after its last run; until then no
        # other backfill of the DAG may start.
        if len(found) == runs and len(done) == runs and api.call("GET", f"/backfills/{backfill['id']}")["completed_at"]:
            return found
        if time.monotonic() - last_report > 60:
            print(f"  backfill {backfill['id']}: {len(done)}/{runs} runs done", flush=True)
            last_report = time.monotonic()
        time.sleep(5)
    raise AssertionError(
        f"backfill {backfill['id']} not done within {timeout:.0f} s: {len(found)} runs, "
        f"{[(r['dag_run_id'], r['state']) for r in found]}\n{unfinished_report(api, dag_id, found)}"
    )


def unfinished_report(api: Api, dag_id: str, runs: list[dict[str, Any]]) -> str:
    """For each run that has not finished: its task states, and the end of each running task's log."""
    lines = []
    for run in runs:
        if run["state"] in ("success", "failed"):
            continue
        path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
        instances = api.all_items(path, "task_instances")
        states = Counter(str(ti["state"]) for ti in instances)
        lines.append(f"{run['dag_run_id']} ({run['state']}): {dict(states)}")
        for ti in instances:
            if ti["state"] not in ("running", "queued", "up_for_retry"):
                continue
            lines.append(f"  {ti['task_id']}: {ti['state']} (try {ti['try_number']}, pool {ti['pool']})")
            logs = (
                api.stack.home
                / "logs"
                / f"dag_id={dag_id}"
                / f"run_id={run['dag_run_id']}"
                / f"task_id={ti['task_id']}"
            )
            for log in sorted(logs.glob("*.log"))[-1:]:
                lines += ["    " + line[:300] for line in log.read_text(errors="replace").splitlines()[-8:]]
    scheduler = api.stack.stack_dir / "scheduler.log"
    if scheduler.is_file():
        lines.append(f"scheduler log ({scheduler}), last lines:")
        lines += ["  " + line[:300] for line in scheduler.read_text(errors="replace").splitlines()[-15:]]
    return "\n".join(lines)


def failed_tasks(api: Api, dag_id: str, run_id: str) -> list[str]:
    """`task_id: state` of every task instance of the run that did not succeed."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return [
        f"{ti['task_id']}: {ti['state']}" for ti in api.all_items(path, "task_instances") if ti["state"] != "success"
    ]
