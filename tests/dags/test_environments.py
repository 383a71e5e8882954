"""The ELT DAG per environment: on the PostgreSQL warehouse each source is one task, in a pool of several slots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.mallard import tasks
from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.factory import build_elt_dag

SNAPSHOT = Path(__file__).parent / "snapshots" / "mallard_elt_prod.json"


@pytest.fixture(scope="module")
def dags():
    saved = os.environ.get("MALLARD_ENV")
    built = {}
    try:
        for name in ("dev", "prod"):
            os.environ["MALLARD_ENV"] = name
            built[name] = build_elt_dag(f"mallard_elt_{name}")
    finally:
        os.environ.pop("MALLARD_ENV") if saved is None else os.environ.update(MALLARD_ENV=saved)
    return built


def _ingestion(dag) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for task in dag.tasks:
        group, _, step = task.task_id.partition(".")
        if group.startswith("ingest_"):
            groups.setdefault(group, []).append(step)
    return {group: sorted(steps) for group, steps in groups.items()}


def test_prod_loads_each_source_in_one_task_so_workers_share_no_disk(dags):
    prod, dev = _ingestion(dags["prod"]), _ingestion(dags["dev"])
    assert prod.keys() == dev.keys() and len(prod) >= 3
    assert set(map(tuple, dev.values())) == {("extract", "load")}
    assert set(map(tuple, prod.values())) == {("load",)}
    for group in prod:
        task = dags["prod"].get_task(f"{group}.load")
        assert task.python_callable is tasks.ingest_task
        assert task.op_kwargs["source_name"] == group.removeprefix("ingest_")
        assert {"earliest", "source_start"} <= task.op_kwargs.keys()


def test_every_warehouse_writer_is_in_the_environments_pool(dags):
    for name, pool in (("dev", "mallard_duckdb"), ("prod", "mallard_postgres")):
        dag = dags[name]
        writers = [t for t in dag.tasks if t.task_id.endswith(".load")]
        writers += [dag.get_task(BUILD_TASK_ID), dag.get_task("dbt_docs"), dag.get_task("publish")]
        assert {t.pool for t in writers} == {pool}, name


def test_dbt_uses_the_environments_target_and_never_renders_server_credentials(dags):
    dev, prod = dags["dev"].get_task(BUILD_TASK_ID), dags["prod"].get_task(BUILD_TASK_ID)
    assert (dev.profile_config.target_name, prod.profile_config.target_name) == ("duckdb", "postgres")
    assert "MALLARD_WAREHOUSE_PATH" in dev.env
    # The server's credentials are put in the process env when the task runs, not in a template.
    assert set(prod.env) == {"MALLARD_INTERVAL_START", "MALLARD_INTERVAL_END"}


def test_the_dag_doc_says_which_environment_and_warehouse(dags):
    assert "**Environment:** `prod`" in dags["prod"].doc_md
    assert "postgres warehouse through Airflow connection `mallard_warehouse_prod`" in dags["prod"].doc_md
    assert "**Environment:** `dev`" in dags["dev"].doc_md and "duckdb warehouse" in dags["dev"].doc_md


def test_generated_prod_dag_matches_snapshot(dags):
    """Refresh after an intended change: MALLARD_UPDATE_SNAPSHOTS=1."""
    structure = {
        task.task_id: {"operator": type(task).__name__, "pool": task.pool, "upstream": sorted(task.upstream_task_ids)}
        for task in sorted(dags["prod"].tasks, key=lambda t: t.task_id)
    }
    if os.environ.get("MALLARD_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(structure, indent=2, sort_keys=True) + "\n")
    assert structure == json.loads(SNAPSHOT.read_text())


def test_no_two_runs_write_the_same_source_or_build_dbt_at_once(dags):
    """A backfill's runs overlap: on a server's several pool slots, two loads of one source would share its
    tables and dlt's staging schema, and two `dbt build`s would replace the same relations."""
    for dag in dags.values():
        writers = [t for t in dag.tasks if t.task_id.endswith(".load")]
        writers += [dag.get_task(BUILD_TASK_ID), dag.get_task("dbt_docs")]
        assert {t.task_id: t.max_active_tis_per_dag for t in writers} == {t.task_id: 1 for t in writers}
