"""A model task's own process renders only that model and its parents, and gets the same task.

Airflow's task runner parses the DAG file to find the one task it runs, and names it in
`get_parsing_context()` (env vars it sets around the parse; set the same way here). Rendering every
other model was most of that parse at scale (docs/benchmarks.md). Each model's run and test task so
rendered is compared with the same task of the whole DAG: every attribute and its upstream tasks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from include.mallard.dbt_group import running_model_selector
from include.mallard.dbt_project import MODEL_FQNS_RELATIVE_PATH, model_fqns
from include.mallard.factory import build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR
from tests.e2e.helpers import demo_project_with_spend_freshness
from tests.task_description import described

DAG_ID = "model_task_parse"
PARSING_CONTEXT_ENV = {"dag_id": "_AIRFLOW_PARSING_CONTEXT_DAG_ID", "task_id": "_AIRFLOW_PARSING_CONTEXT_TASK_ID"}


def in_task_process(monkeypatch: pytest.MonkeyPatch, task_id: str) -> None:
    """What Airflow's task runner sets while it parses the DAG file for `task_id`."""
    monkeypatch.setenv(PARSING_CONTEXT_ENV["dag_id"], DAG_ID)
    monkeypatch.setenv(PARSING_CONTEXT_ENV["task_id"], task_id)


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with a freshness rule: its source is a task, upstream of the model reading it."""
    return demo_project_with_spend_freshness(tmp_path_factory.mktemp("freshness") / "dbt")


@pytest.mark.parametrize("project", ["demo", "with source freshness"])
def test_a_model_tasks_process_renders_the_same_task_from_its_model_and_parents(project, request, monkeypatch):
    dbt_project_dir = DBT_PROJECT_DIR if project == "demo" else request.getfixturevalue("fresh_project")
    whole = build_elt_dag(DAG_ID, dbt_project_dir=dbt_project_dir)
    model_tasks = sorted(task.task_id for task in whole.tasks if re.fullmatch(r"dbt\.[^.]+\.(run|test)", task.task_id))
    assert len(model_tasks) == 18  # the demo's 9 models, a run and a test task each

    for task_id in model_tasks:
        in_task_process(monkeypatch, task_id)
        own = build_elt_dag(DAG_ID, dbt_project_dir=dbt_project_dir)
        # Only the model and its parents were rendered: the process did not build the whole project.
        assert len(own.tasks) < len(whole.tasks), task_id
        task, expected = own.get_task(task_id), whole.get_task(task_id)
        assert described(task) == described(expected), task_id
        assert task.upstream_task_ids == expected.upstream_task_ids, task_id
    # `orders` is also a source's name (raw_shop.orders): the selection is the model's, by fqn.
    in_task_process(monkeypatch, "dbt.orders.run")
    assert build_elt_dag(DAG_ID, dbt_project_dir=dbt_project_dir).get_task("dbt.orders.run").model_unique_id == (
        "model.mallard.orders"
    )


@pytest.mark.parametrize(
    "task_id",
    [
        None,
        "dbt.dbt_producer_watcher",
        "dbt.dbt_producer_watcher_done",
        "ingest_shop.extract",
        "dbt_docs",
        "publish",
        "dbt.no_such_model.run",
        "dbt.orders.other",
        "other_group.orders.run",
    ],
)
def test_every_other_parse_renders_the_whole_project(task_id, monkeypatch):
    for name in PARSING_CONTEXT_ENV.values():
        monkeypatch.delenv(name, raising=False)
    if task_id:
        in_task_process(monkeypatch, task_id)
    assert running_model_selector(DBT_PROJECT_DIR) == []


def test_a_model_task_selects_its_model_and_parents_by_the_recorded_fqn(tmp_path, monkeypatch):
    in_task_process(monkeypatch, "dbt.orders.test")
    assert running_model_selector(DBT_PROJECT_DIR) == ["1+fqn:mallard.marts.orders"]
    assert model_fqns(DBT_PROJECT_DIR)["stg_shop__orders"] == "mallard.staging.shop.stg_shop__orders"
    # A manifest recorded before the fqns were (an older `mallard manifest`): the whole project.
    (tmp_path / MODEL_FQNS_RELATIVE_PATH.parent).mkdir()
    assert model_fqns(tmp_path) == {} and running_model_selector(tmp_path) == []


def test_a_model_name_two_packages_share_is_not_selected_by_name():
    from include.mallard.dbt_project import _model_fqns

    def model(package: str, *path: str) -> dict:
        return {"resource_type": "model", "name": path[-1], "fqn": [package, *path]}

    manifest = {
        "nodes": {
            "model.shop.orders": model("shop", "marts", "orders"),
            "model.audit.orders": model("audit", "orders"),
            "model.shop.customers": model("shop", "marts", "customers"),
            "seed.shop.stores": {"resource_type": "seed", "name": "stores", "fqn": ["shop", "stores"]},
        }
    }
    assert _model_fqns(manifest) == {"customers": "shop.marts.customers"}
