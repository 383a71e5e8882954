"""A load's DuckDB `memory_limit` follows its widest table, and its tables load one at a time.

DuckDB keeps the blocks a load writes in its buffer pool up to `memory_limit`, so with a fixed
256MB a narrow table's load grew by ~180 MB from 100k to 5M rows (docs/benchmarks.md). An
insert's working memory grows with the table's columns instead, and with the inserts running at
once: dlt ran up to 20 load jobs together, and 20 tables of 50 columns ran out of 256MB.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from include.mallard import ingest
from include.mallard.duckdb_destination import MIB, LoadOutOfMemory, machine_ram_bytes, memory_limit_for
from include.mallard.interval import Interval
from tests.e2e.test_source_kinds import Runner, day

pytestmark = pytest.mark.e2e


def wide_tables(start: dt.datetime, end: dt.datetime, tables: int, columns: int, rows: int) -> Any:
    """`tables` resources of `rows` rows and `columns` columns (integers and text), as Arrow tables."""
    import dlt
    import pyarrow as pa
    import pyarrow.compute as pc

    def table(name: str) -> Any:
        @dlt.resource(name=name, write_disposition="append")
        def batches() -> Iterator[Any]:
            for first in range(0, rows, 25_000):
                ids = pa.array(range(first, min(first + 25_000, rows)), pa.int64())
                text = pc.binary_join_element_wise("row ", pc.cast(ids, pa.string()), "")
                yield pa.table({"id": ids} | {f"c{k}": pc.add(ids, k) if k % 2 else text for k in range(1, columns)})

        return batches

    return [table(f"t{i}") for i in range(tables)]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    return Runner(tmp_path)


def _load(runner: Runner, name: str, tables: int, columns: int, rows: int) -> dict[str, Any]:
    args = json.dumps({"tables": tables, "columns": columns, "rows": rows})
    source = runner.source(name, f"kind: python\nfunction: tests.e2e.test_load_memory:wide_tables\nargs: {args}\n")
    work_dir = ingest.run_work_dir("test_load_memory", "run", source.name)
    assert ingest.extract(source, Interval(day(1), day(2)), work_dir) == {f"t{i}": rows for i in range(tables)}
    summary = ingest.load(source, work_dir)
    for i in range(tables):
        assert runner.query(f"select count(*), count(distinct id), max(c1) from raw_{name}.t{i}") == [
            (rows, rows, rows)
        ]
    return summary


def _mib(shown: str) -> float:
    number, unit = shown.split()
    return float(number) * {"MiB": 1, "GiB": 1024}[unit]


def test_a_narrow_tables_load_gets_the_floor_and_a_wide_tables_more(runner):
    import pyarrow

    narrow = _load(runner, "narrow", tables=1, columns=6, rows=1_000)
    # The extract allocated Arrow memory from jemalloc (mimalloc, the default, kept what it freed).
    assert pyarrow.default_memory_pool().backend_name == "jemalloc"
    # 6 columns (dlt adds no columns to Arrow tables): the floor, on any number of cores.
    assert _mib(narrow["duckdb_memory_limit"]) == 64
    wide = _load(runner, "wide", tables=1, columns=150, rows=100_000)
    # 150 columns of 100,000 rows ran out of memory at the floor (DuckDB "Out of Memory Error").
    assert _mib(wide["duckdb_memory_limit"]) > 64, wide
    sized = memory_limit_for(150, os.cpu_count() or 1, machine_ram_bytes())
    assert wide["duckdb_memory_limit"] == sized.replace("MiB", ".0 MiB")


def test_tables_load_one_at_a_time_so_the_limit_holds_for_many_wide_tables(runner, monkeypatch):
    # Eight tables of 50 columns, each within 64MiB alone: loaded at once (dlt's default for
    # DuckDB), the load ran out of memory ("Out of Memory Error ... 64.0 MiB used").
    monkeypatch.setenv(ingest.MEMORY_LIMIT_ENV, "64MiB")
    summary = _load(runner, "many", tables=8, columns=50, rows=100_000)
    assert summary["duckdb_memory_limit"] == "64.0 MiB"


def test_a_load_out_of_memory_names_the_setting_and_keeps_the_rows_for_the_retry(runner, monkeypatch):
    source = runner.source(
        "wide",
        "kind: python\nfunction: tests.e2e.test_load_memory:wide_tables\n"
        'args: {"tables": 1, "columns": 150, "rows": 100000}\n',
    )
    work_dir = ingest.run_work_dir("test_load_memory", "run", source.name)
    ingest.extract(source, Interval(day(1), day(2)), work_dir)
    monkeypatch.setenv(ingest.MEMORY_LIMIT_ENV, "16MiB")
    with pytest.raises(LoadOutOfMemory) as raised:
        ingest.load(source, work_dir)
    message = str(raised.value)
    assert message.startswith("source 'wide': DuckDB ran out of memory loading into the warehouse"), message
    assert "memory_limit MALLARD_DUCKDB_MEMORY_LIMIT=16MiB" in message, message
    assert "set MALLARD_DUCKDB_MEMORY_LIMIT higher" in message, message
    monkeypatch.delenv(ingest.MEMORY_LIMIT_ENV)
    ingest.load(source, work_dir)  # the same package, at the limit sized for it
    assert runner.query("select count(*), count(distinct id) from raw_wide.t0") == [(100_000, 100_000)]


@pytest.mark.parametrize(
    ("columns", "threads", "ram_mib", "limit"),
    [
        (8, 2, 24_000, 64),  # the floor
        (8, 64, 24_000, 768),
        (30, 2, 24_000, 90),
        (302, 2, 24_000, 906),  # 300 columns needed over 512MiB (bench/load_memory.py)
        (100, 8, 24_000, 1200),
        (1_000, 16, 4_000, 3200),  # at most DuckDB's own default, 80% of RAM
    ],
)
def test_memory_limit_for_grows_with_columns_and_threads_up_to_duckdbs_default(columns, threads, ram_mib, limit):
    assert memory_limit_for(columns, threads, ram_mib * MIB) == f"{limit}MiB"
