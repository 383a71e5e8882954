"""A dbt test that fails on bad source data stops what depends on it and keeps the last good marts.

Three `airflow dags test` runs of the ELT DAG over the demo sources, with the stores CSV in a
folder of the test's own: a clean day, then a day after a store without a name was added to the
CSV. The staging test `not_null` on `store_name` must fail its task, every model downstream must
not run, the log must name the test and its failing row count, and the marts must be those of the
clean day. Then a day whose CSV cannot be read: ingestion fails, dbt never starts, the run fails.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from include.mallard.paths import INCLUDE_DIR, SOURCES_DIR
from tests.e2e.helpers import AIRFLOW, airflow_env, query, run_airflow, table_checksums, write_elt_dag
from tests.webhook_receiver import WebhookReceiver

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


DAYS = ("2024-01-08", "2024-01-09", "2024-01-10")


def _run_id(airflow_home: Path, logical_date: str) -> str:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(run_id,)] = db.execute(
            "select run_id from dag_run where dag_id = ? and logical_date like ?", [DAG_ID, f"{logical_date}%"]
        ).fetchall()
    return run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
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
    receiver = WebhookReceiver().__enter__()  # the alerts' webhook (connection mallard_alerts)
    request.addfinalizer(lambda: receiver.__exit__(None, None, None))
    env["AIRFLOW_CONN_MALLARD_ALERTS"] = receiver.connection_json()
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
    snapshot = warehouse.with_name("mallard.read.duckdb")
    after_bad_run = {
        "snapshot": {k: v for k, v in table_checksums(snapshot).items() if k.startswith(("marts.", "raw_stores."))},
        "dbt_nodes": query(
            snapshot,
            "select name, resource_type, status, failures, message from mallard_meta.dbt_nodes where run_id = ?",
            [_run_id(airflow_home, "2024-01-09")],
        ),
    }

    # A file dlt cannot read: ingestion fails, so dbt never runs, and the run must fail.
    csv_file.write_text(csv_file.read_text() + "7,Oslo\n")  # 2 fields, the header has 5
    with (root / "broken-ingestion.log").open("w") as output:
        command = [AIRFLOW, "dags", "test", DAG_ID, "2024-01-10"]
        subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=900)
    (root / "alerts.json").write_text(json.dumps(receiver.payloads, indent=2))  # to read when a test fails
    return {
        "alerts": {date: [p for p in receiver.payloads if p["run_id"] == _run_id(airflow_home, date)] for date in DAYS},
        "after_bad_run": after_bad_run,
        "loads_of_broken_run": query(
            warehouse,
            "select source, table_name, status, error from mallard_meta.loads where run_id = ? order by 1",
            [_run_id(airflow_home, "2024-01-10")],
        ),
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


# --- history, snapshot and alerts of these runs (issue 16) -----------------------------------------


def test_the_failing_test_is_in_the_runs_history_with_its_failing_row_count(runs):
    nodes = {name: rest for name, *rest in runs["after_bad_run"]["dbt_nodes"]}
    assert nodes[FAILING_TEST] == ["test", "fail", 1, "Got 1 result, configured to fail if != 0"]
    assert nodes["stg_stores__stores"][:2] == ["model", "success"]
    for model in ("orders", "customers", "daily_activity"):
        assert nodes[model][:2] == ["model", "skipped"], (model, nodes[model])


def test_the_snapshot_after_the_failing_test_has_the_new_rows_and_the_last_good_marts(runs):
    """Published whatever failed: what dbt did not build keeps the last good run's version."""
    snapshot = runs["after_bad_run"]["snapshot"]
    assert snapshot["raw_stores.stores"][0] == 6
    assert {k: v for k, v in snapshot.items() if k.startswith("marts.")} == runs["clean_marts"]


def test_a_failing_dbt_test_sends_alerts_naming_the_test_and_its_failing_rows(runs):
    assert runs["alerts"]["2024-01-08"] == [], "a clean run sends nothing"
    alerts = {alert["task_id"]: alert for alert in runs["alerts"]["2024-01-09"]}
    assert {"dbt.dbt_producer_watcher", "dbt.stg_stores__stores.test"} <= alerts.keys(), alerts.keys()
    for task_id in ("dbt.dbt_producer_watcher", "dbt.stg_stores__stores.test"):
        alert = alerts[task_id]
        [failed] = alert["failed_dbt_nodes"]
        assert (failed["name"], failed["status"], failed["failures"]) == (FAILING_TEST, "fail", 1)
        assert f"{FAILING_TEST} (fail, 1 failing rows)" in alert["text"]
        assert alert["log_url"].endswith(f"/tasks/{task_id}?try_number={alert['try_number']}")
        assert alert["dag_id"] == DAG_ID
    assert alerts["dbt.stg_stores__stores.test"]["dbt_node"] == "model.mallard.stg_stores__stores"
    # Only tasks that failed alert (upstream_failed ones never ran).
    assert set(alerts) <= {task for task, state in runs["bad_states"].items() if state == "failed"}


def test_a_failing_source_sends_an_alert_naming_it_and_its_load_is_recorded_failed(runs):
    [alert] = runs["alerts"]["2024-01-10"]
    assert (alert["task_id"], alert["source"]) == ("ingest_stores.extract", "stores")
    assert "line" in alert["error"] and "stores" in alert["error"], alert["error"]
    loads = {source: rest for source, *rest in runs["loads_of_broken_run"]}
    assert loads["stores"][:2] == [None, "failed"] and loads["stores"][2] == alert["error"]
    assert {loads[s][1] for s in ("shop", "marketing")} == {"success"}
