"""What the scheduler costs while nothing runs, at Airflow's idle sleep and at Mallard's.

    python -m bench.scheduler_idle [--sleeps 1.0,0.1] [--metadata-dbs sqlite,postgres]
                                   [--settle 30] [--window 60] [--rounds 1]

`[scheduler] scheduler_idle_sleep_time` is how long the scheduler sleeps after a loop that found
nothing to do. It is also how long a finished task can wait before the scheduler queues the next
one (bench/e2e.py measures that side). This script measures the other side: for each metadata
database and each sleep, one after another (interleaved over `--rounds`), a private local stack
(scripts/airflow_stack.py, LocalExecutor, the project's DAGs, all paused, as after `make stack`)
is started, left alone `--settle` seconds, then measured over `--window` seconds:

- the CPU seconds of the scheduler process and its children (the LocalExecutor's workers), and
  of every component of the stack, from /proc (utime + stime);
- on PostgreSQL also the server's own CPU, and the transactions the metadata database committed
  (pg_stat_database.xact_commit): the queries an idle scheduler sends.

Each figure is printed per second of the window and as a ratio to Airflow's default sleep (the
first of `--sleeps`). Results: bench/results/scheduler_idle.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, median, prepare_environment, print_rows, ratio, report_written, write_result

SLEEP_VARIABLE = "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the live processes `pids`, in seconds (a process gone since is skipped)."""
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def _commits(uri: str) -> int:
    import psycopg

    with psycopg.connect(uri) as connection:
        row = connection.execute("select xact_commit from pg_stat_database where datname = 'airflow'").fetchone()
    assert row is not None
    return int(row[0])


def measure_one(root: Path, metadata_db: str, sleep: str, settle: float, window: float) -> dict[str, Any]:
    """Start a stack with idle sleep `sleep` on `metadata_db`, wait `settle` s, measure `window` s."""
    from scripts.airflow_stack import StackConfig, free_port, running_stack, stack_processes

    config = StackConfig(
        airflow_home=root / "airflow",
        port=free_port(),
        metadata_db=metadata_db,
        postgres_dir=root / "postgres",
        extra_env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "MALLARD_WAREHOUSE_PATH": str(root / "warehouse" / "mallard.duckdb"),
            "MALLARD_WORK_DIR": str(root / "work"),
            "AIRFLOW__COSMOS__CACHE_DIR": str(root / "cosmos-cache"),
            SLEEP_VARIABLE: sleep,
        },
    )
    with running_stack(config, timeout=300.0) as stack:
        time.sleep(settle)
        scheduler = next(c.info.pid for c in stack.components if c.name == "scheduler")
        every_root = [c.info.pid for c in stack.components]
        server = stack.postgres.postmaster() if stack.postgres else None
        groups = {
            "scheduler": lambda: list(stack_processes([scheduler])),
            "stack": lambda: list(stack_processes(every_root)),
            "postgres": lambda: list(stack_processes([server.pid])) if server else [],
        }
        uri = stack.postgres.uri("airflow") if stack.postgres else None
        before = {name: cpu_seconds(pids()) for name, pids in groups.items()}
        commits_before = _commits(uri) if uri else 0
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        after = {name: cpu_seconds(pids()) for name, pids in groups.items()}
        commits = (_commits(uri) - commits_before) if uri else None
    result: dict[str, Any] = {
        "metadata_db": metadata_db,
        "sleep": sleep,
        "window_s": round(elapsed, 1),
        **{f"{name}_cpu_per_s": round((after[name] - before[name]) / elapsed, 4) for name in groups},
    }
    if commits is not None:
        result["commits_per_s"] = round(commits / elapsed, 1)
    print(f"  {metadata_db}, idle sleep {sleep} s: {result}", flush=True)
    return result


def report(results: list[dict[str, Any]], sleeps: list[str]) -> list[tuple[str, ...]]:
    """One row per database and sleep: per-second figures (medians over rounds) and ratios to the first sleep."""

    def middle(db: str, sleep: str, key: str) -> float | None:
        values = [r[key] for r in results if r["metadata_db"] == db and r["sleep"] == sleep and r.get(key) is not None]
        return median(values) if values else None

    rows = []
    for db in dict.fromkeys(r["metadata_db"] for r in results):
        for sleep in sleeps:
            row = [db, sleep]
            for key in ("scheduler_cpu_per_s", "stack_cpu_per_s", "postgres_cpu_per_s", "commits_per_s"):
                value, base = middle(db, sleep, key), middle(db, sleeps[0], key)
                if value is None or (key == "postgres_cpu_per_s" and db != "postgres"):
                    row.append("-")
                else:
                    row.append(f"{value:g} ({ratio(value, base) if base else '-'})")
            rows.append(tuple(row))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sleeps", default="1.0,0.1", help="idle sleeps in seconds; the first is the baseline")
    parser.add_argument("--metadata-dbs", default="sqlite,postgres")
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the stacks' folders (logs)")
    args = parser.parse_args()
    prepare_environment()
    sleeps = args.sleeps.split(",")
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-idle-"))
    # A private PostgreSQL runs as user `postgres` when this runs as root: it must reach the folder.
    scratch.chmod(0o755)
    for db in args.metadata_dbs.split(","):
        for round_number in range(args.rounds):
            for sleep in sleeps:
                root = scratch / f"{db}-{round_number}-{sleep}"
                results.append(measure_one(root, db, sleep, args.settle, args.window))
    header = ("metadata DB", "idle sleep s", "scheduler CPU s/s", "stack CPU s/s", "PostgreSQL CPU s/s", "commits/s")
    print_rows("Idle cost per second of the window (x the first sleep)", header, report(results, sleeps))
    path = write_result("scheduler_idle", {"args": vars(args), "results": results})
    report_written(path, scratch, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
