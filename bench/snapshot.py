"""How long publishing the read-only snapshot takes: a file copy after CHECKPOINT vs COPY FROM DATABASE.

    python bench/snapshot.py [--warehouse warehouse/mallard.duckdb] [--rows 1000000] [--repeat 5] [--keep]

Measured on two warehouses: the demo's (`--warehouse`, e.g. after `make demo`; skipped when it
does not exist) and a generated one with one table of `--rows` rows (8 columns: ids, text,
timestamps, decimals). Each method (`include.mallard.snapshot.publish_snapshot`, `file` and
`attach`) publishes `--repeat` times; the median is reported, with the snapshot's size. The
baseline is a bare `shutil.copyfile` of the same file (what the `file` method cannot beat).
Results: bench/results/snapshot.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import median, prepare_environment, print_rows, ratio, report_written, stopwatch, write_result

GENERATED_TABLE = """
create schema if not exists raw_bench;
create table raw_bench.events as
select i as id, i % 1000 as customer_id, 'event ' || (i % 97) as kind, md5(i::varchar) as payload,
       timestamp '2024-01-01' + to_seconds(i) as happened_at, (i % 10000) / 100.0::decimal(18, 2) as amount,
       i % 2 = 0 as flag, current_date as loaded_on
from range(?) t(i)
"""


def _generated_warehouse(path: Path, rows: int) -> Path:
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute(GENERATED_TABLE, [rows])
    return path


def _measure(warehouse: Path, scratch: Path, repeat: int) -> dict[str, Any]:
    from include.mallard.snapshot import METHODS, publish_snapshot

    target = scratch / f"{warehouse.stem}.read.duckdb"
    figures: dict[str, Any] = {"warehouse": str(warehouse), "warehouse_bytes": warehouse.stat().st_size}
    times = []
    for _ in range(repeat):
        with stopwatch() as elapsed:
            shutil.copyfile(warehouse, scratch / "bare-copy.duckdb")
        times.append(elapsed())
    figures["bare_copyfile_seconds"] = round(median(times), 4)
    for method in METHODS:
        times = []
        for _ in range(repeat):
            with stopwatch() as elapsed:
                snapshot = publish_snapshot(warehouse, target, method=method)
            times.append(elapsed())
        assert snapshot is not None
        figures[method] = {"seconds": round(median(times), 4), "snapshot_bytes": snapshot.bytes}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=Path("warehouse/mallard.duckdb"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    prepare_environment()
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-snapshot-"))
    results: dict[str, Any] = {}
    if args.warehouse.is_file():
        demo = scratch / "demo.duckdb"
        shutil.copyfile(args.warehouse, demo)  # never touch the real one
        results["demo"] = _measure(demo, scratch, args.repeat)
    else:
        print(f"no warehouse at {args.warehouse}: the demo case is skipped (run `make demo`)")
    generated = _generated_warehouse(scratch / f"rows_{args.rows}.duckdb", args.rows)
    results[f"{args.rows}_rows"] = _measure(generated, scratch, args.repeat)
    rows = [
        (
            case,
            f"{figures['warehouse_bytes'] / 1e6:.1f} MB",
            figures["bare_copyfile_seconds"],
            figures["file"]["seconds"],
            figures["attach"]["seconds"],
            ratio(figures["attach"]["seconds"], figures["file"]["seconds"]),
        )
        for case, figures in results.items()
    ]
    print_rows(
        "Publishing the snapshot (median seconds)",
        ("warehouse", "size", "bare copy", "file", "attach", "attach/file"),
        rows,
    )
    report_written(write_result("snapshot", {"repeat": args.repeat, "results": results}), scratch, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
