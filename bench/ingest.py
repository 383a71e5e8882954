"""CSV ingestion throughput: Mallard's `files` source vs DuckDB loading the same file natively.

    python bench/ingest.py [--rows 3000000] [--repeat 2] [--compare-readers] [--compare-full-refresh]
                           [--compare-type-checks] [--also-memory-limit LIMIT ...] [--profile] [--airflow-variables]
                           [--data-dir DIR] [--keep]

Generates a CSV of --rows rows and 8 typed columns (bench/files_ingestion.py), then measures,
each in a new process and interleaved so that all see the same machine load:

- baseline: DuckDB's `CREATE TABLE t AS SELECT * FROM read_csv('file')` into a new database file;
- mallard: a `files` source YAML parsed like any config, through `include.mallard.ingest.extract`
  and `load` into a new DuckDB file, with the default write disposition (replace: loaded beside
  the table and swapped in one transaction, include/mallard/duckdb_destination.py) and with
  `write_disposition: append`;
- refresh: both again, each into a copy of a warehouse that already holds the table from an
  earlier load of the same file (what a daily full refresh does): DuckDB's `CREATE OR REPLACE
  TABLE ... AS SELECT * FROM read_csv(...)` against Mallard's replace;
- two-step floor: DuckDB alone with a Parquet file between an extract and a load (DuckDB writes
  the file, then loads it into a new database file). Any design that extracts to a file and then
  loads it, as dlt's does, pays both steps; this is the best such a design can reach, against
  the same one-step baseline (not a target: the bound on one);
- direct-load bound: a plain dlt pipeline that extracts only the table's columns, then has DuckDB
  insert the CSV's rows in its load step (bench/files_ingestion.py `dlt_direct_load`): dlt's fixed
  cost per run plus DuckDB's one-step load, the best a design loading local CSVs straight into
  the warehouse inside dlt could reach (again a bound, not a target);
- with --compare-readers: the CSV readers files.py used before (see READER_VARIANTS), to show
  what each change bought; with --compare-full-refresh: the refresh through dlt's
  insert-from-staging (a staging schema, then a second copy), which Mallard used before; with
  --also-memory-limit 128MiB: replace and append again with MALLARD_DUCKDB_MEMORY_LIMIT=128MiB
  instead of the limit Mallard sizes (64 MiB for this narrow table), to show what memory buys,
  and the direct-load bound with that limit on its insert (what a flat memory would cost it);
  with --compare-type-checks: replace without the check that each integer and time value reads
  back as written (sources/csv_types.py `faithful`), to show what that check costs.

Reports rows/s and the ratio Mallard / DuckDB, each against its own baseline (target >= 0.7).
Results: bench/results/ingest.json (bench/results/ingest_with_airflow_variables.json with
--airflow-variables).

dlt's Airflow Variables config provider is switched off (PROVIDERS__ENABLE_AIRFLOW_SECRETS=false)
unless --airflow-variables: outside an Airflow task it can only fail, and it then costs several
seconds per run in failed `Variable.get` calls, a fixed cost that says nothing about throughput.
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from bench.common import (
    RESULTS_DIR,
    check_target,
    median,
    prepare_environment,
    print_rows,
    ratio,
    report_written,
    write_result,
)
from bench.files_ingestion import CSV_COLUMNS, READER_VARIANTS, csv_for, run_child
from include.mallard.ingest import MEMORY_LIMIT_ENV

TARGET_RATIO = 0.7


class Measurement(NamedTuple):
    """One row of the plan: what a child process measures, and the row its ratio is taken against."""

    label: str
    what: str  # run_child's `what`
    variant: str = "current"
    disposition: str | None = None
    over: Path | None = None  # the warehouse a refresh starts from
    baseline: str = "duckdb_native"
    extra_env: dict[str, str] = {}  # never mutated: `env | extra_env` makes a new dict


def _summary(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    seconds = median([run["seconds"] for run in runs])
    summary: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "runs": runs,
    }
    summary["warehouse_mib"] = median([run["warehouse_mib"] for run in runs])
    if "extract_normalize_seconds" in runs[0]:
        summary["extract_normalize_seconds"] = round(median([run["extract_normalize_seconds"] for run in runs]), 3)
        summary["load_seconds"] = round(median([run["load_seconds"] for run in runs]), 3)
    return summary


def _profile_top(path: Path, top: int = 25) -> list[str]:
    stream = io.StringIO()
    pstats.Stats(str(path), stream=stream).sort_stats("tottime").print_stats(top)
    return [line for line in stream.getvalue().splitlines() if line.strip()][-(top + 1) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement (median reported)")
    parser.add_argument("--compare-readers", action="store_true", help="also time files.py's earlier CSV readers")
    parser.add_argument(
        "--compare-full-refresh", action="store_true", help="also time the refresh through dlt's insert-from-staging"
    )
    parser.add_argument(
        "--also-memory-limit",
        action="append",
        default=[],
        metavar="LIMIT",
        help=f"also time replace and append with {MEMORY_LIMIT_ENV}=LIMIT (e.g. 128MiB; repeatable)",
    )
    parser.add_argument(
        "--compare-type-checks",
        action="store_true",
        help="also time replace without the check that integer and time values read back as written",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one Mallard run (top functions printed)")
    parser.add_argument("--airflow-variables", action="store_true", help="keep dlt's Airflow Variables provider on")
    parser.add_argument("--data-dir", type=Path, help="where the CSV is written (kept and reused); default: temp")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()

    env = prepare_environment()
    env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] = "true" if args.airflow_variables else "false"
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-ingest-"))
    data_dir = args.data_dir or scratch / "data"
    csv_path = csv_for(data_dir, args.rows)
    print(f"CSV: {args.rows:,} rows x {CSV_COLUMNS} columns, {csv_path.stat().st_size / 2**20:.0f} MiB ({csv_path})")

    # The warehouses a refresh starts from: each holds the table from one earlier load of the CSV.
    refresh_variants = ["current", "dlt_staging_copy"] if args.compare_full_refresh else ["current"]
    before: dict[str, Path] = {}
    for what, variant in [("native", "current"), *(("mallard", v) for v in refresh_variants)]:
        root = scratch / f"before_{what}_{variant}"
        run_child(what, csv_path, root, env, variant=variant)
        before[f"{what}_{variant}"] = root / ("native.duckdb" if what == "native" else "warehouse.duckdb")

    plan = [
        Measurement("duckdb_native", "native"),
        Measurement("mallard_replace", "mallard"),
        Measurement("mallard_append", "mallard", disposition="append"),
        Measurement("duckdb_two_step_floor", "two_step"),
        Measurement("dlt_direct_load_bound", "dlt_direct"),
        Measurement("duckdb_native_refresh", "native", over=before["native_current"], baseline="duckdb_native_refresh"),
        Measurement("mallard_refresh", "mallard", over=before["mallard_current"], baseline="duckdb_native_refresh"),
    ]
    if args.compare_full_refresh:
        plan.append(
            Measurement(
                "mallard_refresh__dlt_staging_copy",
                "mallard",
                variant="dlt_staging_copy",
                over=before["mallard_dlt_staging_copy"],
                baseline="duckdb_native_refresh",
            )
        )
    if args.compare_readers:
        plan += [
            Measurement(f"mallard_replace__{variant}", "mallard", variant=variant)
            for variant in READER_VARIANTS
            if variant not in ("current", "dlt_staging_copy")
        ]
    if args.compare_type_checks and not args.compare_readers:
        plan.append(Measurement("mallard_replace__unchecked_types", "mallard", variant="unchecked_types"))
    for limit in args.also_memory_limit:
        limit_env = {MEMORY_LIMIT_ENV: limit}
        plan += [
            Measurement(f"mallard_replace__memory_limit_{limit}", "mallard", extra_env=limit_env),
            Measurement(f"mallard_append__memory_limit_{limit}", "mallard", disposition="append", extra_env=limit_env),
            Measurement(f"dlt_direct_load_bound__memory_limit_{limit}", "dlt_direct", extra_env=limit_env),
        ]
    runs: dict[str, list[dict[str, Any]]] = {step.label: [] for step in plan}
    for attempt in range(args.repeat):
        for step in plan:
            print(f"run {attempt + 1}/{args.repeat}: {step.label} ...", flush=True)
            result = run_child(
                step.what,
                csv_path,
                scratch / step.label,
                env | step.extra_env,
                variant=step.variant,
                write_disposition=step.disposition,
                over=step.over,
            )
            if result["rows"] != args.rows:
                raise RuntimeError(f"{step.label} loaded {result['rows']} rows, expected {args.rows}")
            runs[step.label].append(result)
            shutil.rmtree(scratch / step.label, ignore_errors=True)  # a warehouse per run: keep the disk small

    summaries = {label: _summary(label_runs, args.rows) for label, label_runs in runs.items()}
    rows_table = []
    for step in plan:
        summary = summaries[step.label]
        summary["baseline"] = step.baseline
        summary["ratio_to_duckdb_native"] = ratio(
            summary["rows_per_second"], summaries[step.baseline]["rows_per_second"]
        )
        rows_table.append(
            (
                step.label,
                f"{summary['seconds']:.2f}",
                f"{summary.get('extract_normalize_seconds', '-')}",
                f"{summary.get('load_seconds', '-')}",
                f"{summary['rows_per_second']:,}",
                summary.get("warehouse_mib", "-"),
                summary["ratio_to_duckdb_native"],
            )
        )
    header = ("measurement", "seconds", "extract+normalize s", "load s", "rows/s", "file MiB", "x its DuckDB")
    print_rows(f"CSV ingestion of {args.rows:,} rows, median of {args.repeat}", header, rows_table)
    verdicts = [
        check_target(
            f"{label} at {summaries[label]['ratio_to_duckdb_native']}x DuckDB native >= {TARGET_RATIO}x",
            summaries[label]["ratio_to_duckdb_native"] >= TARGET_RATIO,
        )
        for label in ("mallard_replace", "mallard_append", "mallard_refresh")
    ]

    profile: list[str] = []
    if args.profile:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        profile_file = RESULTS_DIR / "ingest_mallard_replace.prof"
        run_child("mallard", csv_path, scratch / "profile", env, profile_to=profile_file)
        profile = _profile_top(profile_file)
        print("\nProfile of one Mallard run (replace), top functions by own time:\n" + "\n".join(profile))

    result = write_result(
        # A run with the provider on is a different question (its fixed cost): keep it apart.
        "ingest_with_airflow_variables" if args.airflow_variables else "ingest",
        {
            "settings": {
                "rows": args.rows,
                "columns": CSV_COLUMNS,
                "csv_mib": round(csv_path.stat().st_size / 2**20, 1),
                "repeat": args.repeat,
                "refresh_starts_from": "a copy of a warehouse holding the table from one earlier load of the same CSV",
                "dlt_airflow_variables_provider": args.airflow_variables,
                "reader_variants": READER_VARIANTS if args.compare_readers else {"current": READER_VARIANTS["current"]},
            },
            "measured": summaries,
            "targets": verdicts,
            "profile_top": profile,
        },
    )
    report_written(result, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
