"""A first run whose interval has no rows for some sources (`airflow dags test`, real dlt, dbt, DuckDB).

The demo's marketing CSVs and shop orders start on 2024-01-01; a fresh warehouse's first run over
2023-12-01..08 used to fail in dbt after 1.5 minutes (`Table with name "raw_marketing.spend" does
not exist`): dlt creates no table for a resource that yielded no rows. The load step now creates
the raw tables the dbt sources declare, empty, with their declared columns, and the run succeeds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from include.mallard.config import get_source
from include.mallard.paths import SOURCES_DIR
from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e
DAG_ID = "mallard_elt"
CONF = {"start": "2023-12-01", "end": "2023-12-08"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("empty-interval")
    warehouse, airflow_home = root / "warehouse.duckdb", root / "airflow"
    env = airflow_env(airflow_home, warehouse, root / "work")
    log = root / "airflow.log"
    run_airflow(["db", "migrate"], env, log)
    run_airflow(["dags", "test", DAG_ID, "2024-01-08", "--conf", json.dumps(CONF)], env, log)
    return warehouse, airflow_home


def test_the_run_succeeds_with_every_task(run):
    _, airflow_home = run
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(state,)] = db.execute("select state from dag_run where dag_id = ?", [DAG_ID]).fetchall()
        tasks = dict(db.execute("select task_id, state from task_instance where dag_id = ?", [DAG_ID]).fetchall())
    assert state == "success"
    assert {task for task, task_state in tasks.items() if task_state != "success"} == set()
    assert {"ingest_marketing.load", "dbt.stg_marketing__spend.run", "dbt.daily_activity.run"} <= tasks.keys()


def test_the_raw_tables_without_rows_exist_empty_with_their_declared_columns(run):
    warehouse, _ = run
    columns = query(
        warehouse,
        "select table_schema || '.' || table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('raw_marketing', 'raw_shop') and table_name in ('spend', 'orders', 'payments') "
        "order by 1, ordinal_position",
    )
    assert columns == [
        ("raw_marketing.spend", "spend_date", "DATE"),
        ("raw_marketing.spend", "channel", "VARCHAR"),
        ("raw_marketing.spend", "spend", "DOUBLE"),
        ("raw_shop.orders", "id", "BIGINT"),
        ("raw_shop.orders", "customer_id", "BIGINT"),
        ("raw_shop.orders", "store_id", "BIGINT"),
        ("raw_shop.orders", "status", "VARCHAR"),
        ("raw_shop.orders", "ordered_at", "TIMESTAMP WITH TIME ZONE"),
        ("raw_shop.payments", "id", "BIGINT"),
        ("raw_shop.payments", "order_id", "BIGINT"),
        ("raw_shop.payments", "payment_method", "VARCHAR"),
        ("raw_shop.payments", "amount_cents", "BIGINT"),
        ("raw_shop.payments", "paid_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    for table in ("raw_marketing.spend", "raw_shop.orders", "raw_shop.payments"):
        assert query(warehouse, f"select count(*) from {table}") == [(0,)], table


def test_the_marts_hold_the_customers_and_stores_and_no_orders(run):
    warehouse, _ = run
    shop = get_source(SOURCES_DIR, "shop")
    assert query(warehouse, "select count(*) from raw_stores.stores") == [(5,)]
    assert query(warehouse, "select count(*) from marts.orders") == [(0,)]
    assert query(warehouse, "select count(*) from marts.daily_activity") == [(0,)]
    assert query(warehouse, "select count(*), sum(number_of_orders), sum(lifetime_value) from marts.customers") == [
        (shop.customers, 0, 0)
    ]
