"""A load killed with SIGKILL while it writes: the warehouse stays readable and the retry loads every row once.

First the load alone, as its own process on a multi-million-row CSV extracted beforehand, killed
at two moments; its retry is what Airflow's task retry runs (`ingest.load` on the same working
folder). Then the same under the real scheduler: the task process that holds the warehouse open
is killed, and Airflow's own retry must complete the run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
from include.mallard.interval import Interval
from include.mallard.paths import SOURCES_DIR
from tests.e2e.airflow_api import RUN_TIMEOUT, Api, isolated_stack, trigger_paused_run, wait_for_dag, wait_for_run
from tests.e2e.helpers import small_dbt_project, write_elt_dag

pytestmark = pytest.mark.e2e

ROWS = 3_000_000
KILL_DAG_ID = "mallard_kill"
DAY = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
SOURCE = """
kind: files
path: {path}
tables:
  - name: events                 # incremental: merged on id
    glob: "*.csv"
    primary_key: id
    cursor: happened_at
"""
LOAD_IN_A_PROCESS = """
import sys
from pathlib import Path
import dlt  # imported before "loading": ingest imports it lazily, and the kill times the load, not the import
from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
source = parse_source_file(Path(sys.argv[1]))
print("loading", flush=True)
ingest.load(source, Path(sys.argv[2]))
print("loaded", flush=True)
"""


def _write_big_csv(folder: Path) -> Path:
    folder.mkdir(parents=True)
    duckdb.sql(
        f"copy (select range as id, timestamp '2024-01-02' + to_milliseconds(range % 86400000) as happened_at, "
        f"'row ' || range as label from range({ROWS})) to '{folder / 'events.csv'}' (header)"
    )
    return folder


def _count(warehouse: Path) -> tuple[int, int]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute("select count(*), count(distinct id) from raw_big.events").fetchone()


# Killed just after the load opens the warehouse, and once the file has grown while it writes rows
# (by size, not by a delay: a fast machine loads the 3M rows in under 2 s).
WRITING_BYTES = 4 * 1024 * 1024


@pytest.mark.parametrize("kill_at", ["set-up", "write"])
def test_a_killed_load_leaves_a_readable_warehouse_and_the_retry_loads_every_row_once(tmp_path, monkeypatch, kill_at):
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    data = _write_big_csv(tmp_path / "big")
    config = tmp_path / "big.yml"
    config.write_text(SOURCE.format(path=data))
    source = parse_source_file(config)
    work_dir = ingest.run_work_dir("test_killed_load", "run", source.name)
    assert ingest.extract(source, Interval(DAY, DAY + dt.timedelta(days=1)), work_dir) == {"events": ROWS}

    load = subprocess.Popen(
        [sys.executable, "-c", LOAD_IN_A_PROCESS, str(config), str(work_dir)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert load.stdout is not None and load.stdout.readline().strip() == "loading"
    # Time the kill from the moment the load opens the warehouse: on a busy machine the pipeline's
    # set-up alone can take longer than 0.5 s, and a kill before the file exists tests nothing.
    deadline = time.monotonic() + 60
    while not warehouse.exists() and time.monotonic() < deadline and load.poll() is None:
        time.sleep(0.02)
    if kill_at == "set-up":
        time.sleep(0.5)
    else:
        while warehouse.stat().st_size < WRITING_BYTES and time.monotonic() < deadline and load.poll() is None:
            time.sleep(0.005)
    load.send_signal(signal.SIGKILL)
    load.wait(timeout=60)
    assert load.returncode == -signal.SIGKILL, "the load ended before it was killed: use more rows"
    # A load that finished removes its work folder: killed after that, there is nothing to test.
    assert work_dir.is_dir(), "the load finished before it was killed: use more rows"

    # The file is not corrupted: it opens and answers (the killed transaction is simply not there).
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select 42").fetchone() == (42,)

    ingest.load(source, work_dir)  # Airflow's retry of the load task
    assert _count(warehouse) == (ROWS, ROWS)


def _processes_with_open_file(path: Path) -> list[int]:
    pids = []
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            if any(fd.readlink() == path for fd in (process / "fd").iterdir()):
                pids.append(int(process.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return pids


def test_the_scheduler_retries_a_load_task_killed_mid_write(tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(SOURCES_DIR / "shop.yml", sources / "shop.yml")  # what the small dbt project reads
    (sources / "big.yml").write_text(SOURCE.format(path=_write_big_csv(tmp_path / "data")))
    write_elt_dag(tmp_path / "dags", KILL_DAG_ID, sources, small_dbt_project(tmp_path / "dbt"))

    with isolated_stack(tmp_path / "stack", {"AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags")}) as stack:
        api = Api(stack)
        wait_for_dag(api, KILL_DAG_ID)
        run_id = trigger_paused_run(
            api, KILL_DAG_ID, "2024-01-03T00:00:00Z", {"start": "2024-01-02", "end": "2024-01-03"}
        )
        warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])
        load_task = f"/dags/{KILL_DAG_ID}/dagRuns/{run_id}/taskInstances/ingest_big.load"
        killed = None
        deadline = time.monotonic() + RUN_TIMEOUT
        while killed is None and time.monotonic() < deadline:
            if api.call("GET", load_task)["state"] == "running":
                # One pooled task at a time: the process holding the warehouse is this load.
                holders = _processes_with_open_file(warehouse)
                if holders:
                    time.sleep(1.5)  # into the write: the whole load takes 4-7 s
                    for pid in holders:
                        os.kill(pid, signal.SIGKILL)
                    killed = holders
            time.sleep(0.2)
        assert killed, "never saw the load task holding the warehouse"
        run = wait_for_run(api, KILL_DAG_ID, run_id)
        load = api.call("GET", load_task)

    assert run["state"] == "success", run
    assert (load["state"], load["try_number"]) == ("success", 2), "the killed attempt must be retried once"
    assert _count(warehouse) == (ROWS, ROWS)
