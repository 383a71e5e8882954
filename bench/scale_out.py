"""A 7-day backfill of the demo with 6 sources on three deployments, side by side in one run.

    python bench/scale_out.py [--days 7] [--keep] [--celery-preload-pairs N]

Workload: the demo sources and dbt project (bench.e2e.build_workload) plus three more synthetic
sources (copies of `shop` with other seeds, so 6 sources load per run; dbt reads the demo's three).
Each deployment is a private stack (scripts/airflow_stack.py) on its own AIRFLOW_HOME, started in
turn, and runs `POST /api/v2/backfills` over the same --days daily runs:

1. LocalExecutor + the DuckDB warehouse (the baseline: what `make stack` runs);
2. CeleryExecutor with 1 worker + the PostgreSQL warehouse (MALLARD_ENV=prod);
3. CeleryExecutor with 2 workers + the PostgreSQL warehouse.

Each is timed from the POST to the last run's end_date, and the PSS of the processes that fork the
tasks (the scheduler and its LocalExecutor workers; the Celery workers and their pools) is read
once the stack is ready, before any task ran; the task seconds by kind, the busy time
(union of task spans) and the gaps come from the task instances (bench.e2e.time_breakdown). The
raw and mart tables of the three must hold the same rows (tests/e2e/warehouse_digests.py), or the
benchmark fails. Result: bench/results/scale_out.json.

With --celery-preload-pairs N, the deployments are instead the local one (for the rows) and N
pairs of 1 Celery worker with its preload turned off (MALLARD_PRELOAD_TASK_LIBRARIES=false), then
on (include/mallard/celery_worker.py): the ratio of each pair says what the preload buys.

On 2 cores the deployments compete for the same CPUs: the figures say where the time goes, not
what more machines would give (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import prepare_environment, print_rows, ratio, report_written, write_result
from bench.e2e import Stack, Workload, build_workload, components_pss_mb
from scripts.airflow_stack import WORKER_PREFIX

EXTRA_SOURCES = {"shop_east": 101, "shop_west": 202, "shop_north": 303}  # name -> seed
FIRST_DAY = dt.date(2024, 1, 10)
DEPLOYMENTS = [
    ("local + DuckDB", {"executor": "local", "workers": 1, "env": {}}),
    ("celery 1 worker + Postgres", {"executor": "celery", "workers": 1, "env": {"MALLARD_ENV": "prod"}}),
    ("celery 2 workers + Postgres", {"executor": "celery", "workers": 2, "env": {"MALLARD_ENV": "prod"}}),
]


def add_sources(sources_dir: Path) -> int:
    """Copies of the synthetic `shop` source under other names and seeds; the number of sources."""
    shop = yaml.safe_load((sources_dir / "shop.yml").read_text(encoding="utf-8"))
    for name, seed in EXTRA_SOURCES.items():
        copy = {**shop, "seed": seed, "description": f"{shop.get('description', 'shop')} ({name})"}
        (sources_dir / f"{name}.yml").write_text(yaml.safe_dump(copy, sort_keys=False), encoding="utf-8")
    return len(list(sources_dir.glob("*.yml")))


def digests(stack: Stack, executor: str) -> dict[str, tuple[int, str]]:
    from tests.e2e.warehouse_digests import duckdb_digests, postgres_digests

    if executor == "local":
        return duckdb_digests(stack.warehouse)
    return postgres_digests(stack.stack.warehouse_uri)


def celery_preload_pairs(pairs: int) -> list[tuple[str, dict[str, Any]]]:
    """`pairs` x (1 Celery worker with its preload turned off, then on): what celery_worker.py buys."""
    off = {"MALLARD_ENV": "prod", "MALLARD_PRELOAD_TASK_LIBRARIES": "false"}
    deployments = []
    for number in range(1, pairs + 1):
        deployments.append((f"celery 1 worker, no preload #{number}", {"executor": "celery", "workers": 1, "env": off}))
        deployments.append((f"celery 1 worker, preload #{number}", {**DEPLOYMENTS[1][1]}))
    return deployments


def run_deployment(root: Path, workload: Workload, name: str, spec: dict[str, Any], days: int) -> dict[str, Any]:
    print(f"\n== {name}", flush=True)
    folder = root / "deployments" / re.sub(r"\W+", "_", name)
    env = {**workload.env, **spec["env"]}
    with Stack(folder, workload.dags_dir, executor=spec["executor"], workers=spec["workers"], extra_env=env) as stack:
        # What the processes that fork the tasks hold before any task ran (a preload's memory).
        forking = "scheduler" if spec["executor"] == "local" else WORKER_PREFIX
        pss_before_runs = components_pss_mb(stack, forking)
        result = stack.backfill(FIRST_DAY, days)
        result["forking_processes_pss_mb_before_runs"] = {forking: pss_before_runs}
        hosts = sorted({ti["hostname"] for run in result["run_ids"] for ti in stack.task_instances(run)})
        result["hostnames"] = hosts
        result["digests"] = digests(stack, spec["executor"])
    print(f"  {days} runs in {result['post_to_last_end_seconds']:.0f} s on {hosts}; PSS before: {pss_before_runs} MB")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7, help="daily runs in the backfill")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    parser.add_argument(
        "--celery-preload-pairs",
        type=int,
        default=0,
        help="instead of the three deployments: local, then N pairs of 1 Celery worker without/with its preload",
    )
    args = parser.parse_args()
    os.environ.update(prepare_environment())
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-scale-out-"))
    scratch.chmod(0o711)  # as root, the stack's PostgreSQL runs as user postgres and must reach it
    try:
        workload = build_workload(scratch / "workload", rows=None, days=1, extra_models=0)
        sources = add_sources(workload.sources_dir)
        print(f"workload: {sources} sources, {workload.models} models, {workload.tests} tests", flush=True)
        results = {}
        deployments = DEPLOYMENTS
        if args.celery_preload_pairs:
            deployments = [DEPLOYMENTS[0], *celery_preload_pairs(args.celery_preload_pairs)]
        for name, spec in deployments:
            results[name] = run_deployment(scratch, workload, name, spec, args.days)
    except BaseException:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    baseline_name = DEPLOYMENTS[0][0]
    baseline = results[baseline_name]
    mismatched = [name for name, result in results.items() if result["digests"] != baseline["digests"]]
    took = {name: result["post_to_last_end_seconds"] for name, result in results.items()}
    print_rows(
        f"{args.days}-day backfill, {sources} sources (POST to last end; ratio to {baseline_name})",
        ("deployment", "seconds", "ratio", "busy s", "gaps s", "hosts", "forking PSS MB"),
        [
            (
                name,
                f"{took[name]:.1f}",
                ratio(took[name], took[baseline_name]),
                result["busy_seconds"],
                result["scheduling_gap_seconds"],
                len(result["hostnames"]),
                next(iter(result["forking_processes_pss_mb_before_runs"].values())),
            )
            for name, result in results.items()
        ],
    )
    kinds = sorted({kind for result in results.values() for kind in result["by_kind"]})
    print_rows(
        "Task seconds by kind (all runs)",
        ("kind", *results),
        [(kind, *(r["by_kind"].get(kind, {}).get("seconds", "-") for r in results.values())) for kind in kinds],
    )
    preload_ratios = [
        ratio(took[f"celery 1 worker, preload #{number}"], took[f"celery 1 worker, no preload #{number}"])
        for number in range(1, args.celery_preload_pairs + 1)
    ]
    if preload_ratios:
        print(f"\n1 Celery worker with its preload / without, per pair: {preload_ratios}")
    for result in results.values():
        result["tables"] = {table: rows for table, (rows, _) in result.pop("digests").items()}
    payload = {"days": args.days, "sources": sources, "models": workload.models, "deployments": results}
    payload["ratios_to_local"] = {name: ratio(took[name], took[baseline_name]) for name in results}
    payload["celery_preload_ratios"] = preload_ratios
    payload["same_rows_everywhere"] = not mismatched
    report_written(write_result("scale_out", payload), scratch, args.keep)
    if mismatched:
        print(f"FAILED: the tables of {mismatched} differ from {baseline_name}'s", file=sys.stderr)
        return 1
    print(f"same rows in every raw and mart table on all {len(results)} deployments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
