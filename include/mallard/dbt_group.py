"""Cosmos wiring: render the dbt project in `include/dbt` as one task per model, tests after each.

The graph comes from `target/manifest.json`, built ahead of time (`make manifest`, `.ci/run`
and the Dockerfile), so parsing the DAG never runs dbt. Nothing here names a model: any dbt
project whose sources point at the `raw_<source>` schemas works.

Execution is Cosmos's watcher mode: one task (`dbt_producer_watcher`) runs a single `dbt build`
in the warehouse pool, and every model and test task watches its own node's result in that
build (XCom), so a failed model or test fails its own task and what depends on it does not run.
A task per dbt node would cost a process start, a DAG parse and a dbt start each, one after
another in the pool (docs/benchmarks.md). A retried or cleared model/test task re-runs its own
node with dbt; the profile's `retries.connect_attempts` makes that wait for the writer lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.task.trigger_rule import TriggerRule
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
)
from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID

from include.mallard.assets import export_warehouse_path_for_cosmos
from include.mallard.dbt_project import PROFILE_TARGET, check_manifest_is_fresh, check_profile, read_dbt_project
from include.mallard.warehouse import WAREHOUSE_PATH_ENV, WAREHOUSE_POOL

DEFAULT_GROUP_ID = "dbt"
# The `dbt build` task and its done-gate, as Cosmos names them inside the group.
BUILD_TASK_ID = f"{DEFAULT_GROUP_ID}.{PRODUCER_WATCHER_TASK_ID}"
BUILD_DONE_TASK_ID = f"{DEFAULT_GROUP_ID}.{PRODUCER_WATCHER_DONE_TASK_ID}"
# A watcher starts after the build and finds its result at once; this bounds a missing one.
WATCHER_TIMEOUT_SECONDS = 300
# The run's interval as dbt reads it (`env_var()` in macros/interval_filter.sql).
INTERVAL_ENV = {"start": "MALLARD_INTERVAL_START", "end": "MALLARD_INTERVAL_END"}


def _interval_template(which: str) -> str:
    args = f"dag_run, data_interval_start, data_interval_end, '{which}', triggering_asset_events"
    return f"{{{{ mallard_interval_bound({args}) }}}}"


def build_dbt_group(
    dbt_project_dir: Path, *, group_id: str = DEFAULT_GROUP_ID, **task_group_kwargs: Any
) -> DbtTaskGroup:
    """A Cosmos DbtTaskGroup over `dbt_project_dir`: one `dbt build` in the warehouse pool, watched per node."""
    project = read_dbt_project(dbt_project_dir)
    # The profile is checked as YAML here, so a missing `duckdb` target fails the parse, not every model task.
    profiles = check_profile(dbt_project_dir)
    manifest = check_manifest_is_fresh(dbt_project_dir)
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=dbt_project_dir,
            manifest_path=manifest,
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=project["profile"],
            target_name=PROFILE_TARGET,
            profiles_yml_filepath=profiles,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            # dbt runs inside the task process: no extra interpreter start.
            invocation_mode=InvocationMode.DBT_RUNNER,
            # The producer is the one dbt writer. Cosmos skips a producer retry (it would build
            # everything twice); failed nodes are retried by their own tasks instead.
            setup_operator_args={"pool": WAREHOUSE_POOL, "retries": 0},
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            # A test on two models (relationships) is watched by the test task of each model.
            should_detach_multiple_parents_tests=False,
        ),
        operator_args={
            "install_deps": False,
            # Watchers start once the build is over (`_watch_after_build`), so their first check
            # finds the result: no deferral (it can hang `airflow dags test`), no reschedule.
            "deferrable": False,
            "mode": "poke",
            "poke_interval": 5,
            "timeout": WATCHER_TIMEOUT_SECONDS,
            # Resolved when the task runs, so parsing never looks up the Airflow connection.
            # Incremental models rebuild only the run's interval (macros/interval_filter.sql). It
            # goes in env vars, not `vars`: new `--vars` every run made dbt re-parse the whole
            # project every run (7 s for the demo; ~30 s at 1,000 models).
            "env": {
                WAREHOUSE_PATH_ENV: "{{ mallard_warehouse_path() }}",
                **{env: _interval_template(which) for which, env in INTERVAL_ENV.items()},
            },
            # Run conf {"full_refresh": true} rebuilds incremental models from scratch.
            "full_refresh": "{{ (dag_run.conf or {}).get('full_refresh', False) }}",
            # Cosmos names model Assets from dbt's profile `path` as this process's env renders it:
            # the resolved warehouse path, as the raw tables' Assets are named (assets.py).
            "on_execute_callback": [export_warehouse_path_for_cosmos],
        },
        **task_group_kwargs,
    )
    _watch_after_build(group)
    return group


def build_done_gate(group: DbtTaskGroup) -> BaseOperator:
    """The task after the `dbt build`: success when it succeeded or was skipped, else upstream_failed.

    Put what must fail with a failed (or never started) build downstream of it: the model tasks
    of a build that never ran are skipped, and skips alone would let the DAG run succeed.
    """
    return _group_task(group, PRODUCER_WATCHER_DONE_TASK_ID)


def _group_task(group: DbtTaskGroup, task_id: str) -> BaseOperator:
    return group.dag.get_task(f"{group.group_id}.{task_id}")


def _watch_after_build(group: DbtTaskGroup) -> None:
    """Start the first model tasks when the one `dbt build` is over, whatever its outcome.

    Cosmos starts watchers beside their producer inside a DbtTaskGroup; then `airflow dags test`,
    which runs one task at a time in any order, can run a watcher first and wait forever, and
    under a scheduler early watchers reschedule. After the build, a watcher reads its node's
    result at once. Upstream are the producer (success or failure: report each node) and its
    done-gate (success when a cleared producer skipped: Cosmos then re-runs each node in its own
    task); when neither ran (ingestion failed), the model tasks are skipped, so the factory puts
    the gate upstream of the DAG's last task as well.
    """
    producer = _group_task(group, PRODUCER_WATCHER_TASK_ID)
    producer_done = build_done_gate(group)
    for task in group.get_roots():
        if task is not producer:
            [producer, producer_done] >> task
            task.trigger_rule = TriggerRule.ONE_DONE
