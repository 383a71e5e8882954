"""Run history in `mallard_meta`: what `ingest.load` records, with real files, dlt and DuckDB.

Each test runs `ingest.extract` + `ingest.load` (with a `history.RunRef`, as the load task passes
it) into a throwaway warehouse, then reads `mallard_meta` back. What waits for the run's last task
(a failed extract or a load that could not open the warehouse) is written by `flush_pending`, as
the `publish` task does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from include.mallard import history, history_queue, ingest
from include.mallard.config import SourceConfig
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval

pytestmark = pytest.mark.e2e
UTC = dt.UTC
DAG_ID = "test_run_history"

SOURCE = """
kind: files
path: {path}
tables:
  - name: stores
    glob: "stores*.csv"
    primary_key: store_id
  - name: readings
    glob: "*.jsonl"
    format: jsonl
    primary_key: id
  - name: visits
    glob: "visits*.csv"
    primary_key: id
    on_empty: ok
"""


def day(number: int) -> dt.datetime:
    return dt.datetime(2024, 1, number, tzinfo=UTC)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "sources").mkdir()
    return tmp_path


def _source(root: Path) -> SourceConfig:
    path = root / "sources" / "depot.yml"
    path.write_text(SOURCE.format(path=root / "data"))
    return parse_source_file(path)


def _run(source: SourceConfig, run_id: str, start: dt.datetime) -> history.RunRef:
    run = history.RunRef(DAG_ID, run_id)
    work_dir = ingest.run_work_dir(DAG_ID, run_id, source.name)
    ingest.extract(source, Interval(start, start + dt.timedelta(days=1)), work_dir)
    ingest.load(source, work_dir, run=run)
    return run


def _query(root: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def test_a_load_records_rows_per_table_its_interval_load_id_and_timing(env):
    data = env / "data"
    (data / "stores.csv").write_text("store_id,city\n1,Lyon\n2,Oslo\n3,Porto\n")
    (data / "1.jsonl").write_text('{"id": 1, "temperature": 20}\n{"id": 2, "temperature": 21}\n')
    source = _source(env)
    run = _run(source, "manual__1", day(1))

    rows = _query(
        env,
        "select table_name, rows, interval_start, interval_end, load_id, started_at <= finished_at, "
        "duration_seconds > 0, status, error from mallard_meta.loads where run_id = ? order by table_name",
        [run.run_id],
    )
    [(load_id,)] = _query(env, "select load_id from raw_depot._dlt_loads")
    common = (day(1), day(2), load_id, True, True, "success", None)
    # A table of the source with no rows this run is there with 0 (its resource ran, nothing came).
    assert rows == [("readings", 2, *common), ("stores", 3, *common), ("visits", 0, *common)]
    assert _query(env, "select count(*) from raw_depot.stores") == [(3,)]

    # Another attempt of the same run (a retried task) replaces the rows: a run counts its rows once.
    (data / "stores.csv").write_text("store_id,city\n1,Lyon\n2,Oslo\n")
    _run(source, "manual__1", day(1))
    assert _query(env, "select table_name, rows from mallard_meta.loads order by 1") == [
        ("readings", 2),
        ("stores", 2),
        ("visits", 0),
    ]
    # A new run adds its own rows; the history of the first run stays.
    _run(source, "manual__2", day(2))
    assert _query(env, "select run_id, count(*) from mallard_meta.loads group by 1 order by 1") == [
        ("manual__1", 3),
        ("manual__2", 3),
    ]


def test_added_columns_and_variant_columns_are_recorded_as_schema_changes(env):
    data = env / "data"
    (data / "stores.csv").write_text("store_id,city\n1,Lyon\n")
    (data / "1.jsonl").write_text('{"id": 1, "temperature": 20}\n')
    source = _source(env)
    _run(source, "run_1", day(1))
    # The first load is the baseline: no change.
    assert _query(env, "select count(*) from mallard_meta.schema_changes") == [(0,)]

    (data / "stores.csv").write_text("store_id,city,opened_on\n1,Lyon,2020-01-01\n")
    (data / "2.jsonl").write_text('{"id": 2, "temperature": 20.5}\n')
    _run(source, "run_2", day(2))
    changes = _query(
        env,
        "select table_name, column_name, change, old_type, new_type, seen_at is not null "
        "from mallard_meta.schema_changes where run_id = 'run_2' order by all",
    )
    assert changes == [
        ("readings", "temperature__v_double", "variant", "bigint", "double", True),
        ("stores", "opened_on", "added", None, "date", True),
    ]
    assert _query(env, "select count(*) from raw_depot.readings where temperature__v_double = 20.5") == [(1,)]


def test_a_failed_load_and_a_failed_extract_are_recorded_failed(env):
    data = env / "data"
    (data / "stores.csv").write_text("store_id,city\n1,Lyon\n")
    (data / "1.jsonl").write_text('{"id": 1, "temperature": 20}\n')
    source = _source(env)
    _run(source, "good", day(1))

    # A load whose package is damaged fails after opening the warehouse: recorded at once.
    run = history.RunRef(DAG_ID, "damaged")
    work_dir = ingest.run_work_dir(DAG_ID, run.run_id, source.name)
    ingest.extract(source, Interval(day(2), day(3)), work_dir)
    for job in work_dir.rglob("normalized/*/new_jobs/stores.*"):
        job.write_bytes(b"\x00 not what dlt wrote \xff" * 10)
    with pytest.raises(Exception, match="stores"):
        ingest.load(source, work_dir, run=run)
    failed = _query(
        env, "select table_name, rows, status, error from mallard_meta.loads where run_id = 'damaged' order by 1"
    )
    assert [row[:3] for row in failed] == [(table, None, "failed") for table in ("readings", "stores", "visits")]
    assert all("stores" in row[3] for row in failed), failed

    # The retry of that load, on a repaired package, replaces the failure.
    ingest.extract(source, Interval(day(2), day(3)), work_dir)
    ingest.load(source, work_dir, run=run)
    assert {r[0] for r in _query(env, "select status from mallard_meta.loads where run_id = 'damaged'")} == {"success"}

    # A load with nothing extracted (the extract failed) cannot know its tables: one row, queued for
    # the run's last task, which writes it.
    lost = history.RunRef(DAG_ID, "extract_failed")
    with pytest.raises(FileNotFoundError):
        ingest.load(source, ingest.run_work_dir(DAG_ID, lost.run_id, source.name), run=lost)
    assert _query(env, "select count(*) from mallard_meta.loads where run_id = 'extract_failed'") == [(0,)]
    with duckdb.connect(str(env / "warehouse.duckdb")) as connection:
        assert history_queue.flush_pending(connection, lost) == {"loads": 1}
    [(table, rows, status, error)] = _query(
        env, "select table_name, rows, status, error from mallard_meta.loads where run_id = 'extract_failed'"
    )
    assert (table, rows, status) == (None, None, "failed")
    assert error.startswith("FileNotFoundError: nothing to load for source 'depot'")
    assert not history_queue.pending_dir(DAG_ID, lost.run_id).exists()
