"""The embedded DuckDB warehouse: where it is, and how writers share it.

DuckDB lets one process write a file at a time. Inside Airflow every task that opens the
warehouse runs in the 1-slot pool `WAREHOUSE_POOL`, so Airflow queues them instead of letting
them collide. `retry_on_lock` is the second line of defence for a process outside Airflow
(say, a SQL client) that holds the file: the task waits and tries again, then fails clearly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from include.mallard.paths import DEFAULT_WAREHOUSE_PATH, resolve_project_path

WAREHOUSE_PATH_ENV = "MALLARD_WAREHOUSE_PATH"
WAREHOUSE_CONN_ID = "mallard_warehouse"
WAREHOUSE_POOL = "mallard_duckdb"
LOCK_ERROR_TEXT = "Could not set lock on file"

log = logging.getLogger(__name__)
T = TypeVar("T")


def _path_from_connection() -> str | None:
    try:
        from airflow.sdk import Connection

        return Connection.get(WAREHOUSE_CONN_ID).host or None
    except Exception:  # no connection (or no Airflow context) means "use the default"
        return None


def resolve_warehouse_path() -> Path:
    """The DuckDB file: env MALLARD_WAREHOUSE_PATH, else connection `mallard_warehouse` (host), else the default.

    Called at task run time (never at DAG parse time), also as a template macro for dbt tasks.
    """
    configured = os.environ.get(WAREHOUSE_PATH_ENV) or _path_from_connection()
    path = resolve_project_path(configured) if configured else DEFAULT_WAREHOUSE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def is_lock_error(error: BaseException) -> bool:
    """True when `error` (or what caused it) is DuckDB refusing a second writer."""
    seen: BaseException | None = error
    while seen is not None:
        if LOCK_ERROR_TEXT in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_on_lock(action: Callable[[], T], *, attempts: int = 12, wait_seconds: float = 5.0) -> T:
    """Run `action`, waiting and retrying while another process holds the warehouse lock."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if not is_lock_error(error) or attempt == attempts:
                raise
            log.warning(
                "The DuckDB warehouse is locked by another process (attempt %d of %d); retrying in %.0f s. "
                "Close other connections that write to it (SQL clients, notebooks).",
                attempt,
                attempts,
                wait_seconds,
            )
            time.sleep(wait_seconds)
    raise AssertionError("unreachable")
