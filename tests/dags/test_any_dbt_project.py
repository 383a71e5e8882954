"""The factory renders any dbt project in include/dbt: nothing in it names Mallard's models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include.mallard.dbt_project import DbtProjectError, build_manifest
from include.mallard.factory import build_elt_dag

OTHER_PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "dbt_other"


def test_another_dbt_project_renders_its_own_models(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    dag = build_elt_dag("other_elt", dbt_project_dir=project)
    dbt_tasks = {t.task_id for t in dag.tasks if t.task_id.startswith("dbt.")}
    # A model with tests is a group (run, test); one without is a single task.
    assert {"dbt.order_counts.run", "dbt.order_counts.test", "dbt.big_customers_run"} <= dbt_tasks
    assert not any("stg_shop" in task_id or task_id.startswith("dbt.orders.") for task_id in dbt_tasks)
    assert "dbt.order_counts.test" in dag.get_task("dbt.big_customers_run").upstream_task_ids


def test_missing_manifest_says_how_to_build_it(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    with pytest.raises(DbtProjectError, match="make manifest"):
        build_elt_dag("no_manifest", dbt_project_dir=project)


def test_stale_manifest_is_reported_not_used(tmp_path):
    project = tmp_path / "dbt"
    shutil.copytree(OTHER_PROJECT, project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    (project / "models" / "new_model.sql").write_text("select 1 as id\n")
    with pytest.raises(DbtProjectError, match="stale"):
        build_elt_dag("stale_manifest", dbt_project_dir=project)
    assert build_manifest(project) == project / "target" / "manifest.json"
    dag = build_elt_dag("fresh_manifest", dbt_project_dir=project)
    assert "dbt.new_model_run" in dag.task_ids
