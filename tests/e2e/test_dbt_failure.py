"""A dbt test that fails on bad source data stops what depends on it and keeps the last good marts.

Three `airflow dags test` runs of the ELT DAG over the demo sources, with the stores CSV in a
folder of the test's own: a clean day, then a day after a store without a name was added to the
CSV. The staging test `not_null` on `store_name` must fail its task, every model downstream must
not run, the log must name the test and its failing row count, and the marts must be those of the
clean day. Then a day whose CSV cannot be read: ingestion fails, dbt never starts, the run fails.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from include.mallard.paths import INCLUDE_DIR, SOURCES_DIR
from tests.e2e.helpers import AIRFLOW, airflow_env, run_airflow, table_checksums, write_elt_dag

pytestmark = pytest.mark.e2e

DAG_ID = "elt_bad_data"
FAILING_TEST = "not_null_stg_stores__stores_store_name"
DOWNSTREAM_OF_STORES = ("dbt.orders.run", "dbt.customers.run", "dbt.daily_activity.run")


def _task_states(airflow_home: Path, logical_date: str) -> dict[str, str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "select ti.task_id, ti.state from task_instance ti join dag_run dr "
            "on ti.dag_id = dr.dag_id and ti.run_id = dr.run_id "
            "where dr.dag_id = ? and dr.logical_date like ?",
            [DAG_ID, f"{logical_date}%"],
        ).fetchall()
    return dict(rows)


def _run_state(airflow_home: Path, logical_date: str) -> str:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(state,)] = db.execute(
            "select state from dag_run where dag_id = ? and logical_date like ?", [DAG_ID, f"{logical_date}%"]
        ).fetchall()
    return state


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt-failure")
    sources, stores_data, dags = root / "sources", root / "stores", root / "dags"
    sources.mkdir()
    shutil.copytree(INCLUDE_DIR / "data" / "stores", stores_data)
    for name in ("shop.yml", "marketing.yml"):
        shutil.copy(SOURCES_DIR / name, sources / name)
    stores_config = (SOURCES_DIR / "stores.yml").read_text()
    stores_config = stores_config.replace("path: include/data/stores", f"path: {stores_data}")
    (sources / "stores.yml").write_text(stores_config + "retries: 0\n")  # fail at once in the broken run
    write_elt_dag(dags, DAG_ID, sources)

    warehouse, airflow_home = root / "warehouse.duckdb", root / "airflow"
    env = airflow_env(airflow_home, warehouse, root / "work") | {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    log = root / "airflow.log"
    run_airflow(["db", "migrate"], env, log)
    run_airflow(["dags", "test", DAG_ID, "2024-01-08"], env, log)
    clean_marts = {k: v for k, v in table_checksums(warehouse).items() if k.startswith("marts.")}

    csv_file = next(stores_data.glob("*.csv"))
    csv_file.write_text(csv_file.read_text() + "6,,Paris,2024-01-01,0.20\n")  # a store without a name
    bad_log = root / "bad-run.log"
    with bad_log.open("w") as output:
        command = [AIRFLOW, "dags", "test", DAG_ID, "2024-01-09"]
        subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=900)
    raw_stores = table_checksums(warehouse)["raw_stores.stores"]

    # A file dlt cannot read: ingestion fails, so dbt never runs, and the run must fail.
    csv_file.write_text(csv_file.read_text() + "7,Oslo\n")  # 2 fields, the header has 5
    with (root / "broken-ingestion.log").open("w") as output:
        command = [AIRFLOW, "dags", "test", DAG_ID, "2024-01-10"]
        subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=900)
    return {
        "clean_states": _task_states(airflow_home, "2024-01-08"),
        "bad_states": _task_states(airflow_home, "2024-01-09"),
        "broken_ingestion_states": _task_states(airflow_home, "2024-01-10"),
        "broken_ingestion_run": _run_state(airflow_home, "2024-01-10"),
        "clean_marts": clean_marts,
        "marts_after": {k: v for k, v in table_checksums(warehouse).items() if k.startswith("marts.")},
        "bad_log": bad_log.read_text(errors="replace"),
        "raw_stores": raw_stores,
    }


def test_the_clean_run_succeeds(runs):
    assert runs["clean_states"] and set(runs["clean_states"].values()) == {"success"}, runs["clean_states"]


def test_the_failing_test_fails_its_task_and_nothing_downstream_runs(runs):
    states = runs["bad_states"]
    assert runs["raw_stores"][0] == 6, "the bad row must have been loaded for dbt to catch it"
    assert states["dbt.stg_stores__stores.run"] == "success"
    assert states["dbt.stg_stores__stores.test"] == "failed"
    for task_id in DOWNSTREAM_OF_STORES:
        assert states[task_id] == "upstream_failed", (task_id, states[task_id])
    assert states["dbt_docs"] == "upstream_failed"


def test_the_log_names_the_failing_test_and_how_many_rows_failed(runs):
    assert f"Failure in test {FAILING_TEST}" in runs["bad_log"]
    assert "Got 1 result, configured to fail if != 0" in runs["bad_log"]


def test_the_marts_of_the_last_good_run_are_intact(runs):
    assert runs["clean_marts"] and runs["marts_after"] == runs["clean_marts"]


def test_failed_ingestion_fails_the_run_and_dbt_never_starts(runs):
    states = runs["broken_ingestion_states"]
    assert states["ingest_stores.extract"] == "failed"
    assert states["ingest_stores.load"] == "upstream_failed"
    assert states["dbt.dbt_producer_watcher"] == "upstream_failed"
    # The model tasks of a build that never ran are skipped; the run must fail all the same.
    assert states["dbt.stg_stores__stores.run"] == "skipped"
    assert states["dbt_docs"] == "upstream_failed"
    assert runs["broken_ingestion_run"] == "failed"
