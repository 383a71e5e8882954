"""Every source kind against a real server or real files, through the real extract and load steps.

Each test writes a source YAML, validates it like `cli validate` does, then runs
`ingest.extract` + `ingest.load` for run intervals into a throwaway DuckDB warehouse and checks
the `raw_<source>` tables. Servers (an HTTP API, PostgreSQL) run on 127.0.0.1 only.

The runner calls `schema_store.remember()` after each extract, the call `ingest.extract` makes
once wired (see docs/sources.md, "Schema contracts"); it is what lets a contract compare a run
with the previous one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.common.libs.sql_alchemy import sa

from include.mallard import ingest
from include.mallard.config import SourceConfig
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.secrets import reference_issues
from include.mallard.sources import schema_store
from include.mallard.warehouse import is_lock_error, retry_on_lock
from tests.e2e.helpers import warehouse_held_open
from tests.e2e.servers import (
    API_KEY,
    API_PASSWORD,
    API_TOKEN,
    API_USER,
    PostgresUnavailable,
    ShopApi,
    make_items,
    make_tickets,
    postgres_server,
    serve_api,
)

pytestmark = pytest.mark.e2e
UTC = dt.UTC


def day(number: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, number, hour, tzinfo=UTC)


class Runner:
    """A throwaway warehouse and work dir; writes source files and runs extract + load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.warehouse = root / "warehouse.duckdb"
        self.sources = root / "sources"
        self.sources.mkdir()
        self.runs = 0

    def source(self, name: str, text: str) -> SourceConfig:
        path = self.sources / f"{name}.yml"
        path.write_text(text)
        return parse_source_file(path, extra_checks=reference_issues)

    def run(self, source: SourceConfig, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
        self.runs += 1
        work_dir = ingest.run_work_dir("test_source_kinds", f"run_{self.runs}", source.name)
        counts = ingest.extract(source, Interval(start, end), work_dir)
        schema_store.remember(source.name, work_dir)
        ingest.load(source, work_dir)
        return counts

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    def count(self, table: str) -> int:
        return self.query(f"select count(*) from {table}")[0][0]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


# --- rest_api -----------------------------------------------------------------------------------

SHOP_API = """
kind: rest_api
base_url: {base_url}
auth:
  type: bearer
  token: {{env: SHOP_API_TOKEN}}
request_attempts: 4
resources:
  - name: customers              # page number, stops at the first empty page
    primary_key: id
    data_selector: data
    paginator: {{type: page_number}}
  - name: orders                 # cursor pagination, bound to the run's interval
    primary_key: id
    data_selector: data
    paginator: {{type: cursor, cursor_path: meta.next_cursor, cursor_param: cursor}}
    incremental: {{cursor: updated_at, start_param: updated_since, end_param: updated_before}}
  - name: order_items            # one request per order of this run
    parent: orders
    path: "orders/{{id}}/items"
    paginator: {{type: single_page}}
    include_from_parent: [id]
    primary_key: [_orders_id, line]
  - name: products               # next link in the body
    primary_key: sku
    data_selector: results
    paginator: {{type: next_link, next_url_path: links.next}}
  - name: events                 # offset + limit, appended as they come
    data_selector: items
    paginator: {{type: offset, limit: 5, total_path: total}}
    write_disposition: append
"""


def _orders_between(api: ShopApi, start: dt.datetime, end: dt.datetime) -> list[dict]:
    low, high = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [order for order in api.orders if low <= order["updated_at"] < high]


def test_rest_api_paginates_retries_and_loads_every_record_once(runner, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", API_TOKEN)
    api = ShopApi(fail_once={"/customers?page=2": 429, "/orders": 503})
    with serve_api(api):
        source = runner.source("shop_api", SHOP_API.format(base_url=api.base_url))
        counts = runner.run(source, day(2), day(3))
        # Both throttled requests were answered once with an error, retried, and then served.
        assert (api.statuses[429], api.statuses[503], api.statuses[401]) == (1, 1, 0)
        assert api.requests.count("/customers?page=2") == 2

        jan2 = _orders_between(api, day(2), day(3))
        assert len(jan2) == 12
        assert counts["orders"] == 12 and counts["customers"] == 23
        assert sorted(r[0] for r in runner.query("select id from raw_shop_api.orders")) == [o["id"] for o in jan2]
        assert runner.query("select count(*), count(distinct id) from raw_shop_api.customers") == [(23, 23)]
        assert runner.count("raw_shop_api.products") == 11
        assert runner.count("raw_shop_api.events") == 17
        expected_items = sum(len(make_items(o["id"])) for o in jan2)
        assert runner.count("raw_shop_api.order_items") == expected_items
        # The interval went to the API as query parameters (ISO, end exclusive).
        assert any(
            "updated_since=2024-01-02T00%3A00%3A00Z&updated_before=2024-01-03T00%3A00%3A00Z" in r for r in api.requests
        )

        # Rerun the same interval: merged on the keys, nothing doubles (events append by design).
        runner.run(source, day(2), day(3))
        assert runner.query("select count(*), count(distinct id) from raw_shop_api.orders") == [(12, 12)]
        assert runner.count("raw_shop_api.order_items") == expected_items
        assert runner.count("raw_shop_api.customers") == 23

        # The next day adds exactly its own orders, and their items beside the first day's: a child
        # of an incremental resource merges (it used to be replaced by the last day's items alone).
        runner.run(source, day(3), day(4))
        assert runner.query("select count(*), count(distinct id) from raw_shop_api.orders") == [(24, 24)]
        both_days = _orders_between(api, day(2), day(4))
        assert runner.count("raw_shop_api.order_items") == sum(len(make_items(o["id"])) for o in both_days)
        assert runner.query("select count(distinct _orders_id) from raw_shop_api.order_items") == [(24,)]
        first, last = runner.query("select min(updated_at), max(updated_at) from raw_shop_api.orders")[0]
        assert first == day(2) and last == day(3, 22)


def test_rest_api_without_the_right_token_fails(runner, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", "wrong-token")
    api = ShopApi()
    with serve_api(api):
        source = runner.source("shop_api", SHOP_API.format(base_url=api.base_url))
        with pytest.raises(Exception, match="401"):
            runner.run(source, day(2), day(3))
        assert api.statuses[401] >= 1 and api.statuses[200] == 0


def test_rest_api_page_that_is_not_json_fails_naming_source_and_url_and_loads_nothing(runner, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", API_TOKEN)
    api = ShopApi()
    with serve_api(api):
        source = runner.source("shop_api", SHOP_API.format(base_url=api.base_url))
        runner.run(source, day(2), day(3))
        before = runner.query("select id from raw_shop_api.customers order by id")

        api.not_json.add("/customers?page=3")
        api.customers.append({**api.customers[0], "id": 999})  # this run would have changed the table
        with pytest.raises(Exception) as failure:
            runner.run(source, day(3), day(4))
    message = str(failure.value)
    assert "source 'shop_api'" in message and "/customers?page=3" in message and "not JSON" in message, message
    assert runner.query("select id from raw_shop_api.customers order by id") == before


@pytest.mark.parametrize("auth", ["api_key", "basic"])
def test_rest_api_key_and_basic_auth_from_env_and_connection(runner, monkeypatch, auth):
    monkeypatch.setenv("SHOP_API_KEY", API_KEY)
    connection = {"conn_type": "http", "login": API_USER, "password": API_PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_API_BASIC", json.dumps(connection))
    auth_yaml = {
        "api_key": "{type: api_key, name: X-API-Key, location: header, api_key: {env: SHOP_API_KEY}}",
        # No username: it is the connection's login.
        "basic": "{type: basic, password: {connection: shop_api_basic}}",
    }[auth]
    api = ShopApi(auth=auth)
    with serve_api(api):
        config = f"""
kind: rest_api
base_url: {api.base_url}
auth: {auth_yaml}
resources:
  - name: products
    primary_key: sku
    data_selector: results
    paginator: {{type: next_link, next_url_path: links.next}}
"""
        runner.run(runner.source("auth_api", config), day(1), day(2))
    assert runner.count("raw_auth_api.products") == 11
    assert api.statuses[401] == 0


# --- sql_database -------------------------------------------------------------------------------

SQL_DDL = [
    "create table orders (id integer primary key, amount numeric(10, 2), status varchar(20), updated_at timestamp)",
    "create table spend (day date, channel varchar(10), cents integer, primary key (day, channel))",
    "create table customers (id integer primary key, name varchar(50))",
]


def fill_shop_database(engine: sa.engine.Engine, schema: str | None = None) -> None:
    """48 hourly orders from 2024-01-01 00:00, two spend rows a day for 4 days, 5 customers."""
    prefix = f"{schema}." if schema else ""
    with engine.begin() as connection:
        if schema:
            connection.execute(sa.text(f"create schema {schema}"))
        for statement in SQL_DDL:
            connection.execute(sa.text(statement.replace("create table ", f"create table {prefix}")))
        orders = [
            {"i": i, "a": i * 1.5, "s": "placed", "u": dt.datetime(2024, 1, 1) + dt.timedelta(hours=i)}
            for i in range(48)
        ]
        connection.execute(sa.text(f"insert into {prefix}orders values (:i, :a, :s, :u)"), orders)
        spend = [
            {"d": dt.date(2024, 1, 1) + dt.timedelta(days=d), "c": channel, "n": 100 * d}
            for d in range(4)
            for channel in ("web", "tv")
        ]
        connection.execute(sa.text(f"insert into {prefix}spend values (:d, :c, :n)"), spend)
        connection.execute(
            sa.text(f"insert into {prefix}customers values (:i, :n)"), [{"i": i, "n": f"c{i}"} for i in range(5)]
        )


SQL_SOURCE = """
kind: sql_database
credentials: {credentials}
{schema_line}
backend: {backend}
chunk_size: 10                   # several chunks per table
tables:
  - name: orders
    primary_key: id
    cursor: updated_at
  - name: spend                  # a DATE cursor
    primary_key: [day, channel]
    cursor: day
  - name: customers              # no cursor: full refresh
    primary_key: id
"""


def _check_sql_loads(runner: Runner, source: SourceConfig) -> None:
    dataset = source.dataset_name
    assert runner.run(source, day(2), day(3)) == {"orders": 24, "spend": 2, "customers": 5}
    # The midnight row belongs to Jan 2, the 23:00 row too, nothing of Jan 1 or Jan 3.
    assert runner.query(f"select min(updated_at), max(updated_at), count(*) from {dataset}.orders") == [
        (dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, 23), 24)
    ]
    assert runner.query(f"select distinct day from {dataset}.spend") == [(dt.date(2024, 1, 2),)]
    runner.run(source, day(2), day(3))  # rerun: merged, not doubled
    assert runner.count(f"{dataset}.orders") == 24 and runner.count(f"{dataset}.customers") == 5
    runner.run(source, day(1), day(2))
    assert runner.query(f"select count(*), count(distinct id) from {dataset}.orders") == [(48, 48)]
    assert runner.count(f"{dataset}.spend") == 4


def test_sql_database_sqlite_file(runner, monkeypatch, tmp_path):
    database = tmp_path / "shop.db"
    fill_shop_database(sa.create_engine(f"sqlite:///{database}"))
    # Text timestamps without microseconds, as other programs write them: the boundary must still hold.
    with sa.create_engine(f"sqlite:///{database}").begin() as connection:
        connection.execute(sa.text("update orders set updated_at = substr(updated_at, 1, 19)"))
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{database}")
    source = runner.source(
        "shop_sqlite", SQL_SOURCE.format(credentials="{env: SHOP_DB_URL}", schema_line="", backend="pyarrow")
    )
    _check_sql_loads(runner, source)


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as error:
        pytest.skip(f"SKIPPED LOUDLY: no PostgreSQL server to test against: {error}")


@pytest.mark.parametrize("backend", ["pyarrow", "sqlalchemy"])
def test_sql_database_postgres_from_an_airflow_connection(runner, monkeypatch, postgres, backend):
    schema = f"sales_{backend}"
    fill_shop_database(sa.create_engine(postgres.url), schema=schema)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_PG", postgres.airflow_uri)
    config = SQL_SOURCE.format(credentials="{connection: shop_pg}", schema_line=f"schema: {schema}", backend=backend)
    source = runner.source(f"shop_pg_{backend}", config)
    _check_sql_loads(runner, source)


# --- files --------------------------------------------------------------------------------------


def _put(folder: Path, name: str, content: str | pa.Table, modified: dt.datetime) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        pq.write_table(content, path)
    os.utime(path, (modified.timestamp(), modified.timestamp()))


FILES_SOURCE = """
kind: files
path: {path}
tables:
  - name: drops                  # new files of the interval only (by modification time)
    glob: "drops/*.csv"
    new_files_only: true
  - name: events                 # JSONL rows of the interval (by a cursor column)
    glob: "events/*.jsonl"
    format: jsonl
    primary_key: id
    cursor: at
  - name: prices                 # Parquet, replaced in full each run
    glob: "prices/*.parquet"
    format: parquet
    primary_key: sku
"""


def test_files_csv_jsonl_parquet_and_new_files_by_modification_time(runner, tmp_path):
    data = tmp_path / "exports"
    _put(data, "drops/a.csv", "id,value\n1,a\n2,b\n", day(1, 3))
    _put(data, "drops/b.csv", "id,value\n3,c\n", day(1, 20))
    _put(data, "drops/c.csv", "id,value\n4,d\n", day(2, 1))
    events = [{"id": i, "at": (day(1) + dt.timedelta(hours=8 * i)).isoformat()} for i in range(9)]  # 3 a day
    _put(data, "events/all.jsonl", "".join(json.dumps(e) + "\n" for e in events), day(1))
    _put(data, "prices/p.parquet", pa.table({"sku": ["x", "y"], "cents": [100, 250]}), day(1))
    source = runner.source("exports", FILES_SOURCE.format(path=data))

    assert runner.run(source, day(1), day(2)) == {"drops": 3, "events": 3, "prices": 2}
    assert runner.query("select id, _file_path from raw_exports.drops order by id") == [
        (1, "drops/a.csv"),
        (2, "drops/a.csv"),
        (3, "drops/b.csv"),
    ]
    # The next day reads only the file modified that day.
    assert runner.run(source, day(2), day(3))["drops"] == 1
    assert runner.count("raw_exports.drops") == 4 and runner.count("raw_exports.events") == 6

    # A file already loaded is not loaded again: rerunning day 1 replaces its files' rows.
    runner.run(source, day(1), day(2))
    assert runner.query("select count(*), count(distinct id) from raw_exports.drops") == [(4, 4)]

    # A file rewritten later is picked up in that interval, and its old rows are replaced.
    _put(data, "drops/a.csv", "id,value\n1,a2\n2,b2\n5,e\n", day(3, 9))
    assert runner.run(source, day(3), day(4))["drops"] == 3
    assert runner.query("select id, value from raw_exports.drops where _file_path = 'drops/a.csv' order by id") == [
        (1, "a2"),
        (2, "b2"),
        (5, "e"),
    ]
    assert runner.count("raw_exports.drops") == 5
    assert runner.count("raw_exports.events") == 9 and runner.count("raw_exports.prices") == 2


# --- python -------------------------------------------------------------------------------------


def test_python_source_gets_the_interval(runner):
    source = runner.source(
        "calendar", "kind: python\nfunction: include.examples.custom_source:calendar\nargs: {country: BE}\n"
    )
    assert runner.run(source, day(1), day(8)) == {"days": 7}
    runner.run(source, day(5), day(9))  # overlaps: merged on the day
    assert runner.query("select count(*), min(day), max(day), any_value(country) from raw_calendar.days") == [
        (8, dt.date(2024, 1, 1), dt.date(2024, 1, 8), "BE")
    ]


def accounts(start: dt.datetime, end: dt.datetime) -> Any:
    """A python source whose second page spells one key two ways (an API that renamed a field)."""
    import dlt

    @dlt.resource(name="accounts")
    def pages() -> Iterator[list[dict[str, Any]]]:
        yield [{"id": 1, "userId": 10}, {"id": 2, "userId": 20}]
        yield [{"id": 3, "userId": 30, "user_id": 31}]

    return pages


def test_dict_rows_whose_keys_meet_in_one_column_fail_naming_both_keys(runner):
    # dlt loaded one of 30 and 31 into user_id and dropped the other, without a word.
    source = runner.source("crm", "kind: python\nfunction: tests.e2e.test_source_kinds:accounts\n")
    with pytest.raises(Exception) as failure:
        runner.run(source, day(1), day(2))
    message = str(failure.value)
    assert "table 'accounts': in a record, keys 'userId' and 'user_id'" in message, message
    assert "would both load into column 'user_id'" in message, message


def test_python_source_with_a_secret_argument_against_the_api(runner, monkeypatch):
    monkeypatch.setenv("TICKETS_TOKEN", API_TOKEN)
    api = ShopApi()
    with serve_api(api):
        config = f"""
kind: python
function: include.examples.custom_source:tickets
args:
  base_url: {api.base_url}
  token: {{env: TICKETS_TOKEN}}
"""
        source = runner.source("tickets", config)
        runner.run(source, day(2), day(3))
        runner.run(source, day(2), day(3))
    expected = [t for t in make_tickets() if day(2) <= dt.datetime.fromisoformat(t["updated_at"]) < day(3)]
    assert runner.query("select id, is_deleted from raw_tickets.tickets order by id") == [
        (t["id"], t["deleted"]) for t in expected
    ]


# --- schema contracts ---------------------------------------------------------------------------


@pytest.mark.parametrize("contract", ["freeze", "discard_rows", "evolve"])
def test_schema_contract_compares_with_the_previous_run(runner, tmp_path, contract):
    data = tmp_path / "feed"
    _put(data, "1.jsonl", '{"id": 1, "name": "a"}\n', day(1))
    config = f"kind: files\npath: {data}\nschema_contract: {contract}\ntables:\n"
    config += "  - {name: items, glob: '*.jsonl', format: jsonl, primary_key: id}\n"
    source = runner.source("feed", config)
    runner.run(source, day(1), day(2))
    _put(data, "2.jsonl", '{"id": 2, "name": "b", "color": "red"}\n{"id": 3, "name": "c"}\n', day(2))

    if contract == "freeze":
        with pytest.raises(Exception, match="color"):
            runner.run(source, day(2), day(3))
        assert runner.query("select id from raw_feed.items") == [(1,)]  # nothing of the failed run loaded
    elif contract == "discard_rows":
        runner.run(source, day(2), day(3))
        assert runner.query("select id from raw_feed.items order by id") == [(1,), (3,)]
    else:
        runner.run(source, day(2), day(3))
        assert runner.query("select id, color from raw_feed.items order by id") == [(1, None), (2, "red"), (3, None)]


# --- full refresh is atomic ---------------------------------------------------------------------

STORES_SOURCE = """
kind: files
path: {path}
tables:
  - name: stores                 # no cursor: replaced in full every run
    glob: "*.csv"
    primary_key: store_id
"""


def _load_package_files(work_dir: Path, table: str) -> list[Path]:
    """The normalized files of `table` that `ingest.load` is about to copy into DuckDB."""
    return sorted(p for p in work_dir.rglob(f"normalized/*/new_jobs/{table}.*") if p.is_file())


def test_a_failed_full_refresh_leaves_the_previous_table_readable(runner, tmp_path):
    data = tmp_path / "stores"
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n2,Oslo\n3,Porto\n", day(1))
    source = runner.source("master", STORES_SOURCE.format(path=data))
    runner.run(source, day(1), day(2))
    before = runner.query("select store_id, city from raw_master.stores order by store_id")
    assert before == [(1, "Lyon"), (2, "Oslo"), (3, "Porto")]

    # The next run extracts a new version, but its load package is damaged before the load:
    # the load must fail, and the previous table must still be there, whole and readable.
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n2,Oslo\n3,Porto\n4,Riga\n5,Turku\n", day(2))
    work_dir = ingest.run_work_dir("test_source_kinds", "damaged", source.name)
    ingest.extract(source, Interval(day(2), day(3)), work_dir)
    package = _load_package_files(work_dir, "stores")
    assert package, f"no load package file for stores under {work_dir}"
    for job_file in package:
        job_file.write_bytes(b"\x00 not what dlt wrote \xff" * 10)
    with pytest.raises(Exception) as failure:
        ingest.load(source, work_dir)
    assert "stores" in str(failure.value)
    assert runner.query("select store_id, city from raw_master.stores order by store_id") == before

    # A clean rerun of the interval replaces the table in full.
    runner.run(source, day(2), day(3))
    assert runner.query("select store_id from raw_master.stores order by store_id") == [(i,) for i in range(1, 6)]


@pytest.mark.parametrize(("setting", "shown"), [(None, "64.0 MiB"), ("96MiB", "96.0 MiB")])
def test_loads_cap_duckdb_memory(runner, tmp_path, monkeypatch, setting, shown):
    """The warehouse connection runs with Mallard's memory_limit (the floor for narrow tables), or the env's."""
    if setting:
        monkeypatch.setenv(ingest.MEMORY_LIMIT_ENV, setting)
    data = tmp_path / "stores"
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n", day(1))
    source = runner.source("master", STORES_SOURCE.format(path=data))
    runner.run(source, day(1), day(2))
    pipeline = ingest.warehouse_pipeline(source, tmp_path / "probe")  # MALLARD_WAREHOUSE_PATH: the runner's
    with pipeline.sql_client() as client:
        [(limit,)] = client.execute_sql("select current_setting('memory_limit')")
    assert limit == shown
    assert runner.query("select city from raw_master.stores") == [("Lyon",)]


def test_a_load_waits_for_a_locked_warehouse_then_fails_clearly_and_keeps_its_data(runner, tmp_path, caplog):
    data = tmp_path / "stores"
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n", day(1))
    source = runner.source("master", STORES_SOURCE.format(path=data))
    runner.run(source, day(1), day(2))  # the warehouse exists
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n2,Oslo\n", day(2))

    # Held for good: the retries run out and the lock error comes through; the package stays.
    work_dir = ingest.run_work_dir("test_source_kinds", "locked", source.name)
    ingest.extract(source, Interval(day(2), day(3)), work_dir)
    with warehouse_held_open(runner.warehouse, 120):
        pipeline = ingest.warehouse_pipeline(source, work_dir)
        with pytest.raises(Exception) as failure:
            retry_on_lock(pipeline.load, attempts=2, wait_seconds=0.5)
    assert is_lock_error(failure.value)
    assert _load_package_files(work_dir, "stores"), "the extracted rows must survive a failed load"

    # Held for a few seconds: the load says why it waits, then loads the same package.
    caplog.set_level(logging.WARNING, logger="include.mallard.warehouse")
    with warehouse_held_open(runner.warehouse, 4):
        ingest.load(source, work_dir)
    assert "locked by another process" in caplog.text
    assert runner.query("select store_id, city from raw_master.stores order by 1") == [(1, "Lyon"), (2, "Oslo")]


MALFORMED_CSV = {
    # file content, what the error must say besides the file's name
    "ragged.csv": ("store_id,city\n1,Lyon\n2,Oslo,extra,fields\n3,Porto\n", "line 3 has 4 fields, the header has 2"),
    "empty.csv": ("", "is empty"),
}


@pytest.mark.parametrize("bad_file", sorted(MALFORMED_CSV))
def test_a_malformed_csv_fails_naming_source_file_and_line_and_writes_nothing(runner, tmp_path, bad_file):
    data = tmp_path / "stores"
    _put(data, "stores.csv", "store_id,city\n1,Lyon\n", day(1))
    source = runner.source("master", STORES_SOURCE.format(path=data))
    runner.run(source, day(1), day(2))

    content, expected = MALFORMED_CSV[bad_file]
    _put(data, bad_file, content, day(2))
    with pytest.raises(Exception) as failure:
        runner.run(source, day(2), day(3))
    message = str(failure.value)
    assert "source 'master'" in message and bad_file in message and expected in message, message
    assert runner.query("select store_id, city from raw_master.stores") == [(1, "Lyon")]


def test_a_header_only_csv_adds_no_rows_and_a_delimiter_can_be_set(runner, tmp_path):
    data = tmp_path / "stores"
    _put(data, "a.csv", "store_id;city\n1;Lyon\n2;Oslo\n", day(1))
    _put(data, "b.csv", "store_id;city\n", day(1))
    source = runner.source("master", STORES_SOURCE.format(path=data) + "    delimiter: ';'\n")
    runner.run(source, day(1), day(2))
    assert runner.query("select store_id, city from raw_master.stores order by 1") == [(1, "Lyon"), (2, "Oslo")]


def test_a_broken_jsonl_line_fails_naming_source_file_and_line_and_blank_lines_are_skipped(runner, tmp_path):
    data = tmp_path / "feed"
    _put(data, "1.jsonl", '{"id": 1, "name": "a"}\n\n{"id": 2, "name": "b"}\n\n', day(1))
    table = "{name: items, glob: '*.jsonl', format: jsonl, primary_key: id}"
    source = runner.source("feed", f"kind: files\npath: {data}\ntables:\n  - {table}\n")
    runner.run(source, day(1), day(2))
    assert runner.query("select id from raw_feed.items order by id") == [(1,), (2,)]

    _put(data, "2.jsonl", '{"id": 3, "name": "c"}\n{"id": 4, "name": \n', day(2))
    with pytest.raises(Exception) as failure:
        runner.run(source, day(2), day(3))
    message = str(failure.value)
    assert "source 'feed'" in message and "2.jsonl line 2 is not a JSON object" in message, message
    assert runner.query("select id from raw_feed.items order by id") == [(1,), (2,)]


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "list"), ("5", "int"), ('"text"', "str"), ("null", "NoneType")])
def test_a_jsonl_line_that_is_json_but_not_an_object_fails_naming_the_line(runner, tmp_path, line, kind):
    # dlt loaded such a line as a row of null columns plus a `value` column (a list: a child table).
    data = tmp_path / "feed"
    _put(data, "1.jsonl", '{"id": 1, "name": "a"}\n', day(1))
    table = "{name: items, glob: '*.jsonl', format: jsonl, primary_key: id}"
    source = runner.source("feed", f"kind: files\npath: {data}\ntables:\n  - {table}\n")
    runner.run(source, day(1), day(2))

    _put(data, "2.jsonl", f'{{"id": 2, "name": "b"}}\n{line}\n', day(2))
    with pytest.raises(Exception) as failure:
        runner.run(source, day(2), day(3))
    message = str(failure.value)
    assert f"2.jsonl line 2 is JSON but not an object (a {kind})" in message, message
    assert runner.query("select id from raw_feed.items order by id") == [(1,)]


@pytest.mark.parametrize("contract", ["freeze", "discard_rows", "evolve"])
def test_a_column_that_changes_type_follows_the_schema_contract(runner, tmp_path, contract):
    data = tmp_path / "feed"
    _put(data, "1.jsonl", '{"id": 1, "qty": 5}\n', day(1))
    table = "{name: items, glob: '*.jsonl', format: jsonl, primary_key: id}"
    source = runner.source("feed", f"kind: files\npath: {data}\nschema_contract: {contract}\ntables:\n  - {table}\n")
    runner.run(source, day(1), day(2))
    _put(data, "2.jsonl", '{"id": 2, "qty": "many"}\n{"id": 3, "qty": 7}\n', day(2))

    if contract == "freeze":
        with pytest.raises(Exception, match="qty"):
            runner.run(source, day(2), day(3))
        assert runner.query("select id, qty from raw_feed.items") == [(1, 5)]
    elif contract == "discard_rows":
        runner.run(source, day(2), day(3))
        assert runner.query("select id, qty from raw_feed.items order by id") == [(1, 5), (3, 7)]
    else:  # dlt keeps the text in a variant column next to the typed one: nothing is lost
        runner.run(source, day(2), day(3))
        rows = runner.query("select id, qty, qty__v_text from raw_feed.items order by id")
        assert rows == [(1, 5, None), (2, None, "many"), (3, 7, None)]
