"""Ingestion at volume: rows/s and peak RSS of one ingestion per source kind, beside its baseline.

    python -m bench.scale [--rows 100000,1000000] [--kinds python,rest_api,...] [--sql-backend sqlalchemy]
                          [--compare-extract-gzip] [--compare-record-checks]
                          [--dbt-models 100,1000] [--dbt-pairs 1] [--serial] [--keep]

For each kind and row count, each measurement in a new process, all of a case's processes at the
same time (one per core; `--serial`: one after another, interleaved) so that each sees the same
machine load as its baseline:

- mallard: a source YAML through `ingest.extract` + `ingest.load` (what the two Airflow tasks
  run), into a new DuckDB file;
- dlt: the same resources (the kind's builder, the schema contract) in one `pipeline.run` with
  the same destination settings (Parquet load files, the same memory limit), into a new DuckDB
  file: what dlt costs without Mallard's split, drift checks, record key check and bookkeeping;
- duckdb: DuckDB's own reader of the same file (`files` kinds only; SQLite's and PostgreSQL's
  scanners are not built in, docs/stack-notes.md);
- with `--compare-extract-gzip`, mallard_gzip: Mallard with dlt's default of gzipped extract
  files (`SOURCES__DATA_WRITER__DISABLE_COMPRESSION=false`; Mallard and dlt alone write them
  uncompressed, include/mallard/ingest.py);
- with `--compare-record-checks`, mallard_unchecked: Mallard without its checks of dict records
  (the map step for keys that meet in one column, the JSONL reader's same check, and the strict
  JSON normalizer of strict_coercion.py), to show what they cost.

Kinds: python (a generator of dicts, in pages of 10,000), synthetic (the demo shop's customers,
a full-refresh table: N customers, no orders), rest_api (a page-number API served from this
process on 127.0.0.1, 10,000 rows a page), sql_database on SQLite and on PostgreSQL (the kind's
default backend, pyarrow; `--sql-backend sqlalchemy` reads rows as dicts; a throwaway PostgreSQL
cluster on 127.0.0.1, started for the run and stopped after it, as the tests' `postgres_server`),
files csv / jsonl / parquet. With files, DuckDB's reader runs beside the other two (three
processes on two cores): bench/ingest.py measures the CSV ratio to DuckDB on its own.
Peak RSS is each child's own `ru_maxrss` (os.wait4).

Then the dbt side, at each of `--dbt-models` (`--dbt-models ""`: none): Mallard's `dbt build`
task beside the same `dbt build` bare, the seconds each adds per dbt node, in `--dbt-pairs`
interleaved pairs (bench/dbt_overhead.py's measurement, with one `dbt run --empty` instead of its
untimed warm-up builds: both sides start from the partial parse `mallard manifest` wrote, and a
timed run that parsed the whole project is reported; run bench/dbt_overhead.py for more pairs).
Results: bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from bench import dbt_overhead
from bench.common import PROJECT_ROOT, prepare_environment, print_rows, ratio, report_written, write_result

KINDS = ("python", "synthetic", "rest_api", "sql_sqlite", "sql_postgres", "files_csv", "files_jsonl", "files_parquet")
# The table each kind loads (and the row count is checked on).
TABLES = {"synthetic": "customers"}
# Mallard run another way, with --compare-*: (its ratio's key in the results, what the table calls it).
MALLARD_VARIANTS = {
    "mallard_gzip": ("ratio_to_gzip_extract", "with gzipped extract files"),
    "mallard_unchecked": ("ratio_to_unchecked_records", "without its checks of dict records"),
}
PAGE = 10_000
SQL_URL_ENV = "MALLARD_BENCH_SQL_URL"
RESULT_MARKER = "SCALE_RESULT "
PEAK_TARGET_MB = 500
# "Flat": the peak at the largest row count at most this many times the peak at the smallest
# (most of a task's memory is its imports: ~200 MB before the first row).
FLAT_GROWTH_TARGET = 1.25


def rows_page(first: int, count: int) -> list[dict[str, Any]]:
    """`count` rows from id `first`: the same 6 columns for every kind."""
    return [
        {
            "id": i,
            "name": f"event {i}",
            "amount": i * 0.5,
            "at": "2024-01-01T00:00:00+00:00",
            "kind": ("a", "b", "c")[i % 3],
            "qty": i % 97,
        }
        for i in range(first, first + count)
    ]


def python_rows(rows: int) -> Any:
    """The `kind: python` source of the benchmark (function `bench.scale:python_rows`)."""
    import dlt

    @dlt.resource(name="events", primary_key="id", write_disposition="append")
    def events() -> Any:
        for first in range(0, rows, PAGE):
            yield rows_page(first, min(PAGE, rows - first))

    return events


# --- data for each kind ---------------------------------------------------------------------------


def _serve_api(rows: int) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = int(parse_qs(urlparse(self.path).query).get("page", ["1"])[0])
            first = (page - 1) * PAGE
            body = json.dumps({"data": rows_page(first, max(0, min(PAGE, rows - first)))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _write_files(folder: Path, kind: str, rows: int) -> Path:
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    ext = kind.removeprefix("files_")
    path = folder / f"events.{ext}"
    option = {"csv": "(header)", "jsonl": "(format json)", "parquet": "(format parquet)"}[ext]
    select = (
        "select range as id, 'event ' || range as name, range * 0.5 as amount, "
        "timestamptz '2024-01-01 00:00:00+00' as at, ['a','b','c'][range % 3 + 1] as kind, range % 97 as qty "
        f"from range({rows})"
    )
    duckdb.connect().execute(f"copy ({select}) to '{path}' {option}")
    return path


def _write_sqlite(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "create table events (id integer primary key, name text, amount real, at text, kind text, qty integer)"
        )
        for first in range(0, rows, PAGE):
            page = rows_page(first, min(PAGE, rows - first))
            connection.executemany("insert into events values (:id, :name, :amount, :at, :kind, :qty)", page)
    return path


def _fill_postgres(uri: str, csv_file: Path) -> None:
    """(Re)create table `events` in the cluster's database from `csv_file` (written by `_write_files`)."""
    import psycopg2

    with psycopg2.connect(uri) as connection, connection.cursor() as cursor, csv_file.open() as rows:
        cursor.execute(
            "drop table if exists events; create table events "
            "(id bigint primary key, name text, amount double precision, at timestamptz, kind text, qty integer)"
        )
        cursor.copy_expert("copy events from stdin with (format csv, header)", rows)
    connection.close()


@contextlib.contextmanager
def _postgres(needed: bool) -> Iterator[str | None]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the run (its superuser's database URI), if `needed`."""
    if not needed:
        yield None
        return
    from scripts.airflow_stack import PostgresCluster, postgres_unavailable

    if reason := postgres_unavailable():
        raise RuntimeError(f"sql_postgres needs a local PostgreSQL: {reason}")
    root = Path(tempfile.mkdtemp(prefix="mallard-bench-pg-"))
    root.chmod(0o711)  # as root the server runs as user postgres
    cluster = PostgresCluster(root / "cluster")
    try:
        cluster.start()
        yield cluster.uri(PostgresCluster.SUPERUSER)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def source_yaml(kind: str, rows: int, data: Path, base_url: str, sql_backend: str = "pyarrow") -> str:
    if kind == "synthetic":
        return f"kind: synthetic\ncustomers: {rows}\norders_per_day: 0\n"
    if kind == "python":
        return f"kind: python\nfunction: bench.scale:python_rows\nargs: {{rows: {rows}}}\n"
    if kind == "rest_api":
        return (
            f"kind: rest_api\nbase_url: {base_url}\nresources:\n  - name: events\n    path: events\n"
            "    data_selector: data\n    write_disposition: append\n    paginator: {type: page_number}\n"
        )
    if kind.startswith("sql_"):
        # The URL goes through an env var: a literal credential in a source file is refused.
        if kind == "sql_sqlite":
            os.environ[SQL_URL_ENV] = f"sqlite:///{data}"
        return (
            f"kind: sql_database\ncredentials: {{env: {SQL_URL_ENV}}}\nbackend: {sql_backend}\n"
            "chunk_size: 10000\ntables:\n  - name: events\n    write_disposition: append\n"
        )
    ext = kind.removeprefix("files_")
    return f"kind: files\npath: {data.parent}\ntables:\n  - name: events\n    glob: '*.{ext}'\n    format: {ext}\n"


# --- one measurement, in a child process -------------------------------------------------------


def _child(what: str, source_file: Path, root: Path, data: Path, table: str) -> dict[str, Any]:
    import datetime as dt

    start = time.perf_counter()
    if what == "duckdb":
        import duckdb

        reader = {".csv": "read_csv", ".jsonl": "read_json", ".parquet": "read_parquet"}[data.suffix]
        with duckdb.connect(str(root / "native.duckdb")) as connection:
            connection.execute("set memory_limit = '256MB'")
            connection.execute(f"create table events as select * from {reader}('{data}')")
            rows = connection.execute("select count(*) from events").fetchone()[0]
        return {"seconds": time.perf_counter() - start, "rows": rows}

    import duckdb

    from include.mallard import dlt_steps, ingest
    from include.mallard.config.loader import parse_source_file
    from include.mallard.interval import Interval

    imported = time.perf_counter()
    source = parse_source_file(source_file)
    interval = Interval(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    os.environ["MALLARD_WAREHOUSE_PATH"] = str(root / "warehouse.duckdb")
    os.environ["MALLARD_WORK_DIR"] = str(root / "work")
    if what.startswith("mallard"):
        if what == "mallard_gzip":
            os.environ[dlt_steps.EXTRACT_COMPRESSION_OFF_ENV] = "false"
        if what == "mallard_unchecked":
            _without_record_checks()
        work_dir = ingest.run_work_dir("bench_scale", "run", source.name)
        ingest.extract(source, interval, work_dir)
        ingest.load(source, work_dir)
    else:  # dlt alone: the kind's resources and destination settings, one pipeline.run
        from include.mallard.sources.registry import apply_schema_contract, builder_for

        # As registry.build_resources, without the map step that checks each record's keys (Mallard's).
        built = builder_for(source.kind)(source, interval)
        resources = apply_schema_contract(built, source.schema_contract, source.name)
        pipeline = ingest.warehouse_pipeline(source, root / "dlt")  # MALLARD_WAREHOUSE_PATH, set above
        with dlt_steps.dlt_settings({dlt_steps.EXTRACT_COMPRESSION_OFF_ENV: "true"}, overriding=False):
            pipeline.run(resources).raise_on_failed_jobs()
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(f"select count(*) from {source.dataset_name}.{table}").fetchone()[0]
    return {"seconds": time.perf_counter() - imported, "rows": rows}


def _without_record_checks() -> None:
    """Switch off, in this process, Mallard's checks of dict records (for `mallard_unchecked`)."""
    import contextlib

    from include.mallard import ingest
    from include.mallard.sources import record_readers, registry

    class NoCollisions:
        def find(self, record: Any) -> None:
            return None

    registry.without_key_collisions = lambda source_name, table: lambda record: record
    record_readers.CollisionFinder = NoCollisions  # type: ignore[assignment,misc]
    ingest.strict_coercion = contextlib.nullcontext


def _command(what: str, source_file: Path, root: Path, data: Path, table: str) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "bench.scale", "--child", what, str(source_file), str(root), str(data), table]


def run_children(
    whats: list[str], source_file: Path, case: Path, data: Path, env: dict[str, str], table: str, serial: bool
) -> dict[str, dict[str, Any]]:
    """One measurement per entry of `whats`, each in a new process (all at once unless `serial`).

    Each child's own peak RSS comes from os.wait4.
    """
    results = {}
    batches = [[what] for what in whats] if serial else [whats]
    for batch in batches:
        with contextlib.ExitStack() as outputs:
            running = []
            for what in batch:
                command = _command(what, source_file, case / what, data, table)
                output = outputs.enter_context(tempfile.TemporaryFile("w+"))
                process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT)
                running.append((what, command, output, process.pid))
            for what, command, output, pid in running:  # a child that ends first waits, its usage kept
                _, status, usage = os.wait4(pid, 0)
                output.seek(0)
                text = output.read()
                lines = [line for line in text.splitlines() if line.startswith(RESULT_MARKER)]
                if os.waitstatus_to_exitcode(status) != 0 or not lines:
                    raise RuntimeError(f"{' '.join(command)} failed:\n{text[-4000:]}")
                results[what] = json.loads(lines[-1].removeprefix(RESULT_MARKER))
                results[what]["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return results


def _measure_kind(
    kind: str,
    row_counts: list[int],
    scratch: Path,
    env: dict[str, str],
    postgres_uri: str | None,
    measured: list[dict[str, Any]],
    table: list[tuple[Any, ...]],
    sql_backend: str = "pyarrow",
    serial: bool = False,
    compare_extract_gzip: bool = False,
    compare_record_checks: bool = False,
) -> None:
    """Mallard, dlt alone (and DuckDB for files) for `kind` at each row count; appends to `measured` and `table`."""
    for rows in row_counts:
        case = scratch / f"{kind}_{rows}"
        server = None
        if kind == "rest_api":
            server, base_url = _serve_api(rows)
        else:
            base_url = ""
        if kind.startswith("files_"):
            data = _write_files(case / "data", kind, rows)
        elif kind == "sql_sqlite":
            data = _write_sqlite(case / "data" / "events.sqlite", rows)
        elif kind == "sql_postgres":
            assert postgres_uri, "the cluster starts when sql_postgres is among the kinds"
            _fill_postgres(postgres_uri, _write_files(case / "data", "files_csv", rows))
            os.environ[SQL_URL_ENV] = postgres_uri
            data = case / "none"
        else:
            data = case / "none"
        source_file = case / "sources" / "scale.yml"
        source_file.parent.mkdir(parents=True, exist_ok=True)
        source_file.write_text(source_yaml(kind, rows, data, base_url, sql_backend))
        env[SQL_URL_ENV] = os.environ.get(SQL_URL_ENV, "")
        whats = ["mallard", "dlt"] + (["duckdb"] if kind.startswith("files_") else [])
        whats += ["mallard_gzip"] if compare_extract_gzip else []
        whats += ["mallard_unchecked"] if compare_record_checks else []
        print(f"{kind} {rows:,}: {', '.join(whats)} ...", flush=True)
        results = run_children(whats, source_file, case, data, env, TABLES.get(kind, "events"), serial)
        for what, result in results.items():
            if result["rows"] != rows:
                raise RuntimeError(f"{kind} {what} loaded {result['rows']} rows, expected {rows}")
            result["rows_per_second"] = round(rows / result["seconds"])
        if server:
            server.shutdown()
        shutil.rmtree(case, ignore_errors=True)
        mallard = results["mallard"]
        entry = {"kind": kind, "rows": rows, **{w: r for w, r in results.items()}}
        entry["ratio_to_dlt"] = ratio(mallard["rows_per_second"], results["dlt"]["rows_per_second"])
        if "duckdb" in results:
            entry["ratio_to_duckdb"] = ratio(mallard["rows_per_second"], results["duckdb"]["rows_per_second"])
        for variant, (key, said) in MALLARD_VARIANTS.items():
            if variant in results:
                other = results[variant]
                entry[key] = ratio(mallard["rows_per_second"], other["rows_per_second"])
                print(
                    f"  Mallard {said}: {other['rows_per_second']:,} rows/s, {other['peak_rss_mb']} MB; "
                    f"Mallard is {entry[key]}x as fast",
                    flush=True,
                )
        measured.append(entry)
        table.append(
            (
                kind,
                f"{rows:,}",
                f"{mallard['rows_per_second']:,}",
                mallard["peak_rss_mb"],
                f"{results['dlt']['rows_per_second']:,}",
                results["dlt"]["peak_rss_mb"],
                entry["ratio_to_dlt"],
                f"{results['duckdb']['rows_per_second']:,}" if "duckdb" in results else "-",
                entry.get("ratio_to_duckdb", "-"),
            )
        )


def memory_growth(measured: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    """Per kind: Mallard's peak RSS at the smallest and the largest row count, and their ratio."""
    growth = {}
    for kind in dict.fromkeys(m["kind"] for m in measured):
        runs = sorted((m["rows"], m["mallard"]["peak_rss_mb"]) for m in measured if m["kind"] == kind)
        if len(runs) > 1:
            growth[kind] = (runs[0][1], runs[-1][1], ratio(runs[-1][1], runs[0][1]))
    return growth


def report_ingestion(measured: list[dict[str, Any]], table: list[tuple[Any, ...]], serial: bool) -> dict[str, Any]:
    """Print the ingestion table, the 500 MB check and each kind's growth; returns the growth per kind."""
    header = (
        "kind",
        "rows",
        "mallard rows/s",
        "peak MB",
        "dlt rows/s",
        "dlt peak MB",
        "x dlt",
        "duckdb rows/s",
        "x duckdb",
    )
    how = "one after another, interleaved" if serial else "a case's processes at the same time"
    print_rows(f"Ingestion at volume (one process per measurement, {how})", header, table)
    over = [
        f"{m['kind']} {m['rows']:,}: {m['mallard']['peak_rss_mb']} MB"
        for m in measured
        if m["mallard"]["peak_rss_mb"] > PEAK_TARGET_MB
    ]
    print(f"peak RSS <= {PEAK_TARGET_MB} MB: {'all' if not over else 'missed by ' + ', '.join(over)}")
    growth = memory_growth(measured)
    for kind, (smallest, largest, times) in growth.items():
        print(f"{kind}: peak {smallest} -> {largest} MB ({times}x)")
    steep = [kind for kind, (_, _, times) in growth.items() if times > FLAT_GROWTH_TARGET]
    print(f"flat (peak grows <= {FLAT_GROWTH_TARGET}x): {'all' if not steep else 'missed by ' + ', '.join(steep)}")
    return growth


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, source_file, root, data = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
        result = _child(what, source_file, root, data, sys.argv[6])
        result["peak_rss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000,5000000", help="comma-separated row counts")
    parser.add_argument("--kinds", default=",".join(KINDS), help='comma-separated source kinds ("" for none)')
    parser.add_argument("--sql-backend", choices=("pyarrow", "sqlalchemy"), default="pyarrow")
    parser.add_argument("--dbt-models", default="100,1000", help='comma-separated dbt project sizes ("" for none)')
    parser.add_argument("--dbt-pairs", type=int, default=1, help="interleaved bare/Mallard dbt build pairs per size")
    parser.add_argument("--serial", action="store_true", help="one process at a time instead of a case's all at once")
    parser.add_argument(
        "--compare-extract-gzip", action="store_true", help="also Mallard with dlt's gzipped extract files"
    )
    parser.add_argument(
        "--compare-record-checks", action="store_true", help="also Mallard without its checks of dict records"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    env = prepare_environment()
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-scale-"))
    measured: list[dict[str, Any]] = []
    table = []
    began = time.perf_counter()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    with _postgres("sql_postgres" in kinds) as postgres_uri:
        for kind in kinds:
            row_counts = [int(r) for r in args.rows.split(",")]
            _measure_kind(
                kind,
                row_counts,
                scratch,
                env,
                postgres_uri,
                measured,
                table,
                args.sql_backend,
                args.serial,
                args.compare_extract_gzip,
                args.compare_record_checks,
            )

    growth = report_ingestion(measured, table, args.serial) if measured else {}
    dbt_sizes = [
        dbt_overhead.bench_size(int(models), args.dbt_pairs, 1000, scratch / "dbt", env, warm=False)
        for models in args.dbt_models.split(",")
        if models.strip()
    ]
    dbt_verdicts = dbt_overhead.report(dbt_sizes) if dbt_sizes else []
    elapsed = round(time.perf_counter() - began, 1)
    print(f"total {elapsed} s")
    result_file = write_result(
        "scale",
        {
            "settings": {
                "rows": args.rows,
                "kinds": args.kinds,
                "page": PAGE,
                "sql_backend": args.sql_backend,
                "concurrent": not args.serial,
            },
            "measured": measured,
            "memory_growth": growth,
            "dbt": {"pairs": args.dbt_pairs, "sizes": dbt_sizes, "verdicts": dbt_verdicts},
            "seconds": elapsed,
        },
    )
    report_written(result_file, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
