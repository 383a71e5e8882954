"""What Airflow + Cosmos add to one `dbt build`: Mallard's build task vs the same `dbt build` bare.

    python bench/dbt_overhead.py [--models 100 1000] [--pairs 2] [--rows 1000]

For each project size a generated dbt project (bench/generate_large_project.py: staging ->
intermediate -> marts, `unique` + `not_null` on every model, some `relationships`) over raw
tables created directly in a DuckDB file (`--rows` rows each: this measures dbt, not ingestion).

- bare (baseline): `dbt build` in a new process, in the project folder, with dbt's partial parse
  warm (one untimed `dbt build` first), the same profile and target as Mallard, followed in the same
  process by `dbt docs generate --no-compile`: since 2026-12-06 the build task adds the docs'
  catalog to its build (include/mallard/dbt_docs.py), so the baseline does the same work;
- Mallard: `airflow tasks test <dag> dbt.dbt_producer_watcher`, the build task of a DAG holding
  only Mallard's dbt steps (`run_steps.dbt_steps`: Cosmos watcher mode, the task's env, callbacks),
  timed by the execution API's log lines (task started -> state success: what the task instance's
  start and end dates record); Cosmos's cached partial parse warm (one untimed run first).

Both pass the profile and target flags Cosmos passes, and get the warehouse path of the runs, when
`mallard manifest` parses the project: that parse is then warm for both. `warm=False` (what
bench/scale.py does) replaces the untimed runs by one `dbt run --empty`, which creates every
relation so that the first timed build replaces them as the others do. Either way, a timed run
that re-parsed the whole project ("Unable to do partial parsing" in its log) is counted and
reported.

Pairs are interleaved (bare, Mallard, bare, Mallard, ...), so machine drift hits both. Prints, per
size, the medians, the ratio (target <= 1.2) and the seconds added per dbt node (target <= 0.02).
The watcher sensor tasks that run after the build are not part of either figure. With
`--count-xcom`, one more (untimed for the ratio) `airflow tasks test` build per DAG counts and times
the XCom pushes the build task makes (at the task instance: what reaches the execution API), by
kind of key. `--scheduler` times the build task under the real scheduler instead (a private stack,
LocalExecutor: the execution API runs in the api-server, not in the task's process, as it does
under `tasks test`; the task instance's start and end dates). With `--with-cosmos-producer`, each
pair gets a third build whose task is Cosmos's own producer class (before
include/mallard/dbt_build_task.py). Results: bench/results/dbt_overhead.json.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, check_target, median, prepare_environment, print_rows, ratio, write_result
from bench.generate_large_project import build_manifest, generate_project
from include.mallard.dbt_project import PROFILE_TARGET, read_dbt_project

RATIO_TARGET = 1.2
FULL_PARSE = "Unable to do partial parsing"
PER_NODE_TARGET_SECONDS = 0.02
DAG_ID = "bench_dbt_overhead"
BUILD_TASK = "dbt.dbt_producer_watcher"
DAG_FILE = """# An Airflow DAG file: only Mallard's dbt steps over a generated project (bench/dbt_overhead.py).
import ast
import datetime as dt
from pathlib import Path

from airflow.sdk import DAG

from include.mallard.interval import asset_run_bound
from include.mallard.run_steps import DEFAULT_ARGS, dbt_steps, dbt_task_macros


def bench_dag(dag_id):
    # No interval (no conf, no triggering events): the incremental models build from all raw
    # data, the same work as the bare `dbt build`.
    with DAG(
        dag_id,
        schedule=None,
        start_date=dt.datetime(2024, 1, 1),
        default_args=DEFAULT_ARGS,
        user_defined_macros=dbt_task_macros(asset_run_bound),
    ) as dag:
        dbt_steps(dag, Path({dbt_dir!r}))
    return dag


dag = bench_dag({dag_id!r})
"""
# --with-cosmos-producer: a second DAG, the same but for the classes of the build task and its
# watchers: Cosmos's own, which push and read every node's XComs key by key, the producer from dbt's
# threads (include/mallard/dbt_build_task.py).
COSMOS_PRODUCER_DAG = """
from cosmos.operators.watcher import DbtProducerWatcherOperator

from include.mallard.dbt_watchers import REPORT_READING_WATCHERS

cosmos_dag = bench_dag({dag_id!r})
cosmos_dag.get_task({build_task!r}).__class__ = DbtProducerWatcherOperator
cosmos_watchers = {{mallard: cosmos for cosmos, mallard in REPORT_READING_WATCHERS.items()}}
for task in cosmos_dag.tasks:
    task.__class__ = cosmos_watchers.get(type(task), type(task))
"""
COSMOS_DAG_ID = f"{DAG_ID}_cosmos_producer"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


# --count-xcom: the same DAG file, with Cosmos's XCom push wrapped to count and time each push by
# kind of key (`<node>_dbt_event`, `<node>_status`, `<node>_compiled_sql`, ...). Only for that one
# extra run: the timed runs use the plain file.
XCOM_COUNTER = """import atexit, sys, time
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance as _TaskInstance

_pushes = {"count": 0, "seconds": 0.0, "by_kind": {}}
_push = _TaskInstance.xcom_push


def _counted(self, key, value):
    started = time.perf_counter()
    _push(self, key=key, value=value)
    _pushes["count"] += 1
    _pushes["seconds"] += time.perf_counter() - started
    suffixes = ("_report", "_tests_status", "_dbt_event", "_compiled_sql", "_status")
    kind = next((suffix for suffix in suffixes if "__" in key and key.endswith(suffix)), key)
    kind = ("test " if key.startswith("test__") else "") + kind
    _pushes["by_kind"][kind] = _pushes["by_kind"].get(kind, 0) + 1


_TaskInstance.xcom_push = _counted
atexit.register(lambda: print("XCOM_PUSHES " + repr(_pushes), file=sys.stderr, flush=True))
"""


def create_raw_tables(warehouse: Path, dbt_project_dir: Path, rows: int) -> int:
    """Every source table the project declares, `rows` rows of (id, updated_at); the table count."""
    import duckdb
    import yaml

    count = 0
    with duckdb.connect(str(warehouse)) as connection:
        for sources_file in sorted(dbt_project_dir.glob("models/staging/*/_*__sources.yml")):
            for source in yaml.safe_load(sources_file.read_text())["sources"]:
                connection.execute(f'create schema if not exists "{source["schema"]}"')
                for table in source["tables"]:
                    connection.execute(
                        f'create or replace table "{source["schema"]}"."{table["name"]}" as '
                        "select i as id, timestamp '2024-01-01' + i * interval 1 minute as updated_at "
                        f"from range({rows}) t(i)"
                    )
                    count += 1
    return count


def dbt_nodes(dbt_project_dir: Path) -> int:
    manifest = json.loads((dbt_project_dir / "target" / "manifest.json").read_text())
    return sum(1 for node in manifest["nodes"].values() if node["resource_type"] in ("model", "test"))


# The bare baseline of a timed build: `dbt build`, then what the build task adds to it since
# 2026-12-06, the docs' catalog (`dbt docs generate --no-compile`), in the same process.
BARE_BUILD_WITH_CATALOG = """
import sys
from dbt.cli.main import dbtRunner
for command in (["build"], ["docs", "generate", "--no-compile"]):
    result = dbtRunner().invoke([*command, *sys.argv[1:]])
    if not result.success:
        sys.exit(f"dbt {command[0]} failed: {result.exception}")
"""


def time_bare(dbt_project_dir: Path, env: dict[str, str], dbt_args: tuple[str, ...] = ("build",)) -> float:
    """Seconds of one bare dbt process: `dbt_args`, or for a build the build and its catalog."""
    profile = str(read_dbt_project(dbt_project_dir)["profile"])
    flags = [
        "--project-dir",
        str(dbt_project_dir),
        "--profiles-dir",
        str(dbt_project_dir),
        "--profile",
        profile,
        "--target",
        PROFILE_TARGET,
        "--quiet",
    ]
    if dbt_args == ("build",):
        command = [sys.executable, "-c", BARE_BUILD_WITH_CATALOG, *flags]
    else:
        command = [str(Path(sys.executable).with_name("dbt")), *dbt_args, *flags]
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=dbt_project_dir, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def migrate_metadata_db(env: dict[str, str]) -> None:
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)


def time_mallard(logical_date: str, env: dict[str, str], log: Path, dag_id: str = DAG_ID) -> float:
    """The build task's seconds, from the execution API's own log lines of this run: the task
    started (queued -> running) to its state set to success. (`tasks test` keeps no task instance.)"""
    command = [AIRFLOW, "tasks", "test", dag_id, BUILD_TASK, logical_date]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("a") as output:
        subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=True, stdout=output, stderr=subprocess.STDOUT)
    with log.open() as output:
        output.seek(offset)
        lines = output.read().splitlines()
    started = [line for line in lines if "Task started" in line]
    finished = [line for line in lines if "Task instance state updated" in line and "new_state=success" in line]
    if len(started) != 1 or len(finished) != 1:
        raise RuntimeError(f"the build task did not start and succeed once; see {log}")
    return (_log_time(finished[0]) - _log_time(started[0])).total_seconds()


def _log_time(line: str) -> dt.datetime:
    return dt.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))


@contextmanager
def build_timer(
    root: Path, dags: Path, env: dict[str, str], dag_ids: tuple[str, ...], scheduler: bool
) -> Iterator[Callable[[str, str], float]]:
    """A function (dag id, logical date) -> seconds of one run of the DAG's build task.

    Default: `airflow tasks test` (the execution API runs inside the task's process). With
    `scheduler`: a private stack (scripts/airflow_stack.py, LocalExecutor; the execution API in
    the api-server), a triggered run, the build task instance's start to end from the REST API.
    """
    log = root / "airflow.log"
    if not scheduler:
        migrate_metadata_db(env)
        yield lambda dag_id, logical_date: time_mallard(logical_date, env, log, dag_id)
        return
    from bench.e2e import STACK_DIR, Stack
    from tests.e2e.airflow_api import wait_for_run

    with Stack(root / STACK_DIR, dags, wait_for=dag_ids) as stack:

        def run_build(dag_id: str, logical_date: str) -> float:
            run = stack.api.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": f"{logical_date}T00:00:00Z"})
            stack.api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            run = wait_for_run(stack.api, dag_id, run["dag_run_id"], timeout=3600)
            ti = stack.api.call("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/{BUILD_TASK}")
            if run["state"] != "success" or ti["state"] != "success":
                raise RuntimeError(f"{dag_id} run {run['dag_run_id']}: {run['state']}; logs: {stack.stack.home}/logs")
            return (_log_time(ti["end_date"]) - _log_time(ti["start_date"])).total_seconds()

        yield run_build


def bench_size(
    models: int,
    pairs: int,
    rows: int,
    scratch: Path,
    env: dict[str, str],
    count_xcom: bool = False,
    with_cosmos_producer: bool = False,
    scheduler: bool = False,
    warm: bool = True,
) -> dict[str, Any]:
    """Interleaved pairs at one project size, after one untimed run of each unless not `warm`.

    Without them (bench/scale.py, to stay short), the runs start from the partial parse
    `mallard manifest` wrote, and one `dbt run --empty` creates every relation first (zero rows),
    so that every timed build replaces them: a first build that creates them was ~10% faster.
    """
    from bench.e2e import STACK_DIR, Stack

    root = scratch / f"models_{models}"
    project = generate_project(root, sources=max(5, models // 20), models=models)
    # Under the scheduler, where bench.e2e.Stack points the stack's warehouse.
    warehouse = Stack.warehouse_of(root / STACK_DIR) if scheduler else root / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    tables = create_raw_tables(warehouse, project.dbt_project_dir, rows)
    dags = root / "dags"
    dags.mkdir()
    dag_file_text = DAG_FILE.format(dag_id=DAG_ID, dbt_dir=str(project.dbt_project_dir))
    dag_ids = (DAG_ID, COSMOS_DAG_ID) if with_cosmos_producer else (DAG_ID,)
    if with_cosmos_producer:
        dag_file_text += COSMOS_PRODUCER_DAG.format(dag_id=COSMOS_DAG_ID, build_task=BUILD_TASK)
    (dags / "bench_dbt.py").write_text(dag_file_text)
    size_env = env | {
        "MALLARD_WAREHOUSE_PATH": str(warehouse),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__COSMOS__CACHE_DIR": str(root / "cosmos-cache"),
        # The build task publishes the docs of its build: here, never over the project's own docs site.
        "MALLARD_DBT_DOCS_DIR": str(root / "dbt_docs"),
    }
    build_manifest(project.dbt_project_dir, size_env)
    nodes = dbt_nodes(project.dbt_project_dir)
    print(f"  {models} models: {nodes} dbt nodes, {tables} raw tables of {rows} rows", flush=True)
    bare, mallard, cosmos = [], [], []
    pushes: dict[str, Any] = {}
    bare_log, mallard_log = project.dbt_project_dir / "logs" / "dbt.log", root / "airflow.log"
    with build_timer(root, dags, size_env, dag_ids, scheduler) as run_build:
        if warm:
            print("    warming up: one untimed run of each", flush=True)
            time_bare(project.dbt_project_dir, size_env)
            for dag_id in dag_ids:
                run_build(dag_id, "2024-01-01")
        else:
            print("    creating every relation, empty: an untimed `dbt run --empty`", flush=True)
            time_bare(project.dbt_project_dir, size_env, ("run", "--empty"))
        logs_from = {log: _size(log) for log in (bare_log, mallard_log)}
        for index in range(pairs):
            bare.append(time_bare(project.dbt_project_dir, size_env))
            mallard.append(run_build(DAG_ID, f"2024-01-{index + 2:02d}"))
            line = f"    pair {index + 1}/{pairs}: bare {bare[-1]:.2f} s, Mallard task {mallard[-1]:.2f} s"
            if with_cosmos_producer:
                cosmos.append(run_build(COSMOS_DAG_ID, f"2024-01-{index + 2:02d}"))
                line += f", with Cosmos's producer {cosmos[-1]:.2f} s"
            print(line, flush=True)
    # Under --scheduler the task logs are the stack's: not counted.
    full_parses = {
        "bare": _count_since(bare_log, logs_from[bare_log], FULL_PARSE),
        "mallard": None if scheduler else _count_since(mallard_log, logs_from[mallard_log], FULL_PARSE),
    }
    if any(full_parses.values()):
        print(f"    WARNING: timed runs that parsed the whole project: {full_parses}", flush=True)
    if count_xcom:
        pushes = count_pushes(root, dags, size_env, dag_ids, pairs)
    bare_s, mallard_s = median(bare), median(mallard)
    return {
        "models": project.models,
        "dbt_nodes": nodes,
        "under": "scheduler" if scheduler else "airflow tasks test",
        "bare_seconds": [round(v, 3) for v in bare],
        "mallard_seconds": [round(v, 3) for v in mallard],
        "bare_median": round(bare_s, 3),
        "mallard_median": round(mallard_s, 3),
        "ratio": ratio(mallard_s, bare_s),
        "added_per_node_seconds": round((mallard_s - bare_s) / nodes, 4),
        "cosmos_producer_seconds": [round(v, 3) for v in cosmos],
        "cosmos_producer_ratio": ratio(median(cosmos), bare_s) if cosmos else None,
        "xcom_pushes": pushes or None,
        "warmed_up": warm,
        "timed_full_parses": full_parses,
        "log": str(root / "airflow.log"),
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _count_since(path: Path, offset: int, text: str) -> int:
    """How many lines of `path` after byte `offset` contain `text`."""
    if not path.exists():
        return 0
    with path.open("rb") as file:
        file.seek(offset)
        return sum(text.encode() in line for line in file)


def count_pushes(root: Path, dags: Path, env: dict[str, str], dag_ids: tuple[str, ...], pairs: int) -> dict[str, Any]:
    """One more `airflow tasks test` build per DAG with the XCom counter: pushes by kind, their seconds."""
    dag_file = dags / "bench_dbt.py"
    dag_file.write_text(XCOM_COUNTER + dag_file.read_text())
    log = root / "airflow.log"
    migrate_metadata_db(env)  # under --scheduler, this AIRFLOW_HOME is new; else a no-op
    pushes = {}
    for dag_id in dag_ids:
        seconds = time_mallard(f"2024-02-{pairs + 2:02d}", env, log, dag_id)
        line = [line for line in log.read_text().splitlines() if line.startswith("XCOM_PUSHES ")][-1]
        which = "mallard" if dag_id == DAG_ID else "cosmos_producer"
        pushes[which] = {**ast.literal_eval(line.removeprefix("XCOM_PUSHES ")), "task_seconds": round(seconds, 3)}
        print(f"    XCom pushes in one build ({which}): {pushes[which]}", flush=True)
    return pushes


def report(results: list[dict[str, Any]]) -> list[str]:
    """Print the sizes' medians and ratios, then each target's verdict (returned)."""
    print_rows(
        "One `dbt build`: Mallard's Airflow task vs bare dbt (median seconds, interleaved pairs)",
        ("models", "dbt nodes", "bare s", "Mallard task s", "ratio", "added s/node", "Cosmos producer ratio"),
        [
            (
                r["models"],
                r["dbt_nodes"],
                r["bare_median"],
                r["mallard_median"],
                r["ratio"],
                r["added_per_node_seconds"],
                r["cosmos_producer_ratio"] if r["cosmos_producer_ratio"] is not None else "-",
            )
            for r in results
        ],
    )
    verdicts = []
    for r in results:
        within_ratio = r["ratio"] is not None and r["ratio"] <= RATIO_TARGET
        verdicts.append(
            check_target(f"{r['models']} models: build task {r['ratio']}x bare <= {RATIO_TARGET}x", within_ratio)
        )
        per_node = r["added_per_node_seconds"]
        verdicts.append(
            check_target(
                f"{r['models']} models: {per_node} s added per node <= {PER_NODE_TARGET_SECONDS} s",
                per_node <= PER_NODE_TARGET_SECONDS,
            )
        )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the generated projects and logs")
    parser.add_argument("--count-xcom", action="store_true", help="one more build, counting Cosmos's XCom pushes")
    parser.add_argument(
        "--with-cosmos-producer",
        action="store_true",
        help="a third build per pair with Cosmos's own producer class (Mallard's before/after)",
    )
    parser.add_argument(
        "--scheduler",
        action="store_true",
        help="time the build task under the real scheduler (a private stack) instead of `airflow tasks test`",
    )
    args = parser.parse_args()
    env = prepare_environment()
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="mallard-bench-dbt-"))
    try:
        for models in args.models:
            results.append(
                bench_size(
                    models,
                    args.pairs,
                    args.rows,
                    scratch,
                    env,
                    args.count_xcom,
                    args.with_cosmos_producer,
                    args.scheduler,
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    verdicts = report(results)
    path = write_result(
        "dbt_overhead", {"sizes": results, "pairs": args.pairs, "rows": args.rows, "verdicts": verdicts}
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
