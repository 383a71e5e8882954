"""Import what Mallard's tasks use into the scheduler, so LocalExecutor task processes start warm.

Airflow's LocalExecutor forks its workers from the scheduler when it starts, and each worker forks
a process per task (Airflow 3's supervisor). A module imported before those forks is already in
every task process: without this, each extract and load task imported dlt, and the `dbt build` and
`dbt_docs` tasks dbt, one after another on a run's critical path (docs/benchmarks.md, End to end).

Two kinds of modules:

- third-party libraries (`TASK_LIBRARIES`): they change only with an image rebuild or a `pip
  install`, which restarts the scheduler anyway;
- Mallard's own modules that the DAG file imports (`PROJECT_MODULES`): every task process parses
  the DAG file before it runs, and importing them was ~60% of that parse (0.14 s -> 0.05 s). They
  change while a user develops, so the scheduler records each file's state as it imports them,
  and a task process whose project files changed since (`drop_stale_project_modules`, run just
  before it parses the DAG file) forgets every project module and imports them anew: an edit
  still applies at the next task. A project that does not import is not preloaded (logged).
  With them, the project's dbt manifest (cosmos_manifest.py), its source configs and dbt YAML
  files (`factory.preload_for_tasks`, parsed_files.py) are parsed once for all task processes.

It runs in the `airflow scheduler` process when the executor is the LocalExecutor (the listener,
registered by plugins/mallard_plugin.py), and in an `airflow celery worker` before it forks its
pool, whose processes fork the tasks (celery_worker.py). `MALLARD_PRELOAD_TASK_LIBRARIES=false`
turns both off.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl

from include.mallard.cosmos_manifest import FileState, file_state, preload_manifest
from include.mallard.parsed_files import kept_count

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
# What the DAG files import of Mallard (the rest of Mallard's modules come with it).
PROJECT_MODULES = ("include.mallard.factory",)
PROJECT_PACKAGE = "include"
# Each preloaded project file's (mtime, ctime, size, inode) when the scheduler imported it; inherited by the forks.
_preloaded_files: dict[str, FileState | None] = {}


def is_wanted(component: Any, argv: list[str], executor: str, setting: str | None) -> bool:
    """True for the job of an `airflow scheduler` process whose executor forks tasks from it, unless
    turned off. Not in its task processes: they keep the scheduler's argv, but their component is
    the task runner, not a Job."""
    if is_turned_off(setting):
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


def _is_project_module(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def project_module_files(package: str = PROJECT_PACKAGE) -> dict[str, FileState | None]:
    """The source file of every imported module of `package`, with its state (`file_state`)."""
    return {
        module.__file__: file_state(Path(module.__file__))
        for name, module in list(sys.modules.items())
        if _is_project_module(name, package) and getattr(module, "__file__", None)
    }


def forget_project_modules(package: str = PROJECT_PACKAGE) -> int:
    """Remove every module of `package` from `sys.modules`, so that the next import reads the files; how many."""
    names = [name for name in sys.modules if _is_project_module(name, package)]
    for name in names:
        del sys.modules[name]
    return len(names)


def preload_project(modules: tuple[str, ...] = PROJECT_MODULES, package: str = PROJECT_PACKAGE) -> int:
    """Import Mallard's `modules` and record the state of every project file imported; how many files.

    A project that does not import (a syntax error in a module, say) is logged and left out: each
    task then imports it, and reports the error as it does without a preload.
    """
    try:
        for name in modules:
            importlib.import_module(name)
    except Exception:
        log.warning("Mallard: the project's modules were not preloaded; each task imports them", exc_info=True)
        forget_project_modules(package)
        _preloaded_files.clear()
        return 0
    _preloaded_files.clear()
    _preloaded_files.update(project_module_files(package))
    return len(_preloaded_files)


def drop_stale_project_modules(package: str = PROJECT_PACKAGE) -> list[str]:
    """In a task process: when a preloaded project file changed or is gone, forget every project module.

    All of them, not only the changed ones: an unchanged module holds what it imported from a changed
    one. Returns the changed files (none: the preloaded modules are used as they are).
    """
    changed = [path for path, state in _preloaded_files.items() if file_state(Path(path)) != state]
    if changed:
        forget_project_modules(package)
        _preloaded_files.clear()
    return changed


@hookimpl
def on_starting(component: Any) -> None:
    """Airflow calls this as each of its jobs starts (in the scheduler before the executor forks), and
    in a task process just before it parses the DAG file."""
    if type(component).__name__ == "TaskRunnerMarker":
        if changed := drop_stale_project_modules():
            log.info(
                "Mallard: %d project file(s) changed since the scheduler preloaded them (%s): imported anew",
                len(changed),
                changed[0],
            )
        return
    from airflow.configuration import conf

    executor = conf.get("core", "executor", fallback="")
    if is_wanted(component, sys.argv, executor, os.environ.get(PRELOAD_ENV)):
        preload_for_task_processes("the LocalExecutor's")


def is_turned_off(setting: str | None) -> bool:
    """`MALLARD_PRELOAD_TASK_LIBRARIES` says no preload."""
    return (setting or "").strip().lower() in ("0", "false", "no", "off")


def preload_for_task_processes(whose: str) -> None:
    """Everything the task processes forked from this process use: libraries, project modules, parses.

    `whose` names the forking process in the log line ("the LocalExecutor's", "the Celery worker's").
    """
    started = time.perf_counter()
    loaded = preload()
    files = preload_project()
    parses = preload_project_files() if files > 0 else 0
    manifest = files > 0 and preload_project_manifest()
    log.info(
        "Mallard: %d task libraries and %d project files imported for %s task processes, "
        "%d project files parsed, the dbt manifest %s, in %.1f s (%s=false: off)",
        len(loaded),
        files,
        whose,
        parses,
        "parsed" if manifest else "not parsed",
        time.perf_counter() - started,
        PRELOAD_ENV,
    )


def preload_project_files(modules: tuple[str, ...] = PROJECT_MODULES) -> int:
    """Run each imported project module's `preload_for_tasks`, which parses the files every task's DAG
    parse reads (parsed_files.py); how many parses are kept. A file that does not parse is logged and
    left to each task, which reports it as it does without a preload."""
    for name in modules:
        preload_for_tasks = getattr(sys.modules.get(name), "preload_for_tasks", None)
        if preload_for_tasks is None:
            continue
        try:
            preload_for_tasks()
        except Exception:
            log.warning("Mallard: %s.preload_for_tasks failed; each task parses those files", name, exc_info=True)
    return kept_count()


def preload_project_manifest() -> bool:
    """Parse the project's dbt manifest once for every task process (cosmos_manifest.py); True if parsed."""
    from include.mallard.paths import DBT_PROJECT_DIR, MANIFEST_RELATIVE_PATH

    return preload_manifest(DBT_PROJECT_DIR / MANIFEST_RELATIVE_PATH)
