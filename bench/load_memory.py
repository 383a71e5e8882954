"""The load step under Mallard's memory settings, against the fixed 256MB and parallel jobs of before.

    python -m bench.load_memory [--pairs 2] [--cases merge_narrow,many_wide,wide] [--also-limit 4GB] [--keep]

Mallard sizes DuckDB's `memory_limit` for a load from its widest table (64 MiB for a narrow one)
and runs one load job at a time (include/mallard/duckdb_destination.py). What that costs where a
low limit could hurt, each case a `kind: python` source of Arrow tables through `ingest.extract`
and `ingest.load`, the load step timed:

- merge_narrow: 5M rows of 6 columns loaded, then 5M more (half of their keys new) merged on the
  primary key: dlt's merge joins and deduplicates 5M rows, which spills at a low limit;
- many_wide: 20 tables of 50 columns, 100k rows each, appended;
- wide: one table of 300 columns, 100k rows, appended.

Each case runs as `mallard` (the defaults) and as `fixed_256mb` (MALLARD_DUCKDB_MEMORY_LIMIT=256MB
and dlt's parallel load jobs, LOAD__PARALLELISM_STRATEGY=parallel: Mallard's settings before),
each in a new process, pairs interleaved; with --also-limit, a third run per pair with Mallard's
settings but that limit (MALLARD_DUCKDB_MEMORY_LIMIT): what the sized limit costs in time.
Peak RSS is the child's own (os.wait4), for the whole child (extract included). A failed load is
reported with its error, not retried.
Results: bench/results/load_memory.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import prepare_environment, print_rows, ratio, report_written, run_measured, write_result

RESULT_MARKER = "LOAD_MEMORY_RESULT "
BATCH = 100_000
# case: (tables, columns, rows of the first run, first id of the second run or None for one run)
CASES = {
    "merge_narrow": (1, 6, 5_000_000, 2_500_000),
    "many_wide": (20, 50, 100_000, None),
    "wide": (1, 300, 100_000, None),
}
SETTINGS = {
    "mallard": {},
    "fixed_256mb": {"MALLARD_DUCKDB_MEMORY_LIMIT": "256MB", "LOAD__PARALLELISM_STRATEGY": "parallel"},
}


def arrow_tables(start: dt.datetime, end: dt.datetime, tables: int, columns: int, rows: int, first_id: int) -> Any:
    """The `kind: python` source: `tables` tables of `columns` columns (integers and text), ids from `first_id`."""
    import dlt
    import pyarrow as pa
    import pyarrow.compute as pc

    def table(name: str) -> Any:
        @dlt.resource(name=name, primary_key="id", write_disposition="merge")
        def batches() -> Iterator[Any]:
            for first in range(first_id, first_id + rows, BATCH):
                ids = pa.array(range(first, min(first + BATCH, first_id + rows)), pa.int64())
                text = pc.binary_join_element_wise("row ", pc.cast(ids, pa.string()), "")
                yield pa.table({"id": ids} | {f"c{k}": pc.add(ids, k) if k % 2 else text for k in range(1, columns)})

        return batches

    return [table(f"t{i}") for i in range(tables)]


def _child(case: str, root: Path) -> dict[str, Any]:
    os.environ["MALLARD_WAREHOUSE_PATH"] = str(root / "warehouse.duckdb")
    os.environ["MALLARD_WORK_DIR"] = str(root / "work")
    import duckdb

    from include.mallard import ingest
    from include.mallard.config.loader import parse_source_file
    from include.mallard.interval import Interval

    tables, columns, rows, second_first_id = CASES[case]
    runs = [0] if second_first_id is None else [0, second_first_id]
    result: dict[str, Any] = {}
    for number, first_id in enumerate(runs):
        args = json.dumps({"tables": tables, "columns": columns, "rows": rows, "first_id": first_id})
        source_file = root / "sources" / "bench.yml"
        source_file.parent.mkdir(parents=True, exist_ok=True)
        source_file.write_text(f"kind: python\nfunction: bench.load_memory:arrow_tables\nargs: {args}\n")
        source = parse_source_file(source_file)
        start = dt.datetime(2024, 1, 1 + number, tzinfo=dt.UTC)
        work_dir = ingest.run_work_dir("bench_load_memory", f"run_{number}", source.name)
        ingest.extract(source, Interval(start, start + dt.timedelta(days=1)), work_dir)
        began = time.perf_counter()
        try:
            summary = ingest.load(source, work_dir)
        except Exception as error:  # reported, not raised: the old settings may run out of memory
            return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
        result = {"load_seconds": time.perf_counter() - began, "memory_limit": summary.get("duckdb_memory_limit")}
    expected = rows if second_first_id is None else second_first_id + rows  # ids 0.. and second_first_id..
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as connection:
        counts = [connection.execute(f"select count(*) from raw_bench.t{i}").fetchone()[0] for i in range(tables)]
    if counts != [expected] * tables:
        raise RuntimeError(f"{case}: tables hold {counts} rows, expected {expected} each")
    return result


def _joined(results: list[dict[str, Any]], key: str) -> str:
    """Each run's `key` (seconds, MB), or "failed"."""
    return " / ".join(
        "failed" if key not in r else f"{r[key]:.2f}" if key == "load_seconds" else f"{r[key]:.0f}" for r in results
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(RESULT_MARKER + json.dumps(_child(sys.argv[2], Path(sys.argv[3]))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--also-limit", help="also run Mallard's settings with this memory_limit, e.g. 4GB")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    env = prepare_environment()
    settings = dict(SETTINGS)
    if args.also_limit:
        settings[f"mallard_{args.also_limit}"] = {"MALLARD_DUCKDB_MEMORY_LIMIT": args.also_limit}
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-load-memory-"))
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for case in args.cases.split(","):
        for pair in range(args.pairs):
            for label, extra in settings.items():
                root = scratch / f"{case}_{label}_{pair}"
                command = [sys.executable, "-m", "bench.load_memory", "--child", case, str(root)]
                print(f"{case} {label} (pair {pair + 1})", flush=True)
                code, text, result = run_measured(command, {**env, **extra}, RESULT_MARKER)
                if code != 0 or result is None:
                    raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{text[-4000:]}")
                measured.setdefault(case, {}).setdefault(label, []).append(result)
    result_file = write_result("load_memory", {"cases": {c: CASES[c] for c in measured}, "measured": measured})
    rows = []
    for case, by_label in measured.items():
        mallard, before = by_label["mallard"], by_label["fixed_256mb"]
        pairs = zip(mallard, before, strict=True)
        times = [ratio(m["load_seconds"], b["load_seconds"]) for m, b in pairs if "error" not in m and "error" not in b]
        rows.append(
            (
                case,
                next((m["memory_limit"] for m in mallard if m.get("memory_limit")), "-"),
                _joined(mallard, "load_seconds"),
                _joined(mallard, "peak_rss_mb"),
                _joined(before, "load_seconds"),
                _joined(before, "peak_rss_mb"),
                " / ".join(str(t) for t in times) or "-",
            )
        )
        if args.also_limit:
            other = by_label[f"mallard_{args.also_limit}"]
            seconds, peaks = _joined(other, "load_seconds"), _joined(other, "peak_rss_mb")
            print(f"{case} at {args.also_limit}: load s {seconds}, peak MB {peaks}")
    header = ("case", "limit", "load s", "peak MB", "before: load s", "before: peak MB", "load x before")
    print_rows("Load step: Mallard's sized limit, one job at a time vs fixed 256MB, parallel jobs", header, rows)
    for case, by_label in measured.items():
        for label, results in by_label.items():
            for error in dict.fromkeys(r["error"] for r in results if "error" in r):
                print(f"{case} {label} failed: {error}")
    report_written(result_file, scratch, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
