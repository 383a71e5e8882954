"""The `dbt build` task keeps dbt's partial parse from one DAG run to the next.

Each run has a new interval. Passed as `--vars`, it made dbt log "Unable to do partial parsing
because config vars, config profile, or config target have changed" and re-parse the whole project
on every run (7 s for the demo, ~30 s at 1,000 models). Passed as env vars read only inside
`is_incremental()` (macros/interval_filter.sql), the second run parses incrementally. Two real
`airflow dags test` runs of the ELT DAG, with their own Airflow home and Cosmos cache.

The first run re-uses the parse of `mallard manifest` (what `make demo` and the Dockerfile run):
that parse passes `--profile` as Cosmos does, since dbt's partial parse state hashes the flag.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from include.mallard.paths import DBT_PROJECT_DIR, PROJECT_ROOT, SOURCES_DIR
from tests.e2e.helpers import airflow_env, query, run_airflow

pytestmark = pytest.mark.e2e
FULL_PARSE = "Unable to do partial parsing"


def test_the_second_run_with_a_new_interval_parses_dbt_incrementally(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(tmp_path / "cosmos")  # no partial parse from another test
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-08"], env, tmp_path / "run1.log")
    run_airflow(["dags", "test", "mallard_elt", "2024-01-09"], env, tmp_path / "run2.log")

    second = (tmp_path / "run2.log").read_text()
    assert "Partial parse is enabled" in second  # Cosmos found the first run's saved parse
    assert FULL_PARSE not in second, [line for line in second.splitlines() if FULL_PARSE in line]
    # The interval still reached dbt: the incremental orders mart holds both days, each order once.
    [(raw, distinct_raw)] = query(warehouse, "select count(*), count(distinct id) from raw_shop.orders")
    [(mart, distinct_mart, days)] = query(
        warehouse,
        "select count(*), count(distinct order_id), count(distinct cast(ordered_at as date)) from marts.orders",
    )
    assert raw == distinct_raw == mart == distinct_mart and days == 2


DAG_FILE = """# An Airflow DAG: the demo sources over a copy of the demo dbt project.
from pathlib import Path

from include.mallard.factory import build_elt_dag

dag = build_elt_dag("first_parse", sources_dir=Path({sources!r}), dbt_project_dir=Path({dbt!r}))
"""


def test_the_first_run_after_mallard_manifest_reuses_its_parse(tmp_path):
    """Before: `mallard manifest` parsed without `--profile`, so the first run re-parsed everything."""
    dbt = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT_DIR, dbt, ignore=shutil.ignore_patterns("target", "logs"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "first_parse.py").write_text(DAG_FILE.format(sources=str(SOURCES_DIR), dbt=str(dbt)))
    warehouse = tmp_path / "warehouse.duckdb"
    env = airflow_env(tmp_path / "airflow", warehouse, tmp_path / "work")
    env |= {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__COSMOS__CACHE_DIR": str(tmp_path / "cosmos")}
    command = [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(dbt)]
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    run_airflow(["db", "migrate"], env, tmp_path / "migrate.log")
    run_airflow(["dags", "test", "first_parse", "2024-01-08"], env, tmp_path / "run1.log")

    first = (tmp_path / "run1.log").read_text()
    assert f"latest partial parse file is {dbt / 'target' / 'partial_parse.msgpack'}" in first
    assert FULL_PARSE not in first, [line for line in first.splitlines() if FULL_PARSE in line]
    [(raw,)] = query(warehouse, "select count(*) from raw_shop.orders")
    assert raw > 0 and query(warehouse, "select count(*) from marts.orders") == [(raw,)]
