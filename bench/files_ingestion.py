"""A large CSV file, DuckDB's native load of it, and Mallard's real `files` ingestion of it.

Used by bench/ingest.py (throughput) and bench/memory.py (peak RSS). Every measurement runs in
a child process of its own (`run_child`), so each starts from the same state, like an Airflow
task does, and its peak RSS is its own (`os.wait4`).

Mallard's ingestion goes through the same path as an Airflow task: a source YAML parsed and
validated by `parse_source_file`, then `include.mallard.ingest.extract` and `load` into a DuckDB
file. The warehouse and dlt's working folders live in a folder of the benchmark's own (through
MALLARD_WAREHOUSE_PATH and MALLARD_WORK_DIR), never in the project's `warehouse/` or `.mallard/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.common import prepare_environment, run_child_result, stopwatch

TABLE_NAME = "events"
SOURCE_NAME = "bench_files"
RESULT_MARKER = "BENCH_RESULT "
# A mix of the types a real export has: integers, decimals, text, booleans, dates, timestamps.
CSV_COLUMNS_SQL = """
    i AS event_id,
    (i * 7919) % 100000 AS customer_id,
    round(((i * 104729) % 1000000) / 100.0, 2) AS amount,
    ['new', 'paid', 'shipped', 'returned'][1 + i % 4] AS status,
    i % 3 = 0 AS is_priority,
    DATE '2024-01-01' + CAST(i % 365 AS INTEGER) AS event_date,
    TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i % 31536000) AS created_at,
    'customer-' || ((i * 7919) % 100000) AS customer_ref
"""
CSV_COLUMNS = 8

# How the CSV reader of include/mallard/sources/file_readers.py (or the full refresh of ingest.py) can be
# swapped inside a child process, to measure what each change bought (bench/ingest.py --compare-*).
READER_VARIANTS = {
    "current": "include/mallard/sources/file_readers.py as it is",
    "dlt_reader": "before: dlt's read_csv_duckdb(use_pyarrow=True): 5,000-row batches, file read via a Python object",
    "file_object": "current reader, but the file read through a Python file object (as dlt's reader does)",
    "small_batches": "current reader, but 5,000-row batches as dlt's reader used",
    "default_buffer": "current reader, but DuckDB's default 32 MiB read buffer (before 2026-12-05)",
    "unchecked_types": "current reader without the check that integer and time values read back as written",
    "dlt_staging_copy": "current reader; full refresh as before: dlt's insert-from-staging (staging, then a copy)",
}


def source_yaml(csv_dir: Path, write_disposition: str | None) -> str:
    """A `files` source config reading every CSV in `csv_dir` into one table."""
    text = f"kind: files\ndescription: Benchmark CSV export.\npath: {csv_dir}\ntables:\n"
    text += f"  - name: {TABLE_NAME}\n    glob: '*.csv'\n    format: csv\n"
    if write_disposition:
        text += f"    write_disposition: {write_disposition}\n"
    return text


def csv_for(data_dir: Path, rows: int) -> Path:
    """The benchmark CSV of `rows` rows, alone in a folder of its own (a files source reads every *.csv there)."""
    return write_csv(data_dir / f"{rows}_rows" / "events.csv", rows)


def write_csv(path: Path, rows: int) -> Path:
    """Write a CSV of `rows` rows plus a header with DuckDB; reuse the file if it already has that many."""
    import duckdb

    marker = path.with_suffix(".rows")
    if path.exists() and marker.exists() and marker.read_text() == str(rows):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT {CSV_COLUMNS_SQL} FROM range({rows}) AS r(i)) TO '{path}' (HEADER)")
    marker.write_text(str(rows))
    return path


def _start_from(database: Path, over: Path | None) -> None:
    """A new database file, or a copy of `over` (a warehouse that already holds the table)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    if over:
        shutil.copyfile(over, database)


def _two_step_result(database: Path, table: str, extract_seconds: float, load_seconds: float) -> dict[str, Any]:
    """The rows `table` holds in `database`, the seconds of both steps, and the file's size (what the load left)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {
        "rows": rows,
        "extract_normalize_seconds": round(extract_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "seconds": round(extract_seconds + load_seconds, 3),
        "warehouse_mib": round(database.stat().st_size / 2**20, 1),
    }


def duckdb_native_load(csv_path: Path, database: Path, over: Path | None = None) -> dict[str, Any]:
    """The baseline: DuckDB's own `CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv(...)`.

    Into a new file, or with `over` into a copy of a file that already holds `t` (a refresh).
    """
    import duckdb

    _start_from(database, over)
    # Closing the connection (DuckDB's checkpoint to disk) is inside the timing, as in Mallard's load.
    with stopwatch() as elapsed, duckdb.connect(str(database)) as connection:
        connection.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('{csv_path}')")
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("SELECT count(*) FROM t").fetchone()[0]
    return {"rows": rows, "seconds": round(elapsed(), 3), "warehouse_mib": round(database.stat().st_size / 2**20, 1)}


def duckdb_two_step_load(csv_path: Path, database: Path) -> dict[str, Any]:
    """DuckDB alone, through a Parquet file between the two steps, as any extract-then-load design has.

    Step one writes the CSV's rows to Parquet (DuckDB's own multi-threaded writer), step two loads
    that file into a new database file. No dlt, no memory limit: the best such a design can do.
    """
    import duckdb

    _start_from(database, None)
    parquet = database.with_name("extracted.parquet")
    with stopwatch() as extract_seconds, duckdb.connect() as connection:
        connection.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{parquet}' (FORMAT parquet)")
    with stopwatch() as load_seconds, duckdb.connect(str(database)) as connection:
        connection.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_parquet('{parquet}')")
    return _two_step_result(database, "t", extract_seconds(), load_seconds())


def use_reader_variant(variant: str) -> None:
    """Swap the CSV reader of Mallard's files source for one of READER_VARIANTS (in this process only)."""
    from include.mallard.sources import csv_types, file_readers, files

    if variant == "dlt_reader":
        from dlt.sources.filesystem.readers import _read_csv_duckdb

        current = files._read_one
        files._read_one = lambda item, table, layout, source_name: (
            _read_csv_duckdb([item], use_pyarrow=True)
            if table.format == "csv"
            else current(item, table, layout, source_name)
        )
    elif variant == "file_object":
        file_readers._is_local_file = lambda item: False
    elif variant == "small_batches":
        file_readers.CSV_BATCH_ROWS = 5_000
    elif variant == "default_buffer":
        file_readers.CSV_BUFFER_BYTES = 32 << 20
    elif variant == "unchecked_types":
        csv_types.faithful = lambda relation, reread, declared: relation
    elif variant == "dlt_staging_copy":
        import dlt

        from include.mallard import duckdb_destination

        duckdb_destination.duckdb_swapping_full_refresh = dlt.destinations.duckdb  # read by ingest at load time
    elif variant != "current":
        raise ValueError(f"unknown reader variant {variant!r}; use one of {', '.join(READER_VARIANTS)}")


def dlt_direct_load(csv_path: Path, root: Path) -> dict[str, Any]:
    """The bound of a design in which DuckDB reads a local CSV inside dlt's load step (no file between).

    A dlt pipeline (dlt's own DuckDB destination, append) extracts only the table's columns, an
    empty Arrow table of the schema DuckDB sniffs from the CSV; after its load creates the table,
    DuckDB inserts the CSV's rows through the pipeline's SQL client in one statement. That is dlt's
    fixed cost per run plus DuckDB's one-step load, and nothing of Mallard: no checks of the file,
    no full-refresh swap, and no memory limit unless MALLARD_DUCKDB_MEMORY_LIMIT sets one for the
    insert (what keeping a load's memory flat would cost it). Not a way Mallard loads: what such a
    way could reach.
    """
    import dlt
    import duckdb
    import pyarrow

    from include.mallard.ingest import MEMORY_LIMIT_ENV

    root.mkdir(parents=True, exist_ok=True)
    database = root / "direct.duckdb"
    _start_from(database, None)
    read = f"read_csv('{csv_path}')"
    pipeline = dlt.pipeline(
        "bench_dlt_direct",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="raw",
        pipelines_dir=str(root / "pipelines"),
    )
    with stopwatch() as extract_seconds:
        with duckdb.connect() as connection:
            schema = connection.sql(f"SELECT * FROM {read}").limit(0).to_arrow_table().schema
        pipeline.extract(dlt.resource([pyarrow.Table.from_batches([], schema=schema)], name=TABLE_NAME))
        pipeline.normalize()
    with stopwatch() as load_seconds:
        pipeline.load()
        with pipeline.sql_client() as client:
            if limit := os.environ.get(MEMORY_LIMIT_ENV):
                client.execute_sql(f"SET memory_limit = '{limit}'")
            client.execute_sql(f"INSERT INTO raw.{TABLE_NAME} SELECT * FROM {read}")
    return _two_step_result(database, f"raw.{TABLE_NAME}", extract_seconds(), load_seconds())


def mallard_files_ingestion(
    csv_dir: Path, root: Path, *, write_disposition: str | None = None, over: Path | None = None
) -> dict[str, Any]:
    """One extract + load of a `files` source reading `csv_dir/*.csv` into `root/warehouse.duckdb`.

    The warehouse starts new, or with `over` as a copy of a warehouse this source already loaded.
    """
    root.mkdir(parents=True, exist_ok=True)
    warehouse = root / "warehouse.duckdb"
    _start_from(warehouse, over)
    os.environ["MALLARD_WAREHOUSE_PATH"] = str(warehouse)
    os.environ["MALLARD_WORK_DIR"] = str(root / "work")

    from include.mallard import ingest
    from include.mallard.config.loader import parse_source_file
    from include.mallard.interval import Interval
    from include.mallard.secrets import reference_issues

    config_file = root / f"{SOURCE_NAME}.yml"
    config_file.write_text(source_yaml(csv_dir, write_disposition), encoding="utf-8")
    source = parse_source_file(config_file, extra_checks=reference_issues)
    interval = Interval(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    work_dir = ingest.run_work_dir("bench", "run", source.name)

    with stopwatch() as extract_seconds:
        ingest.extract(source, interval, work_dir)
    with stopwatch() as load_seconds:
        ingest.load(source, work_dir)
    return _two_step_result(warehouse, f"{source.dataset_name}.{TABLE_NAME}", extract_seconds(), load_seconds())


# --- child processes ----------------------------------------------------------------------------


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _child(args: argparse.Namespace) -> dict[str, Any]:
    # Import what an ingestion task imports before measuring, so `rss_after_imports_mb` is the fixed part.
    if args.what in ("mallard", "imports", "dlt_direct"):
        import dlt  # noqa: F401

        from include.mallard import ingest  # noqa: F401

        use_reader_variant(args.variant)
    else:
        import duckdb  # noqa: F401
    result: dict[str, Any] = {"rss_after_imports_mb": _rss_mb()}
    over = Path(args.over) if args.over else None
    if args.what == "native":
        result |= duckdb_native_load(Path(args.csv), Path(args.root) / "native.duckdb", over)
    elif args.what == "two_step":
        result |= duckdb_two_step_load(Path(args.csv), Path(args.root) / "two_step.duckdb")
    elif args.what == "dlt_direct":
        result |= dlt_direct_load(Path(args.csv), Path(args.root))
    elif args.what == "mallard":
        if args.profile_to:
            import cProfile

            profiler = cProfile.Profile()
            result |= profiler.runcall(
                mallard_files_ingestion,
                Path(args.csv).parent,
                Path(args.root),
                write_disposition=args.disposition,
                over=over,
            )
            profiler.dump_stats(args.profile_to)
        else:
            result |= mallard_files_ingestion(
                Path(args.csv).parent, Path(args.root), write_disposition=args.disposition, over=over
            )
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def run_child(
    what: str,
    csv_path: Path,
    root: Path,
    env: dict[str, str],
    *,
    variant: str = "current",
    write_disposition: str | None = None,
    profile_to: Path | None = None,
    over: Path | None = None,
) -> dict[str, Any]:
    """Run one measurement (`native`, `two_step`, `dlt_direct`, `mallard`, `imports`) in a new process; add peak RSS.

    With `over`, the run's database starts as a copy of that file (copied before the timing).

    The peak comes from `os.wait4`, which reports the child's own rusage (RUSAGE_CHILDREN would
    report the largest of all children so far).
    """
    command = [sys.executable, "-m", "bench.files_ingestion", "--what", what, "--csv", str(csv_path)]
    command += ["--root", str(root), "--variant", variant]
    if write_disposition:
        command += ["--disposition", write_disposition]
    if profile_to:
        command += ["--profile-to", str(profile_to)]
    if over:
        command += ["--over", str(over)]
    return run_child_result(command, env, RESULT_MARKER)


def main() -> int:
    parser = argparse.ArgumentParser(description="One benchmark measurement (run by bench/ingest.py, memory.py).")
    parser.add_argument("--what", choices=("native", "two_step", "dlt_direct", "mallard", "imports"), required=True)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--variant", choices=tuple(READER_VARIANTS), default="current")
    parser.add_argument("--disposition", choices=("append", "replace", "merge"))
    parser.add_argument("--profile-to")
    parser.add_argument("--over", help="start from a copy of this database file (a refresh of the table)")
    args = parser.parse_args()
    prepare_environment()
    print(RESULT_MARKER + json.dumps(_child(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
