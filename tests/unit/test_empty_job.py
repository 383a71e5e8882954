"""Which load job files hold no row: only those may be dropped when a full refresh keeps its table."""

from __future__ import annotations

import gzip

import dlt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dlt.common.data_writers.writers import InsertValuesWriter

from include.mallard.sources.empty_input import _is_empty_job

COLUMNS = {"id": {"name": "id", "data_type": "bigint"}, "name": {"name": "name", "data_type": "text"}}


def _insert_values(path, rows: list[dict]) -> None:
    # dlt's own writer for PostgreSQL (the format of its empty job under `freeze`), gzipped as dlt does.
    with gzip.open(path, "wt", encoding="utf-8") as file:
        writer = InsertValuesWriter(file, caps=dlt.destinations.postgres().capabilities())
        writer.write_header(COLUMNS)
        writer.write_data(rows)


@pytest.mark.parametrize(("rows", "empty"), [([], True), ([{"id": 1, "name": "VALUES"}], False)])
def test_an_insert_values_job_is_empty_only_without_rows(tmp_path, rows, empty):
    path = tmp_path / "orders.abc.0.insert_values"
    _insert_values(path, rows)
    assert _is_empty_job(path) is empty


def test_parquet_and_jsonl_jobs(tmp_path):
    empty = tmp_path / "orders.abc.0.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), empty)
    full = tmp_path / "orders.abd.0.parquet"
    pq.write_table(pa.table({"id": [1]}), full)
    blank = tmp_path / "orders.abe.0.jsonl"
    blank.write_bytes(b"\n")
    assert (_is_empty_job(empty), _is_empty_job(full), _is_empty_job(blank)) == (True, False, True)
    unknown = tmp_path / "orders.abf.0.csv"
    unknown.write_text("id\n")
    assert _is_empty_job(unknown) is False  # a format it cannot read counts as rows
