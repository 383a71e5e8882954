"""What lands in the warehouse when names collide, types drift or an interval has no rows.

Real files, real dlt, real DuckDB, and the demo dbt project's real manifest (its sources declare
the raw tables' columns with `data_type`); each test runs `ingest.extract` + `ingest.load` into a
throwaway warehouse and work dir, the way the `extract` and `load` tasks do.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from include.mallard import ingest
from include.mallard.config import SourceConfig, get_source
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.paths import DBT_PROJECT_DIR, INCLUDE_DIR, SOURCES_DIR
from include.mallard.sources import schema_store, synthetic
from include.mallard.sources.hints import CursorValueError
from include.mallard.sources.schema_store import SchemaDriftError
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.e2e
UTC = dt.UTC
MARKETING_SOURCES_YML = "include/dbt/models/staging/marketing/_marketing__sources.yml"


def day(number: int, month: int = 1, year: int = 2024) -> dt.datetime:
    return dt.datetime(year, month, number, tzinfo=UTC)


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
        return parse_source_file(path)

    def extract(self, source: SourceConfig, start: dt.datetime, end: dt.datetime, **kwargs) -> tuple[dict, Path]:
        self.runs += 1
        work_dir = ingest.run_work_dir("test_load_faults", f"run_{self.runs}", source.name)
        return ingest.extract(source, Interval(start, end), work_dir, **kwargs), work_dir

    def run(self, source: SourceConfig, start: dt.datetime, end: dt.datetime, **kwargs) -> tuple[dict, dict]:
        extracted, work_dir = self.extract(source, start, end, **kwargs)
        return extracted, ingest.load(source, work_dir, **kwargs)

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    def columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        return self.query(
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = '{schema}' and table_name = '{table}' order by ordinal_position"
        )

    def tables(self, schema: str) -> set[str]:
        return {
            t
            for (t,) in self.query(f"select table_name from information_schema.tables where table_schema = '{schema}'")
        }


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


def _put(folder: Path, name: str, content: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)


# --- 1. a source named like another source's staging dataset -------------------------------------

SHOPS = {
    "shop": "kind: synthetic\nseed: 1\ncustomers: 20\nstores: 2\norders_per_day: 5\nfirst_day: 2024-01-01\n",
    "shop_staging": "kind: synthetic\nseed: 2\ncustomers: 30\nstores: 3\norders_per_day: 8\nfirst_day: 2024-01-01\n",
}


def test_sources_shop_and_shop_staging_load_side_by_side_each_with_its_own_rows(runner):
    """dlt's default staging schema of `shop` was `raw_shop_staging`: source shop_staging's own dataset."""
    sources = {name: runner.source(name, text) for name, text in SHOPS.items()}
    # Both orders of loading, over two days: customers are replaced, orders and payments merged.
    for number, order in ((1, ["shop_staging", "shop"]), (2, ["shop", "shop_staging"])):
        for name in order:
            runner.run(sources[name], day(number), day(number + 1))

    for name, source in sources.items():
        dataset = f"raw_{name}"
        orders, payments = synthetic.interval_rows(source, day(1), day(3))
        customers = synthetic.customer_rows(source)
        assert runner.tables(dataset) == {"customers", "orders", "payments", "_dlt_loads", "_dlt_version"}
        assert runner.query(f"select id, email from {dataset}.customers order by id") == [
            (c["id"], c["email"]) for c in customers
        ]
        assert runner.query(f"select id, customer_id from {dataset}.orders order by id") == [
            (o["id"], o["customer_id"]) for o in sorted(orders, key=lambda o: o["id"])
        ]
        assert runner.query(f"select id, amount_cents from {dataset}.payments order by id") == [
            (p["id"], p["amount_cents"]) for p in sorted(payments, key=lambda p: p["id"])
        ]
    # dlt's staging schemas cannot be taken for a source's dataset any more.
    schemas = {s for (s,) in runner.query("select schema_name from information_schema.schemata")}
    assert {"_mallard_staging_raw_shop", "_mallard_staging_raw_shop_staging"} <= schemas
    assert not {s for s in schemas if s.startswith("raw_")} - {"raw_shop", "raw_shop_staging"}


# --- 5. type drift ---------------------------------------------------------------------------------

MARKETING = """
kind: files
path: {path}
schema_contract: {contract}
tables:
  - name: spend
    glob: "spend_*.csv"
    primary_key: [spend_date, channel]
    cursor: spend_date
"""


@pytest.mark.parametrize("contract", ["evolve", "discard_rows", "freeze"])
def test_text_in_a_numeric_csv_column_is_reported_against_the_dbt_declared_type(runner, tmp_path, contract, caplog):
    """One daily CSV with `n/a` in `spend`: its first load made the column VARCHAR without a word."""
    data = tmp_path / "marketing"
    _put(data, "spend_2024_01_01.csv", "spend_date,channel,spend\n2024-01-01,search,n/a\n2024-01-01,email,2.50\n")
    source = runner.source("marketing", MARKETING.format(path=data, contract=contract))
    caplog.set_level(logging.WARNING, logger="include.mallard.ingest")
    expected = {
        "table": "spend",
        "column": "spend",
        "old": "double",
        "new": "varchar",
        "against": MARKETING_SOURCES_YML,
    }

    if contract == "freeze":
        with pytest.raises(SchemaDriftError) as failure:
            runner.extract(source, day(1), day(2))
        message = str(failure.value)
        assert "spend.spend: double in " + MARKETING_SOURCES_YML + " -> varchar in this load" in message, message
        assert "Nothing was loaded" in message
        assert not runner.warehouse.exists()
        assert not any((tmp_path / "work" / "dlt").rglob("new_jobs")), "the frozen run's package must be gone"
        return
    extracted, _ = runner.run(source, day(1), day(2))
    assert extracted == {"spend": 2, ingest.DRIFT_KEY: [expected]}
    assert "type drift" in caplog.text and "spend.spend: double in" in caplog.text
    assert runner.query("select spend from raw_marketing.spend order by channel") == [("2.50",), ("n/a",)]


@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_ints_and_floats_in_one_jsonl_field_report_the_variant_column(runner, tmp_path, contract):
    data = tmp_path / "sensors"
    _put(data, "1.jsonl", '{"id": 1, "temperature": 20}\n{"id": 2, "temperature": 20.5}\n')
    table = "{name: readings, glob: '*.jsonl', format: jsonl, primary_key: id}"
    source = runner.source("sensors", f"kind: files\npath: {data}\nschema_contract: {contract}\ntables:\n  - {table}\n")
    variant = {
        "table": "readings",
        "column": "temperature",
        "old": "bigint",
        "new": "double",
        "against": "the first load",
        "variant": "temperature__v_double",
    }
    if contract == "freeze":
        # dlt's normalizer refuses the variant column itself, naming it; nothing is written.
        with pytest.raises(Exception, match="temperature__v_double"):
            runner.extract(source, day(1), day(2))
        assert not runner.warehouse.exists()
        return
    extracted, _ = runner.run(source, day(1), day(2))
    assert extracted == {"readings": 2, ingest.DRIFT_KEY: [variant]}
    assert runner.query("select id, temperature, temperature__v_double from raw_sensors.readings order by id") == [
        (1, 20, None),
        (2, None, 20.5),
    ]
    # The next run with the same types reports nothing: the variant column is known now.
    _put(data, "2.jsonl", '{"id": 3, "temperature": 21}\n{"id": 4, "temperature": 21.5}\n')
    extracted, _ = runner.run(source, day(2), day(3))
    assert extracted == {"readings": 4}


SENSORS = """
kind: files
path: {path}
tables:
  - {{name: readings, glob: "*.{fmt}", format: {fmt}, primary_key: id, cursor: at}}
"""


def _reading(fmt: str, number: int, value: str) -> str:
    at = f"2024-01-0{number}T10:00:00Z"
    return (
        f'{{"id": {number}, "at": "{at}", "temperature": {value}}}\n'
        if fmt == "jsonl"
        else f"id,at,temperature\n{number},{at},{value}\n"
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_values_that_no_longer_fit_the_column_fail_before_loading_and_widening_passes(runner, tmp_path, fmt):
    """A column keeps its first type: 20.7 into the bigint `temperature` was silently stored as 21."""
    data = tmp_path / "sensors"
    source = runner.source("sensors", SENSORS.format(path=data, fmt=fmt))
    _put(data, f"1.{fmt}", _reading(fmt, 1, "20"))
    runner.run(source, day(1), day(2))

    _put(data, f"2.{fmt}", _reading(fmt, 2, "20.7"))
    with pytest.raises(SchemaDriftError) as failure:
        runner.extract(source, day(2), day(3))
    message = str(failure.value)
    assert "source 'sensors'" in message and "readings.temperature: bigint in the previous load -> double" in message
    assert "alter table raw_sensors.<table> alter <column>" in message and "Nothing was loaded" in message
    assert runner.query("select id, temperature from raw_sensors.readings order by id") == [(1, 20)]

    # The other way round is safe: a double column takes a day of whole numbers as they are, and a
    # later day of fractions is not mistaken for a change (the column is still double).
    other = runner.source("gauges", SENSORS.format(path=tmp_path / "gauges", fmt=fmt))
    for number, value in ((1, "20.5"), (2, "21"), (3, "21.25")):
        _put(tmp_path / "gauges", f"{number}.{fmt}", _reading(fmt, number, value))
        extracted, _ = runner.run(other, day(number), day(number + 1))
        widened = [
            {
                "table": "readings",
                "column": "temperature",
                "old": "double",
                "new": "bigint",
                "against": "the previous load",
            }
        ]
        assert extracted == ({"readings": 1, ingest.DRIFT_KEY: widened} if number == 2 else {"readings": 1})
    assert runner.query("select id, temperature from raw_gauges.readings order by id") == [
        (1, 20.5),
        (2, 21.0),
        (3, 21.25),
    ]


# --- 11. a cursor column that holds no dates -------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content", "shown"),
    [
        ("csv", "d,channel\nyesterday,a\n", "values of type string"),
        ("jsonl", '{"d": "yesterday", "channel": "a"}\n', "a value 'yesterday'"),
    ],
)
def test_a_cursor_column_of_text_fails_naming_source_table_and_cursor(runner, tmp_path, fmt, content, shown):
    data = tmp_path / "feed"
    _put(data, f"1.{fmt}", content)
    table = f"{{name: events, glob: '*.{fmt}', format: {fmt}, primary_key: channel, cursor: d}}"
    config = f"kind: files\npath: {data}\ntables:\n  - {table}\n"
    source = runner.source("feed", config)
    with pytest.raises(CursorValueError) as failure:
        runner.extract(source, day(1), day(2))
    message = str(failure.value)
    assert "source 'feed', table 'events': the cursor column 'd' holds " + shown in message, message
    assert "point `tables[0].cursor`" in message and "date or timestamp" in message
    assert not runner.warehouse.exists()


# --- 7. an interval without rows -------------------------------------------------------------------


def test_an_empty_interval_creates_the_declared_tables_empty_and_later_rows_load_into_them(runner):
    """Before the demo's data starts: dlt created no raw_marketing.spend, raw_shop.orders, ..., and dbt failed."""
    demo = {name: get_source(SOURCES_DIR, name) for name in ("marketing", "shop", "stores")}
    loaded = {name: runner.run(source, day(1, 12, 2023), day(8, 12, 2023))[1] for name, source in demo.items()}
    assert loaded["marketing"]["created_empty"] == ["spend"]
    assert loaded["shop"]["created_empty"] == ["orders", "payments"]
    assert "created_empty" not in loaded["stores"]
    assert runner.columns("raw_marketing", "spend") == [
        ("spend_date", "DATE"),
        ("channel", "VARCHAR"),
        ("spend", "DOUBLE"),
    ]
    assert runner.columns("raw_shop", "orders") == [
        ("id", "BIGINT"),
        ("customer_id", "BIGINT"),
        ("store_id", "BIGINT"),
        ("status", "VARCHAR"),
        ("ordered_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    for table in ("raw_marketing.spend", "raw_shop.orders", "raw_shop.payments"):
        assert runner.query(f"select count(*) from {table}") == [(0,)]
    assert runner.query("select count(*) from raw_shop.customers") == [(200,)]

    # The next interval has rows: they load into the created tables (dlt adds its own columns), twice
    # over the same interval gives the same rows (merge on the key).
    orders, payments = synthetic.interval_rows(demo["shop"], day(1), day(3))
    for _ in range(2):
        for source in demo.values():
            extracted, loaded = runner.run(source, day(1), day(3))
            assert ingest.DRIFT_KEY not in extracted  # the declared types are the loaded ones
            assert "created_empty" not in loaded
        assert runner.query("select count(*), count(distinct id), count(_dlt_load_id) from raw_shop.orders") == [
            (len(orders), len(orders), len(orders))
        ]
        assert runner.query("select count(*) from raw_shop.payments") == [(len(payments),)]
        assert runner.query("select count(*) from raw_marketing.spend") == [(6,)]  # 3 channels, 2 days


ORDERS_SOURCE = """
kind: files
path: {path}
tables:
  - {{name: orders, glob: "*.csv", primary_key: id, cursor: ordered_at}}
"""


@pytest.fixture(scope="module")
def untyped_project(tmp_path_factory) -> Path:
    """A dbt project whose sources declare raw_shop.orders and raw_shop.returns without column types."""
    project = tmp_path_factory.mktemp("untyped") / "dbt"
    (project / "models").mkdir(parents=True)
    shutil.copy(DBT_PROJECT_DIR / "profiles.yml", project / "profiles.yml")
    (project / "dbt_project.yml").write_text('name: untyped\nversion: "1.0.0"\nprofile: mallard\nconfig-version: 2\n')
    (project / "models" / "_shop__sources.yml").write_text(
        "version: 2\nsources:\n  - name: shop\n    schema: raw_shop\n    tables:\n"
        "      - name: orders\n        columns:\n          - name: id\n          - name: ordered_at\n"
        "      - name: returns\n"
    )
    (project / "models" / "stg_orders.sql").write_text("select * from {{ source('shop', 'orders') }}\n")
    command = [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(project)]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, env={**os.environ})
    return project


def test_an_empty_table_without_declared_types_uses_the_last_load_or_fails_naming_the_sources_file(
    runner, tmp_path, monkeypatch, untyped_project, caplog
):
    data = tmp_path / "orders"
    _put(data, "1.csv", "id,ordered_at,amount\n1,2024-01-01T10:00:00Z,5.5\n")
    source = runner.source("shop", ORDERS_SOURCE.format(path=data))
    caplog.set_level(logging.WARNING, logger="include.mallard.ingest")

    # No rows and no earlier load: the columns are unknown, and the error says where to declare them.
    _, work_dir = runner.extract(source, day(5), day(6), dbt_project_dir=untyped_project)
    with pytest.raises(ValueError) as failure:
        ingest.load(source, work_dir, dbt_project_dir=untyped_project)
    message = str(failure.value)
    assert "dbt reads raw_shop.orders (declared in " in message and "_shop__sources.yml" in message, message
    assert "columns without data_type: id, ordered_at" in message and "`data_type`" in message
    assert "make manifest" in message
    # dbt's `returns` is no table of this source: left alone (dbt names it if a model reads it).
    assert "raw_shop.returns" in caplog.text and "does not load: not created" in caplog.text

    # After a load with rows, a fresh warehouse gets the table from the remembered schema.
    runner.run(source, day(1), day(2), dbt_project_dir=untyped_project)
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "fresh.duckdb"))
    runner.warehouse = tmp_path / "fresh.duckdb"
    _, loaded = runner.run(source, day(5), day(6), dbt_project_dir=untyped_project)
    assert loaded["created_empty"] == ["orders"]
    assert runner.columns("raw_shop", "orders") == [
        ("id", "BIGINT"),
        ("ordered_at", "TIMESTAMP WITH TIME ZONE"),
        ("amount", "DOUBLE"),
    ]
    assert "returns" not in runner.tables("raw_shop")
    assert schema_store.schema_file("shop").is_file()


def test_the_demo_sources_yaml_declares_what_dlt_loads():
    """The demo's declared data_types are the ones a load creates (else every run would report drift)."""
    declared = ingest.declared_tables(DBT_PROJECT_DIR, "raw_marketing")
    assert declared["spend"].columns == {"spend_date": "date", "channel": "varchar", "spend": "double"}
    assert declared["spend"].file == MARKETING_SOURCES_YML
    assert (INCLUDE_DIR.parent / MARKETING_SOURCES_YML).is_file()
