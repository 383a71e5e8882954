"""Shared by the end-to-end tests: run Airflow CLI commands on this project, read the warehouse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from include.mallard.paths import DBT_PROJECT_DIR
from tests.conftest import PROJECT_ROOT
from tests.e2e.servers import PostgresServer, postgres_server, postgres_unavailable

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_env(airflow_home: Path, warehouse: Path, work_dir: Path) -> dict[str, str]:
    """The environment of a throwaway Airflow + warehouse for one test."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "MALLARD_WAREHOUSE_PATH": str(warehouse),
        "MALLARD_WORK_DIR": str(work_dir),
    }


def run_airflow(args: list[str], env: dict[str, str], log_file: Path, timeout: int = 900) -> None:
    """Run `airflow <args>`, keep its output in `log_file`, fail with the tail of it."""
    with log_file.open("a") as log:
        result = subprocess.run(
            [AIRFLOW, *args], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-60:])
        raise AssertionError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{tail}")


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def table_checksums(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every raw and mart table.

    dlt's bookkeeping tables and per-load columns (_dlt_load_id, _dlt_id) differ between loads by
    design, so they are left out: what is compared is the data.
    """
    checksums = {}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            # dlt's staging schemas (`_mallard_staging_raw_<source>`) do not start with raw_; a
            # source may well be named `<x>_staging`.
            "where (table_schema like 'raw\\_%' escape '\\' "
            "and table_name not like '\\_dlt%' escape '\\') or table_schema = 'marts'"
        ).fetchall()
        for schema, table in tables:
            columns = [
                name
                for (name,) in connection.execute(
                    "select column_name from information_schema.columns where table_schema = ? and table_name = ?"
                    " and column_name not in ('_dlt_load_id', '_dlt_id') order by column_name",
                    [schema, table],
                ).fetchall()
            ]
            column_list = ", ".join(f'"{c}"' for c in columns)
            row = connection.execute(
                f"select count(*), md5(coalesce(string_agg(r, '|' order by r), '')) "
                f'from (select cast(row({column_list}) as varchar) as r from "{schema}"."{table}")'
            ).fetchone()
            checksums[f"{schema}.{table}"] = (row[0], row[1])
    return checksums


DAG_FILE = """# An Airflow DAG (Airflow's safe mode only parses files that mention both words).
from pathlib import Path

from include.mallard.factory import build_elt_dag

dag = build_elt_dag({dag_id!r}, sources_dir=Path({sources_dir!r}), dbt_project_dir=Path({dbt_project_dir!r}))
"""


def write_elt_dag(dags_dir: Path, dag_id: str, sources_dir: Path, dbt_project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """A DAG file in `dags_dir` that builds Mallard's ELT DAG over other sources (and dbt project)."""
    dags_dir.mkdir(parents=True, exist_ok=True)
    path = dags_dir / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, sources_dir=str(sources_dir), dbt_project_dir=str(dbt_project_dir)))
    return path


SMALL_PROJECT_SOURCES = """version: 2
sources:
  - name: shop
    schema: raw_shop
    tables:
      - name: orders
"""
SMALL_PROJECT_MODEL = "select id as order_id, ordered_at from {{ source('shop', 'orders') }}\n"
SMALL_PROJECT_MODEL_YML = """version: 2
models:
  - name: stg_load__orders
    columns:
      - name: order_id
        data_tests: [not_null]
"""


def small_dbt_project(project: Path) -> Path:
    """A one-model dbt project over `raw_shop.orders`, its manifest built: keeps a test's time on ingestion."""
    (project / "models").mkdir(parents=True)
    shutil.copy(DBT_PROJECT_DIR / "profiles.yml", project / "profiles.yml")
    (project / "dbt_project.yml").write_text(
        'name: mallard\nversion: "1.0.0"\nprofile: mallard\nconfig-version: 2\nmodel-paths: ["models"]\n'
    )
    (project / "models" / "_shop__sources.yml").write_text(SMALL_PROJECT_SOURCES)
    (project / "models" / "stg_load__orders.sql").write_text(SMALL_PROJECT_MODEL)
    (project / "models" / "stg_load__orders.yml").write_text(SMALL_PROJECT_MODEL_YML)
    command = [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(project)]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return project


HOLD_WAREHOUSE = (
    "import duckdb, sys, time; connection = duckdb.connect(sys.argv[1]); "
    "print('holding', flush=True); time.sleep(float(sys.argv[2]))"
)


@contextmanager
def postgres_or_skip() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on 127.0.0.1 (servers.postgres_server), or the test skipped saying why."""
    if reason := postgres_unavailable():
        pytest.skip(f"PostgreSQL is not available here: {reason}")
    with postgres_server() as server:
        yield server


@contextmanager
def warehouse_held_open(warehouse: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process (think: a SQL client) holds the warehouse open for writing for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WAREHOUSE, str(warehouse), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait()


SPEND_FRESHNESS = """        config:
          loaded_at_field: cast(spend_date as timestamp)
          freshness:
            warn_after: {count: 1, period: day}
            error_after: {count: 4, period: day}
"""


def demo_project_with_spend_freshness(project: Path) -> Path:
    """The demo dbt project copied to `project`, with a freshness rule on `marketing.spend` (warn
    after 1 day, fail after 4, on spend_date), its manifest built. The demo CSVs end on 2024-03-31."""
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    sources = project / "models" / "staging" / "marketing" / "_marketing__sources.yml"
    anchor = "        description: Spend per day and channel.\n"
    assert anchor in sources.read_text(), f"{sources} changed: update SPEND_FRESHNESS's anchor"
    sources.write_text(sources.read_text().replace(anchor, anchor + SPEND_FRESHNESS))
    command = [sys.executable, "-m", "include.mallard.cli", "manifest", "--dbt-project-dir", str(project)]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return project


def maps_duckdb(pid: int) -> bool:
    """The process has DuckDB's extension module mapped: something in it imported duckdb."""
    try:
        return "_duckdb.cpython" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # exited meanwhile
        return False
