"""Peak memory of one ingestion: a `files` CSV source, extract + load, at 1M and 5M rows.

    python bench/memory.py [--rows 1000000 5000000] [--compare-readers] [--also-memory-limit 18GB]
                           [--data-dir DIR] [--keep]

Each measurement runs in a child process of its own and its peak RSS is read from `os.wait4`
(the child's own rusage). Per size it measures:

- mallard: `include.mallard.ingest.extract` + `load` of a `files` source over the CSV (the default
  write disposition, replace), as bench/ingest.py does;
- baseline: a child that only imports what the ingestion imports (dlt, Mallard): the fixed part;
- for context: DuckDB's own `CREATE TABLE AS SELECT * FROM read_csv(...)` of the same file;
- with --compare-readers: the same ingestion with earlier CSV readers (dlt's; Mallard's at DuckDB's
  default 32 MiB read buffer);
- with --also-memory-limit 18GB: the same ingestion with another DuckDB memory_limit on the
  warehouse connection (MALLARD_DUCKDB_MEMORY_LIMIT; Mallard sizes it from the widest table, DuckDB's own
  default is 80% of RAM, about 18GB on the benchmark machine).

Memory should stay flat as the file grows: every Mallard peak <= 500 MB, and the ratio of the
largest to the smallest size's peak near 1. Results: bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import check_target, prepare_environment, print_rows, ratio, report_written, write_result
from bench.files_ingestion import CSV_COLUMNS, csv_for, run_child

TARGET_PEAK_MB = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--compare-readers", action="store_true", help="also measure earlier CSV readers")
    parser.add_argument("--also-memory-limit", help="also measure with this DuckDB memory_limit, e.g. 18GB")
    parser.add_argument("--data-dir", type=Path, help="where the CSVs are written (kept and reused); default: temp")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()

    env = prepare_environment()
    # As in bench/ingest.py: outside Airflow, dlt's Airflow Variables provider only adds failed lookups.
    env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] = "false"
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-memory-"))
    data_dir = args.data_dir or scratch / "data"
    sizes = sorted(args.rows)

    # (label, what, reader variant, extra environment)
    plan: list[tuple[str, str, str, dict[str, str]]] = [
        ("mallard", "mallard", "current", {}),
        ("duckdb_native", "native", "current", {}),
    ]
    if args.compare_readers:
        plan += [(f"mallard__{variant}", "mallard", variant, {}) for variant in ("dlt_reader", "default_buffer")]
    if args.also_memory_limit:
        plan.append(
            (
                f"mallard__memory_limit_{args.also_memory_limit}",
                "mallard",
                "current",
                {"MALLARD_DUCKDB_MEMORY_LIMIT": args.also_memory_limit},
            )
        )

    imports_only = run_child("imports", data_dir / "unused.csv", scratch / "imports", env)
    measured: dict[str, dict[str, Any]] = {}
    for rows in sizes:
        csv_path = csv_for(data_dir, rows)
        measured[str(rows)] = {}
        for label, what, variant, extra_env in plan:
            print(f"{rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB): {label} ...", flush=True)
            result = run_child(what, csv_path, scratch / label, env | extra_env, variant=variant)
            shutil.rmtree(scratch / label, ignore_errors=True)
            if result["rows"] != rows:
                raise RuntimeError(f"{label}: expected {rows} rows, loaded {result['rows']}")
            measured[str(rows)][label] = result

    smallest, largest = str(sizes[0]), str(sizes[-1])
    growth = {
        label: ratio(measured[largest][label]["peak_rss_mb"], measured[smallest][label]["peak_rss_mb"])
        for label, *_ in plan
    }
    table = [("imports only (baseline)", "-", "-", f"{imports_only['peak_rss_mb']:.0f}", "-")]
    for rows in sizes:
        for label, figures in measured[str(rows)].items():
            table.append(
                (
                    label,
                    f"{rows:,}",
                    f"{figures['seconds']:.1f}",
                    f"{figures['peak_rss_mb']:.0f}",
                    ratio(figures["peak_rss_mb"], imports_only["peak_rss_mb"]),
                )
            )
    header = ("measurement", "rows", "seconds", "peak RSS MB", "x imports only")
    print_rows("Peak RSS of one child process (mallard*: extract + load)", header, table)
    for label, value in growth.items():
        print(f"peak RSS ratio {int(largest):,} / {int(smallest):,} rows, {label}: {value}")
    verdicts = [
        check_target(
            f"mallard peak RSS at {int(rows):,} rows {measured[rows]['mallard']['peak_rss_mb']:.0f} MB "
            f"<= {TARGET_PEAK_MB} MB",
            measured[rows]["mallard"]["peak_rss_mb"] <= TARGET_PEAK_MB,
        )
        for rows in measured
    ]
    result = write_result(
        "memory",
        {
            "settings": {
                "rows": sizes,
                "columns": CSV_COLUMNS,
                "compare_readers": args.compare_readers,
                "also_memory_limit": args.also_memory_limit,
            },
            "imports_only": imports_only,
            "measured": measured,
            "peak_ratio_largest_over_smallest": growth,
            "targets": verdicts,
        },
    )
    report_written(result, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
