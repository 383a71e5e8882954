"""A broken source file stops only its own source, at run time too (real dlt, DuckDB and `airflow dags test`).

Each task reads only its own source's file (the path is in its op_kwargs), so a file broken during a
run cannot fail another source's tasks; a config error fails at once, without the retries and
their 30 s delays; the invalid file's own task fails, upstream of dbt, so no mart is built without it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.mallard import tasks
from include.mallard.dbt_group import BUILD_TASK_ID
from include.mallard.paths import SOURCES_DIR
from tests.e2e.helpers import airflow_env, query, run_airflow, small_dbt_project

pytestmark = pytest.mark.e2e

BROKEN = 'kind: files\npath: include/data/stores\ntables:\n  - name: stock\n    glob: "../x.csv"\n'
UTC = dt.UTC


def _context(dag_id: str) -> dict:
    conf = {"start": "2024-01-01", "end": "2024-01-02"}
    return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": "manual__isolation", "dag_run": SimpleNamespace(conf=conf)}


def test_a_task_reads_only_its_own_sources_file(tmp_path, monkeypatch):
    """Before: every task re-read every file, so one bad file pushed mid-run failed every source's next task."""
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    own = {"source_name": "stores", "source_file": str(sources / "stores.yml")}
    counts = tasks.extract_task(**own, **_context("isolation"))
    assert counts["stores"] == 5
    (sources / "marketing.yml").write_text(BROKEN)  # another source's file breaks between the two tasks
    tasks.load_task(**own, **_context("isolation"))
    assert query(tmp_path / "warehouse.duckdb", "select count(*) from raw_stores.stores") == [(5,)]


def test_a_config_error_in_the_tasks_own_file_fails_at_once_without_retries(tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES_DIR, sources)
    (sources / "stores.yml").write_text(BROKEN.replace("stock", "stores"))
    own = {"source_name": "stores", "source_file": str(sources / "stores.yml")}
    # AirflowFailException: Airflow fails the task without using its retries (the same error every try).
    with pytest.raises(AirflowFailException, match=r"stores.yml: field `tables\[0\].glob`.*Fix:"):
        tasks.extract_task(**own, **_context("isolation"))
    (sources / "stores.yml").unlink()
    with pytest.raises(AirflowFailException, match="No such file"):
        tasks.load_task(**own, **_context("isolation"))
    bad_conf = {**_context("isolation"), "dag_run": SimpleNamespace(conf={"start": "yesterday", "end": "2024-01-02"})}
    own = {"source_name": "shop", "source_file": str(sources / "shop.yml")}
    with pytest.raises(AirflowFailException, match="'start'"):
        tasks.extract_task(**own, **bad_conf)


@pytest.mark.parametrize("reference", ["{env: MALLARD_TEST_UNSET_DB_URL}", "{connection: mallard_test_unset}"])
def test_a_missing_secret_fails_at_once_without_retries(tmp_path, monkeypatch, reference):
    """Before: retried with its delays (78 s in `mallard run`) to meet the same missing env var each try."""
    monkeypatch.setenv("MALLARD_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MALLARD_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("MALLARD_TEST_UNSET_DB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MALLARD_TEST_UNSET", raising=False)
    source_file = tmp_path / "legacy.yml"
    source_file.write_text(f"kind: sql_database\ncredentials: {reference}\ntables:\n  - name: customers\n")
    own = {"source_name": "legacy", "source_file": str(source_file)}
    missing = "environment variable MALLARD_TEST_UNSET_DB_URL" if "env" in reference else "'mallard_test_unset'"
    with pytest.raises(AirflowFailException, match=rf"{missing}.*A retry would meet the same"):
        tasks.extract_task(**own, **_context("isolation"))


DAG_FILE = """# An Airflow DAG over sources with one invalid file (safe mode wants both words).
from pathlib import Path

from include.mallard.factory import build_elt_dag

dag = build_elt_dag("isolation", sources_dir=Path({sources!r}), dbt_project_dir=Path({dbt!r}))
"""


def test_a_run_with_an_invalid_source_file_loads_the_others_and_builds_no_mart(tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(SOURCES_DIR / "stores.yml", sources)
    shutil.copy(SOURCES_DIR / "shop.yml", sources)
    (sources / "inventory.yml").write_text(BROKEN)
    dbt = small_dbt_project(tmp_path / "dbt")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "isolation.py").write_text(DAG_FILE.format(sources=str(sources), dbt=str(dbt)))
    warehouse = tmp_path / "warehouse.duckdb"
    env = {**airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    log = tmp_path / "airflow.log"
    run_airflow(["db", "migrate"], env, log)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="DagRun failed"):
        run_airflow(["dags", "test", "isolation", "2024-01-08"], env, log)
    took = time.monotonic() - started
    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as db:
        states = {
            task: (state, tries)
            for task, state, tries in db.execute(
                "select task_id, state, try_number from task_instance where dag_id = 'isolation'"
            )
        }
    # The invalid file's task failed on its first try, with the file, the field and the fix in its log...
    assert states["ingest_inventory"] == ("failed", 1), states
    text = log.read_text()
    assert "inventory.yml: field `tables[0].glob`" in text and "Fix:" in text
    # ...the valid sources loaded...
    assert all(
        states[f"ingest_{name}.{step}"][0] == "success" for name in ("shop", "stores") for step in ("extract", "load")
    )
    assert query(warehouse, "select count(*) from raw_stores.stores") == [(5,)]
    # ...and dbt did not run: no mart is built without the invalid source.
    assert states["ingestion_done"][0] == "upstream_failed" and states[BUILD_TASK_ID][0] == "upstream_failed"
    assert not query(
        warehouse, "select table_name from information_schema.tables where table_name = 'stg_load__orders'"
    )
    print(f"\nrun with an invalid source file: {took:.0f} s")
    assert took < 120, "a config error must not wait for retries"
