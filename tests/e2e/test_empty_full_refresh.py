"""A full-refresh table whose source gives no rows follows `on_empty`, whatever the kind and contract.

Left to dlt, an empty `replace` resource kept the table's old rows under `schema_contract: evolve`
and emptied the table under `freeze` (the restored schema knows it): both silently, with the run
reported as a success. (`kind: files` has its own tests in test_file_faults.py.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from dlt.common.libs.sql_alchemy import sa

from include.mallard.sources.empty_input import EmptyInputError
from tests.e2e.test_source_kinds import SQL_SOURCE, Runner, day, fill_shop_database

pytestmark = pytest.mark.e2e
EMPTY_INPUT_LOGGER = "include.mallard.sources.empty_input"


def catalog(start: dt.datetime, end: dt.datetime, products: int, events: int) -> Any:
    """`products` are replaced every run, `events` appended: only the first is a full refresh."""
    import dlt

    @dlt.resource(name="products", primary_key="sku", write_disposition="replace")
    def products_resource() -> Iterator[list[dict[str, Any]]]:
        if products:
            yield [{"sku": f"p{i}", "price": i * 1.5} for i in range(products)]

    @dlt.resource(name="events", write_disposition="append")
    def events_resource() -> Iterator[list[dict[str, Any]]]:
        if events:
            yield [{"at": start.isoformat(), "n": i} for i in range(events)]

    return [products_resource, events_resource]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


def _catalog_source(runner: Runner, products: int, events: int, settings: str) -> Any:
    args = json.dumps({"products": products, "events": events})
    function = "tests.e2e.test_empty_full_refresh:catalog"
    return runner.source("catalog", f"kind: python\nfunction: {function}\nargs: {args}\n{settings}")


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_an_empty_full_refresh_fails_by_default_and_loads_nothing(runner, contract):
    settings = f"schema_contract: {contract}\n"
    assert runner.run(_catalog_source(runner, 3, 2, settings), day(1), day(2)) == {"products": 3, "events": 2}
    with pytest.raises(EmptyInputError) as raised:
        runner.run(_catalog_source(runner, 0, 4, settings), day(2), day(3))
    message = str(raised.value)
    assert "source 'catalog', table 'products': the source gave no rows" in message, message
    assert "`on_empty: fail` (the default for full-refresh tables)" in message, message
    assert "set `on_empty: warn` (or ok)" in message, message
    # Nothing of the failed run loaded: not the events either.
    assert runner.count("raw_catalog.products") == 3 and runner.count("raw_catalog.events") == 2


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
@pytest.mark.parametrize(("policy", "level"), [("warn", logging.WARNING), ("ok", logging.INFO)])
def test_on_empty_warn_or_ok_keeps_the_tables_rows_and_loads_the_rest(runner, caplog, contract, policy, level):
    # Under `freeze` dlt writes an empty load job for the table; loaded, it would empty the table.
    settings = f"schema_contract: {contract}\non_empty: {policy}\n"
    runner.run(_catalog_source(runner, 3, 2, settings), day(1), day(2))
    caplog.set_level(logging.INFO, logger=EMPTY_INPUT_LOGGER)
    assert runner.run(_catalog_source(runner, 0, 4, settings), day(2), day(3)) == {"events": 4}
    assert runner.query("select sku from raw_catalog.products order by sku") == [("p0",), ("p1",), ("p2",)]
    assert runner.count("raw_catalog.events") == 6
    [record] = [r for r in caplog.records if r.name == EMPTY_INPUT_LOGGER]
    assert record.levelno == level, record
    assert "table 'products'" in record.getMessage() and f"(`on_empty: {policy}`)" in record.getMessage()
    # The next run with rows replaces the table as usual.
    runner.run(_catalog_source(runner, 1, 0, settings), day(3), day(4))
    assert runner.query("select sku from raw_catalog.products") == [("p0",)]


def test_an_empty_sql_table_names_its_own_on_empty_field(runner, monkeypatch, tmp_path):
    database = tmp_path / "shop.db"
    fill_shop_database(sa.create_engine(f"sqlite:///{database}"))
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{database}")
    text = SQL_SOURCE.format(credentials="{env: SHOP_DB_URL}", schema_line="", backend="pyarrow")
    runner.run(runner.source("shop", text), day(1), day(2))
    with sa.create_engine(f"sqlite:///{database}").begin() as connection:
        connection.execute(sa.text("delete from customers"))  # a truncated source table
    with pytest.raises(EmptyInputError) as raised:
        runner.run(runner.source("shop", text), day(2), day(3))
    assert "table 'customers'" in str(raised.value) and "set `tables[2].on_empty: warn`" in str(raised.value)
    assert runner.count("raw_shop.customers") == 5 and runner.count("raw_shop.orders") == 24
    # The table's own setting: it keeps its rows, the incremental tables load their interval.
    assert text.endswith("  - name: customers              # no cursor: full refresh\n    primary_key: id\n")
    kept = text + "    on_empty: warn\n"
    assert runner.run(runner.source("shop", kept), day(2), day(3)) == {"orders": 24, "spend": 2}
    assert runner.count("raw_shop.customers") == 5 and runner.count("raw_shop.orders") == 48


def routed(start: dt.datetime, end: dt.datetime) -> Any:
    """A full-refresh resource whose rows go to a table of another name: it is not empty."""
    import dlt

    @dlt.resource(name="router", write_disposition="replace")
    def router() -> Iterator[Any]:
        yield dlt.mark.with_table_name([{"sku": "p1"}, {"sku": "p2"}], "products_v2")

    return router


def test_a_resource_whose_rows_go_to_another_table_is_not_empty(runner):
    source = runner.source("routed", "kind: python\nfunction: tests.e2e.test_empty_full_refresh:routed\n")
    assert runner.run(source, day(1), day(2)) == {"products_v2": 2}
    assert runner.count("raw_routed.products_v2") == 2
