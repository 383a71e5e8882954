"""A warehouse snapshot for the UI tests: real DuckDB files with raw tables, dbt's tables and views,
and the run history in `mallard_meta` with exactly the agreed columns (include/mallard/history.py
writes them in a real run).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from include.mallard.dbt_project import manifest_path
from include.mallard.paths import DBT_PROJECT_DIR

UTC = dt.UTC
DAG_ID = "mallard_elt"
RUN_OK = "scheduled__2024-01-08T00:00:00+00:00"
RUN_BAD = "manual__2024-01-09T06:00:00+00:00"

LOADS_DDL = """create table mallard_meta.loads (
    dag_id text, run_id text, source text, table_name text, rows bigint,
    interval_start timestamptz, interval_end timestamptz, load_id text,
    started_at timestamptz, finished_at timestamptz, duration_seconds double,
    status text, error text)"""
DBT_NODES_DDL = """create table mallard_meta.dbt_nodes (
    dag_id text, run_id text, unique_id text, resource_type text, name text, status text,
    failures bigint, message text, execution_seconds double, finished_at timestamptz)"""
SCHEMA_CHANGES_DDL = """create table mallard_meta.schema_changes (
    dag_id text, run_id text, source text, table_name text, column_name text, change text,
    old_type text, new_type text, seen_at timestamptz)"""


def node_id(name: str) -> str:
    """The unique id dbt gives the test or model `name` in the project's manifest."""
    nodes = json.loads(manifest_path(DBT_PROJECT_DIR).read_text())["nodes"]
    return next(uid for uid, node in nodes.items() if node["name"] == name)


def ts(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, tzinfo=UTC)


@dataclass
class History:
    loads: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[Any, ...]] = field(default_factory=list)
    changes: list[tuple[Any, ...]] = field(default_factory=list)


def demo_history() -> History:
    """Two runs: a clean one, then one where shop's load failed and a dbt test found 3 bad rows."""
    history = History()
    for table, rows in (("orders", 40), ("customers", 120), ("payments", 48)):
        history.loads.append(
            (
                DAG_ID,
                RUN_OK,
                "shop",
                table,
                rows,
                ts(7),
                ts(8),
                "1704672000.123",
                ts(8, 0, 1),
                ts(8, 0, 3),
                2.5,
                "success",
                None,
            )
        )
    history.loads.append(
        (
            DAG_ID,
            RUN_OK,
            "stores",
            "stores",
            5,
            ts(7),
            ts(8),
            "1704672000.456",
            ts(8, 0, 1),
            ts(8, 0, 2),
            1.25,
            "success",
            None,
        )
    )
    history.loads.append(
        (
            DAG_ID,
            RUN_BAD,
            "shop",
            None,
            None,
            ts(8),
            ts(9),
            None,
            ts(9, 6),
            ts(9, 6, 1),
            3.0,
            "failed",
            "IO Error: cannot open /work/secret/host/path/orders.parquet",
        )
    )
    history.loads.append(
        (
            DAG_ID,
            RUN_BAD,
            "stores",
            "stores",
            6,
            ts(8),
            ts(9),
            "1704780000.789",
            ts(9, 6),
            ts(9, 6, 1),
            1.0,
            "success",
            None,
        )
    )
    ok_nodes = [
        ("model.mallard.stg_shop__orders", "model", "stg_shop__orders", "success", None),
        ("model.mallard.customers", "model", "customers", "success", None),
        (
            node_id("not_null_stg_shop__orders_order_id"),
            "test",
            "not_null_stg_shop__orders_order_id",
            "pass",
            0,
        ),
    ]
    for unique_id, kind, name, status, failures in ok_nodes:
        history.nodes.append((DAG_ID, RUN_OK, unique_id, kind, name, status, failures, "OK", 0.5, ts(8, 0, 5)))
    bad_nodes = [
        ("model.mallard.stg_stores__stores", "model", "stg_stores__stores", "success", None, "OK"),
        (
            node_id("not_null_stg_stores__stores_store_name"),
            "test",
            "not_null_stg_stores__stores_store_name",
            "fail",
            3,
            "Got 3 results, configured to fail if != 0",
        ),
        (
            node_id("unique_stg_stores__stores_store_id"),
            "test",
            "unique_stg_stores__stores_store_id",
            "pass",
            0,
            "PASS",
        ),
        ("model.mallard.orders", "model", "orders", "skipped", None, "SKIP"),
        ("model.mallard.customers", "model", "customers", "skipped", None, "SKIP"),
    ]
    for unique_id, kind, name, status, failures, message in bad_nodes:
        history.nodes.append((DAG_ID, RUN_BAD, unique_id, kind, name, status, failures, message, 0.25, ts(9, 6, 2)))
    history.changes.append((DAG_ID, RUN_BAD, "stores", "stores", "opened_on", "added", None, "date", ts(9, 6)))
    history.changes.append(
        (DAG_ID, RUN_BAD, "stores", "stores", "tax_rate", "type_changed", "bigint", "double", ts(9, 6))
    )
    return history


def write_warehouse(warehouse: Path, history: History | None, customers: int = 120) -> None:
    """Raw tables of shop and stores, dbt's marts table and staging view, and (optionally) the history."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as db:
        db.execute("create schema raw_shop; create schema raw_stores; create schema marts; create schema staging")
        db.execute(
            "create table raw_shop.orders as select i as id, i % 7 as customer_id, "
            "timestamptz '2024-01-07 00:00:00+00' + to_minutes(i * 30) as ordered_at, "
            "_dlt_load_id: '1704672000.123', _dlt_id: 'x' || i from range(40) t(i)"
        )
        db.execute(
            f"create table raw_shop.customers as select i as id, 'customer ' || i as name from range({customers}) t(i)"
        )
        db.execute("create table raw_shop._dlt_loads (load_id text, status bigint)")
        db.execute(
            "create table raw_stores.stores as select i as store_id, 'store ' || i as store_name, "
            "date '2024-01-01' as opened_on from range(1, 6) t(i)"
        )
        db.execute(
            "create table marts.customers as select id as customer_id, name, id % 3 as number_of_orders "
            "from raw_shop.customers"
        )
        # As dbt-duckdb writes views: naming the warehouse's catalog (DuckDB keeps the view working in a copy).
        db.execute('create view staging.stg_shop__orders as select id as order_id from "mallard"."raw_shop"."orders"')
        if history is not None:
            db.execute("create schema mallard_meta")
            for ddl, rows, width in (
                (LOADS_DDL, history.loads, 13),
                (DBT_NODES_DDL, history.nodes, 10),
                (SCHEMA_CHANGES_DDL, history.changes, 9),
            ):
                db.execute(ddl)
                name = ddl.split()[2]
                for row in rows:
                    db.execute(f"insert into {name} values ({', '.join('?' * width)})", list(row))


def publish(warehouse: Path, snapshot: Path) -> None:
    """The snapshot as a run publishes it: a copy of the closed warehouse file."""
    shutil.copyfile(warehouse, snapshot)
