"""Tasks re-running a dbt node outside the warehouse pool take turns on the DuckDB file (`writer_turn`)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include.mallard.warehouse import WRITER_TURN_SUFFIX, writer_turn

HOLDER = """
import sys, time
from pathlib import Path
from include.mallard.warehouse import writer_turn
marks = Path(sys.argv[2])
with writer_turn(Path(sys.argv[1])):
    marks.write_text(f"in {time.time()}\\n")
    time.sleep(float(sys.argv[3]))
    marks.write_text(marks.read_text() + f"out {time.time()}\\n")
"""


def start_holder(warehouse: Path, marks: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the turn for `seconds`; returns once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse), str(marks), str(seconds)])
    deadline = time.monotonic() + 30
    while not marks.exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the turn"
        time.sleep(0.02)
    return holder


def is_held(warehouse: Path) -> bool:
    lock_path = warehouse.with_name(warehouse.name + WRITER_TURN_SUFFIX)
    if not lock_path.exists():
        return False
    with lock_path.open() as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        return False


def test_a_second_writer_starts_only_when_the_first_has_finished(tmp_path, caplog):
    warehouse, marks = tmp_path / "mallard.duckdb", tmp_path / "marks"
    holder = start_holder(warehouse, marks, seconds=1.0)
    with caplog.at_level("INFO", logger="include.mallard.warehouse"), writer_turn(warehouse):
        entered = time.time()
        assert is_held(warehouse)
    holder.wait(timeout=30)
    left = float(marks.read_text().splitlines()[1].split()[1])
    assert entered >= left, "the second writer started while the first held the turn"
    assert "Waiting for the warehouse's writer turn" in caplog.text
    assert not is_held(warehouse), "the turn is released on exit"


def test_a_killed_holder_releases_the_turn(tmp_path):
    warehouse, marks = tmp_path / "mallard.duckdb", tmp_path / "marks"
    holder = start_holder(warehouse, marks, seconds=60)
    assert is_held(warehouse)
    holder.kill()
    holder.wait(timeout=30)
    with writer_turn(warehouse):
        assert "out" not in marks.read_text(), "the holder was killed inside its turn"


@pytest.mark.parametrize(
    ("environment", "in_turn"),
    [
        ("dev", True),  # the DuckDB file: one writer at a time
        ("prod", False),  # mallard.yml's PostgreSQL server takes concurrent writers: no file to queue on
    ],
)
def test_a_node_re_run_by_its_watcher_runs_inside_the_turn_on_duckdb(tmp_path, monkeypatch, environment, in_turn):
    from cosmos.operators.watcher import DbtRunWatcherOperator

    from include.mallard.dbt_watchers import read_node_reports

    warehouse = tmp_path / "mallard.duckdb"
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("MALLARD_ENV", environment)
    seen: list[bool] = []

    # Stands in for Cosmos running the node with dbt: records whether the turn is held meanwhile.
    def run_node_with_dbt(self, try_number, context) -> bool:
        seen.append(is_held(warehouse))
        return True

    monkeypatch.setattr(DbtRunWatcherOperator, "_fallback_to_non_watcher_run", run_node_with_dbt)
    watcher = DbtRunWatcherOperator(
        task_id="dbt.orders.run",
        project_dir=str(tmp_path),
        deferrable=False,
        extra_context={"dbt_node_config": {"unique_id": "model.demo.orders"}},
    )
    read_node_reports([watcher])
    assert watcher._fallback_to_non_watcher_run(2, {"ti": object()}) is True
    assert seen == [in_turn]
    assert not is_held(warehouse)
    assert warehouse.with_name(warehouse.name + WRITER_TURN_SUFFIX).exists() is in_turn
