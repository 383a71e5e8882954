"""Readers never block writers: a process holds the snapshot open for a whole run, and the loads never wait.

Two `airflow dags test` runs of the ELT DAG over the demo sources. The first publishes the
snapshot; then a reader process (what a BI tool, a notebook or the DuckDB CLI is) opens the
snapshot read-only and keeps it open during the second run. The second run's loads must not meet
the warehouse lock (no wait, no retry, no lock error in the log); afterwards the new snapshot
has the second day's rows, while the reader, still on the file it opened, sees the first day's.
Load times of both runs are printed (task durations from the metadata database).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from include.mallard.warehouse import LOCK_ERROR_TEXT
from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e

# Opens the file read-only, prints the count of orders, and prints it again for every stdin line.
READER = """
import duckdb, sys
connection = duckdb.connect(sys.argv[1], read_only=True)
def orders():
    print(connection.execute("select count(*) from raw_shop.orders").fetchone()[0], flush=True)
orders()
for line in sys.stdin:
    orders()
"""


def _load_tasks(airflow_home: Path, logical_date: str) -> dict[str, tuple[str, int, float]]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "select ti.task_id, ti.state, ti.try_number, ti.duration from task_instance ti join dag_run dr "
            "on ti.dag_id = dr.dag_id and ti.run_id = dr.run_id where dr.logical_date like ? "
            "and (ti.task_id like '%.load' or ti.task_id = 'publish')",
            [f"{logical_date}%"],
        ).fetchall()
    return {task: (state, tries, duration) for task, state, tries, duration in rows}


def test_a_reader_holding_the_snapshot_for_a_whole_run_never_delays_a_load(tmp_path):
    warehouse, airflow_home = tmp_path / "warehouse" / "mallard.duckdb", tmp_path / "airflow"
    snapshot = warehouse.with_name("mallard.read.duckdb")
    env = airflow_env(airflow_home, warehouse, tmp_path / "work")
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-08"], env, tmp_path / "first.log")
    [(first_day,)] = query(snapshot, "select count(*) from raw_shop.orders")
    assert first_day > 0

    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(snapshot)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert int(reader.stdout.readline()) == first_day  # it holds the snapshot open from here on
        second_log = tmp_path / "second.log"
        run_airflow(["dags", "test", "mallard_elt", "2024-01-09"], env, second_log)
        assert reader.poll() is None, "the reader kept the snapshot open for the whole run"
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert int(reader.stdout.readline()) == first_day, "a reader keeps reading the snapshot it opened"
    finally:
        reader.kill()
        reader.wait()

    text = second_log.read_text(errors="replace")
    assert "locked by another process" not in text and LOCK_ERROR_TEXT not in text
    loads = _load_tasks(airflow_home, "2024-01-09")
    assert {task for task in loads if task.endswith(".load")} == {
        "ingest_shop.load",
        "ingest_stores.load",
        "ingest_marketing.load",
    }
    assert {(state, tries) for state, tries, _ in loads.values()} == {("success", 1)}, loads
    [(both_days,)] = query(snapshot, "select count(*) from raw_shop.orders")
    assert both_days > first_day
    assert query(warehouse, "select count(*) from raw_shop.orders") == [(both_days,)]

    first = _load_tasks(airflow_home, "2024-01-08")
    print("\nload and publish task durations (s): run 1 (no reader) | run 2 (reader on the snapshot)")
    for task in sorted(loads):
        print(f"  {task:<24} {first[task][2]:6.2f} | {loads[task][2]:6.2f}")
