"""Benchmarks measure what Mallard deploys: scripts/env.sh's settings apply even when the shell did not source it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from include.mallard.paths import PROJECT_ROOT


def test_benchmarks_run_with_the_project_environment_without_sourcing_it(tmp_path):
    # Cosmos's watcher Variable backup (on by default, off in scripts/env.sh) made the dbt build
    # task 3.2x bare dbt at 1,000 models in a benchmark run from a shell without env.sh.
    bare_shell = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "MALLARD", "PYTHONPATH", "PROVIDERS__"))
    }
    code = (
        "import json; from bench.common import prepare_environment; env = prepare_environment(); "
        "print(json.dumps({k: env.get(k) for k in ('AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY', "
        "'PROVIDERS__ENABLE_AIRFLOW_SECRETS', 'DO_NOT_TRACK', 'AIRFLOW_HOME')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=bare_shell, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    env = json.loads(result.stdout.strip().splitlines()[-1])
    assert env["AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY"] == "False"
    assert env["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] == "false"
    assert env["DO_NOT_TRACK"] == "1"  # telemetry off
    assert not env["AIRFLOW_HOME"].startswith(str(PROJECT_ROOT))  # a throwaway home, not the project's .airflow


def test_the_end_to_end_workload_is_parsed_for_the_warehouse_its_stack_writes(tmp_path, monkeypatch):
    # dbt keeps a partial parse only for the same connection details (the DuckDB path is one): a
    # manifest built for the project's warehouse made the stack's first `dbt build` parse the whole
    # project again (2.4 s at 1M rows), which the bare baseline did not pay.
    import shutil

    from bench import e2e

    seen = {}

    def record_manifest_build(dbt_dir, env=None):
        seen["warehouse"] = (env or os.environ).get("MALLARD_WAREHOUSE_PATH")
        (dbt_dir / "target").mkdir(exist_ok=True)
        shutil.copy(PROJECT_ROOT / "include" / "dbt" / "target" / "manifest.json", dbt_dir / "target")
        return 0.0

    monkeypatch.setattr(e2e, "build_manifest", record_manifest_build)
    workload = e2e.build_workload(tmp_path / "e2e", rows=None, days=1, extra_models=0)
    assert seen["warehouse"] == str(e2e.Stack.warehouse_of(workload.root / e2e.STACK_DIR))


def test_e2e_reads_each_task_process_parse_time_from_airflows_task_logs(tmp_path):
    from bench.e2e import DAG_ID, PARSE_RECORD, task_parse_ms

    def write_log(task_id: str, parse_ms: int | None, run_id: str = "manual__1") -> None:
        folder = tmp_path / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
        folder.mkdir(parents=True)
        lines = [
            json.dumps({"event": "::group::Pre Execute", "task_id": task_id}),
            f"plain text mentioning {PARSE_RECORD}",
        ]
        if parse_ms is not None:
            lines.append(json.dumps({"event": PARSE_RECORD, "task_id": task_id, "dag_file_parse_ms": parse_ms}))
            lines.append(json.dumps({"event": PARSE_RECORD, "task_id": task_id, "dag_file_parse_ms": 9999}))
        (folder / "attempt=1.log").write_text("\n".join(lines) + "\n")

    write_log("dbt.orders.run", 100)
    write_log("dbt.customers.run", 140)
    write_log("dbt.customers.test", 90)
    write_log("ingest_shop.extract", 300)
    write_log("dbt_docs", None)  # no record: not counted
    write_log("dbt.orders.run", 5000, run_id="manual__2")  # another run

    assert task_parse_ms(tmp_path, "manual__1") == {
        "dbt run": {"tasks": 2, "median_ms": 120.0},
        "dbt test": {"tasks": 1, "median_ms": 90.0},
        "extract": {"tasks": 1, "median_ms": 300.0},
    }


def test_the_parse_benchmark_parses_as_a_mart_models_task_process_would(monkeypatch):
    from airflow.sdk import get_parsing_context

    from bench.parse import model_task_env
    from include.mallard.dbt_group import running_model_selector
    from include.mallard.paths import DBT_PROJECT_DIR

    env = model_task_env({"PATH": "/bin"}, DBT_PROJECT_DIR)
    assert env["PATH"] == "/bin" and env["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] == "dbt.customers.run"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert get_parsing_context().task_id == "dbt.customers.run"
    assert running_model_selector(DBT_PROJECT_DIR) == ["1+fqn:mallard.marts.customers"]
