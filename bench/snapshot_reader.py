"""Load times of the demo DAG run with and without a reader holding the snapshot open.

    python bench/snapshot_reader.py [--runs 4] [--warehouse-reader] [--keep]

`--runs` `airflow dags test` runs of `mallard_elt` over consecutive days in a scratch Airflow home
and warehouse; every other run has a reader process holding `mallard.read.duckdb` open
read-only from before the run starts until it ends (what a BI tool or notebook does). Reported per
run: the three load tasks' durations (from the metadata database), the `publish` task, the run's
wall time, and whether any log line shows the warehouse lock. The baseline is the runs without a
reader, measured in the same session.

`--warehouse-reader` also measures what the snapshot avoids: one `ingest.load` while a reader
holds the *warehouse* read-only (it waits 12 x 5 s, then fails on the lock).
Results: bench/results/snapshot_reader.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PROJECT_ROOT, median, prepare_environment, print_rows, ratio, report_written, write_result

HOLD = """
import duckdb, sys, time
connection = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(3600)
"""
# One extract + load of the stores source, timed; run while a reader holds the warehouse itself.
ONE_LOAD = """
import datetime as dt, time
from include.mallard import ingest
from include.mallard.config import get_source
from include.mallard.interval import Interval
from include.mallard.paths import SOURCES_DIR

source, day = get_source(SOURCES_DIR, "stores"), dt.datetime(2024, 1, 20, tzinfo=dt.UTC)
work_dir = ingest.run_work_dir("bench", "reader", "stores")
ingest.extract(source, Interval(day, day + dt.timedelta(days=1)), work_dir)
started = time.perf_counter()
try:
    ingest.load(source, work_dir)
except Exception as error:
    print("failed:", type(error).__name__)
print("seconds", round(time.perf_counter() - started, 1))
"""
LOADS = ("ingest_shop.load", "ingest_stores.load", "ingest_marketing.load")


def _airflow(args: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as output:
        subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return time.perf_counter() - started


def _durations(airflow_home: Path, logical_date: str) -> dict[str, float]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "select ti.task_id, ti.duration from task_instance ti join dag_run dr on ti.run_id = dr.run_id "
            "and ti.dag_id = dr.dag_id where dr.logical_date like ?",
            [f"{logical_date}%"],
        ).fetchall()
    return {task: duration for task, duration in rows if task in (*LOADS, "publish")}


def _hold(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _warehouse_reader_load(env: dict[str, str]) -> dict[str, Any]:
    """One load of the stores source while the warehouse itself is held read-only (the old advice)."""
    holder = _hold(Path(env["MALLARD_WAREHOUSE_PATH"]))
    try:
        result = subprocess.run(
            [sys.executable, "-c", ONE_LOAD], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
        )
    finally:
        holder.kill()
        holder.wait()
    lines = [line for line in result.stdout.splitlines() if line.startswith(("failed", "seconds"))]
    return {"output": lines, "lock_warnings": result.stderr.count("locked by another process")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--warehouse-reader", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    env = prepare_environment()
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-reader-"))
    airflow_home, warehouse = scratch / "airflow", scratch / "warehouse" / "mallard.duckdb"
    env |= {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__COSMOS__CACHE_DIR": str(airflow_home / "cosmos"),
        "MALLARD_WAREHOUSE_PATH": str(warehouse),
        "MALLARD_WORK_DIR": str(scratch / "work"),
    }
    _airflow(["db", "migrate"], env, scratch / "migrate.log")
    _airflow(["dags", "test", "mallard_elt", "2024-01-08"], env, scratch / "warmup.log")  # the snapshot exists
    runs = []
    for number in range(args.runs):
        reader = number % 2 == 1
        date = (dt.date(2024, 1, 9) + dt.timedelta(days=number)).isoformat()
        log = scratch / f"run-{date}.log"
        holder = _hold(warehouse.with_name("mallard.read.duckdb")) if reader else None
        try:
            wall = _airflow(["dags", "test", "mallard_elt", date], env, log)
        finally:
            if holder:
                holder.kill()
                holder.wait()
        durations = _durations(airflow_home, date)
        text = log.read_text(errors="replace")
        runs.append(
            {
                "day": date,
                "reader_on_snapshot": reader,
                "loads_seconds": round(sum(durations[t] for t in LOADS), 2),
                "publish_seconds": round(durations["publish"], 2),
                "run_seconds": round(wall, 1),
                "lock_lines": text.count("locked by another process") + text.count("Could not set lock"),
                "tasks": durations,
            }
        )
    without = [r["loads_seconds"] for r in runs if not r["reader_on_snapshot"]]
    with_reader = [r["loads_seconds"] for r in runs if r["reader_on_snapshot"]]
    summary = {"median_loads_without": median(without), "median_loads_with_reader": median(with_reader)}
    summary["ratio"] = ratio(summary["median_loads_with_reader"], summary["median_loads_without"])
    columns = ("loads_seconds", "publish_seconds", "run_seconds", "lock_lines")
    rows = [(r["day"], "yes" if r["reader_on_snapshot"] else "no", *(r[c] for c in columns)) for r in runs]
    print_rows("Demo runs", ("day", "snapshot reader", "3 loads (s)", "publish (s)", "run (s)", "lock lines"), rows)
    print(
        f"\nmedian of the 3 loads: {summary['median_loads_without']} s without, "
        f"{summary['median_loads_with_reader']} s with a reader (x{summary['ratio']})"
    )
    result: dict[str, Any] = {"runs": runs, "summary": summary}
    if args.warehouse_reader:
        result["load_with_a_reader_on_the_warehouse"] = _warehouse_reader_load(env)
        print("one load with a reader on the warehouse itself:", result["load_with_a_reader_on_the_warehouse"])
    report_written(write_result("snapshot_reader", result), scratch, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
