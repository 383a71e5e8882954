"""Import the libraries Mallard's tasks use into the scheduler, so LocalExecutor task processes start warm.

Airflow's LocalExecutor forks its workers from the scheduler when it starts, and each worker forks
a process per task (Airflow 3's supervisor). A module imported before those forks is already in
every task process: without this, each extract and load task imported dlt, and the `dbt build` and
`dbt_docs` tasks dbt, one after another on a run's critical path (docs/benchmarks.md, End to end).

Only third-party libraries, never Mallard's own modules or a source's custom dlt code: those
change while a user develops, and a task process must import them fresh. The libraries change
only with an image rebuild or a `pip install`, which restarts the scheduler anyway.

It runs in the `airflow scheduler` process only, and only when the executor is the LocalExecutor
(other executors start tasks elsewhere). `MALLARD_PRELOAD_TASK_LIBRARIES=false` turns it off.
The listener is registered by plugins/mallard_plugin.py.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

PRELOAD_ENV = "MALLARD_PRELOAD_TASK_LIBRARIES"
# What the task processes import: dlt's pipeline steps, sources and DuckDB destination, DuckDB
# (loads, `publish`), dbt's runner and adapters (the build, `dbt_docs`), Cosmos's watcher. Not
# pyarrow: its import starts jemalloc's background thread, and a process with threads should
# not fork (tests/unit/test_worker_preload.py holds the list to no thread); it imports in 0.1 s.
TASK_LIBRARIES = (
    "duckdb",
    "dlt",
    "dlt.pipeline",
    "dlt.extract",
    "dlt.normalize",
    "dlt.load",
    "dlt.destinations",
    "dlt.destinations.impl.duckdb.duck",
    "dlt.sources.filesystem",
    "dlt.sources.rest_api",
    "dlt.sources.sql_database",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "dbt.adapters.postgres",
    "cosmos.operators.watcher",
    # Cosmos's task listener imports it after every task, to name the profile in its metrics (9 ms).
    "cosmos.profiles",
)


def is_wanted(component: Any, argv: list[str], executor: str, setting: str | None) -> bool:
    """True for the job of an `airflow scheduler` process whose executor forks tasks from it, unless
    turned off. Not in its task processes: they keep the scheduler's argv, but their component is
    the task runner, not a Job."""
    if (setting or "").strip().lower() in ("0", "false", "no", "off"):
        return False
    return type(component).__name__ == "Job" and argv[1:2] == ["scheduler"] and "LocalExecutor" in executor


def preload(modules: tuple[str, ...] = TASK_LIBRARIES) -> list[str]:
    """Import `modules`; the ones that imported. One not installed (an optional extra) is left out."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


@hookimpl
def on_starting(component: Any) -> None:
    """Airflow calls this as each of its jobs starts; in the scheduler it runs before the executor forks."""
    from airflow.configuration import conf

    executor = conf.get("core", "executor", fallback="")
    if not is_wanted(component, sys.argv, executor, os.environ.get(PRELOAD_ENV)):
        return
    started = time.perf_counter()
    loaded = preload()
    log.info(
        "Mallard: %d task libraries imported for the LocalExecutor's task processes in %.1f s (%s=false: off)",
        len(loaded),
        time.perf_counter() - started,
        PRELOAD_ENV,
    )
