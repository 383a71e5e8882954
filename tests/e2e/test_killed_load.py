"""A load killed with SIGKILL while it writes: the warehouse stays readable and the retry loads every row once.

The load runs as its own process, as an Airflow task does, on a multi-million-row CSV extracted
beforehand; it is killed a moment after it starts writing. The retry is what Airflow's task retry
runs: `ingest.load` again on the same working folder.
"""

from __future__ import annotations

import datetime as dt
import os
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

pytestmark = pytest.mark.e2e

ROWS = 3_000_000
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
from include.mallard import ingest
from include.mallard.config.loader import parse_source_file
source = parse_source_file(Path(sys.argv[1]))
print("loading", flush=True)
ingest.load(source, Path(sys.argv[2]))
print("loaded", flush=True)
"""


def _count(warehouse: Path) -> tuple[int, int]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute("select count(*), count(distinct id) from raw_big.events").fetchone()


# The whole load takes 4-7 s on 2 cores: killed while it sets up, and while it writes rows.
@pytest.mark.parametrize("kill_after_seconds", [0.5, 2.0])
def test_a_killed_load_leaves_a_readable_warehouse_and_the_retry_loads_every_row_once(
    tmp_path, monkeypatch, kill_after_seconds
):
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    data = tmp_path / "big"
    data.mkdir()
    duckdb.sql(
        f"copy (select range as id, timestamp '2024-01-02' + to_milliseconds(range % 86400000) as happened_at, "
        f"'row ' || range as label from range({ROWS})) to '{data / 'events.csv'}' (header)"
    )
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
    time.sleep(kill_after_seconds)
    load.send_signal(signal.SIGKILL)
    load.wait(timeout=60)
    assert load.returncode == -signal.SIGKILL, "the load ended before it was killed: use more rows"

    # The file is not corrupted: it opens and answers (the killed transaction is simply not there).
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("select 42").fetchone() == (42,)

    ingest.load(source, work_dir)  # Airflow's retry of the load task
    assert _count(warehouse) == (ROWS, ROWS)
