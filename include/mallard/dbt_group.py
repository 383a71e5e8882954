"""Cosmos wiring: render the dbt project in `include/dbt` as one task per model, tests after each.

The graph comes from `target/manifest.json`, built ahead of time (`make manifest`, `.ci/run`
and the Dockerfile), so parsing the DAG never runs dbt. Nothing here names a model: any dbt
project whose sources point at the `raw_<source>` schemas works.

Execution is Cosmos's watcher mode: one task (`dbt_producer_watcher`) runs a single `dbt build`
in the warehouse pool, and every model and test task watches its own node's result in that
build (XCom), so a failed model or test fails its own task and what depends on it does not run.
A task per dbt node would cost a process start, a DAG parse and a dbt start each, one after
another in the pool (docs/benchmarks.md). A retried or cleared model/test task re-runs its own
node with dbt, taking turns with the others (`warehouse.writer_turn`); the profile's
`retries.connect_attempts` makes that wait for the pool's writers.

Source freshness: when the manifest has a source with a `freshness` rule, each such source is a
task, and the build first runs `dbt source freshness` (Cosmos's watcher does it in the same
process). The age is measured at the run's interval end (macros/freshness_reference.sql), so a
backfill of last year is not stale. A source past `error_after` (or whose freshness cannot be
computed) fails its task, and every model downstream of it is left out of the build and skipped;
past `warn_after` it warns and everything builds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, get_parsing_context
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
    SourceRenderingBehavior,
    TestBehavior,
)
from cosmos.constants import PRODUCER_WATCHER_DONE_TASK_ID, PRODUCER_WATCHER_TASK_ID, DbtResourceType

from include.mallard.assets import declare_model_outlets, declared_location, export_warehouse_path_for_cosmos
from include.mallard.cosmos_signatures import remember_cosmos_signatures
from include.mallard.dbt_build_task import MallardDbtBuildOperator
from include.mallard.dbt_project import (
    check_manifest_is_fresh,
    check_profile,
    dbt_relations,
    model_fqns,
    read_dbt_project,
    sources_with_freshness,
)
from include.mallard.dbt_watchers import read_node_reports
from include.mallard.edges import add_edges
from include.mallard.warehouse import WAREHOUSE_PATH_ENV, Warehouse, active_warehouse

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "dbt"
# The `dbt build` task and its done-gate, as Cosmos names them inside the group.
BUILD_TASK_ID = f"{DEFAULT_GROUP_ID}.{PRODUCER_WATCHER_TASK_ID}"
BUILD_DONE_TASK_ID = f"{DEFAULT_GROUP_ID}.{PRODUCER_WATCHER_DONE_TASK_ID}"
# A watcher starts after the build and finds its result at once; this bounds a missing one.
WATCHER_TIMEOUT_SECONDS = 300
# The run's interval as dbt reads it (`env_var()` in macros/interval_filter.sql).
INTERVAL_ENV = {"start": "MALLARD_INTERVAL_START", "end": "MALLARD_INTERVAL_END"}
# `dbt source freshness` results that stop the models reading the source (a warning does not).
STALE_SOURCE_STATUSES = frozenset({"error", "runtime error"})
SKIPPED = "skipped"  # the node state a watcher task reads as "skip me"
# The tasks of a model's own group in Cosmos's rendering (TestBehavior.AFTER_EACH): "<model>.run|test".
MODEL_TASK_KINDS = ("run", "test")


def freshness_report(result: dict[str, Any]) -> str:
    """One line per source from dbt's sources.json: its status, its newest row's age and the rule."""
    source = result.get("unique_id", "?").removeprefix("source.").split(".", 1)[-1]
    if "max_loaded_at_time_ago_in_s" not in result:  # a runtime error: dbt's message says why
        return f"freshness of {source}: {result.get('status')}: {result.get('error') or result.get('message')}"
    rules = ", ".join(
        f"{name} {rule['count']} {rule['period']}"
        for name, rule in (result.get("criteria") or {}).items()
        if isinstance(rule, dict) and rule.get("count")
    )
    days = result["max_loaded_at_time_ago_in_s"] / 86400
    return (
        f"freshness of {source}: {result.get('status')}: newest row {result.get('max_loaded_at')} is "
        f"{days:.2f} days older than {result.get('snapshotted_at')} [{rules}]"
    )


def skip_models_of_stale_sources(
    context: Any, dag: Any, task_group: Any, nodes: dict[str, Any] | None, sources_json: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """Cosmos's freshness callback: every model, seed and snapshot downstream of a stale source, skipped.

    Cosmos leaves these out of the `dbt build` and marks their tasks skipped. Its default callback
    stops on a warning too, and keeps a model that also reads a fresh parent; but dbt builds
    whatever is not excluded, so that model would be rebuilt from the stale one while its task
    shows skipped. Here everything downstream of an error is left out.
    """
    results = (sources_json or {}).get("results", [])
    for result in results:
        log.info("%s", freshness_report(result))
    stale = [result["unique_id"] for result in results if result.get("status") in STALE_SOURCE_STATUSES]
    if not stale or not nodes:
        return []
    dependents: dict[str, set[str]] = {}
    for unique_id, node in nodes.items():
        for parent in node.depends_on:
            dependents.setdefault(parent, set()).add(unique_id)
    downstream: set[str] = set()
    queue = list(stale)
    while queue:
        for child in dependents.get(queue.pop(), ()):
            if child not in downstream:
                downstream.add(child)
                queue.append(child)
    built = {DbtResourceType.MODEL, DbtResourceType.SEED, DbtResourceType.SNAPSHOT}
    return [(uid, SKIPPED) for uid in sorted(downstream) if nodes[uid].resource_type in built]


def running_model_selector(dbt_project_dir: Path, group_id: str = DEFAULT_GROUP_ID) -> list[str]:
    """In the task process of a model's run or test task: a dbt selector of that model and its parents; else [].

    Airflow's task runner parses the DAG file to find the one task it runs, and says which in
    `get_parsing_context()`. Cosmos rendering every other model is most of that parse at scale
    (1.29 s of it at 1,000 models; 0.29 s with this selection, docs/benchmarks.md). The selected
    model's tasks come out as in the whole group: with its direct parents (`1+`), its upstream
    tasks are the same, and so is whether it is one of the group's first tasks (its trigger rule).
    Selected by fqn, recorded by `mallard manifest`: a source may share a model's name. Any other
    parse (the DAG processor, `airflow dags test`, any other task) renders the whole project.
    """
    task_id = get_parsing_context().task_id or ""
    model, _, kind = task_id.removeprefix(f"{group_id}.").rpartition(".")
    if not task_id.startswith(f"{group_id}.") or kind not in MODEL_TASK_KINDS or "." in model:
        return []
    fqn = model_fqns(dbt_project_dir).get(model)
    return [f"1+fqn:{fqn}"] if fqn else []


def _interval_template(which: str) -> str:
    args = f"dag_run, data_interval_start, data_interval_end, '{which}', triggering_asset_events"
    return f"{{{{ mallard_interval_bound({args}) }}}}"


def build_dbt_group(
    dbt_project_dir: Path,
    *,
    group_id: str = DEFAULT_GROUP_ID,
    warehouse: Warehouse | None = None,
    **task_group_kwargs: Any,
) -> DbtTaskGroup:
    """A Cosmos DbtTaskGroup over `dbt_project_dir`: one `dbt build` in the warehouse pool, watched per node."""
    project = read_dbt_project(dbt_project_dir)
    warehouse = warehouse or active_warehouse()
    # The profile is checked as YAML here, so a missing target fails the parse, not every model task.
    profiles = check_profile(dbt_project_dir, warehouse)
    manifest = check_manifest_is_fresh(dbt_project_dir)
    checks_freshness = bool(sources_with_freshness(dbt_project_dir))
    # One `dbt build` at a time: two (a backfill's runs, on a server's several slots) would both
    # replace the same views and tables ("relation ... already exists" on PostgreSQL).
    producer_args: dict[str, Any] = {"pool": warehouse.pool, "retries": 0, "max_active_tis_per_dag": 1}
    location = declared_location(warehouse)
    if location:
        # The model tasks declare their Assets (below): the build need not compute their URIs.
        producer_args["emit_datasets"] = False
    if checks_freshness:
        producer_args["freshness_callback"] = skip_models_of_stale_sources
    # Cosmos reads the same signatures for each operator; 0.3 s of a 1,000-model parse otherwise.
    remember_cosmos_signatures()
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=dbt_project_dir,
            manifest_path=manifest,
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=project["profile"],
            target_name=warehouse.dbt_target,
            profiles_yml_filepath=profiles,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            # dbt runs inside the task process: no extra interpreter start.
            invocation_mode=InvocationMode.DBT_RUNNER,
            # The producer is the one dbt writer. Cosmos skips a producer retry (it would build
            # everything twice); failed nodes are retried by their own tasks instead.
            setup_operator_args=producer_args,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # Only in a model task's own process: that model and its parents (running_model_selector).
            select=running_model_selector(dbt_project_dir, group_id),
            test_behavior=TestBehavior.AFTER_EACH,
            # A test on two models (relationships) is watched by the test task of each model. No
            # task watches a test's own keys, so the build task does not push them (dbt_build_task).
            should_detach_multiple_parents_tests=False,
            # Only with a freshness rule: otherwise every build would start with an empty
            # `dbt source freshness`.
            source_rendering_behavior=(
                SourceRenderingBehavior.WITH_TESTS_OR_FRESHNESS if checks_freshness else SourceRenderingBehavior.NONE
            ),
        ),
        operator_args={
            "install_deps": False,
            # Watchers start once the build is over (`_watch_after_build`), so their first check
            # finds the result: no deferral (it can hang `airflow dags test`, and the trigger would
            # read Cosmos's per-key XComs, not the build's node reports), no reschedule.
            "deferrable": False,
            "mode": "poke",
            "poke_interval": 5,
            "timeout": WATCHER_TIMEOUT_SECONDS,
            # Resolved when the task runs, so parsing never looks up the Airflow connection.
            # Incremental models rebuild only the run's interval (macros/interval_filter.sql). It
            # goes in env vars, not `vars`: new `--vars` every run made dbt re-parse the whole
            # project every run (7 s for the demo; ~30 s at 1,000 models).
            # A server's credentials are put in the env by `on_execute_callback`: never a rendered field.
            "env": {
                **({WAREHOUSE_PATH_ENV: "{{ mallard_warehouse_path() }}"} if warehouse.is_embedded else {}),
                **{env: _interval_template(which) for which, env in INTERVAL_ENV.items()},
            },
            # Run conf {"full_refresh": true} rebuilds incremental models from scratch.
            "full_refresh": "{{ (dag_run.conf or {}).get('full_refresh', False) }}",
            # On DuckDB it checks the task's declared Asset names the file it writes; on a server,
            # Cosmos names the model Assets from the profile this callback fills (assets.py).
            "on_execute_callback": [export_warehouse_path_for_cosmos],
        },
        **task_group_kwargs,
    )
    # The build pushes one report per node; its watchers read it (dbt_build_task.py).
    MallardDbtBuildOperator.use_for(_group_task(group, PRODUCER_WATCHER_TASK_ID))
    read_node_reports(group.dag.tasks)
    if location:
        declare_model_outlets(group.dag.tasks, dbt_relations(dbt_project_dir), location)
    _watch_after_build(group)
    from cosmos.operators.watcher import DbtSourceWatcherOperator

    for task in group.dag.tasks:
        if isinstance(task, DbtSourceWatcherOperator):
            # Stale data is not a passing glitch: a retry minutes later finds the same age.
            task.retries = 0
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
    roots = [task for task in group.get_roots() if task is not producer]
    add_edges([producer, producer_done], roots)  # `[producer, producer_done] >> root`, in bulk (edges.py)
    for task in roots:
        task.trigger_rule = TriggerRule.ONE_DONE
