"""A row without a cursor value belongs to no interval: `on_null_cursor` says what it does.

A SQL table's interval query (`start <= cursor < end`) left such rows out before dlt saw them:
`updated_at` null for rows never updated meant rows that no run ever loaded, with every run
reported as a success. CSV and JSONL failed with dlt's message, which names no source, table or
setting. (REST resources are covered by the unit tests of the check, with dotted paths.)
"""

from __future__ import annotations

import pytest
from dlt.common.libs.sql_alchemy import sa

from include.mallard.sources.hints import CursorValueError
from tests.e2e.test_source_kinds import SQL_SOURCE, Runner, day, fill_shop_database

pytestmark = pytest.mark.e2e
NULL_IDS = (30, 31)  # two of the 48 hourly orders (Jan 2, 06:00 and 07:00) lose their updated_at


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


def _shop_database(tmp_path, monkeypatch) -> None:
    database = tmp_path / "shop.db"
    fill_shop_database(sa.create_engine(f"sqlite:///{database}"))
    with sa.create_engine(f"sqlite:///{database}").begin() as connection:
        connection.execute(sa.text(f"update orders set updated_at = null where id in {NULL_IDS}"))
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{database}")


def _sql_source(runner: Runner, backend: str, orders_setting: str = "") -> object:
    text = SQL_SOURCE.format(credentials="{env: SHOP_DB_URL}", schema_line="", backend=backend)
    text = text.replace("    cursor: updated_at\n", f"    cursor: updated_at\n{orders_setting}", 1)
    return runner.source("shop", text)


@pytest.mark.parametrize("backend", ["pyarrow", "sqlalchemy"])
def test_sql_rows_without_a_cursor_fail_the_run_by_default_naming_the_setting(runner, tmp_path, monkeypatch, backend):
    _shop_database(tmp_path, monkeypatch)
    with pytest.raises(CursorValueError) as raised:
        runner.run(_sql_source(runner, backend), day(1), day(2))
    message = str(raised.value)
    assert "source 'shop', table 'orders': 2 row(s) have no value in the cursor 'updated_at'" in message, message
    assert "`tables[0].on_null_cursor` to include" in message, message
    assert not runner.warehouse.exists()  # the extract failed: nothing loaded, not even the other tables


@pytest.mark.parametrize("backend", ["pyarrow", "sqlalchemy"])
def test_include_loads_them_in_every_run_merged_and_exclude_leaves_them_out(runner, tmp_path, monkeypatch, backend):
    _shop_database(tmp_path, monkeypatch)
    include = _sql_source(runner, backend, "    on_null_cursor: include\n")
    assert runner.run(include, day(1), day(2))["orders"] == 24 + 2
    assert runner.run(include, day(2), day(3))["orders"] == 22 + 2
    assert runner.query("select count(*), count(distinct id) from raw_shop.orders") == [(48, 48)]
    nulls = runner.query("select id from raw_shop.orders where updated_at is null order by id")
    assert nulls == [(i,) for i in NULL_IDS]

    exclude = _sql_source(runner, backend, "    on_null_cursor: exclude\n")
    assert runner.run(exclude, day(3), day(4)).get("orders", 0) == 0  # Jan 3 has no orders; the nulls stay out
    assert runner.run(exclude, day(2), day(3))["orders"] == 22


def test_a_csv_row_without_a_cursor_fails_readably_or_loads_once_with_include(runner, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("id,at\n1,2024-01-01T05:00:00Z\n2,\n3,2024-01-02T05:00:00Z\n")
    table = "{name: t, glob: '*.csv', cursor: at, primary_key: id%s}"
    with pytest.raises(CursorValueError) as raised:
        runner.run(runner.source("f", f"kind: files\npath: {data}\ntables:\n  - {table % ''}\n"), day(1), day(2))
    assert "table 't': 1 row(s) have no value in the cursor 'at'" in str(raised.value)
    source = runner.source("f", f"kind: files\npath: {data}\ntables:\n  - {table % ', on_null_cursor: include'}\n")
    runner.run(source, day(1), day(2))
    runner.run(source, day(2), day(3))
    assert runner.query("select id from raw_f.t order by id") == [(1,), (2,), (3,)]


def test_a_sqlite_cursor_that_is_not_a_time_fails_the_run_instead_of_being_left_out(runner, tmp_path, monkeypatch):
    # julianday('') is NULL: such a row passed neither the interval condition nor `IS NULL`.
    _shop_database(tmp_path, monkeypatch)
    with sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}").begin() as connection:
        connection.execute(sa.text(f"update orders set updated_at = '' where id in {NULL_IDS}"))
    with pytest.raises(Exception) as raised:
        runner.run(_sql_source(runner, "sqlalchemy", "    on_null_cursor: include\n"), day(1), day(2))
    # Loud, though in dlt's words (the resource and the value), not silently left out.
    assert "`orders`" in str(raised.value) and "''" in str(raised.value), raised.value
