"""Interval loads are exact and idempotent (real dlt, dbt, DuckDB under `airflow dags test`).

- a manual run with a conf range loads exactly that range;
- a second, overlapping range adds only what is new (merge, no duplicates);
- rerunning the same interval three times leaves identical tables (checksums);
- the same days loaded as one range give the same final tables as the overlapping pieces.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from include.mallard.config import get_source
from include.mallard.paths import SOURCES_DIR
from include.mallard.sources import synthetic
from tests.e2e.helpers import airflow_env, query, run_airflow, table_checksums

pytestmark = pytest.mark.e2e
UTC = dt.UTC


def _day(day: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, tzinfo=UTC)


class Warehouse:
    """A throwaway Airflow home + warehouse that runs the ELT DAG for conf ranges."""

    def __init__(self, root):
        self.path = root / "warehouse.duckdb"
        self.env = airflow_env(root / "airflow", self.path, root / "work")
        self.log = root / "airflow.log"
        run_airflow(["db", "migrate"], self.env, self.log)
        self.runs = 0

    def run(self, start: str, end: str) -> None:
        # Each `dags test` run needs its own logical date; the conf range is what it loads.
        self.runs += 1
        logical_date = f"2030-01-{self.runs:02d}"
        conf = json.dumps({"start": start, "end": end})
        run_airflow(["dags", "test", "mallard_elt", logical_date, "--conf", conf], self.env, self.log)


def _expected_counts(start: dt.datetime, end: dt.datetime) -> tuple[int, int, Decimal]:
    orders, payments = synthetic.interval_rows(get_source(SOURCES_DIR, "shop"), start, end)
    return len(orders), len(payments), Decimal(sum(p["amount_cents"] for p in payments)) / 100


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    """Jan 1-3, then the overlapping Jan 3-5 three times; checksums after each."""
    warehouse = Warehouse(tmp_path_factory.mktemp("pieces"))
    warehouse.run("2024-01-01", "2024-01-04")
    first_range = {
        "orders": query(warehouse.path, "select count(*) from raw_shop.orders")[0][0],
        "payments": query(warehouse.path, "select count(*) from raw_shop.payments")[0][0],
        "revenue": query(warehouse.path, "select sum(order_total) from marts.orders")[0][0],
        "days": query(warehouse.path, "select count(*) from marts.daily_activity")[0][0],
        "spend_rows": query(warehouse.path, "select count(*) from raw_marketing.spend")[0][0],
    }
    checksums = []
    for _ in range(3):
        warehouse.run("2024-01-03", "2024-01-06")
        checksums.append(table_checksums(warehouse.path))
    return warehouse, first_range, checksums


def test_conf_range_loads_exactly_that_range(pieces):
    _, first_range, _ = pieces
    orders, payments, revenue = _expected_counts(_day(1), _day(4))
    assert (first_range["orders"], first_range["payments"]) == (orders, payments)
    assert first_range["revenue"] == revenue
    assert first_range["days"] == 3
    assert first_range["spend_rows"] == 3 * 3  # three channels a day in the CSV exports


def test_overlapping_range_adds_only_new_rows(pieces):
    warehouse, _, _ = pieces
    orders, payments, revenue = _expected_counts(_day(1), _day(6))
    assert query(warehouse.path, "select count(*), count(distinct id) from raw_shop.orders") == [(orders, orders)]
    assert query(warehouse.path, "select count(*) from raw_shop.payments") == [(payments,)]
    assert query(warehouse.path, "select count(*), sum(order_total) from marts.orders") == [(orders, revenue)]
    assert query(warehouse.path, "select count(*) from marts.daily_activity") == [(5,)]


def test_rerunning_an_interval_three_times_changes_nothing(pieces):
    _, _, checksums = pieces
    assert checksums[0] == checksums[1] == checksums[2]
    assert {"raw_shop.orders", "marts.orders", "marts.daily_activity", "marts.customers"} <= checksums[0].keys()


def test_one_range_equals_the_overlapping_pieces(pieces, tmp_path_factory):
    _, _, checksums = pieces
    whole = Warehouse(tmp_path_factory.mktemp("whole"))
    whole.run("2024-01-01", "2024-01-06")
    assert table_checksums(whole.path) == checksums[-1]
