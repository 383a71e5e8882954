"""The read-only snapshot of the warehouse: what readers open, so that they never block a load.

DuckDB lets a file be open by one writer, or by readers, never both: a BI tool, a notebook or
the DuckDB CLI holding `warehouse/mallard.duckdb` open, even read-only, makes every load wait.
So the last task of each run copies the warehouse to `mallard.read.duckdb` (next to it;
`warehouse.snapshot_path()`), and readers open that copy.

The copy is published atomically: written to a temporary file in the same folder, checked, then
`os.replace`d over the snapshot. A reader that has the old snapshot open keeps reading the old
file (its inode) until it reconnects; a new connection opens the new one. Nobody ever sees half
a file, and no lock on the snapshot (even a writer's) can stop the next publication.

Two ways to make the copy (measured in bench/snapshot.py, docs/design.md): `file` (the default)
checkpoints the warehouse and copies the file while holding it open, so no other process can
write during the copy; `attach` has DuckDB copy every table into a new file (`COPY FROM
DATABASE`), which rewrites (and compacts) the data but is slower.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from include.mallard.warehouse import resolve_warehouse_path, retry_on_lock, snapshot_path

log = logging.getLogger(__name__)

Method = Literal["file", "attach"]
METHODS: tuple[Method, ...] = ("file", "attach")
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Snapshot:
    """A published snapshot: where, from what, how big, how long it took."""

    path: Path
    warehouse: Path
    method: Method
    bytes: int
    seconds: float
    tables: int

    def describe(self) -> str:
        return (
            f"published {self.path} ({self.tables} tables, {self.bytes / 1e6:.1f} MB) from {self.warehouse} "
            f"in {self.seconds:.2f} s ({self.method} copy)"
        )


def _temp_path(target: Path) -> Path:
    # In the target's folder, so that os.replace is a rename on one file system (atomic).
    return target.with_name(f".{target.name}.{os.getpid()}{_TEMP_SUFFIX}")


def _remove_stale_temps(target: Path) -> None:
    """Temporary files of publications that were killed (their process is gone)."""
    for stale in target.parent.glob(f".{target.name}.*{_TEMP_SUFFIX}"):
        pid = stale.name.removeprefix(f".{target.name}.").removesuffix(_TEMP_SUFFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            stale.unlink(missing_ok=True)
            stale.with_name(stale.name + ".wal").unlink(missing_ok=True)


def _copy_file(warehouse: Path, temp: Path) -> None:
    import duckdb

    def copy() -> None:
        # Held open (as the writer) during the copy: no other process can change the file meanwhile.
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute("checkpoint")  # everything committed is in the main file, the WAL empty
            shutil.copyfile(warehouse, temp)

    retry_on_lock(copy)


def _copy_attach(warehouse: Path, temp: Path) -> None:
    import duckdb

    def copy() -> None:
        with duckdb.connect() as connection:
            connection.execute("attach ? as warehouse (read_only)", [str(warehouse)])
            connection.execute("attach ? as snapshot", [str(temp)])
            connection.execute("copy from database warehouse to snapshot")
            connection.execute("detach snapshot")

    retry_on_lock(copy)


def _check(temp: Path) -> int:
    """Open the new file as a reader would; the number of its tables (a broken copy fails here)."""
    import duckdb

    with duckdb.connect(str(temp), read_only=True) as connection:
        (count,) = connection.execute("select count(*) from information_schema.tables").fetchone()
    return int(count)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish_snapshot(
    warehouse: Path | None = None, target: Path | None = None, *, method: Method = "file"
) -> Snapshot | None:
    """Copy the warehouse to the snapshot path atomically; None when there is no warehouse yet.

    Call it where no other Airflow task writes the warehouse (in the warehouse pool): `file`
    opens the warehouse for writing (to checkpoint it) and waits on its lock like a load does.
    """
    if method not in METHODS:
        raise ValueError(f"unknown snapshot method {method!r}: use one of {', '.join(METHODS)}")
    warehouse = warehouse or resolve_warehouse_path()
    target = target or snapshot_path()
    if not warehouse.is_file():
        log.info("No warehouse at %s yet: no snapshot to publish.", warehouse)
        return None
    if target.resolve() == warehouse.resolve():
        raise ValueError(
            f"the snapshot path {target} is the warehouse itself: set MALLARD_SNAPSHOT_PATH to another file"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    temp = _temp_path(target)
    started = time.monotonic()
    try:
        temp.unlink(missing_ok=True)
        (_copy_file if method == "file" else _copy_attach)(warehouse, temp)
        tables = _check(temp)
        _fsync(temp)
        temp.replace(target)  # atomic: readers see the old file or the new one, never a mix
        with contextlib.suppress(OSError):
            _fsync(target.parent)  # the rename itself survives a crash
    finally:
        temp.unlink(missing_ok=True)
        temp.with_name(temp.name + ".wal").unlink(missing_ok=True)
    snapshot = Snapshot(target, warehouse, method, target.stat().st_size, time.monotonic() - started, tables)
    log.info("Snapshot %s", snapshot.describe())
    return snapshot
