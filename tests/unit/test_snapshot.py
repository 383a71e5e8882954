"""The read-only snapshot: published atomically, readable while the next one is written, never a lock.

Real DuckDB files and real reader processes (a reader in another process is what a BI tool or
the DuckDB CLI is); no Airflow.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from include.mallard import warehouse
from include.mallard.snapshot import METHODS, publish_snapshot

# A reader in another process: opens the file read-only, prints the row count, then answers
# "count" on each line of stdin with the count it sees now (on the file it opened first).
READER = """
import duckdb, sys
connection = duckdb.connect(sys.argv[1], read_only=True)
print(connection.execute("select count(*) from marts.customers").fetchone()[0], flush=True)
for line in sys.stdin:  # then a table it has not read yet: its blocks come from the file it opened
    print(connection.execute("select count(*) + sum(id) from marts.orders").fetchone()[0], flush=True)
"""


def _warehouse(path: Path, rows: int) -> Path:
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema if not exists marts")
        connection.execute("create or replace table marts.customers as select range as id from range(?)", [rows])
        # Enough rows for many blocks, so that a reader really reads from the file.
        connection.execute("create or replace table marts.orders as select range as id from range(?)", [rows * 20_000])
    return path


def _orders(rows: int) -> int:
    count = rows * 20_000
    return count + count * (count - 1) // 2


class Reader:
    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.first = self.read()

    def read(self) -> int:
        assert self.process.stdout is not None
        return int(self.process.stdout.readline())

    def count(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.mark.parametrize("method", METHODS)
def test_a_reader_of_the_snapshot_never_blocks_the_next_one_and_keeps_reading_its_own(tmp_path, method):
    source = _warehouse(tmp_path / "mallard.duckdb", 10)
    target = tmp_path / "mallard.read.duckdb"
    first = publish_snapshot(source, target, method=method)
    assert first is not None and first.path == target and first.tables == 2

    reader = Reader(target)  # holds the snapshot open (read-only) from now on
    try:
        assert reader.first == 10
        inode = target.stat().st_ino
        _warehouse(source, 25)  # the next run writes the warehouse: the snapshot's reader does not block it
        publish_snapshot(source, target, method=method)  # nor the next publication
        # A new file took the name; the reader's file (inode) is untouched and it reads it whole.
        assert target.stat().st_ino != inode
        assert reader.count() == _orders(10), "a reader keeps reading the snapshot it opened"
        with duckdb.connect(str(target), read_only=True) as connection:
            assert connection.execute("select count(*) from marts.customers").fetchone() == (25,)
    finally:
        reader.close()
    assert not list(tmp_path.glob(".mallard.read.duckdb.*")), "no temporary file is left behind"


def test_a_reader_of_the_warehouse_itself_blocks_writers_and_the_message_says_who_and_how(
    tmp_path, caplog, monkeypatch
):
    """Why the snapshot exists: DuckDB refuses a writer while any process has the file open, even read-only."""
    caplog.set_level(logging.WARNING, logger="include.mallard.warehouse")
    source = _warehouse(tmp_path / "mallard.duckdb", 3)
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(source))
    monkeypatch.delenv("MALLARD_SNAPSHOT_PATH", raising=False)
    reader = Reader(source)
    try:
        with pytest.raises(duckdb.IOException) as failure:
            duckdb.connect(str(source))
        assert warehouse.is_lock_error(failure.value)
        described = warehouse.describe_lock(failure.value)
        assert described.startswith(f"{source} is open in process {reader.process.pid} `"), described
        assert described.endswith("(read-only)"), described
        with pytest.raises(duckdb.IOException):
            warehouse.retry_on_lock(lambda: duckdb.connect(str(source)), attempts=2, wait_seconds=0.01)
    finally:
        reader.close()
    assert "locked by another process" in caplog.text
    assert f"process {reader.process.pid}" in caplog.text and "(read-only)" in caplog.text
    assert f"snapshot {tmp_path / 'mallard.read.duckdb'} instead" in caplog.text, "the message points at the snapshot"


def test_a_writer_holding_the_warehouse_is_described_as_writing(tmp_path):
    source = _warehouse(tmp_path / "mallard.duckdb", 3)
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(1, flush=True); input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "1"
        with pytest.raises(duckdb.IOException) as failure:
            duckdb.connect(str(source))
        assert f"process {holder.pid}" in warehouse.describe_lock(failure.value)
        assert "(for writing)" in warehouse.describe_lock(failure.value)
    finally:
        holder.kill()
        holder.wait()


def test_no_warehouse_publishes_nothing_and_the_warehouse_is_never_its_own_snapshot(tmp_path):
    assert publish_snapshot(tmp_path / "missing.duckdb", tmp_path / "mallard.read.duckdb") is None
    assert not (tmp_path / "mallard.read.duckdb").exists()
    source = _warehouse(tmp_path / "mallard.duckdb", 1)
    with pytest.raises(ValueError, match="MALLARD_SNAPSHOT_PATH"):
        publish_snapshot(source, source)


def test_the_snapshot_path_sits_next_to_the_warehouse_unless_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "w" / "main.duckdb"))
    monkeypatch.delenv("MALLARD_SNAPSHOT_PATH", raising=False)
    assert warehouse.snapshot_path() == tmp_path / "w" / "mallard.read.duckdb"
    monkeypatch.setenv("MALLARD_SNAPSHOT_PATH", str(tmp_path / "elsewhere.duckdb"))
    assert warehouse.snapshot_path() == tmp_path / "elsewhere.duckdb"


def test_a_killed_publication_leaves_a_temporary_file_that_the_next_one_removes(tmp_path):
    source = _warehouse(tmp_path / "mallard.duckdb", 2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".mallard.read.duckdb.{dead.pid}.tmp"
    stale.write_bytes(b"half a copy")
    publish_snapshot(source, tmp_path / "mallard.read.duckdb")
    assert not stale.exists()


def test_mallard_marts_reads_the_snapshot_even_while_the_warehouse_is_held_for_writing(tmp_path, monkeypatch):
    from include.mallard.warehouse_report import WarehouseReportError, table_counts

    source = _warehouse(tmp_path / "mallard.duckdb", 4)
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(source))
    monkeypatch.delenv("MALLARD_SNAPSHOT_PATH", raising=False)
    with pytest.raises(WarehouseReportError, match=r"no warehouse snapshot at .*mallard\.read\.duckdb: the warehouse"):
        table_counts(["marts"], tmp_path)
    publish_snapshot()
    _warehouse(source, 9)  # the warehouse moved on since; the report shows the published snapshot
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(1, flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(source)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"1"
        report = table_counts(["marts"], tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert (
        report.splitlines()[0]
        == f"Warehouse snapshot {tmp_path / 'mallard.read.duckdb'} (published after the last run):"
    )
    assert [line.split() for line in report.splitlines()[1:]] == [
        ["marts.customers", "4", "rows"],
        ["marts.orders", "80,000", "rows"],
    ]
