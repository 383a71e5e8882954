"""Environments: the same DAG file writes only DuckDB in `dev` and only PostgreSQL in `prod`, with equal rows.

Real dlt, dbt (dbt-duckdb and dbt-postgres), DuckDB and a throwaway PostgreSQL server on 127.0.0.1;
each environment runs the demo's ELT DAG once with `airflow dags test` for the same interval.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.helpers import AIRFLOW, airflow_env, postgres_or_skip, run_airflow
from tests.e2e.servers import free_port
from tests.e2e.warehouse_digests import duckdb_digests, postgres_digests

pytestmark = [pytest.mark.e2e, pytest.mark.scale_out]
LOGICAL_DATE = "2024-01-08"
CONF = '{"start": "2024-01-05", "end": "2024-01-08"}'
PASSWORD = "pw-never-shown-7f3k9q"


def _postgres_schemas(url: str) -> set[str]:
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("select schema_name from information_schema.schemata")
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with postgres_or_skip() as pg:
        import psycopg2

        admin = psycopg2.connect(pg.url)
        admin.autocommit = True
        admin.cursor().execute("create database warehouse")
        admin.close()
        warehouse_url = pg.url.rsplit("/", 1)[0] + "/warehouse"
        root = tmp_path_factory.mktemp("environments")
        prod_env = airflow_env(root / "prod-airflow", root / "prod-never.duckdb", root / "prod-work")
        prod_env |= {"MALLARD_ENV": "prod", "AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD": warehouse_url}
        dev_env = airflow_env(root / "dev-airflow", root / "dev.duckdb", root / "dev-work")
        # The prod connection is defined in dev too: dev must not use it.
        dev_env |= {"MALLARD_ENV": "dev", "AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD": warehouse_url}
        results = {"root": root, "warehouse_url": warehouse_url, "prod_env": prod_env}
        for name, env in (("prod", prod_env), ("dev", dev_env)):
            log = root / f"{name}.log"
            run_airflow(["db", "migrate"], env, log)
            results[f"schemas_before_{name}"] = _postgres_schemas(warehouse_url)
            run_airflow(["dags", "test", "mallard_elt", LOGICAL_DATE, "--conf", CONF], env, log)
            results[f"schemas_after_{name}"] = _postgres_schemas(warehouse_url)
            results[f"postgres_after_{name}"] = postgres_digests(warehouse_url)
            results[f"{name}_log"] = log
        yield results


def test_prod_writes_only_postgres(runs):
    created = runs["schemas_after_prod"] - runs["schemas_before_prod"]
    assert {"raw_shop", "raw_stores", "raw_marketing", "staging", "marts", "mallard_meta"} <= created, created
    # The DuckDB file of the prod environment's process was never created.
    assert not (runs["root"] / "prod-never.duckdb").exists()
    assert not list(runs["root"].glob("prod-never*"))


def test_dev_writes_only_duckdb(runs):
    assert (runs["root"] / "dev.duckdb").is_file()
    assert runs["schemas_after_dev"] == runs["schemas_before_dev"]
    # Not a row changed in the tables the prod run wrote, either.
    assert runs["postgres_after_dev"] == runs["postgres_after_prod"]


def test_postgres_and_duckdb_hold_the_same_rows(runs):
    in_duckdb = duckdb_digests(runs["root"] / "dev.duckdb")
    in_postgres = postgres_digests(runs["warehouse_url"])
    assert in_duckdb["marts.orders"][0] > 0 and in_duckdb["raw_shop.orders"][0] > 0
    assert in_postgres == in_duckdb


def test_the_prod_load_is_one_task_per_source_and_recorded_in_postgres(runs):
    import psycopg2

    with psycopg2.connect(runs["warehouse_url"]) as connection, connection.cursor() as cursor:
        cursor.execute("select source, status, sum(rows) from mallard_meta.loads group by 1, 2 order by 1")
        loads = cursor.fetchall()
        cursor.execute(
            "select count(*), count(*) filter (where status in ('success', 'pass')) from mallard_meta.dbt_nodes"
        )
        nodes, succeeded = cursor.fetchone()
    assert [(source, status) for source, status, _ in loads] == [
        ("marketing", "success"),
        ("shop", "success"),
        ("stores", "success"),
    ]
    assert nodes > 0 and nodes == succeeded
    text = runs["prod_log"].read_text()
    assert "ingest_shop.extract" not in text  # extract and load are one task on a server warehouse
    assert "Loading source 'shop' into postgres 127.0.0.1:" in text


def test_an_unreachable_prod_warehouse_fails_the_first_task_saying_where_and_how_to_fix(runs, tmp_path):
    closed = free_port()
    env = {
        **runs["prod_env"],
        "AIRFLOW_CONN_MALLARD_WAREHOUSE_PROD": f"postgres://nobody:{PASSWORD}@127.0.0.1:{closed}/db",
    }
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    log = tmp_path / "unreachable.log"
    run_airflow(["db", "migrate"], env, log)
    result = subprocess.run(
        [AIRFLOW, "tasks", "test", "mallard_elt", "ingest_stores.load", LOGICAL_DATE],
        env=env,
        cwd=os.environ.get("MALLARD_ROOT"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    # `tasks test` exits 0 whatever the task did; the task's own state says it failed.
    assert "new_state=up_for_retry" in output or "new_state=failed" in output, output[-3000:]
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{closed}/db as nobody" in output, output[-3000:]
    assert "environment `prod`" in output and "connection `mallard_warehouse_prod`" in output
    assert PASSWORD not in output
