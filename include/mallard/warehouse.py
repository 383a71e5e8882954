"""The warehouse: which one this deployment writes (`active_warehouse`), and the embedded DuckDB file.

`active_warehouse()` reads the environment MALLARD_ENV selects from mallard.yml (config/environments.py):
the embedded DuckDB file by default, or a PostgreSQL server (postgres_warehouse.py). The rest of
this module is about the DuckDB file: where it is, and how writers share it.

DuckDB lets one process write a file at a time. Inside Airflow every task that opens the
warehouse runs in the 1-slot pool `WAREHOUSE_POOL`, so Airflow queues them instead of letting
them collide. `retry_on_lock` is the second line of defence for a process outside Airflow
(say, a SQL client) that holds the file: the task waits and tries again, then fails clearly.
A model or test task that re-runs its own node with dbt (retried, or cleared) runs outside the
pool; those take turns through `writer_turn`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from include.mallard.config.environments import EnvironmentSettings
from include.mallard.config.project import ProjectSettings, load_project_settings
from include.mallard.paths import DEFAULT_WAREHOUSE_PATH, configured_path, resolve_project_path

WAREHOUSE_PATH_ENV = "MALLARD_WAREHOUSE_PATH"
WAREHOUSE_POOL = "mallard_duckdb"
SNAPSHOT_PATH_ENV = "MALLARD_SNAPSHOT_PATH"
SNAPSHOT_FILE_NAME = "mallard.read.duckdb"
LOCK_ERROR_TEXT = "Could not set lock on file"
WRITER_TURN_SUFFIX = ".writer-turn.lock"
# A full refresh loads `<table>~swap` beside the table, then swaps it in (duckdb_destination.py).
# `~` never appears in a dlt table name; such a table is left only by a failed load.
FULL_REFRESH_SWAP_SUFFIX = "~swap"

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Warehouse:
    """The warehouse of one environment: its kind, its connection, its dbt target and its writers' pool."""

    environment: str
    settings: EnvironmentSettings

    @property
    def kind(self) -> str:
        return self.settings.warehouse

    @property
    def is_embedded(self) -> bool:
        """True for the DuckDB file: one writer at a time, on this machine's disk."""
        return self.kind == "duckdb"

    @property
    def connection_id(self) -> str:
        return self.settings.connection

    @property
    def dbt_target(self) -> str:
        return self.settings.target

    @property
    def pool(self) -> str:
        return self.settings.pool

    def describe(self) -> str:
        """E.g. "environment `prod` (postgres warehouse, connection `mallard_warehouse_prod`)"."""
        return f"environment `{self.environment}` ({self.kind} warehouse, connection `{self.connection_id}`)"


def active_warehouse(settings: ProjectSettings | None = None) -> Warehouse:
    """The warehouse of the environment MALLARD_ENV selects (default `dev`); reads mallard.yml, no connection.

    Safe at DAG parse time. ConfigError (naming mallard.yml's `environments`) for an undefined environment.
    """
    name, environment = (settings or load_project_settings()).environment()
    return Warehouse(name, environment)


class WarehousePathError(RuntimeError):
    """The `mallard_warehouse` connection names another DuckDB file than the one the DAG was parsed with."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} Fix: {fix}")
        self.problem, self.fix = problem, fix


def configured_warehouse_path() -> Path:
    """The DuckDB file as configured: env MALLARD_WAREHOUSE_PATH, else warehouse/mallard.duckdb. Reads no connection.

    Safe at DAG parse time: the Assets a DAG declares are named from it (assets.py), so the env
    var must be the same for the DAG processor and the workers (scripts/env.sh, the Dockerfile).
    """
    return configured_path(WAREHOUSE_PATH_ENV, DEFAULT_WAREHOUSE_PATH)


def _connection_host() -> tuple[str, str | None]:
    warehouse = active_warehouse()
    connection_id = warehouse.connection_id
    if not warehouse.is_embedded:  # a server's connection names the server, not this file
        return connection_id, None
    try:
        from airflow.sdk import Connection

        return connection_id, Connection.get(connection_id).host or None
    except Exception:  # no connection (or no Airflow at hand): nothing to disagree with
        return connection_id, None


def resolve_warehouse_path() -> Path:
    """The DuckDB file this task writes: `configured_warehouse_path()`, its folder created.

    Without MALLARD_WAREHOUSE_PATH, a `mallard_warehouse` connection whose host names another file
    than the default is an error, not a silent switch: the path used to come from there, but the
    Assets are named at parse time, where connections are not read. Called at task run time, also
    as a template macro for dbt tasks.
    """
    path = configured_warehouse_path()
    if not os.environ.get(WAREHOUSE_PATH_ENV):
        connection_id, host = _connection_host()
        if host and resolve_project_path(host) != path:
            raise WarehousePathError(
                f"Airflow connection `{connection_id}` has host {host!r}, but the warehouse is {path}: the DuckDB "
                f"file is env {WAREHOUSE_PATH_ENV}, else the default, because the Assets a DAG declares are named "
                "when it is parsed, where connections are not read.",
                f"set {WAREHOUSE_PATH_ENV}={resolve_project_path(host)} for every Airflow component (scheduler, "
                "DAG processor, workers), or clear the connection's host.",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def export_warehouse_path() -> Path:
    """Put the resolved warehouse path in this process's env, where dbt's profile (`env_var()`) finds it.

    Cosmos also renders the profile from this env to name the model Assets (assets.py).
    """
    path = resolve_warehouse_path()
    os.environ[WAREHOUSE_PATH_ENV] = str(path)
    return path


@contextmanager
def writer_turn(path: Path) -> Iterator[None]:
    """Wait for, then hold, this machine's turn to write the DuckDB file `path` among processes that take turns.

    Model and test tasks re-running their node with dbt (a retry, a cleared run) start together,
    outside the warehouse pool; left alone, each waits for DuckDB's lock through dbt-duckdb's
    connect retries, which double every wait (1, 2, 4 ... 512 s), so the last of five nodes can
    start minutes after the lock is free. An exclusive `flock` on `<path>.writer-turn.lock` queues
    them instead: each starts as soon as the one before has finished. The kernel releases it when
    its holder exits, even killed.
    """
    lock_path = path.with_name(path.name + WRITER_TURN_SUFFIX)
    with lock_path.open("a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for the warehouse's writer turn (%s): another task is re-running a dbt node", lock_path)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes, embedded quotes doubled: never spliced into SQL raw."""
    return '"' + name.replace('"', '""') + '"'


def snapshot_path() -> Path:
    """The published read-only copy of the warehouse, for readers (UI, `mallard marts`, BI tools).

    Env MALLARD_SNAPSHOT_PATH, else `mallard.read.duckdb` next to the warehouse file. Readers of
    this file never hold the warehouse's lock, so they never make a load wait.
    """
    configured = os.environ.get(SNAPSHOT_PATH_ENV)
    if configured:
        return resolve_project_path(configured)
    return resolve_warehouse_path().with_name(SNAPSHOT_FILE_NAME)


def is_lock_error(error: BaseException) -> bool:
    """True when `error` (or what caused it) is DuckDB refusing a second writer."""
    seen: BaseException | None = error
    while seen is not None:
        if LOCK_ERROR_TEXT in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _lock_error_text(error: BaseException) -> str:
    seen: BaseException | None = error
    while seen is not None and LOCK_ERROR_TEXT not in str(seen):
        seen = seen.__cause__ or seen.__context__
    return str(seen or error)


def _lock_mode(path: str, pid: str) -> str | None:
    """'read-only' or 'for writing': how process `pid` holds `path`, from the kernel's lock table (Linux)."""
    try:
        inode = Path(path).stat().st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == pid and fields[5].rsplit(":", 1)[-1] == str(inode):
            return "read-only" if fields[3] == "READ" else "for writing"
    return None


def describe_lock(error: BaseException) -> str:
    """Who holds the warehouse, from DuckDB's lock error: the file, the process (PID, program) and how."""
    text = _lock_error_text(error)
    path = (match := re.search(r'lock on file "([^"]+)"', text)) and match[1]
    pid = (match := re.search(r"\(PID (\d+)\)", text)) and match[1]
    holder = "another process"
    if pid:
        program = Path(f"/proc/{pid}/comm")
        name = program.read_text().strip() if program.is_file() else None
        holder = f"process {pid}" + (f" `{name}`" if name else "")
        mode = _lock_mode(path, pid) if path else None
        holder += f" ({mode})" if mode else ""
    return f"{path or 'the warehouse file'} is open in {holder}"


def retry_on_lock(action: Callable[[], T], *, attempts: int = 12, wait_seconds: float = 5.0) -> T:
    """Run `action`, waiting and retrying while another process holds the warehouse lock."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if not is_lock_error(error) or attempt == attempts:
                raise
            log.warning(
                # "locked by another process" is what tests/e2e/test_real_scheduler.py looks for.
                "The DuckDB warehouse is locked by another process: %s (attempt %d of %d; retrying in %.0f s). "
                "DuckDB lets no process write a file that another process has open, even read-only. Close "
                "that program; to query the warehouse without blocking the pipeline, open the read-only "
                "snapshot %s instead (published after each run).",
                describe_lock(error),
                attempt,
                attempts,
                wait_seconds,
                snapshot_path(),
            )
            time.sleep(wait_seconds)
    raise AssertionError("unreachable")
