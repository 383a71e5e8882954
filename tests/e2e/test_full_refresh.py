"""A full refresh on DuckDB writes each row once and swaps the new table in atomically.

dlt's `insert-from-staging` wrote a `replace` table twice (staging schema, then a copy) and kept
the staging copy in the file. Mallard's DuckDB destination (`include/mallard/duckdb_destination.py`)
loads it into `<table>~swap` and renames that over the table in one transaction. These tests run
a `kind: python` source (its functions are below) through the real `ingest.extract` and `load`.
(`test_source_kinds.py` proves a failed full refresh leaves the previous table readable.)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.warehouse import FULL_REFRESH_SWAP_SUFFIX

pytestmark = pytest.mark.e2e
UTC = dt.UTC
STAGING = ingest.STAGING_DATASET_LAYOUT % "raw_catalog"
START, END = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)
# Each version of the orders: (id, customer, [line skus]).
ORDERS = {
    1: [(1, "ada", ["a", "b"]), (2, "bob", ["c"]), (3, "cy", [])],
    2: [(2, "bob", ["c", "d"]), (4, "dee", [])],
    3: [(5, "eve", [])],
    4: [(6, "fay", None), (7, "gil", None)],  # no `lines` key at all: dlt makes no orders__lines table
}


def versioned_orders(start: dt.datetime, end: dt.datetime, version: int, file_format: str | None = None) -> Any:
    """One version of a table replaced in full every run, with a nested table of order lines."""
    import dlt

    hints = {"file_format": file_format} if file_format else {}

    @dlt.resource(name="orders", primary_key="id", write_disposition="replace", **hints)
    def orders() -> Iterator[list[dict[str, Any]]]:
        yield [
            {"id": i, "customer": c} | ({"lines": [{"sku": s} for s in skus]} if skus is not None else {})
            for i, c, skus in ORDERS[version]
        ]

    return orders


def _run(tmp_path: Path, version: int, **args: Any) -> None:
    path = tmp_path / "sources" / "catalog.yml"
    path.parent.mkdir(exist_ok=True)
    function = "tests.e2e.test_full_refresh:versioned_orders"
    path.write_text(f"kind: python\nfunction: {function}\nargs: {json.dumps({'version': version, **args})}\n")
    source = parse_source_file(path)
    work_dir = ingest.run_work_dir("test_full_refresh", f"run_{version}_{len(args)}", source.name)
    ingest.extract(source, Interval(START, END), work_dir)
    ingest.load(source, work_dir)


def _query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _shape(warehouse: Path) -> list[tuple]:
    """Every column of the raw tables: name, type and whether it may be NULL."""
    return _query(
        warehouse,
        "select table_name, column_name, data_type, is_nullable from duckdb_columns() "
        "where schema_name = 'raw_catalog' and table_name like 'orders%' order by table_name, column_index",
    )


def _expected(version: int) -> tuple[list[tuple], list[tuple]]:
    orders = [(i, c) for i, c, _ in ORDERS[version]]
    lines = sorted((i, s) for i, _, skus in ORDERS[version] for s in skus or [])
    return orders, lines


def _loaded(warehouse: Path) -> tuple[list[tuple], list[tuple]]:
    orders = _query(warehouse, "select id, customer from raw_catalog.orders order by id")
    lines = _query(
        warehouse,
        "select o.id, l.sku from raw_catalog.orders__lines l join raw_catalog.orders o on l._dlt_parent_id = o._dlt_id "
        "order by 1, 2",
    )
    return orders, lines


def test_a_full_refresh_replaces_the_table_and_its_nested_table_writing_each_row_once(warehouse, tmp_path):
    _run(tmp_path, 1)
    assert _loaded(warehouse) == _expected(1)
    shape = _shape(warehouse)
    assert ("orders", "id", "BIGINT", False) in shape and ("orders", "_dlt_id", "VARCHAR", False) in shape
    # What dbt's staging models are: views over the raw table, in another schema.
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema staging; create view staging.orders as select id from raw_catalog.orders")
        # The copy dlt's insert-from-staging kept, in a warehouse loaded before the swap existed.
        connection.execute(f"create schema {STAGING}; create table {STAGING}.orders as from raw_catalog.orders")

    for version in (2, 3):  # 3 has no lines at all: the nested table ends up empty, not stale
        _run(tmp_path, version)
        assert _loaded(warehouse) == _expected(version)
        assert _shape(warehouse) == shape  # same columns, types, order and NOT NULLs after the swap
        assert _query(warehouse, "select id from staging.orders order by id") == [
            (i,) for i, _ in _expected(version)[0]
        ]
    # Rows without the nested list at all: the nested table is emptied, not left with version 2's.
    _run(tmp_path, 2)
    _run(tmp_path, 4)
    assert _loaded(warehouse) == _expected(4)
    assert _query(warehouse, "select count(*) from raw_catalog.orders__lines") == [(0,)]
    assert _shape(warehouse) == shape
    # Written once: no staging copy (dlt's insert-from-staging kept one, now dropped) and no swap table left.
    tables = _query(warehouse, "select schema_name, table_name from duckdb_tables() order by all")
    assert not [t for t in tables if t[1].startswith("orders") and t[0] != "raw_catalog"], tables
    assert not [t for t in tables if t[1].endswith(FULL_REFRESH_SWAP_SUFFIX)], tables


def test_a_full_refresh_from_a_file_format_the_swap_cannot_read_fails_clearly_and_keeps_the_table(warehouse, tmp_path):
    _run(tmp_path, 1)
    with pytest.raises(Exception, match=r"full refresh of orders\S* on DuckDB loads parquet.*not insert_values"):
        _run(tmp_path, 2, file_format="insert_values")
    assert _loaded(warehouse) == _expected(1)
    _run(tmp_path, 2)  # the same version from Parquet replaces it
    assert _loaded(warehouse) == _expected(2)


def test_a_swap_run_again_after_it_committed_changes_nothing(warehouse, tmp_path, monkeypatch, caplog):
    """A load killed after the swap committed but before dlt marked the job done runs it again on retry."""
    from include.mallard.duckdb_destination import SwapInJob

    _run(tmp_path, 1)
    one_try = SwapInJob.run

    def committed_then_tried_again(job: SwapInJob) -> None:
        one_try(job)
        one_try(job)

    monkeypatch.setattr(SwapInJob, "run", committed_then_tried_again)
    _run(tmp_path, 2)
    assert _loaded(warehouse) == _expected(2)
    assert "orders is already swapped in" in caplog.text
