"""CSV ingestion throughput: Mallard's `files` source vs DuckDB loading the same file natively.

    python bench/ingest.py [--rows 3000000] [--repeat 2] [--compare-readers] [--profile]
                           [--airflow-variables] [--data-dir DIR] [--keep]

Generates a CSV of --rows rows and 8 typed columns (bench/files_ingestion.py), then measures,
each in a new process and interleaved so that all see the same machine load:

- baseline: DuckDB's `CREATE TABLE t AS SELECT * FROM read_csv('file')` into a new database file;
- mallard: a `files` source YAML parsed like any config, through `include.mallard.ingest.extract`
  and `load` into a new DuckDB file, with the default write disposition (replace: loaded into a
  staging schema and swapped in one transaction) and with `write_disposition: append`;
- with --compare-readers: the CSV readers files.py used before (see READER_VARIANTS), to show
  what each change bought.

Reports rows/s and the ratio Mallard / DuckDB (target >= 0.5). Results: bench/results/ingest.json
(bench/results/ingest_with_airflow_variables.json with --airflow-variables).

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
from typing import Any

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

TARGET_RATIO = 0.5


def _summary(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    seconds = median([run["seconds"] for run in runs])
    summary: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "runs": runs,
    }
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

    # (label, what, reader variant, write disposition)
    plan = [
        ("duckdb_native", "native", "current", None),
        ("mallard_replace", "mallard", "current", None),
        ("mallard_append", "mallard", "current", "append"),
    ]
    if args.compare_readers:
        plan += [
            (f"mallard_replace__{variant}", "mallard", variant, None)
            for variant in READER_VARIANTS
            if variant != "current"
        ]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in plan}
    for attempt in range(args.repeat):
        for label, what, variant, disposition in plan:
            print(f"run {attempt + 1}/{args.repeat}: {label} ...", flush=True)
            result = run_child(what, csv_path, scratch / label, env, variant=variant, write_disposition=disposition)
            if result["rows"] != args.rows:
                raise RuntimeError(f"{label} loaded {result['rows']} rows, expected {args.rows}")
            runs[label].append(result)
            shutil.rmtree(scratch / label, ignore_errors=True)  # a warehouse per run: keep the disk small

    summaries = {label: _summary(label_runs, args.rows) for label, label_runs in runs.items()}
    native = summaries["duckdb_native"]
    rows_table = []
    for label, summary in summaries.items():
        summary["ratio_to_duckdb_native"] = ratio(summary["rows_per_second"], native["rows_per_second"])
        rows_table.append(
            (
                label,
                f"{summary['seconds']:.2f}",
                f"{summary.get('extract_normalize_seconds', '-')}",
                f"{summary.get('load_seconds', '-')}",
                f"{summary['rows_per_second']:,}",
                summary["ratio_to_duckdb_native"],
            )
        )
    header = ("measurement", "seconds", "extract+normalize s", "load s", "rows/s", "ratio to DuckDB")
    print_rows(f"CSV ingestion of {args.rows:,} rows, median of {args.repeat}", header, rows_table)
    verdicts = [
        check_target(
            f"mallard (default: replace) at {summaries['mallard_replace']['ratio_to_duckdb_native']}x DuckDB native "
            f">= {TARGET_RATIO}x",
            summaries["mallard_replace"]["ratio_to_duckdb_native"] >= TARGET_RATIO,
        ),
        check_target(
            f"mallard (append) at {summaries['mallard_append']['ratio_to_duckdb_native']}x DuckDB native "
            f">= {TARGET_RATIO}x",
            summaries["mallard_append"]["ratio_to_duckdb_native"] >= TARGET_RATIO,
        ),
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
