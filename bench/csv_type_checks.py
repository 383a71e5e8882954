"""What checking each CSV integer and time value costs DuckDB's read, against the plain typed read.

    python -m bench.csv_type_checks [--rows 3000000] [--repeat 3] [--data-dir DIR]

Reads the benchmark CSV (bench/files_ingestion.py: 8 columns, two integer and one time column)
into Arrow batches as Mallard's reader hands them to dlt, each way in a fresh in-memory DuckDB
connection, the ways interleaved in every round:

- typed: DuckDB's sniffed types (what Mallard read before the check: values cast to the sample's
  type, `00123` -> 123);
- as_text: the integer and time columns read as text, nothing else (the cost of the text read);
- mallard: the text read typed by `include/mallard/sources/csv_types.faithful` (a regular
  expression per integer and time value, then the cast): what Mallard runs;
- translate / cast_back: the same checks written with `translate()` and with a cast back to
  text, the alternatives tried.

Prints seconds and the ratio to `typed` (medians); writes bench/results/csv_type_checks.json.
Only DuckDB runs: no dlt, no warehouse.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench.common import median, print_rows, ratio, stopwatch, write_result
from bench.files_ingestion import csv_for

BATCH_ROWS = 100_000  # file_readers.CSV_BATCH_ROWS
INTEGER_COLUMNS = ("event_id", "customer_id")
TIME_COLUMNS = ("created_at",)
READ_OPTIONS: dict[str, Any] = {
    "header": True,
    "sep": ",",
    "quotechar": '"',
    "comment": "",
    "skiprows": 0,
    "date_format": "%Y-%m-%d",
    "na_values": [""],
    "buffer_size": 3 << 20,
}
ALTERNATIVES = {
    "translate": (
        "CASE WHEN {c} IS NULL OR (translate(ltrim(trim({c}), '+-'), '0123456789', '') = '' "
        "AND NOT ltrim(trim({c}), '+-') LIKE '0_%') THEN CAST({c} AS BIGINT) ELSE error('refused') END",
        "CASE WHEN {c} IS NULL OR translate(substr({c}, 11), '0123456789:. T', '') = '' "
        "THEN CAST({c} AS TIMESTAMP) ELSE error('refused') END",
    ),
    "cast_back": (
        "CASE WHEN {c} IS NULL OR CAST(CAST({c} AS BIGINT) AS VARCHAR) = ltrim(trim({c}), '+') "
        "THEN CAST({c} AS BIGINT) ELSE error('refused') END",
        "CASE WHEN {c} IS NULL OR length({c}) <= 19 OR NOT regexp_matches({c}, '[zZ+-][0-9:]*$') "
        "THEN CAST({c} AS TIMESTAMP) ELSE error('refused') END",
    ),
}


def _read(csv_path: Path, way: str) -> float:
    """Seconds to hand every Arrow batch of the file over, read `way`."""
    import duckdb

    from include.mallard.sources import csv_types

    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")

        def read(as_text: dict[str, str] | None = None) -> Any:
            return connection.read_csv(str(csv_path), **READ_OPTIONS, **({"dtype": as_text} if as_text else {}))

        checked = {name: "VARCHAR" for name in INTEGER_COLUMNS + TIME_COLUMNS}
        if way == "typed":
            relation = read()
        elif way == "as_text":
            relation = read(checked)
        elif way == "mallard":
            relation = csv_types.faithful(read(), read, declared=())
        else:
            integer_sql, time_sql = ALTERNATIVES[way]
            text = read(checked)

            def column(name: str) -> str:
                quoted = f'"{name}"'
                template = integer_sql if name in INTEGER_COLUMNS else time_sql if name in TIME_COLUMNS else None
                return f"{template.replace('{c}', quoted)} AS {quoted}" if template else quoted

            relation = text.project(", ".join(column(name) for name in text.columns))
        with stopwatch() as elapsed:
            for _ in relation.to_arrow_reader(BATCH_ROWS):
                pass
        return elapsed()


WAYS = ("typed", "as_text", "mallard", *ALTERNATIVES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (every way once per round; median reported)")
    parser.add_argument("--data-dir", type=Path, help="where the CSV is written (kept and reused); default: temp")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mallard-bench-csv-checks-"))
    csv_path = csv_for(data_dir, args.rows)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for attempt in range(args.repeat):
        for way in WAYS:
            seconds[way].append(round(_read(csv_path, way), 3))
        print(f"round {attempt + 1}/{args.repeat}: " + ", ".join(f"{way} {s[-1]:.3f} s" for way, s in seconds.items()))
    typed = median(seconds["typed"])
    figures = {
        way: {"seconds": median(runs), "runs": runs, "ratio_to_typed": ratio(median(runs), typed)}
        for way, runs in seconds.items()
    }
    rows = [(way, f"{figure['seconds']:.3f}", figure["ratio_to_typed"]) for way, figure in figures.items()]
    print_rows(f"CSV read of {args.rows:,} rows, median of {args.repeat}", ("way", "seconds", "x typed"), rows)
    result = write_result("csv_type_checks", {"settings": {"rows": args.rows, "repeat": args.repeat}, "ways": figures})
    print(f"\nwrote {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
