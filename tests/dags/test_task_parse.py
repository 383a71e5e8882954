"""A task's own process builds only what its task needs, and gets the same task.

Airflow's task runner parses the DAG file to find the one task it runs, and names it in
`get_parsing_context()` (env vars it sets around the parse; set the same way here). Rendering every
other model was most of that parse at scale (docs/benchmarks.md). A model task's process renders
only that model and its parents; an ingestion task's process renders no dbt project; any task's
process builds only its own DAG. Each task so built is compared with the same task of the whole
DAG: every attribute, its upstream and its downstream tasks.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from include.mallard.config.project import load_project_settings
from include.mallard.dbt_group import running_model_selector
from include.mallard.dbt_on_assets import DBT_DAG_ID
from include.mallard.dbt_project import MODEL_FQNS_RELATIVE_PATH, model_fqns
from include.mallard.factory import DEFAULT_DAG_ID, build_dags, build_elt_dag
from include.mallard.paths import DBT_PROJECT_DIR, SOURCES_DIR
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


def _same_task(own, whole, task_id: str) -> None:
    task, expected = own.get_task(task_id), whole.get_task(task_id)
    assert described(task) == described(expected), task_id
    built = set(own.task_dict)
    if not task_id.startswith("dbt."):
        # Outside the dbt group, the process renders none of it (`dbt_docs`, `publish`, ingestion):
        # the task keeps every relation to the tasks it built, and gains none.
        assert not [other for other in built if other.startswith("dbt.")], task_id
        assert task.upstream_task_ids == expected.upstream_task_ids & built, task_id
        assert task.downstream_task_ids == expected.downstream_task_ids & built, task_id
        return
    assert task.upstream_task_ids == expected.upstream_task_ids, task_id
    # A model task's process renders its parents, not its children (first test above).
    if not re.fullmatch(r"dbt\.[^.]+\.(run|test)", task_id):
        assert task.downstream_task_ids == expected.downstream_task_ids, task_id


def _sources_with_an_invalid_file(tmp_path: Path) -> Path:
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    (sources / "broken.yml").write_text("name: broken\nkind: no_such_kind\n")
    return sources


@pytest.mark.parametrize("project", ["demo", "with source freshness"])
def test_an_ingestion_tasks_process_renders_no_dbt_and_gets_the_same_task(project, request, tmp_path, monkeypatch):
    dbt_project_dir = DBT_PROJECT_DIR if project == "demo" else request.getfixturevalue("fresh_project")
    sources = _sources_with_an_invalid_file(tmp_path)
    whole = build_elt_dag(DAG_ID, sources_dir=sources, dbt_project_dir=dbt_project_dir)
    ingestion_tasks = sorted(task.task_id for task in whole.tasks if task.task_id.startswith("ingest_"))
    # 3 sources, an extract and a load each, and the invalid file's failing task.
    assert ingestion_tasks == [
        "ingest_broken",
        *(f"ingest_{name}.{step}" for name in ("marketing", "shop", "stores") for step in ("extract", "load")),
    ]

    for task_id in ingestion_tasks:
        in_task_process(monkeypatch, task_id)
        own = build_elt_dag(DAG_ID, sources_dir=sources, dbt_project_dir=dbt_project_dir)
        assert not [task.task_id for task in own.tasks if task.task_id.startswith("dbt.")], task_id
        _same_task(own, whole, task_id)
    # Another DAG's task of the same name does not count: the dbt project is rendered.
    monkeypatch.setenv(PARSING_CONTEXT_ENV["dag_id"], "another_dag")
    assert len(build_elt_dag(DAG_ID, sources_dir=sources, dbt_project_dir=dbt_project_dir).tasks) == len(whole.tasks)


@pytest.mark.parametrize("dbt_schedule", ["with_ingestion", "on_assets"])
def test_a_tasks_process_builds_only_its_own_dag(dbt_schedule, tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    marketing = sources / "marketing.yml"
    marketing.write_text(marketing.read_text() + 'schedule: "0 6 * * *"\n')
    settings = load_project_settings().model_copy(update={"dbt_schedule": dbt_schedule})
    for name in PARSING_CONTEXT_ENV.values():
        monkeypatch.delenv(name, raising=False)
    every = build_dags(sources_dir=sources, settings=settings)
    expected_ids = {DEFAULT_DAG_ID, f"{DEFAULT_DAG_ID}_ingest_marketing"} | (
        {DBT_DAG_ID} if dbt_schedule == "on_assets" else set()
    )
    assert set(every) == expected_ids

    for dag_id, dag in every.items():
        for task in dag.tasks:
            monkeypatch.setenv(PARSING_CONTEXT_ENV["dag_id"], dag_id)
            monkeypatch.setenv(PARSING_CONTEXT_ENV["task_id"], task.task_id)
            own = build_dags(sources_dir=sources, settings=settings)
            assert list(own) == [dag_id], task.task_id
            _same_task(own[dag_id], dag, task.task_id)
    # A DAG id that is not one of the project's (another DAG file's task): every DAG, as before.
    monkeypatch.setenv(PARSING_CONTEXT_ENV["dag_id"], "not_mallards")
    assert set(build_dags(sources_dir=sources, settings=settings)) == expected_ids


@pytest.mark.parametrize("task_id", ["dbt_docs", "publish", "generate_staging", "ingestion_done"])
def test_a_task_after_ingestion_but_outside_the_dbt_group_renders_no_dbt(task_id, monkeypatch):
    # Their processes rendered the whole dbt project, most of a parse at scale (docs/benchmarks.md).
    for name in PARSING_CONTEXT_ENV.values():
        monkeypatch.delenv(name, raising=False)
    whole = build_elt_dag(DAG_ID, generate_staging=True)
    assert any(task.startswith("dbt.") for task in whole.task_dict)
    in_task_process(monkeypatch, task_id)
    own = build_elt_dag(DAG_ID, generate_staging=True)
    _same_task(own, whole, task_id)
    assert set(own.task_dict) == {task for task in whole.task_dict if not task.startswith("dbt.")}
