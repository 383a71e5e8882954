"""include/mallard/worker_preload.py: which processes preload, what preloading imports, and that an edit of the
project's code still reaches the next task.

That the LocalExecutor's workers really start with them is tests/e2e/test_real_scheduler.py's.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
from airflow.jobs.job import Job
from airflow.sdk.execution_time.task_runner import TaskRunnerMarker

from include.mallard import worker_preload
from include.mallard.cosmos_manifest import file_state
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


def test_preloading_the_libraries_imports_no_project_code_and_starts_no_thread():
    """Forking a process that runs threads can deadlock the child; the project's modules are preloaded
    on their own (`preload_project`), with their files' states recorded."""
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


def test_preloading_the_project_imports_what_the_dag_file_does_records_its_files_and_starts_no_thread():
    script = """
import json, os, sys
import airflow.sdk
from include.mallard import worker_preload
worker_preload.preload()
threads_before = len(os.listdir("/proc/self/task"))
files = worker_preload.preload_project()
parses = worker_preload.preload_project_files()
from include.mallard import parsed_files
print(json.dumps({
    "files": files,
    "parses": parses,
    "parsed": sorted({path for path, _ in parsed_files._parsed}),
    "recorded": sorted(worker_preload._preloaded_files),
    "factory": "include.mallard.factory" in sys.modules,
    "threads": [threads_before, len(os.listdir("/proc/self/task"))],
    "stale": worker_preload.drop_stale_project_modules(),
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["factory"] and report["files"] == len(report["recorded"]) > 20
    assert str(PROJECT_ROOT / "include" / "mallard" / "config" / "strict.py") in report["recorded"]
    assert report["threads"] == [1, 1]
    assert report["stale"] == []  # nothing changed: the preloaded modules stay
    # The YAML every DAG parse reads, parsed once for the task processes (parsed_files.py).
    sources = sorted(str(path) for path in (PROJECT_ROOT / "include" / "sources").glob("*.yml"))
    dbt_files = [str(PROJECT_ROOT / "include" / "dbt" / name) for name in ("dbt_project.yml", "profiles.yml")]
    assert report["parsed"] == sorted(sources + dbt_files) and report["parses"] == len(report["parsed"])


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A package `stale_probe` on sys.path: `a` imports `b`; forgotten from sys.modules afterwards."""
    package = tmp_path / "stale_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from stale_probe.b import value\n")
    (package / "b.py").write_text("value = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # No bytecode: Python trusts a .pyc whose source has the same size and mtime second, and these
    # edits happen within one second; that check is Python's own, whatever imports the module.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(worker_preload, "_preloaded_files", {})
    yield package
    worker_preload.forget_project_modules("stale_probe")


def test_an_unchanged_project_is_used_as_preloaded(probe_package):
    assert worker_preload.preload_project(("stale_probe.a",), "stale_probe") == 3
    module = sys.modules["stale_probe.a"]
    assert worker_preload.drop_stale_project_modules("stale_probe") == []
    assert sys.modules["stale_probe.a"] is module


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.write_text("value = 22\n"),
        lambda b: b.write_text("value = 2\n"),  # the same size
        lambda b: b.touch(),  # the same text: imported anew all the same (cheap, and never stale)
        lambda b: b.unlink(),
    ],
    ids=["edited", "same-size", "touched", "deleted"],
)
def test_a_task_after_an_edit_imports_the_whole_project_anew(probe_package, edit):
    worker_preload.preload_project(("stale_probe.a",), "stale_probe")
    b = probe_package / "b.py"
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns - 10**9))  # clocks coarser than an edit
    worker_preload._preloaded_files[str(b)] = file_state(b)
    edit(b)

    assert worker_preload.drop_stale_project_modules("stale_probe") == [str(b)]
    # Every module of the package, the unchanged `a` too: it holds what it imported from `b`.
    assert not [name for name in sys.modules if name.startswith("stale_probe")]
    assert worker_preload._preloaded_files == {}
    if b.exists():
        written = int(b.read_text().split("=")[1])
        assert importlib.import_module("stale_probe.a").value == written


def test_a_project_that_does_not_import_is_not_preloaded(probe_package, caplog):
    (probe_package / "b.py").write_text("value = (\n")  # a syntax error
    assert worker_preload.preload_project(("stale_probe.a",), "stale_probe") == 0
    assert "not preloaded" in caplog.text
    assert not [name for name in sys.modules if name.startswith("stale_probe")]
    assert worker_preload.drop_stale_project_modules("stale_probe") == []


def test_project_files_that_do_not_parse_are_left_to_each_task(probe_package, caplog):
    (probe_package / "b.py").write_text("def preload_for_tasks():\n    raise ValueError('bad YAML in shop.yml')\n")
    worker_preload.preload_project(("stale_probe.b",), "stale_probe")
    worker_preload.preload_project_files(("stale_probe.b", "stale_probe"))  # the package has no hook
    assert "stale_probe.b.preload_for_tasks failed" in caplog.text and "bad YAML in shop.yml" in caplog.text


def test_a_task_process_checks_its_project_files_before_it_parses(monkeypatch):
    checked: list[str] = []
    monkeypatch.setattr(worker_preload, "drop_stale_project_modules", lambda: checked.append("checked") or [])
    worker_preload.on_starting(TaskRunnerMarker())
    assert checked == ["checked"]


@pytest.mark.parametrize(("setting", "preloads"), [(None, True), ("false", False)])
def test_a_celery_worker_preloads_before_its_pool_starts_unless_turned_off(setting, preloads):
    """The stack's `[celery] celery_config_options` (include/mallard/celery_worker.py): Airflow's own
    settings, and a `worker_init` receiver that preloads as the scheduler does for the LocalExecutor.
    That the workers' pool processes then have DuckDB loaded is tests/e2e/test_celery_stack.py's."""
    script = """
import json, sys
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init
from include.mallard import celery_worker
worker_init.send(sender=None)
print(json.dumps({
    "airflows_settings": celery_worker.CELERY_CONFIG is DEFAULT_CELERY_CONFIG,
    "imported": [name for name in ("dlt", "dbt.cli.main", "include.mallard.factory") if name in sys.modules],
}))
"""
    env = {key: value for key, value in os.environ.items() if key != worker_preload.PRELOAD_ENV}
    if setting is not None:
        env[worker_preload.PRELOAD_ENV] = setting
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["airflows_settings"]
    expected = ["dlt", "dbt.cli.main", "include.mallard.factory"] if preloads else []
    assert report["imported"] == expected
    assert ("imported for the Celery worker's task processes" in result.stdout + result.stderr) == preloads
