"""include/mallard/worker_preload.py: which processes import the task libraries, and what importing them does.

That the LocalExecutor's workers really start with them is tests/e2e/test_real_scheduler.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from airflow.jobs.job import Job
from airflow.sdk.execution_time.task_runner import TaskRunnerMarker

from include.mallard.worker_preload import TASK_LIBRARIES, is_wanted
from tests.conftest import PROJECT_ROOT

SCHEDULER_ARGV = ["/venv/bin/airflow", "scheduler"]
LOCAL = "LocalExecutor"


def test_the_scheduler_job_with_the_local_executor_preloads():
    assert is_wanted(Job(), SCHEDULER_ARGV, LOCAL, None)
    assert is_wanted(Job(), SCHEDULER_ARGV, f"{LOCAL},CeleryExecutor", "true")


@pytest.mark.parametrize(
    ("component", "argv", "executor", "setting"),
    [
        # A task process forked from the scheduler keeps its argv: its component tells it apart.
        (TaskRunnerMarker(), SCHEDULER_ARGV, LOCAL, None),
        (Job(), ["/venv/bin/airflow", "dag-processor"], LOCAL, None),
        (Job(), ["/venv/bin/airflow", "triggerer"], LOCAL, None),
        (Job(), SCHEDULER_ARGV, "CeleryExecutor", None),  # tasks run on the Celery workers
        (Job(), SCHEDULER_ARGV, LOCAL, "false"),
        (Job(), SCHEDULER_ARGV, LOCAL, "0"),
    ],
    ids=["task-process", "dag-processor", "triggerer", "celery", "off", "off-0"],
)
def test_no_other_process_preloads(component, argv, executor, setting):
    assert not is_wanted(component, argv, executor, setting)


def test_preloading_imports_the_libraries_and_no_project_code_and_starts_no_thread():
    """Forking a process that runs threads can deadlock the child, and a module of the project
    imported before the fork would be stale in every task after the user edits it."""
    script = """
import json, os, sys
import airflow.sdk  # what the scheduler has imported before its jobs start
from include.mallard import worker_preload
before = set(sys.modules)
threads_before = len(os.listdir("/proc/self/task"))
loaded = worker_preload.preload()
print(json.dumps({
    "loaded": loaded,
    "in_sys_modules": [name for name in loaded if name in sys.modules],
    "project_modules": sorted(
        m for m in set(sys.modules) - before if m.split(".")[0] in ("include", "dags", "plugins")
    ),
    "threads": [threads_before, len(os.listdir("/proc/self/task"))],
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Everything the stack installs (requirements.txt): dbt-postgres included.
    assert report["loaded"] == list(TASK_LIBRARIES)
    assert report["in_sys_modules"] == list(TASK_LIBRARIES)
    assert {"dlt", "dbt.cli.main", "duckdb"} <= set(report["loaded"])
    assert report["project_modules"] == []
    assert report["threads"] == [1, 1], "a preloaded library started a thread (pyarrow's jemalloc does)"
