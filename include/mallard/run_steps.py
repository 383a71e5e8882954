"""The steps every Mallard DAG shares: the dbt build with its docs, and the run's last task, `publish`.

The ELT DAG (factory.py) and the asset-scheduled dbt DAG (dbt_on_assets.py) are built from them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TaskGroup, get_parsing_context

from include.mallard import tasks
from include.mallard.alerts import MallardWebhookNotifier
from include.mallard.dbt_docs import generate_dbt_docs
from include.mallard.dbt_group import BUILD_TASK_ID, DEFAULT_GROUP_ID, build_dbt_group, build_done_gate
from include.mallard.edges import add_edges
from include.mallard.warehouse import Warehouse, active_warehouse, resolve_warehouse_path

PUBLISH_TASK_ID = "publish"
DOCS_TASK_ID = "dbt_docs"
# Airflow's own start_date, far back on purpose: for a logical date before it Airflow creates no
# task at all, and `airflow dags test` or a trigger then "succeeds" having loaded nothing. The
# project's start date (mallard.yml) is enforced by the tasks instead, with an error naming it.
AIRFLOW_START_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEFAULT_TAGS = ("mallard", "elt")
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "mallard",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    # A task that failed for good POSTs an alert to the `mallard_alerts` connection, if there is one.
    "on_failure_callback": [MallardWebhookNotifier()],
}


def dbt_task_macros(interval_bound: Callable[..., str]) -> dict[str, Callable[..., str]]:
    """The DAG macros the dbt tasks' env renders: the resolved warehouse path, the run's interval bounds."""
    return {
        "mallard_warehouse_path": lambda: str(resolve_warehouse_path()),
        "mallard_interval_bound": interval_bound,
    }


def parsing_task(dag_id: str) -> str | None:
    """The task whose own process is parsing the DAG file, if it is a task of `dag_id`; else None.

    Airflow's task runner parses the DAG file to find the one task it runs, and names it in
    `get_parsing_context()`; the DAG processor, `airflow dags test` and tests name none.
    """
    context = get_parsing_context()
    return context.task_id if context.dag_id == dag_id else None


def renders_dbt_group(dag_id: str) -> bool:
    """Whether this parse of `dag_id` needs the Cosmos dbt group: not in the process of a task outside it.

    Rendering the dbt project is most of a parse at scale (docs/benchmarks.md), and the process
    of an ingestion task, `generate_staging`, `dbt_docs` or `publish` runs only its own task.
    """
    task_id = parsing_task(dag_id)
    return task_id is None or task_id.startswith(f"{DEFAULT_GROUP_ID}.")


def dbt_steps(dag: DAG, dbt_project_dir: Path, warehouse: Warehouse | None = None) -> TaskGroup | None:
    """The Cosmos dbt group, then `dbt_docs` (failing with a failed or missing build); the dbt group.

    Adds the project's models to the DAG's doc. In the process of a task outside the dbt group,
    only `dbt_docs`, and None (`renders_dbt_group`).
    """
    warehouse = warehouse or active_warehouse()
    docs = PythonOperator(
        task_id=DOCS_TASK_ID,
        python_callable=generate_dbt_docs,
        op_kwargs={"dbt_project_dir": str(dbt_project_dir)},
        pool=warehouse.pool,
        max_active_tis_per_dag=1,  # one docs site: two runs would write the same folder
        doc_md="Regenerates the dbt docs shown under Browse > Mallard dbt docs.",
    )
    if not renders_dbt_group(dag.dag_id):
        return None
    dbt = build_dbt_group(dbt_project_dir, warehouse=warehouse)
    _keep_build_results(dbt)
    dag.doc_md = (dag.doc_md or "") + _models_doc(dbt)
    # A build that failed or never ran must fail the run, even when every model task skipped.
    # After the model and test tasks, not after the build alone: in a cleared run Cosmos skips the
    # build and each model and test task runs its own node with dbt; the docs must wait for them
    # (and a skipped build upstream would skip the docs).
    [dbt, build_done_gate(dbt)] >> docs
    return dbt


def publish_step(dag: DAG, warehouse: Warehouse | None = None) -> PythonOperator:
    """The run's last task: write the history that waited for it, publish the read-only snapshot.

    A teardown: it runs when every other task of the run is done, whatever failed (the snapshot
    then shows what the run left, and `mallard_meta` says what failed), and it does not decide the
    run's state. Downstream of every task, not only of the last ones: a failure upstream marks
    `dbt_docs` upstream_failed at once, while other tasks may still run or retry.
    """
    others = list(dag.tasks)
    publish = PythonOperator(
        task_id=PUBLISH_TASK_ID,
        python_callable=tasks.publish_task,
        pool=(warehouse or active_warehouse()).pool,
        doc_md="Records the run's dbt results (and failed extracts) in `mallard_meta`, then publishes the "
        "read-only snapshot `mallard.read.duckdb` that readers open instead of the warehouse.",
    ).as_teardown()
    add_edges(others, [publish])  # one edge per task: Airflow's set_upstream is O(tasks^2) here (edges.py)
    return publish


def _keep_build_results(dbt_group: Any) -> None:
    # The `dbt build` runs in a temporary copy of the project, deleted when it ends: a Cosmos
    # callback (run before a failed build raises) keeps its run_results.json for `publish`.
    producer = dbt_group.dag.get_task(BUILD_TASK_ID)
    existing = producer.callback if isinstance(producer.callback, list) else [producer.callback]
    producer.callback = [*filter(None, existing), tasks.keep_dbt_run_results]


def _models_doc(dbt_group: Any) -> str:
    models = sorted(
        node.name for node in dbt_group.dbt_graph.filtered_nodes.values() if node.resource_type.value == "model"
    )
    return "\n\n## dbt models\n\n" + "\n".join(f"- `{name}`" for name in models)
