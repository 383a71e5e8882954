"""End to end under the real scheduler vs the same work bare in one process; a 7-day backfill vs 7 single runs.

    python bench/e2e.py [--rows 1000000] [--days 7] [--extra-models 12] [--skip-backfill] [--keep]

End to end (result: bench/results/e2e.json):

- workload: a copy of `include/sources/` and `include/dbt/` in a temporary folder. The synthetic
  `shop` source is scaled so that all sources produce at least --rows source rows over the run's
  interval (--days days), and --extra-models generated rollup models (each with unique/not_null
  tests) are added to the dbt project's marts, so it has at least 20 models. Its manifest is built
  with Mallard's `cli manifest`, for the warehouse path of the stack that runs it (dbt's partial
  parse is kept only for the same connection details, as with `make demo`).
- Mallard: one run of the project's own DAG (`dags/`) over that workload, named by the env vars
  MALLARD_SOURCES_DIR and MALLARD_DBT_PROJECT_DIR as a deployment would name it (so the scheduler
  preloads its files and manifest for the task processes), under the real scheduler
  (scripts/airflow_stack.py: api-server, scheduler, dag-processor, triggerer; LocalExecutor,
  PARALLELISM=8) on a private AIRFLOW_HOME, warehouse, dlt work folder, dbt docs folder and Cosmos
  cache, triggered through the REST API with the run conf {"start", "end"}. Timed from the
  trigger (the unpause) to the run's end_date.
- baseline, same run: a new Python process that does the same work bare on a fresh warehouse:
  `include.mallard.ingest.extract` + `load` for every source over the same interval, one
  `dbt build` (dbtRunner, the same profile, the interval in the env vars Mallard's tasks set,
  partial parse warm: an untimed `dbt parse` first, in a process of its own) and one `dbt docs
  generate --no-compile` from the same target path (the DAG's last task: the build's manifest plus
  the catalog, as Mallard's `dbt_docs` publishes). Its wall time includes Python's start
  and imports (dlt's and dbt's), not the warm-up parse. Loads write Parquet load files, as
  Mallard's do (ingest.py).
  The row counts of every raw and marts table must be the same in both warehouses.

--pairs N (default 3) interleaves N pairs: the bare baseline, then Mallard on a new stack (the
same folder, removed first), so that drift on the machine lands on both sides of every pair.
Each pair's ratio is printed and kept in the JSON; the ratio and the tables of record are the
median pair's (the slower of the middle two for an even count).

Where the time goes: the task instances' start/end from the REST API, summed by kind (extract,
load, dbt run, dbt test, dbt docs), their union (busy time) and the scheduling gaps (run wall
time minus busy time); the JSON keeps every task's span (`timeline`).

Backfill (result: bench/results/e2e_backfill.json), on a second private stack, workload: the demo
sources and dbt project unchanged (3 sources, 9 models): --single-runs triggered one-day runs one
after another (the baseline "one interval"; 7 x their median), then `POST /api/v2/backfills` over
7 days (7 runs of one day, max_active_runs 10), timed from the POST to the last run's end_date.

--runs N (default 1) triggers N runs one after another on the same stack, each over the same
interval (a rerun: it reloads the same rows into a warehouse that already holds them). The first
runs on a stack that has just started, and its first task processes wait ~3 s on what Airflow
does once per stack (the execution API's first requests); the later ones are what a long-running
deployment's scheduled runs cost. Every run is printed; the ratio and the fixed cost are taken
from the median of the later runs, or from the first when --runs 1. Use --runs 3 with --demo
(a rerun of 311 rows costs what the first load does); at 1M rows a rerun merges into a full
warehouse while the bare baseline starts empty, so the first run is the fair comparison.

--compare-preload then starts --preload-pairs pairs of stacks with the scheduler's preload of the
task libraries (include/mallard/worker_preload.py) off and on, alternated, --runs runs on each,
and prints the first and later runs of each setting.

Targets: end to end <= 1.2x bare; with --demo, the fixed cost (run minus bare) <= 15 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    PROJECT_ROOT,
    check_target,
    median,
    prepare_environment,
    print_rows,
    ratio,
    write_result,
)
from bench.generate_large_project import build_manifest
from include.mallard.paths import DBT_PROJECT_DIR_ENV, SOURCES_DIR_ENV

DAG_ID = "mallard_elt"  # the ELT DAG of the project's dags/mallard_elt.py
E2E_TARGET_RATIO = 1.2
FIXED_COST_TARGET_SECONDS = 15.0  # --demo: the run under the scheduler minus the same work bare
RESULT_MARKER = "BENCH_RESULT "
RUN_START = dt.date(2024, 1, 1)
STACK_DIR = "stack"  # the folder of a workload's stack, under the workload's root
# Payments per order in include/mallard/sources/synthetic.py: 1 or 2, weights 4:1.
PAYMENTS_PER_ORDER = 1.2
CUSTOMERS = 100_000
RUN_TIMEOUT = 60 * 60.0

# Generated rollups: (name, model it reads, grouping expressions). Every one becomes a table in
# `marts` with a `rollup_key` (unique, not null) and measures (not null).
ROLLUPS: list[tuple[str, str, list[str]]] = [
    ("orders_by_day", "orders", ["order_date"]),
    ("orders_by_store", "orders", ["store_id"]),
    ("orders_by_status", "orders", ["order_status"]),
    ("orders_by_day_store", "orders", ["order_date", "store_id"]),
    ("orders_by_day_status", "orders", ["order_date", "order_status"]),
    ("orders_by_store_name", "orders", ["store_name"]),
    ("orders_by_hour", "orders", ["hour(ordered_at)"]),
    ("orders_by_weekday", "orders", ["dayofweek(ordered_at)"]),
    ("orders_by_customer", "orders", ["customer_id"]),
    ("orders_by_payment_count", "orders", ["payment_count"]),
    ("payments_by_method", "stg_shop__payments", ["payment_method"]),
    ("payments_by_day_method", "stg_shop__payments", ["cast(paid_at as date)", "payment_method"]),
    ("customers_by_order_count", "customers", ["number_of_orders"]),
    ("orders_by_store_status", "orders", ["store_id", "order_status"]),
]
# The measure each rollup sums, by the model it reads.
MEASURES = {
    "orders": "count(*) as row_count, sum(order_total) as revenue",
    "stg_shop__payments": "count(*) as row_count, sum(amount) as revenue",
    "customers": "count(*) as row_count, sum(lifetime_value) as revenue",
}


# --- workload ------------------------------------------------------------------------------------


@dataclass
class Workload:
    """The sources and dbt project under `root`, run by the project's own DAG files as a deployment runs
    them: the env vars name the folders, so the scheduler preloads their files for the task processes."""

    root: Path
    sources_dir: Path
    dbt_project_dir: Path
    models: int
    tests: int
    shop: dict[str, Any]
    dags_dir: Path = PROJECT_ROOT / "dags"

    @property
    def env(self) -> dict[str, str]:
        return {SOURCES_DIR_ENV: str(self.sources_dir), DBT_PROJECT_DIR_ENV: str(self.dbt_project_dir)}


def orders_per_day_for(rows: int, days: int, customers: int) -> int:
    """Average orders per day so that customers + orders + payments reach `rows` over `days` days.

    A day's order count is drawn uniformly in [3/4, 5/4] of the average: 3% of margin keeps the
    total above `rows` for any seed in practice (the run prints the real count).
    """
    per_day = math.ceil(max(rows - customers, 0) / (days * (1 + PAYMENTS_PER_ORDER)) * 1.03)
    return min(per_day, 500_000)


def _rollup_model(source_model: str, groups: list[str]) -> tuple[str, int]:
    """The SQL of one rollup model and how many tests its yml gives it."""
    dims = ",\n        ".join(f"{expr} as dim_{i}" for i, expr in enumerate(groups))
    key = " || '|' || ".join(f"coalesce(cast(dim_{i} as varchar), '~')" for i in range(len(groups)))
    group_by = ", ".join(str(i + 1) for i in range(len(groups)))
    sql = (
        "-- generated by bench/e2e.py\n"
        "with grouped as (\n\n"
        f"    select\n        {dims},\n        {MEASURES[source_model]}\n"
        f"    from {{{{ ref('{source_model}') }}}}\n"
        f"    group by {group_by}\n\n)\n\n"
        f"select {key} as rollup_key, * from grouped\n"
    )
    return sql, 4


def add_rollup_models(dbt_project_dir: Path, count: int) -> tuple[int, int]:
    """Write `count` generated rollup models (+ tests) under models/marts/bench/; (models, tests) added."""
    if count > len(ROLLUPS):
        raise SystemExit(f"--extra-models: at most {len(ROLLUPS)}")
    folder = dbt_project_dir / "models" / "marts" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    models: list[dict[str, Any]] = []
    tests = 0
    for name, source_model, groups in ROLLUPS[:count]:
        sql, model_tests = _rollup_model(source_model, groups)
        (folder / f"{name}.sql").write_text(sql, encoding="utf-8")
        models.append(
            {
                "name": name,
                "description": f"Generated rollup of {source_model} by {', '.join(groups)}.",
                "columns": [
                    {"name": "rollup_key", "data_tests": ["not_null", "unique"]},
                    {"name": "row_count", "data_tests": ["not_null"]},
                    {"name": "revenue", "data_tests": ["not_null"]},
                ],
            }
        )
        tests += model_tests
    text = "# generated by bench/e2e.py\n" + yaml.safe_dump({"version": 2, "models": models}, sort_keys=False)
    (folder / "_bench_rollups.yml").write_text(text, encoding="utf-8")
    return count, tests


def _count_project(dbt_project_dir: Path) -> tuple[int, int]:
    manifest = json.loads((dbt_project_dir / "target" / "manifest.json").read_text())
    kinds = [node["resource_type"] for node in manifest["nodes"].values()]
    return kinds.count("model"), kinds.count("test")


def build_workload(
    root: Path, *, rows: int | None, days: int, extra_models: int, customers: int = CUSTOMERS
) -> Workload:
    """Copy the demo sources and dbt project under `root`; scale shop to `rows` and add models if asked."""
    sources_dir, dbt_dir = root / "sources", root / "dbt"
    sources_dir.mkdir(parents=True)
    for path in sorted((PROJECT_ROOT / "include" / "sources").glob("*.yml")):
        shutil.copy2(path, sources_dir / path.name)
    shutil.copytree(
        PROJECT_ROOT / "include" / "dbt", dbt_dir, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    shop_file = sources_dir / "shop.yml"
    shop = yaml.safe_load(shop_file.read_text(encoding="utf-8"))
    if rows is not None:
        customers = min(customers, max(rows // 10, 1))  # a tenth of the rows at most (small --rows)
        shop["customers"] = customers
        shop["orders_per_day"] = orders_per_day_for(rows, days, customers)
        # The copied configs keep relative `path:`s, which Mallard resolves against the project root.
        shop_file.write_text("# scaled by bench/e2e.py\n" + yaml.safe_dump(shop, sort_keys=False), encoding="utf-8")
    if extra_models:
        add_rollup_models(dbt_dir, extra_models)
    # dbt keeps its partial parse only for the same connection details (the DuckDB path is one):
    # build the manifest with the warehouse of the stack that runs this workload, as `make demo`
    # does with the project's, or its first run parses the whole project again, which the bare
    # baseline (its untimed `dbt parse`) does not.
    build_manifest(
        dbt_dir, env={**prepare_environment(), "MALLARD_WAREHOUSE_PATH": str(Stack.warehouse_of(root / STACK_DIR))}
    )
    models, tests = _count_project(dbt_dir)
    return Workload(root, sources_dir, dbt_dir, models, tests, shop)


# --- warehouse facts -----------------------------------------------------------------------------


def table_counts(warehouse: Path) -> dict[str, int]:
    """Rows of every table in the raw_* and marts schemas (dlt's _dlt_* tables and *_staging schemas left out)."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and (table_schema like 'raw\\_%' escape '\\' or table_schema = 'marts') "
            "and table_schema not like '%\\_staging' escape '\\' and table_name not like '\\_dlt%' escape '\\' "
            "order by 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
            for schema, name in tables
        }


def source_rows(counts: dict[str, int]) -> int:
    return sum(n for table, n in counts.items() if table.startswith("raw_"))


# --- bare baseline (child process) ---------------------------------------------------------------


def _dbt(args: list[str]) -> tuple[float, dict[str, float]]:
    """Run dbt in this process; its seconds and the summed node execution times by resource type."""
    from dbt.cli.main import dbtRunner

    started = time.perf_counter()
    result = dbtRunner().invoke(args)
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"dbt {args[0]} failed: {result.exception}")
    by_kind: dict[str, float] = {}
    for node_result in getattr(result.result, "results", None) or []:
        kind = str(getattr(node_result.node, "resource_type", "other"))
        by_kind[kind] = by_kind.get(kind, 0.0) + float(node_result.execution_time or 0.0)
    return seconds, {kind: round(value, 3) for kind, value in by_kind.items()}


def _bare_warehouse(root: Path) -> Path:
    return root / "warehouse.duckdb"


def _bare_dbt_flags(root: Path, dbt_dir: Path, interval: Any) -> list[str]:
    """Point this process's dbt at the bare run's warehouse, interval and target; its common flags.

    The same in the warm-up parse and the timed build, so that dbt keeps the parse: the project's
    profile (threads 1), the interval in the env vars Mallard's tasks set (macros/interval_filter.sql).
    """
    os.environ["MALLARD_WAREHOUSE_PATH"] = str(_bare_warehouse(root))
    os.environ["MALLARD_INTERVAL_START"] = interval.start.isoformat()
    os.environ["MALLARD_INTERVAL_END"] = interval.end.isoformat()
    common = ["--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir), "--log-path", str(root / "dbt_logs")]
    return [*common, "--target-path", str(root / "dbt_target")]


def child_bare_warm_up(root: Path, dbt_dir: Path, start: str, end: str) -> dict[str, Any]:
    """The bare run's `dbt parse`, in a process of its own, before the timed one.

    A pipeline that ran before left its partial parse on disk, not dbt imported in the next run's
    process: until 2026-12-05 this parse ran inside the timed process and its seconds were taken
    off, and with them dbt's imports and first adapter set-up, which the build then did not pay.
    """
    from include.mallard.interval import Interval, parse_bound

    root.mkdir(parents=True, exist_ok=True)
    interval = Interval(parse_bound(start, "start"), parse_bound(end, "end"))
    seconds, _ = _dbt(["parse", *_bare_dbt_flags(root, dbt_dir, interval), "--quiet"])
    return {"dbt_parse_seconds": round(seconds, 3)}


def child_bare(root: Path, sources_dir: Path, dbt_dir: Path, start: str, end: str) -> dict[str, Any]:
    """The same work as one DAG run, in this one process, on a fresh warehouse under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse = _bare_warehouse(root)
    warehouse.unlink(missing_ok=True)
    os.environ["MALLARD_WAREHOUSE_PATH"] = str(warehouse)
    os.environ["MALLARD_WORK_DIR"] = str(root / "work")

    started = time.perf_counter()
    from include.mallard import ingest
    from include.mallard.config import load_sources
    from include.mallard.interval import Interval, parse_bound

    interval = Interval(parse_bound(start, "start"), parse_bound(end, "end"))
    steps: dict[str, float] = {"imports": time.perf_counter() - started}
    extract_s = load_s = 0.0
    per_source = {}
    for source in load_sources(sources_dir):
        work_dir = ingest.run_work_dir("bare", "run", source.name)
        t0 = time.perf_counter()
        ingest.extract(source, interval, work_dir)
        t1 = time.perf_counter()
        ingest.load(source, work_dir)
        t2 = time.perf_counter()
        per_source[source.name] = {"extract": round(t1 - t0, 3), "load": round(t2 - t1, 3)}
        extract_s, load_s = extract_s + t1 - t0, load_s + t2 - t1
    steps["extract"], steps["load"] = extract_s, load_s
    # dbt done well: partial parse warm (child_bare_warm_up ran `dbt parse` before this process),
    # and the docs' catalog added to the build's own manifest in the same target path (`--no-compile`:
    # no re-parse, no second compile; Mallard's `dbt_docs` does the same). dbt's imports count, as in
    # Mallard's tasks.
    common = _bare_dbt_flags(root, dbt_dir, interval)
    started_dbt = time.perf_counter()
    steps["dbt_build"], node_seconds = _dbt(["build", *common, "--quiet"])
    steps["dbt_docs"], _ = _dbt(["docs", "generate", "--no-compile", *common, "--quiet"])
    steps["dbt_seconds"] = time.perf_counter() - started_dbt
    return {
        "steps_seconds": {step: round(value, 3) for step, value in steps.items()},
        "per_source": per_source,
        "dbt_build_node_seconds": node_seconds,
        "warehouse": str(warehouse),
    }


def run_bare(workload: Workload, start: str, end: str, env: dict[str, str]) -> dict[str, Any]:
    """child_bare in a new process; its wall time (Python start and imports included)."""
    root = workload.root / "bare"
    command = [
        sys.executable,
        "-m",
        "bench.e2e",
        "--child-bare",
        str(root),
        "--child-sources",
        str(workload.sources_dir),
    ]
    command += ["--child-dbt", str(workload.dbt_project_dir), "--child-interval", start, end]
    # The warm-up `dbt parse` is not part of the baseline's work (a pipeline that ran before has
    # it), so it runs in a process of its own, before the timed one.
    warm_up, _ = _run_child([*command, "--child-warm-up"], env, workload.root, "bare warm-up parse")
    result, wall = _run_child(command, env, workload.root, "bare run")
    result["warm_up_parse_seconds"] = warm_up["dbt_parse_seconds"]
    result["wall_seconds"] = round(wall, 2)
    return result


def _run_child(command: list[str], env: dict[str, str], cwd: Path, what: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(RESULT_MARKER)), wall


# --- the real scheduler --------------------------------------------------------------------------


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def task_kind(ti: dict[str, Any]) -> str:
    task_id = ti["task_id"]
    if task_id.endswith(".extract"):
        return "extract"
    if task_id.endswith(".load"):
        return "load"
    if task_id == "dbt.dbt_producer_watcher":
        return "dbt build (watcher producer)"
    if task_id == "dbt.dbt_producer_watcher_done":
        return "other"
    if task_id.startswith("dbt.") and task_id.endswith(".run"):
        return "dbt run"
    if task_id.startswith("dbt."):
        return "dbt test"
    if task_id == "dbt_docs":
        return "dbt docs"
    return "other"


def _union_seconds(spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(spans):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += (current_end - current_start).total_seconds()
    return total


def time_breakdown(task_instances: list[dict[str, Any]], run_start: dt.datetime, run_end: dt.datetime) -> dict:
    """Task seconds by kind, busy time (union of all task spans), scheduling gaps, queue waits."""
    by_kind: dict[str, dict[str, float]] = {}
    spans, pooled, queued, timeline = [], [], [], []
    for ti in task_instances:
        if not (ti.get("start_date") and ti.get("end_date")):
            continue
        start, end = _time(ti["start_date"]), _time(ti["end_date"])
        offsets = [round((moment - run_start).total_seconds(), 2) for moment in (start, end)]
        queued_at = round((_time(ti["queued_when"]) - run_start).total_seconds(), 2) if ti.get("queued_when") else None
        timeline.append([ti["task_id"], *offsets, queued_at])
        kind = by_kind.setdefault(task_kind(ti), {"tasks": 0, "seconds": 0.0})
        kind["tasks"] += 1
        kind["seconds"] += (end - start).total_seconds()
        spans.append((start, end))
        if ti.get("pool") == "mallard_duckdb":
            pooled.append((start, end))
        if ti.get("queued_when"):
            queued.append((start - _time(ti["queued_when"])).total_seconds())
    wall = (run_end - run_start).total_seconds()
    busy = _union_seconds(spans)
    return {
        "run_seconds": round(wall, 2),
        "by_kind": {k: {"tasks": v["tasks"], "seconds": round(v["seconds"], 1)} for k, v in sorted(by_kind.items())},
        "task_seconds_sum": round(sum(v["seconds"] for v in by_kind.values()), 1),
        "busy_seconds": round(busy, 1),
        "pool_busy_seconds": round(_union_seconds(pooled), 1),
        "scheduling_gap_seconds": round(wall - busy, 1),
        "queued_to_start_seconds_median": round(median(queued), 2) if queued else None,
        "queued_to_start_seconds_max": round(max(queued), 2) if queued else None,
        "queued_to_start_seconds_sum": round(sum(queued), 1),
        # Each task's start, end and when it was queued, seconds from the run's start: the
        # critical path can be read off.
        "timeline": sorted(timeline, key=lambda row: row[1]),
    }


PARSE_RECORD = "Worker startup parse complete"  # Airflow's task runner logs it with `dag_file_parse_ms`


def task_parse_ms(logs_dir: Path, run_id: str) -> dict[str, dict[str, float]]:
    """By task kind: the DAG-file parse each task process did before running, as Airflow's task runner
    logged it (`dag_file_parse_ms` of its "Worker startup parse complete" record), tasks and median ms."""
    by_kind: dict[str, list[float]] = {}
    for log_file in sorted(logs_dir.glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id=*/attempt=*.log")):
        for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            if PARSE_RECORD not in line or not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("event") == PARSE_RECORD and "dag_file_parse_ms" in record:
                kind = task_kind({"task_id": record["task_id"]})
                by_kind.setdefault(kind, []).append(float(record["dag_file_parse_ms"]))
                break
    return {kind: {"tasks": len(values), "median_ms": median(values)} for kind, values in sorted(by_kind.items())}


class Stack:
    """A private stack (scripts/airflow_stack.py) on `root`, with the REST helpers of tests/e2e."""

    @staticmethod
    def warehouse_of(root: Path) -> Path:
        """The DuckDB file of the stack on `root`."""
        return root / "warehouse" / "mallard.duckdb"

    def __init__(
        self,
        root: Path,
        dags_dir: Path,
        wait_for: tuple[str, ...] = (DAG_ID,),
        *,
        executor: str = "local",
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`wait_for`: the DAGs that must be parsed before the stack counts as ready; `executor`
        `celery` starts `workers` Celery workers (with PostgreSQL and Redis of the stack's own)."""
        from scripts.airflow_stack import StackConfig, free_port

        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.wait_for = wait_for
        self.warehouse = self.warehouse_of(root)
        self.config = StackConfig(
            airflow_home=root / "airflow",
            port=free_port(),
            extra_env={
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir),
                "MALLARD_WAREHOUSE_PATH": str(self.warehouse),
                "MALLARD_WORK_DIR": str(root / "work"),
                "MALLARD_DBT_DOCS_DIR": str(root / "dbt_docs"),
                "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": "{}",
                "AIRFLOW__COSMOS__CACHE_DIR": str(root / "cosmos-cache"),
                "AIRFLOW__CORE__PARALLELISM": "8",
                # Only what the benchmark triggers runs (as in tests/e2e/airflow_api.isolated_stack).
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                **(extra_env or {}),
            },
            executor=executor,
            workers=workers,
        )

    def __enter__(self) -> Stack:
        from scripts.airflow_stack import running_stack
        from tests.e2e.airflow_api import Api, wait_for_dag

        started = time.perf_counter()
        self._context = running_stack(self.config, timeout=300.0)
        self.stack = self._context.__enter__()
        try:
            self.api = Api(self.stack)
            for dag_id in self.wait_for:
                wait_for_dag(self.api, dag_id, timeout=300.0)
        except BaseException:
            self._context.__exit__(*sys.exc_info())
            raise
        print(f"  stack ready on {self.config.url} after {time.perf_counter() - started:.0f} s", flush=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._context.__exit__(*exc_info)

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return self.api.all_items(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "task_instances")

    def check_success(self, run: dict[str, Any]) -> None:
        if run["state"] != "success":
            from tests.e2e.airflow_api import failed_tasks

            failed = failed_tasks(self.api, DAG_ID, run["dag_run_id"])
            raise RuntimeError(f"run {run['dag_run_id']} {run['state']}; tasks: {failed}; logs: {self.stack.home}/logs")

    def triggered_run(self, logical_date: dt.datetime, start: dt.date, end: dt.date) -> dict[str, Any]:
        """Trigger one run with conf {start, end}, wait for it; its figures and time breakdown."""
        from tests.e2e.airflow_api import wait_for_run

        conf = {"start": start.isoformat(), "end": end.isoformat()}
        run = self.api.call(
            "POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": logical_date.isoformat(), "conf": conf}
        )
        triggered = _now()
        self.api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})  # a no-op after the first run
        print(f"  triggered {run['dag_run_id']} {conf}", flush=True)
        run = wait_for_run(self.api, DAG_ID, run["dag_run_id"], timeout=RUN_TIMEOUT)
        self.check_success(run)
        run_start, run_end = _time(run["start_date"]), _time(run["end_date"])
        breakdown = time_breakdown(self.task_instances(run["dag_run_id"]), run_start, run_end)
        breakdown["task_parse_ms"] = task_parse_ms(self.stack.home / "logs", run["dag_run_id"])
        wall = (run_end - triggered).total_seconds()
        print(f"  {run['state']}: {wall:.1f} s from trigger ({breakdown['run_seconds']:.1f} s running)", flush=True)
        return {"run_id": run["dag_run_id"], "conf": conf, "trigger_to_end_seconds": round(wall, 2), **breakdown}

    def backfill(self, first_day: dt.date, days: int) -> dict[str, Any]:
        """POST /backfills over `days` daily runs from `first_day`; wait for all of them."""
        last_day = first_day + dt.timedelta(days=days - 1)
        body = {"dag_id": DAG_ID, "from_date": f"{first_day}T00:00:00Z", "to_date": f"{last_day}T00:00:00Z"}
        from tests.e2e.airflow_api import start_backfill, wait_for_backfill

        posted = _now()
        backfill = start_backfill(self.api, DAG_ID, body["from_date"], body["to_date"])
        print(f"  backfill {backfill['id']} {body['from_date']} .. {body['to_date']}", flush=True)
        runs = wait_for_backfill(self.api, DAG_ID, backfill, runs=days, timeout=RUN_TIMEOUT)
        if len(runs) != days:
            raise RuntimeError(f"expected {days} backfill runs, got {[r['dag_run_id'] for r in runs]}")
        if any(r["state"] not in ("success", "failed") for r in runs):
            raise RuntimeError(f"the backfill did not finish within {RUN_TIMEOUT:.0f} s")
        for run in runs:
            self.check_success(run)
        first_start = min(_time(r["start_date"]) for r in runs)
        last_end = max(_time(r["end_date"]) for r in runs)
        instances = [ti for r in runs for ti in self.task_instances(r["dag_run_id"])]
        breakdown = time_breakdown(instances, first_start, last_end)
        intervals = sorted((r["data_interval_start"], r["data_interval_end"]) for r in runs)
        per_run = sorted(
            ((_time(r["end_date"]) - _time(r["start_date"])).total_seconds() for r in runs),
        )
        return {
            "request": body,
            "runs": len(runs),
            "run_ids": [r["dag_run_id"] for r in runs],
            "data_intervals": intervals,
            "post_to_last_end_seconds": round((last_end - posted).total_seconds(), 2),
            "per_run_seconds": [round(s, 1) for s in per_run],
            **breakdown,
        }


# --- the two benchmarks --------------------------------------------------------------------------


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def runs_on_a_stack(
    workload: Workload, root: Path, start: dt.date, end: dt.date, runs: int, extra_env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`runs` runs of the same interval one after another on one new stack; each run's figures.

    Each run also records the scheduler's memory before the first run: its own and its children's
    (the LocalExecutor's workers) proportional set size, from /proc (shared pages split between
    the processes that share them, so the sum is what they cost together).
    """
    measured: list[dict[str, Any]] = []
    with Stack(root, workload.dags_dir, extra_env={**workload.env, **(extra_env or {})}) as stack:
        scheduler_pss = components_pss_mb(stack, "scheduler")
        for number in range(runs):
            # A logical date of its own per run; the interval (conf) is the same: a rerun.
            logical_date = dt.datetime.combine(end, dt.time(), dt.UTC) + dt.timedelta(minutes=number)
            run = stack.triggered_run(logical_date, start, end)
            run["load_average_after"] = _load_average()
            run["counts"] = table_counts(stack.warehouse)
            run["tasks"] = sum(v["tasks"] for v in run["by_kind"].values())
            run["scheduler_and_workers_pss_mb_before_runs"] = scheduler_pss
            measured.append(run)
    return measured


def _pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def components_pss_mb(stack: Stack, name_prefix: str) -> float:
    """The PSS of the stack's components whose name starts with `name_prefix` and of their child
    processes (a scheduler's LocalExecutor workers, a Celery worker's pool), summed (MB)."""
    from scripts.airflow_stack import stack_processes

    family = []
    for component in stack.stack.components:
        if component.name.startswith(name_prefix):
            root = component.info.pid
            family += [pid for pid, info in stack_processes([root]).items() if root in (pid, info.ppid)]
    return round(sum(_pss_mb(pid) for pid in family), 1)


def compare_preload(
    workload: Workload, start: dt.date, end: dt.date, args: argparse.Namespace, bare_seconds: float
) -> dict[str, Any]:
    """Stacks with the scheduler's preload of the task libraries off and on, alternated, --runs runs each."""
    from include.mallard.worker_preload import PRELOAD_ENV

    measured: dict[str, list[list[float]]] = {"off": [], "on": []}
    memory: dict[str, list[float]] = {"off": [], "on": []}
    for pair in range(args.preload_pairs):
        for setting in ("off", "on"):
            print(f"== preload {setting} (pair {pair + 1}/{args.preload_pairs})", flush=True)
            root = workload.root / f"stack_preload_{setting}_{pair}"
            env = {
                PRELOAD_ENV: "true" if setting == "on" else "false",
                "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
            }
            runs = runs_on_a_stack(workload, root, start, end, args.runs, env)
            measured[setting].append([run["trigger_to_end_seconds"] for run in runs])
            memory[setting].append(runs[0]["scheduler_and_workers_pss_mb_before_runs"])
            shutil.rmtree(root, ignore_errors=True)
    rows, summary = [], {}
    for setting, stacks in measured.items():
        first = median([seconds[0] for seconds in stacks])
        later = [value for seconds in stacks for value in seconds[1:]] or [first]
        pss = median(memory[setting])
        summary[setting] = {
            "runs_per_stack": stacks,
            "first": first,
            "later_median": median(later),
            "scheduler_and_workers_pss_mb": memory[setting],
        }
        rows.append(
            (
                f"preload {setting}",
                f"{first:.1f}",
                f"{median(later):.1f}",
                f"{median(later) - bare_seconds:.1f}",
                f"{pss:.0f}",
            )
        )
    print_rows(
        "The scheduler's preload of the task libraries (trigger to end, seconds; memory before the runs)",
        ("stacks", "first run", "later runs, median", "fixed cost (later - bare)", "scheduler+workers PSS MB"),
        rows,
    )
    return summary


def measure_pair(
    workload: Workload, start: dt.date, end: dt.date, args: argparse.Namespace, env: dict[str, str], number: int
) -> dict[str, Any]:
    """The bare baseline, then Mallard on a new stack (--runs runs): one pair of the end-to-end benchmark.

    Every pair's stack starts on the same folder, removed first: the workload's manifest was built for
    that stack's warehouse path, and dbt keeps its partial parse only for the same path.
    """
    label = f" (pair {number + 1}/{args.pairs})" if args.pairs > 1 else ""
    load_before = _load_average()
    print(f"== bare baseline{label} (one process: dlt extract+load per source, dbt build, dbt docs generate)")
    bare = run_bare(workload, start.isoformat(), end.isoformat(), env)
    bare_counts = table_counts(Path(bare["warehouse"]))
    print(f"  bare: {bare['wall_seconds']:.1f} s; steps {bare['steps_seconds']}", flush=True)
    load_after_bare = _load_average()

    print(f"== Mallard under the real scheduler{label}", flush=True)
    stack_root = workload.root / STACK_DIR
    shutil.rmtree(stack_root, ignore_errors=True)
    parallelism = {"AIRFLOW__CORE__PARALLELISM": str(args.parallelism)}
    runs = runs_on_a_stack(workload, stack_root, start, end, args.runs, parallelism)
    later = runs[1:] or runs
    # The run of record: the median of the runs after the stack's first (the first when there is
    # none), the slower of the middle two for an even count.
    airflow = sorted(later, key=lambda run: run["trigger_to_end_seconds"])[len(later) // 2]
    airflow_counts = airflow.pop("counts")
    every_run_same = all(run.pop("counts", airflow_counts) == airflow_counts for run in runs)
    mallard_seconds, bare_seconds = airflow["trigger_to_end_seconds"], bare["wall_seconds"]
    pair_ratio = ratio(mallard_seconds, bare_seconds)
    print(f"  Mallard {mallard_seconds:.1f} s / bare {bare_seconds:.1f} s = {pair_ratio}{label}", flush=True)
    return {
        "bare": bare,
        "bare_counts": bare_counts,
        "runs": runs,
        "airflow": airflow,
        "airflow_counts": airflow_counts,
        "same_counts": airflow_counts == bare_counts and every_run_same,
        "ratio": pair_ratio,
        "load_average": {
            "before": load_before,
            "after_bare": load_after_bare,
            "after_airflow": airflow["load_average_after"],
        },
    }


def bench_end_to_end(scratch: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    start, end = RUN_START, RUN_START + dt.timedelta(days=args.days)
    size = "the demo sources unchanged" if args.rows is None else f"{args.rows:,} source rows"
    print(f"\n== End to end: building the workload ({size}, {args.days} days)", flush=True)
    workload = build_workload(scratch / "e2e", rows=args.rows, days=args.days, extra_models=args.extra_models)
    print(f"  dbt project: {workload.models} models, {workload.tests} tests; shop: {workload.shop}", flush=True)

    pairs = [measure_pair(workload, start, end, args, env, number) for number in range(args.pairs)]
    # The pair of record: the median ratio (the slower of the middle two for an even count).
    record = sorted(pairs, key=lambda pair: pair["ratio"])[len(pairs) // 2]
    bare, bare_counts, runs, airflow = record["bare"], record["bare_counts"], record["runs"], record["airflow"]
    airflow_counts = record["airflow_counts"]
    preload = compare_preload(workload, start, end, args, bare["wall_seconds"]) if args.compare_preload else None
    same_counts = all(pair["same_counts"] for pair in pairs)
    rows_loaded = source_rows(airflow_counts)
    bare_total = bare["wall_seconds"]
    bare_no_docs = bare_total - bare["steps_seconds"]["dbt_docs"]
    wall = airflow["trigger_to_end_seconds"]
    fixed_cost = wall - bare_total
    by_kind = airflow["by_kind"]
    first = runs[0]["trigger_to_end_seconds"]
    table = [
        *(
            [("Mallard, first run after the stack starts", f"{first:.1f}", ratio(first, bare_total))]
            if len(runs) > 1
            else []
        ),
        ("Mallard, real scheduler (trigger to end)", f"{wall:.1f}", ratio(wall, bare_total)),
        (
            "Mallard, real scheduler (run start to end)",
            f"{airflow['run_seconds']:.1f}",
            ratio(airflow["run_seconds"], bare_total),
        ),
        ("bare, one process (baseline)", f"{bare_total:.1f}", "1 (baseline)"),
        ("bare without dbt docs generate", f"{bare_no_docs:.1f}", ratio(bare_no_docs, bare_total)),
    ]
    print(f"runs on one stack, trigger to end (s): {[run['trigger_to_end_seconds'] for run in runs]}")
    ratios = [pair["ratio"] for pair in pairs]
    if len(pairs) > 1:
        print(
            f"{len(pairs)} interleaved pairs (bare, then Mallard on a new stack), ratios: {ratios}; "
            f"median {median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}; the table shows the median pair"
        )
    print_rows(
        f"End to end, {rows_loaded:,} source rows, {workload.models} models, {workload.tests} tests (seconds; "
        f"Mallard: {'median of the runs after the first' if len(runs) > 1 else 'one run'})",
        ("measurement", "seconds", "ratio to bare"),
        table,
    )
    steps = bare["steps_seconds"]
    nodes = bare["dbt_build_node_seconds"]
    where = [
        (
            "extract",
            by_kind.get("extract", {}).get("tasks", 0),
            by_kind.get("extract", {}).get("seconds", 0),
            steps["extract"],
        ),
        ("load", by_kind.get("load", {}).get("tasks", 0), by_kind.get("load", {}).get("seconds", 0), steps["load"]),
        (
            "dbt run",
            by_kind.get("dbt run", {}).get("tasks", 0),
            by_kind.get("dbt run", {}).get("seconds", 0),
            nodes.get("model", "-"),
        ),
        (
            "dbt test",
            by_kind.get("dbt test", {}).get("tasks", 0),
            by_kind.get("dbt test", {}).get("seconds", 0),
            nodes.get("test", "-"),
        ),
        (
            "dbt build (Mallard: watcher producer)",
            by_kind.get("dbt build (watcher producer)", {}).get("tasks", 0),
            by_kind.get("dbt build (watcher producer)", {}).get("seconds", 0),
            steps["dbt_build"],
        ),
        (
            "dbt docs",
            by_kind.get("dbt docs", {}).get("tasks", 0),
            by_kind.get("dbt docs", {}).get("seconds", 0),
            steps["dbt_docs"],
        ),
        (
            "other (join tasks)",
            by_kind.get("other", {}).get("tasks", 0),
            by_kind.get("other", {}).get("seconds", 0),
            "-",
        ),
        ("imports (bare)", "-", "-", steps["imports"]),
        ("tasks busy (union of spans)", "-", airflow["busy_seconds"], "-"),
        ("scheduling gaps (run - busy)", "-", airflow["scheduling_gap_seconds"], "-"),
        (
            "queued to started, median / max",
            "-",
            f"{airflow['queued_to_start_seconds_median']} / {airflow['queued_to_start_seconds_max']}",
            "-",
        ),
    ]
    print_rows(
        "Where the time goes (seconds; Mallard dbt run/test = the watcher tasks; bare = node execution times)",
        ("kind", "tasks", "Mallard task s", "bare s"),
        where,
    )
    print_rows(
        "DAG-file parse in each Mallard task process before it runs (Airflow's dag_file_parse_ms)",
        ("kind", "tasks", "median ms"),
        [(kind, row["tasks"], row["median_ms"]) for kind, row in airflow.get("task_parse_ms", {}).items()],
    )
    print(f"row counts of every raw_* and marts table equal in both warehouses: {same_counts}")
    if not same_counts:
        diff = {t: (airflow_counts.get(t), bare_counts.get(t)) for t in set(airflow_counts) | set(bare_counts)}
        print({t: v for t, v in diff.items() if v[0] != v[1]})
    verdicts = [
        check_target(
            f"end to end {ratio(wall, bare_total)}x bare <= {E2E_TARGET_RATIO}x", wall <= E2E_TARGET_RATIO * bare_total
        ),
        *(
            [
                check_target(
                    f"fixed cost {fixed_cost:.1f} s (run minus bare) <= {FIXED_COST_TARGET_SECONDS:.0f} s",
                    fixed_cost <= FIXED_COST_TARGET_SECONDS,
                )
            ]
            if args.demo
            else [
                check_target(f"workload >= 1M source rows ({rows_loaded:,})", rows_loaded >= 1_000_000),
                check_target(f"workload >= 20 models ({workload.models})", workload.models >= 20),
            ]
        ),
        check_target("same row counts in both warehouses", same_counts),
    ]
    return {
        "workload": {
            "source_rows": rows_loaded,
            "interval": [start.isoformat(), end.isoformat()],
            "models": workload.models,
            "tests": workload.tests,
            "extra_models": args.extra_models,
            "shop": workload.shop,
            "table_counts": airflow_counts,
        },
        "airflow": airflow,
        "runs": runs,
        "pairs": [
            {
                "ratio": pair["ratio"],
                "bare_seconds": pair["bare"]["wall_seconds"],
                "mallard_seconds": pair["airflow"]["trigger_to_end_seconds"],
                "load_average": pair["load_average"],
                **({"runs": pair["runs"], "bare": pair["bare"]} if pair is not record else {}),
            }
            for pair in pairs
        ],
        "pair_ratios": ratios,
        "pair_ratio_median": median(ratios),
        "fixed_cost_seconds": round(fixed_cost, 2),
        "preload_comparison": preload,
        "bare": bare,
        "ratio_trigger_to_end_over_bare": ratio(wall, bare_total),
        "ratio_run_over_bare": ratio(airflow["run_seconds"], bare_total),
        "ratio_trigger_to_end_over_bare_without_docs": ratio(wall, bare_no_docs),
        "same_row_counts": same_counts,
        "load_average": record["load_average"],
        "targets": verdicts,
    }


def bench_backfill(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== Backfill: demo workload, {args.single_runs} single run(s), then a {args.backfill_days}-day backfill")
    workload = build_workload(scratch / "backfill", rows=None, days=1, extra_models=0)
    print(f"  dbt project: {workload.models} models, {workload.tests} tests; shop: {workload.shop}", flush=True)
    load_before = _load_average()
    singles = []
    with Stack(workload.root / STACK_DIR, workload.dags_dir, extra_env=workload.env) as stack:
        # Single runs on days before the backfill window (a backfill skips dates that already have a run).
        for index in range(args.single_runs):
            day = dt.date(2024, 1, 1) + dt.timedelta(days=index)
            logical_date = dt.datetime.combine(day, dt.time(), dt.UTC)
            singles.append(stack.triggered_run(logical_date, day, day + dt.timedelta(days=1)))
        load_mid = _load_average()
        backfill = stack.backfill(dt.date(2024, 1, 10), args.backfill_days)
        load_after = _load_average()
    single = median([run["trigger_to_end_seconds"] for run in singles])
    baseline = single * args.backfill_days
    took = backfill["post_to_last_end_seconds"]
    print_rows(
        f"Backfill of {args.backfill_days} days vs {args.backfill_days} x one interval, demo workload (seconds)",
        ("measurement", "seconds", "ratio"),
        [
            (f"backfill, {args.backfill_days} runs (POST to last end)", f"{took:.1f}", ratio(took, baseline)),
            (f"{args.backfill_days} x one single-day run (baseline)", f"{baseline:.1f}", "1 (baseline)"),
            (f"one single-day run (median of {len(singles)})", f"{single:.1f}", ratio(single, baseline)),
        ],
    )
    kinds = backfill["by_kind"]
    print_rows(
        "Backfill: task seconds by kind (all runs)",
        ("kind", "tasks", "seconds"),
        [(kind, figures["tasks"], figures["seconds"]) for kind, figures in kinds.items()]
        + [
            ("pool busy (union of pooled spans)", "-", backfill["pool_busy_seconds"]),
            ("busy (union of all spans)", "-", backfill["busy_seconds"]),
            ("gaps (first start to last end - busy)", "-", backfill["scheduling_gap_seconds"]),
        ],
    )
    return {
        "workload": {"models": workload.models, "tests": workload.tests, "shop": workload.shop},
        "single_runs": singles,
        "one_interval_seconds": single,
        "seven_times_one_interval_seconds": round(baseline, 2),
        "backfill": backfill,
        "ratio_backfill_over_sequential": ratio(took, baseline),
        "load_average": {"before": load_before, "after_single_runs": load_mid, "after_backfill": load_after},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="source rows of the end-to-end run (at least)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the end-to-end run on the demo unchanged, one day (the fixed cost per run): no --rows, --extra-models 0",
    )
    parser.add_argument("--days", type=int, default=7, help="days in the end-to-end run's interval")
    parser.add_argument("--extra-models", type=int, default=12, help=f"generated rollup models (max {len(ROLLUPS)})")
    parser.add_argument(
        "--runs", type=int, default=1, help="runs one after another on the same stack (the first after its start)"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="interleaved pairs: the bare baseline, then Mallard on a new stack; the median pair is reported",
    )
    parser.add_argument(
        "--compare-preload",
        action="store_true",
        help="also stacks with the scheduler's preload of dlt and dbt off and on, alternated",
    )
    parser.add_argument("--preload-pairs", type=int, default=2, help="off/on stack pairs of --compare-preload")
    parser.add_argument(
        "--parallelism", type=int, default=8, help="the LocalExecutor's workers (AIRFLOW__CORE__PARALLELISM)"
    )
    parser.add_argument("--backfill-days", type=int, default=7)
    parser.add_argument("--single-runs", type=int, default=1, help="single-day runs measured as the backfill baseline")
    parser.add_argument("--skip-e2e", action="store_true", help="only the backfill benchmark")
    parser.add_argument("--skip-backfill", action="store_true", help="only the end-to-end benchmark")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    parser.add_argument("--child-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-sources", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-dbt", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-interval", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-warm-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo:
        args.rows, args.days, args.extra_models = None, 1, 0

    env = prepare_environment()
    if args.child_bare:
        if args.child_warm_up:
            result = child_bare_warm_up(args.child_bare, args.child_dbt, *args.child_interval)
        else:
            result = child_bare(args.child_bare, args.child_sources, args.child_dbt, *args.child_interval)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-e2e-"))
    print(f"working in {scratch}")
    settings = {key: value for key, value in vars(args).items() if not key.startswith("child")}
    try:
        if not args.skip_e2e:
            result = bench_end_to_end(scratch, args, env)
            print(f"wrote {write_result('e2e', {'settings': settings, **result})}")
        if not args.skip_backfill:
            result = bench_backfill(scratch, args)
            print(f"wrote {write_result('e2e_backfill', {'settings': settings, **result})}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
