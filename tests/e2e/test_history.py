"""History: runs and backfills before 2024 load (or fail) for real, never silently do nothing.

Before, the DAG's start_date was fixed at 2024-01-01, and Airflow creates no task instance for a
logical date before a DAG's start_date: `airflow dags test mallard_elt 2014-01-02 --conf
'{"start": "2013-01-01", "end": "2014-01-02"}'` "succeeded" in 5 s with 0 tasks run. Now Airflow's
start_date is far back, the project's start date is `start_date` in mallard.yml (2013-01-01 for
the demo), and a run before it fails at its first tasks naming that setting.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from include.mallard.config import get_source
from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.paths import PROJECT_ROOT, SOURCES_DIR
from tests.e2e.airflow_api import RUN_TIMEOUT, Api, isolated_stack, start_backfill, wait_for_backfill, wait_for_run
from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e


def _fresh_airflow(root: Path) -> tuple[dict[str, str], Path, Path]:
    warehouse, log = root / "warehouse.duckdb", root / "airflow.log"
    env = airflow_env(root / "airflow", warehouse, root / "work")
    run_airflow(["db", "migrate"], env, log)
    return env, warehouse, log


def _task_states(airflow_home: Path, dag_id: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("select task_id, state, try_number from task_instance where dag_id = ?", [dag_id])
        return {task_id: (state, tries) for task_id, state, tries in rows}


def test_a_run_over_2013_runs_every_task_and_loads_what_2013_has(tmp_path):
    """The reproduction command on a fresh warehouse: success, every task ran, the right (empty) result."""
    env, warehouse, log = _fresh_airflow(tmp_path)
    conf = '{"start": "2013-01-01", "end": "2014-01-02"}'
    run_airflow(["dags", "test", "mallard_elt", "2014-01-02", "--conf", conf], env, log)
    states = _task_states(tmp_path / "airflow", "mallard_elt")
    assert len(states) > 20 and {state for state, _ in states.values()} == {"success"}, states
    # The demo has no orders, payments or spend in 2013; stores and customers are full refreshes.
    shop = get_source(SOURCES_DIR, "shop")
    counts = {
        table: query(warehouse, f"select count(*) from {table}")[0][0]
        for table in ("raw_shop.orders", "raw_shop.payments", "raw_marketing.spend", "raw_stores.stores")
    }
    assert counts == {"raw_shop.orders": 0, "raw_shop.payments": 0, "raw_marketing.spend": 0, "raw_stores.stores": 5}
    assert query(warehouse, "select count(*), sum(number_of_orders) from marts.customers") == [(shop.customers, 0)]
    assert query(warehouse, "select count(*) from marts.orders") == [(0,)]
    assert query(warehouse, "select count(*) from marts.daily_activity") == [(0,)]
    # shop starts on 2024-01-01 (mallard.yml `sources.shop.start_date`): it was not asked for 2013 at all.
    assert "The source starts on 2024-01-01" in log.read_text()


def test_a_run_before_the_start_date_fails_at_once_naming_the_setting(tmp_path):
    env, warehouse, log = _fresh_airflow(tmp_path)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="DagRun failed"):
        run_airflow(["dags", "test", "mallard_elt", "2012-06-02"], env, log)
    took = time.monotonic() - started
    states = _task_states(tmp_path / "airflow", "mallard_elt")
    extracts = {task: value for task, value in states.items() if task.endswith(".extract")}
    assert extracts and set(extracts.values()) == {("failed", 1)}, extracts  # no retries
    assert states[BUILD_TASK_ID][0] == "upstream_failed"
    text = log.read_text()
    assert "begins before the start date 2013-01-01 (`start_date` in mallard.yml)" in text
    assert "move that start date back to 2012-06-01 or earlier" in text
    # Nothing is loaded; the run's history (mallard_meta) records the failed extracts.
    tables = "select * from information_schema.tables where table_schema <> 'mallard_meta'"
    assert not warehouse.exists() or not query(warehouse, tables)
    failed = query(warehouse, "select distinct status from mallard_meta.loads")
    assert failed == [("failed",)], failed
    print(f"\nrun before the start date: failed in {took:.0f} s")
    assert took < 90, "an interval error must fail at once, not after retries"


# The same check under the real scheduler, where backfills run: a backfill of two days of 2013.
BACKFILL_FROM, BACKFILL_TO = "2013-03-01T00:00:00Z", "2013-03-02T00:00:00Z"
ISOLATION_DAG = """# An Airflow DAG over sources with one invalid file (safe mode wants both words).
from pathlib import Path

from include.mallard.factory import build_elt_dag

dag = build_elt_dag("isolation", sources_dir=Path({sources!r}))
"""
ISOLATION_ERRORS = """# Airflow DAG folder: the invalid files as an import error, as mallard_source_errors.py does.
from pathlib import Path

from include.mallard.config.project import raise_for_invalid_project_files

raise_for_invalid_project_files(Path({sources!r}))
"""
BROKEN = 'kind: files\npath: include/data/stores\ntables:\n  - name: stock\n    glob: "../x.csv"\n'


def _dags_folder(root: Path) -> Path:
    """The project's two DAG files, plus a DAG over a copy of the stores source and an invalid file."""
    dags, sources = root / "dags", root / "isolation_sources"
    dags.mkdir()
    sources.mkdir()
    for name in ("mallard_elt.py", "mallard_source_errors.py"):
        shutil.copy(PROJECT_ROOT / "dags" / name, dags)
    (sources / "iso_stores.yml").write_text((SOURCES_DIR / "stores.yml").read_text())
    (sources / "inventory.yml").write_text(BROKEN)
    (dags / "isolation.py").write_text(ISOLATION_DAG.format(sources=str(sources)))
    (dags / "isolation_errors.py").write_text(ISOLATION_ERRORS.format(sources=str(sources)))
    return dags


def _wait_for_dags(api: Api, dag_ids: list[str], error_file: str, timeout: float = 180) -> list[dict]:
    """The import errors, once every DAG is parsed and `error_file` has been (the files parse in any order)."""
    deadline, errors = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        errors = api.call("GET", "/importErrors")["import_errors"]
        parsed = all(api.client.get(f"/dags/{dag_id}").status_code == 200 for dag_id in dag_ids)
        if parsed and any(Path(e["filename"]).name == error_file for e in errors):
            return errors
        time.sleep(2)
    raise AssertionError(f"{dag_ids} / {error_file} not parsed within {timeout:.0f} s: {errors}")


def _run_states(api: Api, dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in api.all_items(path, "task_instances")}


def test_a_backfill_of_2013_and_an_invalid_source_under_the_real_scheduler(tmp_path):
    root = tmp_path / "stack"
    root.mkdir()
    dags = _dags_folder(root)
    with isolated_stack(root, extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}) as stack:
        api = Api(stack)
        errors = _wait_for_dags(api, ["mallard_elt", "isolation"], "isolation_errors.py")
        # The invalid file is an import error (file, field, fix), from the errors file only...
        assert [Path(e["filename"]).name for e in errors] == ["isolation_errors.py"], errors
        assert "inventory.yml: field `tables[0].glob`" in errors[0]["stack_trace"]
        # ...and the DAG is there, with the invalid file's task, and is not marked as broken.
        dag = api.call("GET", "/dags/isolation")
        assert not dag["has_import_errors"], dag
        assert "ingest_inventory" in {t["task_id"] for t in api.call("GET", "/dags/isolation/tasks")["tasks"]}

        started = time.monotonic()
        backfill = start_backfill(api, "mallard_elt", BACKFILL_FROM, BACKFILL_TO)
        runs = wait_for_backfill(api, "mallard_elt", backfill, runs=2, timeout=3 * RUN_TIMEOUT)
        print(f"\n2-day backfill of 2013: {time.monotonic() - started:.0f} s")
        assert len(runs) == 2, [(r["dag_run_id"], r["state"]) for r in runs]
        for run in runs:
            states = _run_states(api, "mallard_elt", run["dag_run_id"])
            assert run["state"] == "success", states
            assert len(states) > 20 and Counter(s for s, _ in states.values()) == {"success": len(states)}, states
        warehouse = Path(stack.env["MALLARD_WAREHOUSE_PATH"])
        assert query(warehouse, "select count(*) from raw_stores.stores") == [(5,)]
        assert query(warehouse, "select count(*) from raw_shop.orders") == [(0,)]
        assert query(warehouse, "select count(*) from marts.daily_activity") == [(0,)]

        # A run of the DAG with the invalid file: its task fails on the first try, the valid source
        # loads (each task reads only its own file), dbt does not run.
        run = api.call("POST", "/dags/isolation/dagRuns", json={"logical_date": "2024-01-08T00:00:00Z"})
        api.call("PATCH", "/dags/isolation", json={"is_paused": False})
        run = wait_for_run(api, "isolation", run["dag_run_id"])
        states = _run_states(api, "isolation", run["dag_run_id"])
        assert run["state"] == "failed"
        assert states["ingest_inventory"] == ("failed", 1), states
        assert states["ingest_iso_stores.load"][0] == "success", states
        assert states[BUILD_TASK_ID][0] == "upstream_failed", states
        assert query(warehouse, "select count(*) from raw_iso_stores.stores") == [(5,)]
