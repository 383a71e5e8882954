"""One DAG run end to end (`airflow dags test`): real dlt, dbt and DuckDB; marts checked against the generator."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from include.mallard.config import get_source
from include.mallard.paths import INCLUDE_DIR, SOURCES_DIR
from include.mallard.sources import synthetic
from tests.e2e.helpers import airflow_env, query, run_airflow, table_checksums

UTC = dt.UTC
LOGICAL_DATE = "2024-01-08"
# A run triggered for 2024-01-08 covers the day before it.
DAY = dt.date(2024, 1, 7)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("dags-test")
    warehouse = root / "warehouse.duckdb"
    env = airflow_env(root / "airflow", warehouse, root / "work")
    # The connection may name the same file (airflow_settings.yaml names the default one).
    env["AIRFLOW_CONN_MALLARD_WAREHOUSE"] = json.dumps({"conn_type": "generic", "host": str(warehouse)})
    log = root / "airflow.log"
    run_airflow(["db", "migrate"], env, log)
    run_airflow(["dags", "test", "mallard_elt", LOGICAL_DATE], env, log)
    return warehouse


@pytest.fixture(scope="module")
def expected():
    shop = get_source(SOURCES_DIR, "shop")
    start = dt.datetime.combine(DAY, dt.time(), UTC)
    orders, payments = synthetic.interval_rows(shop, start, start + dt.timedelta(days=1))
    return shop, orders, payments


pytestmark = pytest.mark.e2e


def test_raw_schemas_hold_exactly_the_interval(warehouse, expected):
    _, orders, payments = expected
    assert query(warehouse, "select count(*) from raw_shop.orders") == [(len(orders),)]
    assert query(warehouse, "select count(*) from raw_shop.payments") == [(len(payments),)]
    assert query(warehouse, "select count(*) from raw_stores.stores") == [(5,)]
    [(first, last)] = query(warehouse, "select min(ordered_at), max(ordered_at) from raw_shop.orders")
    assert first.date() == DAY and last.date() == DAY


def test_orders_mart_totals_match_the_generator(warehouse, expected):
    _, orders, payments = expected
    assert query(warehouse, "select count(*) from marts.orders") == [(len(orders),)]
    expected_revenue = Decimal(sum(p["amount_cents"] for p in payments)) / 100
    [(revenue,)] = query(warehouse, "select sum(order_total) from marts.orders")
    assert revenue == expected_revenue
    by_method = defaultdict(int)
    for payment in payments:
        by_method[payment["payment_method"]] += payment["amount_cents"]
    [(card,)] = query(warehouse, "select sum(credit_card_amount) from marts.orders")
    assert card == Decimal(by_method["credit_card"]) / 100


def test_customer_lifetime_value_matches_the_generator(warehouse, expected):
    shop, orders, payments = expected
    top_customer, order_count = Counter(o["customer_id"] for o in orders).most_common(1)[0]
    their_orders = {o["id"] for o in orders if o["customer_id"] == top_customer}
    value = Decimal(sum(p["amount_cents"] for p in payments if p["order_id"] in their_orders)) / 100
    rows = query(
        warehouse, "select number_of_orders, lifetime_value from marts.customers where customer_id = ?", [top_customer]
    )
    assert rows == [(order_count, value)]
    assert query(warehouse, "select count(*) from marts.customers") == [(shop.customers,)]


def test_daily_activity_joins_marketing_spend_from_the_csv(warehouse, expected):
    _, orders, _ = expected
    spend = Decimal(0)
    for path in (INCLUDE_DIR / "data" / "marketing").glob("spend_*.csv"):
        with path.open() as handle:
            spend += sum(Decimal(r["spend"]) for r in csv.DictReader(handle) if r["spend_date"] == DAY.isoformat())
    rows = query(warehouse, "select activity_date, order_count, marketing_spend from marts.daily_activity")
    assert rows == [(DAY, len(orders), spend)]


# --- run history and the snapshot (issue 16) -------------------------------------------------------


def test_the_run_history_records_every_load_and_every_dbt_node(warehouse):
    from include.mallard.dbt_project import manifest_path
    from include.mallard.paths import DBT_PROJECT_DIR

    loads = query(
        warehouse,
        "select source || '.' || table_name, rows, interval_start, interval_end, status, load_id is not null "
        "from mallard_meta.loads order by 1",
    )
    start = dt.datetime.combine(DAY, dt.time(), UTC)
    recorded = {table: rows for table, rows, *_ in loads}
    assert {tuple(rest) for _, _, *rest in loads} == {(start, start + dt.timedelta(days=1), "success", True)}
    # The rows each load's package had are the rows in its raw table (one interval into a fresh warehouse).
    for name, rows in recorded.items():
        source, table = name.split(".")
        assert query(warehouse, f"select count(*) from raw_{source}.{table}") == [(rows,)], name
    assert {"shop.orders", "shop.payments", "shop.customers", "stores.stores", "marketing.spend"} <= recorded.keys()

    manifest = json.loads(manifest_path(DBT_PROJECT_DIR).read_text())
    expected = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] in ("model", "test")}
    nodes = dict(query(warehouse, "select unique_id, status from mallard_meta.dbt_nodes"))
    assert nodes.keys() == expected
    assert {status for uid, status in nodes.items() if uid.startswith("model.")} == {"success"}
    assert {status for uid, status in nodes.items() if uid.startswith("test.")} == {"pass"}
    assert query(warehouse, "select count(*) from mallard_meta.schema_changes") == [(0,)]  # a first load


def test_the_run_publishes_a_snapshot_holding_what_the_warehouse_holds(warehouse):
    snapshot = warehouse.with_name("mallard.read.duckdb")
    assert snapshot.is_file()
    assert table_checksums(snapshot) == table_checksums(warehouse)
    assert query(snapshot, "select count(*) from mallard_meta.dbt_nodes") == query(
        warehouse, "select count(*) from mallard_meta.dbt_nodes"
    )


# --- Assets (issue 18) --------------------------------------------------------------------------


def test_each_load_records_an_asset_event_per_raw_table_named_as_cosmos_names_the_models(warehouse):
    import sqlite3

    from include.mallard.assets import table_uri

    with sqlite3.connect(warehouse.parent / "airflow" / "airflow.db") as db:
        events = db.execute(
            "select a.name, e.extra, e.source_task_id from asset_event e join asset a on a.id = e.asset_id"
        ).fetchall()
    by_name = {name: (json.loads(extra), task) for name, extra, task in events}
    start = dt.datetime.combine(DAY, dt.time(), UTC)
    loaded = dict(query(warehouse, "select source || '.' || table_name, rows from mallard_meta.loads"))
    assert len(loaded) >= 5
    for name, rows in loaded.items():
        source, table = name.split(".")
        extra, task = by_name.pop(table_uri(warehouse, f"raw_{source}", table))
        assert task == f"ingest_{source}.load"
        assert extra["rows"] == rows
        assert extra["interval"] == [start.isoformat(), (start + dt.timedelta(days=1)).isoformat()]
    # What is left are the model Assets, in the same namespace (the absolute warehouse path), each
    # from its model's task: its declared outlet, once (Cosmos's own alias emission is off).
    for model in ("orders", "customers", "daily_activity"):
        _, task = by_name.pop(table_uri(warehouse, "marts", model))
        assert task == f"dbt.{model}.run"
    assert all(task.startswith("dbt.") and task.endswith("run") for _, task in by_name.values()), by_name
    assert len(events) == len(loaded) + 3 + len(by_name), "one event per table"


# --- The dbt build task's node reports (issue 15) -----------------------------------------------


def test_the_build_task_left_one_finished_report_per_dbt_node(warehouse):
    """One XCom per model, seed and test-watched model, pushed off dbt's threads, holding its final state."""
    import sqlite3

    from include.mallard.dbt_group import BUILD_TASK_ID

    with sqlite3.connect(warehouse.parent / "airflow" / "airflow.db") as db:
        rows = db.execute("select key, value from xcom where task_id = ?", [BUILD_TASK_ID]).fetchall()
        (rendered,) = db.execute(
            "select rendered_fields from rendered_task_instance_fields where task_id = 'dbt.orders.run'"
        ).fetchone()
    values = {key: json.loads(value) for key, value in rows}
    reports = {key.removesuffix("_report"): value for key, value in values.items() if key.endswith("_report")}
    nodes = {
        uid.replace(".", "__")
        for (uid,) in query(warehouse, "select unique_id from mallard_meta.dbt_nodes where resource_type <> 'test'")
    }
    assert reports.keys() == nodes and len(nodes) >= 9
    for node, report in reports.items():
        event = report["dbt_event"]
        assert event["status"] in {"success", "pass"}, (node, event)
        assert event["start_time"] and event["finish_time"], (node, event)
        assert report["status"]["status"] == "success", (node, report)
    # Models report their compiled SQL; tested models their tests' status.
    assert {report.get("tests_status") for report in reports.values()} - {None} == {"pass"}
    assert all(report["compiled_sql"] for node, report in reports.items() if node.startswith("model__"))
    assert values["task_status"] == "completed"
    # The model's task read its compiled SQL from the report (Airflow's "Rendered Template" tab).
    orders_sql = reports["model__mallard__orders"]["compiled_sql"]
    assert json.loads(rendered)["compiled_sql"] == orders_sql and "stg_shop__orders" in orders_sql
    # Nothing else per node: no Cosmos per-field key, no key of a test node.
    assert [key for key in values if key not in {f"{node}_report" for node in nodes}] == [
        key for key in values if "__" not in key
    ], sorted(values)


def test_the_build_task_handed_cosmos_parser_only_the_events_it_reads(warehouse):
    """The held-back events are most of the build's; tests/e2e/test_dbt_event_filter.py proves they change nothing."""
    import re

    log = (warehouse.parent / "airflow.log").read_text()
    counts = re.findall(r"Cosmos's parser was handed (\d+) of dbt's (\d+) events", log)
    assert len(counts) == 1, counts  # one build, its callback wrapped once
    handed, seen = map(int, counts[0])
    assert 0 < handed < seen / 2, (handed, seen)


def test_the_build_ran_dbt_without_its_own_loggers_and_the_task_log_still_has_dbts_lines(warehouse):
    """No JSON to stdout, no dbt.log in Cosmos's temporary project: what dbt says comes through the callback."""
    log = (warehouse.parent / "airflow.log").read_text()
    invocation = log[log.index("Trying to run dbtRunner with") :].splitlines()[1]
    assert "'--log-level', 'none'" in invocation and "--log-format" not in invocation, invocation
    assert (
        "Running with dbt=" in log and "Done. PASS=" in log and "OK created sql incremental model marts.orders" in log
    )
