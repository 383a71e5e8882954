"""Source freshness as tasks, under `airflow dags test` (real dlt, dbt, DuckDB, Cosmos).

The demo dbt project with a rule on `marketing.spend` (warn after 1 day, fail after 4, on
spend_date; the CSVs end on 2024-03-31), three runs into one warehouse:
- fresh: 2024-03-24..31 loads spend up to 03-30; at the interval end it is 1 day old: pass;
- warn: 2024-04-01..02 loads no spend (the CSVs end); 3 days old: a warning, everything builds;
- stale: 2024-04-05..06, 7 days old: the freshness task fails, the models downstream of the
  source (stg_marketing__spend, daily_activity) are left out of the build and skipped, their
  tables untouched; the shop's models build; the run fails.
The age is measured at each run's interval end, not today: in 2026 every run would be stale.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from include.mallard.paths import SOURCES_DIR
from tests.e2e.helpers import (
    AIRFLOW,
    airflow_env,
    demo_project_with_spend_freshness,
    table_checksums,
    write_elt_dag,
)

pytestmark = pytest.mark.e2e

DAG_ID = "elt_freshness"
SOURCE_TASK = "dbt.marketing_spend_source"
RUNS = {
    "fresh": ("2024-03-31", {"start": "2024-03-24", "end": "2024-03-31"}),
    "warn": ("2024-04-02", {"start": "2024-04-01", "end": "2024-04-02"}),
    "stale": ("2024-04-06", {"start": "2024-04-05", "end": "2024-04-06"}),
}
DOWNSTREAM_OF_SPEND = ("dbt.stg_marketing__spend.run", "dbt.daily_activity.run")


def _run_states(airflow_home: Path, logical_date: str) -> tuple[str, dict[str, str]]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(run_id, state)] = db.execute(
            "select run_id, state from dag_run where dag_id = ? and logical_date like ?", [DAG_ID, f"{logical_date}%"]
        ).fetchall()
        tasks = db.execute("select task_id, state from task_instance where dag_id = ? and run_id = ?", [DAG_ID, run_id])
        return state, dict(tasks.fetchall())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    import subprocess

    root = tmp_path_factory.mktemp("freshness")
    project = demo_project_with_spend_freshness(root / "dbt")
    write_elt_dag(root / "dags", DAG_ID, SOURCES_DIR, project)
    warehouse, airflow_home = root / "warehouse.duckdb", root / "airflow"
    env = airflow_env(airflow_home, warehouse, root / "work") | {"AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags")}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    results = {}
    for name, (logical_date, conf) in RUNS.items():
        log = root / f"{name}.log"
        with log.open("w") as output:
            command = [AIRFLOW, "dags", "test", DAG_ID, logical_date, "--conf", json.dumps(conf)]
            subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=900)
        state, tasks = _run_states(airflow_home, logical_date)
        marts = {k: v for k, v in table_checksums(warehouse).items() if k.startswith("marts.")}
        results[name] = {"state": state, "tasks": tasks, "marts": marts, "log": log.read_text(errors="replace")}
    return results


def test_a_fresh_source_passes_its_task_and_everything_builds(runs):
    fresh = runs["fresh"]
    assert fresh["state"] == "success", fresh["tasks"]
    assert fresh["tasks"][SOURCE_TASK] == "success"
    assert "freshness of marketing.spend: pass: newest row 2024-03-30" in fresh["log"]
    assert fresh["marts"]["marts.daily_activity"][0] == 7


def test_a_source_past_warn_after_warns_and_everything_builds(runs):
    warn = runs["warn"]
    assert "freshness of marketing.spend: warn: newest row 2024-03-30" in warn["log"]
    assert warn["state"] == "success", warn["tasks"]
    assert warn["tasks"][SOURCE_TASK] == "success"
    assert {warn["tasks"][task] for task in DOWNSTREAM_OF_SPEND} == {"success"}


def test_a_stale_source_fails_its_task_and_nothing_downstream_builds(runs):
    stale = runs["stale"]
    # The build's log says how old and against what; the source task fails with dbt's status.
    assert "freshness of marketing.spend: error: newest row 2024-03-30" in stale["log"]
    assert "7.00 days older than 2024-04-06" in stale["log"]
    assert "[warn_after 1 day, error_after 4 day]" in stale["log"]
    assert "Source 'source.mallard.marketing.spend' finished with status 'error'" in stale["log"]
    assert stale["tasks"][SOURCE_TASK] == "failed"
    for task in DOWNSTREAM_OF_SPEND:
        assert stale["tasks"][task] in ("skipped", "upstream_failed"), (task, stale["tasks"][task])
    assert stale["state"] == "failed"
    # Left out of the dbt build itself, not only shown skipped: the mart is the warn run's.
    assert stale["marts"]["marts.daily_activity"] == runs["warn"]["marts"]["marts.daily_activity"]


def test_the_models_that_do_not_read_the_stale_source_build(runs):
    stale = runs["stale"]
    assert stale["tasks"]["dbt.stg_shop__orders.run"] == "success"
    assert stale["tasks"]["dbt.orders.run"] == "success"
    assert stale["marts"]["marts.orders"][0] > runs["warn"]["marts"]["marts.orders"][0]
