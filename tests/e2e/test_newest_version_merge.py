"""A merged row is replaced by the same or a newer version of it, never by an older one, on both warehouses.

Reruns and backfills load intervals in any order (a backfill's runs side by side): before, each
load's merge replaced a key's row with whatever it brought, so rerunning day 1 after day 2 brought
back day 1's version. Real dlt, DuckDB and a throwaway PostgreSQL server on 127.0.0.1; a CSV table
(one table) and a JSONL table with a nested list (a child table, whose rows must follow their row).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.sources import schema_store
from tests.e2e.helpers import postgres_or_skip

pytestmark = pytest.mark.e2e

Query = Callable[[str], list[tuple]]
MERGE_LOGGER = "include.mallard.merge_jobs"


def day(number: int) -> dt.datetime:
    return dt.datetime(2024, 1, number, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_or_skip() as server:
        yield server.url


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path, monkeypatch) -> Query:
    """Point the loads at one warehouse; return a query function on it."""
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    if request.param == "duckdb":
        path = tmp_path / "warehouse.duckdb"
        monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(path))

        def query(sql: str) -> list[tuple]:
            with duckdb.connect(str(path), read_only=True) as connection:
                return connection.execute(sql).fetchall()

        return query
    import psycopg2

    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("MALLARD_ENV", "prod")
    monkeypatch.setenv("AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD", url)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("drop schema if exists raw_versions cascade; drop schema if exists raw_versions_staging cascade")

    def query(sql: str) -> list[tuple]:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    return query


@contextmanager
def merge_warnings() -> Iterator[list[str]]:
    """The merge's warnings, from a handler on its own logger (Airflow's logging config, loaded by
    the PostgreSQL connection lookup, stops records from reaching pytest's root handler)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(MERGE_LOGGER)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _run(source_file: Path, start: dt.datetime, end: dt.datetime, run: str) -> dict[str, int]:
    source = parse_source_file(source_file)
    work_dir = ingest.run_work_dir("test_newest_version_merge", run, source.name)
    counts = ingest.extract(source, Interval(start, end), work_dir)
    schema_store.remember(source.name, work_dir)
    ingest.load(source, work_dir)
    return counts


def _source(root: Path, table: str) -> Path:
    data = root / "data"
    data.mkdir(exist_ok=True)
    path = root / "versions.yml"
    path.write_text(f"kind: files\npath: {data}\ntables:\n  - {table}\n")
    return path


def test_an_earlier_interval_loaded_last_keeps_the_newer_rows_and_says_so(warehouse: Query, tmp_path: Path):
    source = _source(tmp_path, "{name: items, glob: '*.csv', primary_key: id, cursor: changed_at}")
    (tmp_path / "data" / "a.csv").write_text(
        "id,changed_at,v\n1,2024-01-01 10:00:00,old\n2,2024-01-01 11:00:00,two\n1,2024-01-02 10:00:00,new\n"
    )
    assert _run(source, day(2), day(3), "day2") == {"items": 1}
    with merge_warnings() as warnings:
        assert _run(source, day(1), day(2), "day1") == {"items": 2}
    assert warehouse("select id, v from raw_versions.items order by id") == [(1, "new"), (2, "two")]
    # The one row left unapplied (id 1's older version) is counted, not dropped in silence.
    [warning] = warnings
    assert "raw_versions.items: 1 row(s) of this load were not applied" in warning and "changed_at" in warning


def test_a_load_that_applies_every_row_warns_of_nothing(warehouse: Query, tmp_path: Path):
    source = _source(tmp_path, "{name: items, glob: '*.csv', primary_key: id, cursor: changed_at}")
    (tmp_path / "data" / "a.csv").write_text("id,changed_at,v\n1,2024-01-01 10:00:00,old\n1,2024-01-02 10:00:00,new\n")
    with merge_warnings() as warnings:
        _run(source, day(1), day(2), "day1")
        _run(source, day(2), day(3), "day2")
        _run(source, day(2), day(3), "day2_again")  # the same version again: applied, not older
    assert warehouse("select id, v from raw_versions.items") == [(1, "new")]
    assert warnings == []


def test_a_nested_list_follows_its_row(warehouse: Query, tmp_path: Path):
    source = _source(tmp_path, "{name: orders, glob: '*.jsonl', format: jsonl, primary_key: id, cursor: changed_at}")
    rows = [
        {"id": 1, "changed_at": "2024-01-01T10:00:00+00:00", "lines": [{"sku": "old-a"}, {"sku": "old-b"}]},
        {"id": 2, "changed_at": "2024-01-01T11:00:00+00:00", "lines": [{"sku": "two"}]},
        {"id": 1, "changed_at": "2024-01-02T10:00:00+00:00", "lines": [{"sku": "new"}]},
    ]
    (tmp_path / "data" / "a.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    _run(source, day(2), day(3), "day2")
    _run(source, day(1), day(2), "day1")
    lines = (
        "select o.id, l.sku from raw_versions.orders o join raw_versions.orders__lines l "
        "on l._dlt_parent_id = o._dlt_id order by o.id, l.sku"
    )
    assert warehouse(lines) == [(1, "new"), (2, "two")]
    assert warehouse("select count(*) from raw_versions.orders__lines") == [(2,)]
